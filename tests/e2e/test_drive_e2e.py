"""End to end: the services as processes, driven over HTTP as staff apps and patrons would, with events
watched on `reservations.events` and `inventory.events` by an outside consumer."""

import signal
from concurrent.futures import ThreadPoolExecutor

import requests
from nameko.testing.rabbit import Client as RabbitAdmin
from sqlalchemy import func, select

from services.inventory.models import Copy, WaitlistEntry
from services.reservations.models import Outbox
from tests.e2e.helpers import import_catalogue, scalar
from tests.helpers import wait_for


def test_reserve_prepare_hand_over_return_and_quarantine(system, token):
    staff, patron = token("staff"), token("patron", "C500")
    reservations = system.start("reservations")
    inventory = system.start("inventory", QUARANTINE_HOURS="0.0003", QUARANTINE_CHECK_SECONDS="0.3",
                             LOG_LEVEL="INFO")
    reservations.headers = inventory.headers = staff
    import_catalogue(system, inventory, "207036822X,L'Étranger,Albert Camus,book,E-1,central,R CAM 1\n", 1)
    title = inventory.get("/titles", params={"q": "camus"}, headers=patron).json()["titles"][0]["id"]

    rid = reservations.post("/reservations", headers=patron, json={"patron": "C500", "pickup_point": "central-adult",
                                                                    "titles": [title]}).json()["id"]
    system.tap.wait("reservation_placed", reservation_id=rid)
    system.tap.wait("items_allocated", reservation_id=rid)
    wait_for(lambda: reservations.get(f"/reservations/{rid}").json()["status"] == "allocated")
    items = reservations.get("/pickup-points/central-adult/preparation-list").json()["items"]
    assert [(i["barcode"], i["shelf_mark"]) for i in items] == [("E-1", "R CAM 1")]
    assert reservations.post(f"/reservations/{rid}/ready").json()["status"] == "ready"
    system.tap.wait("reservation_ready", reservation_id=rid)
    assert reservations.post(f"/reservations/{rid}/collect").json()["status"] == "collected"
    system.tap.wait("reservation_collected", reservation_id=rid)
    wait_for(lambda: inventory.get("/copies/E-1").json()["status"] == "on_loan")

    assert inventory.post("/checkins", json={"barcode": "E-1"}).status_code == 201
    system.tap.wait("item_returned", barcode="E-1")
    back = system.tap.wait("copy_available", count=2, barcode="E-1")[-1]  # catalogued, then out of quarantine
    assert back["data"]["reason"] == "quarantine_over"
    assert inventory.get("/copies/E-1").json()["status"] == "available"
    loans = reservations.get("/patrons/C500/loans", headers=patron).json()
    assert loans[0]["returned_at"] is not None and loans[0]["fine_cents"] == 0

    # structured logs: one JSON object a line, the handler's line carrying the event and reservation ids
    lines = [line for replica in inventory.replicas for line in replica.log()]  # whichever replica handled it
    handled = [x for x in lines if x.get("entrypoint") == "on_reservation_placed" and x["event"] == "worker done"]
    assert handled and handled[0]["reservation_id"] == rid and handled[0]["event_id"]


def test_fifty_patrons_three_copies_two_inventory_processes(system, token):
    staff = token("staff")
    reservations = system.start("reservations")
    inventory = system.start("inventory")
    reservations.headers = inventory.headers = staff
    rows = "".join(f",Le dernier horizon,Nora Sjöberg,book,H-{n},central,R SJO 1\n" for n in range(3))
    import_catalogue(system, inventory, rows, 1)
    title = inventory.get("/titles").json()["titles"][0]["id"]

    def place(n: int) -> int:
        base = reservations.replicas[n % 2].base
        return requests.post(f"{base}/reservations", headers=staff, timeout=30, json={
            "patron": f"C{n}", "pickup_point": "central-adult", "titles": [title]}).status_code

    with ThreadPoolExecutor(50) as pool:
        assert list(pool.map(place, range(50))) == [201] * 50
    allocated = system.tap.wait("items_allocated", count=3, timeout=30)
    unavailable = system.tap.wait("items_unavailable", count=47, timeout=30)
    barcodes = [line["barcode"] for e in allocated for line in e["data"]["lines"]]
    assert sorted(barcodes) == ["H-0", "H-1", "H-2"]  # each copy to one line only
    assert sorted(line["waitlist_position"] for e in unavailable for line in e["data"]["lines"]) == list(range(1, 48))
    held = scalar(system.urls["inventory"], select(func.count(func.distinct(Copy.line_id))).where(
        Copy.status == "allocated"))
    waiting = scalar(system.urls["inventory"], select(func.count()).select_from(WaitlistEntry).where(
        WaitlistEntry.status == "waiting"))
    assert (held, waiting) == (3, 47)


def test_outbox_survives_a_broker_refusal_and_a_sigkill(system, token, rabbit_manager):
    """The broker refuses reservations' publications (its write permission is taken away): reservations
    commit anyway, the events wait in the outbox; its processes are SIGKILLed; once the permission is back,
    new ones publish every one of them, once."""
    staff = token("staff")
    inventory = system.start("inventory")
    inventory.headers = staff
    first = system.start("reservations")
    import_catalogue(system, inventory, ",Un jardin sauvage,Léa Morel,book,J-1,central,R MOR 1\n", 1)
    title = inventory.get("/titles").json()["titles"][0]["id"]
    first.stop()
    admin: RabbitAdmin = rabbit_manager
    # configure, read, write: everything but publishing to reservations' exchange
    admin.set_vhost_permissions(system.vhost, "guest", ".*", ".*", r"^(?!reservations\.events$).*")
    reservations = system.start("reservations")
    placed = [reservations.post("/reservations", headers=staff, json={
        "patron": f"K{n}", "pickup_point": "central-adult", "titles": [title]}).json()["id"] for n in range(3)]
    unsent = select(func.count()).select_from(Outbox).where(Outbox.sent_at.is_(None))
    assert scalar(system.urls["reservations"], unsent) == 3
    assert system.tap.of_type("reservation_placed") == []
    reservations.stop(signal.SIGKILL)

    admin.set_vhost_permissions(system.vhost, "guest", ".*", ".*", ".*")
    system.start("reservations")
    for rid in placed:
        assert len(system.tap.wait("reservation_placed", reservation_id=rid, timeout=15)) == 1
    system.tap.wait("items_allocated", reservation_id=placed[0])
    system.tap.wait("items_unavailable", count=2, timeout=15)
    assert scalar(system.urls["reservations"], unsent) == 0
