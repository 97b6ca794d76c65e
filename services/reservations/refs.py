"""How events refer to a pickup point and to a reservation's lines (the shapes in `services.events`)."""

from services.reservations.models import Line, PickupPoint


def point_ref(point: PickupPoint) -> dict:
    return {"id": point.id, "name": point.name, "kind": point.kind, "site": point.site}


def line_ref(line: Line) -> dict:
    return {"line_id": line.id, "title_id": line.title_id, "title": line.title, "material": line.material,
            "barcode": line.barcode}
