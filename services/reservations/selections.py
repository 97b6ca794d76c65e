"""Selections: a patron describes their tastes, staff choose the titles, and the choice becomes an ordinary
reservation allocated as usual (or staff say nothing fitting is available). Inside the caller's transaction."""

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.auth import Principal
from services.common.errors import NotFound
from services.common.relay import Events
from services.reservations import circulation, domain
from services.reservations.models import CatalogueTitle, Reservation, Selection
from services.reservations.pickup_points import pickup_point
from services.reservations.policy import Policy
from services.reservations.refs import point_ref


def request(session: Session, events: Events, policy: Policy, principal: Principal, body: dict, channel: str,
            now: datetime) -> Selection:
    card = body["patron"]
    principal.require_card(card)
    domain.check_audience(body["audience"], body.get("age_min"), body.get("age_max"))
    point = pickup_point(session, body["pickup_point"])
    circulation.lock_card(session, card)
    policy.quota.check_selection(len(circulation.held_materials(session, card)), body["documents"])
    selection = Selection(id=str(uuid.uuid4()), patron=card, pickup_point_id=point.id, channel=channel,
                          tastes=body["tastes"].strip(), audience=body["audience"], age_min=body.get("age_min"),
                          age_max=body.get("age_max"), kinds=sorted(set(body["kinds"])), documents=body["documents"],
                          status="requested", requested_at=now, pickup_point=point)
    session.add(selection)
    events.publish(session, "selection_requested", {
        "selection_id": selection.id, "patron": card, "pickup_point": point_ref(point), "channel": channel,
        "audience": selection.audience, "age_min": selection.age_min, "age_max": selection.age_max,
        "kinds": selection.kinds, "documents": selection.documents, "requested_at": now})
    return selection


def find(session: Session, selection_id: str, principal: Principal, lock: bool = False) -> Selection:
    query = select(Selection).where(Selection.id == selection_id)
    selection = session.scalars(query.with_for_update(of=Selection) if lock else query).first()
    if selection is None:
        raise NotFound(f"no selection {selection_id}", selection_id=selection_id)
    principal.require_card(selection.patron)
    return selection


def queue(session: Session, point_id: str) -> list[Selection]:
    """The selections a pickup point's staff have to prepare, oldest first."""
    pickup_point(session, point_id)
    return list(session.scalars(select(Selection).where(
        Selection.pickup_point_id == point_id, Selection.status.in_(domain.SELECTION_OPEN))
        .order_by(Selection.requested_at)))


def _ensure_open(selection: Selection, principal: Principal) -> None:
    domain.ensure_selection_open(selection.status)
    domain.ensure_free_to_prepare(selection.claimed_by, principal.subject)


def prepare(session: Session, events: Events, policy: Policy, principal: Principal, selection: Selection,
            title_ids: Sequence[str], note: str | None, now: datetime) -> Reservation:
    """The chosen titles become a reservation of the patron's, placed on the selection's channel."""
    _ensure_open(selection, principal)
    material_of = dict(session.execute(select(CatalogueTitle.id, CatalogueTitle.material)
                                       .where(CatalogueTitle.id.in_(title_ids))).all())
    domain.check_choice(title_ids, selection.documents, material_of, selection.kinds)
    _close(session, selection, "prepared", principal, note, now)  # before placing: its places go to the lines
    reservation = circulation.place(session, events, policy, principal, selection.patron, selection.pickup_point_id,
                             title_ids, selection.channel, selection_id=selection.id)
    selection.reservation_id = reservation.id
    _announce(session, events, selection, len(title_ids))
    return reservation


def nothing_available(session: Session, events: Events, principal: Principal, selection: Selection, note: str,
                      now: datetime) -> None:
    _ensure_open(selection, principal)
    _close(session, selection, "nothing_available", principal, note, now)
    _announce(session, events, selection, 0)


def cancel(session: Session, events: Events, principal: Principal, selection: Selection) -> None:
    """Withdrawn before staff prepared it: it leaves the queue and gives its places back to the quota."""
    domain.ensure_selection_open(selection.status)
    selection.status, selection.claimed_by, selection.claimed_at = "cancelled", None, None
    events.publish(session, "selection_cancelled", {
        "selection_id": selection.id, "patron": selection.patron, "pickup_point": point_ref(selection.pickup_point),
        "cancelled_by": "staff" if principal.is_staff else "patron"})


def _close(session: Session, selection: Selection, status: str, principal: Principal, note: str | None,
           now: datetime) -> None:
    selection.status, selection.prepared_by, selection.prepared_at = status, principal.subject, now
    selection.note, selection.claimed_by, selection.claimed_at = note, None, None
    session.flush()


def _announce(session: Session, events: Events, selection: Selection, documents: int) -> None:
    events.publish(session, "selection_prepared", {
        "selection_id": selection.id, "patron": selection.patron, "pickup_point": point_ref(selection.pickup_point),
        "outcome": selection.status, "reservation_id": selection.reservation_id, "documents": documents,
        "requested_at": selection.requested_at, "prepared_at": selection.prepared_at})


def patron_selections(session: Session, card: str) -> list[Selection]:
    return list(session.scalars(select(Selection).where(Selection.patron == card)
                                .order_by(Selection.requested_at.desc())))


def selection_view(session: Session, selection: Selection) -> dict:
    """The request, its outcome, and what was chosen (the reservation's lines and where they stand)."""
    reservation = session.get(Reservation, selection.reservation_id) if selection.reservation_id else None
    return {"id": selection.id, "patron": selection.patron, "pickup_point": point_ref(selection.pickup_point),
            "channel": selection.channel, "tastes": selection.tastes, "audience": selection.audience,
            "age_min": selection.age_min, "age_max": selection.age_max, "kinds": selection.kinds,
            "documents": selection.documents, "status": selection.status, "requested_at": selection.requested_at,
            "claimed_by": selection.claimed_by, "prepared_at": selection.prepared_at, "note": selection.note,
            "reservation_id": selection.reservation_id,
            "reservation_status": reservation.status if reservation else None,
            "chosen": [{"title_id": ln.title_id, "title": ln.title, "material": ln.material, "status": ln.status}
                       for ln in reservation.lines] if reservation else []}
