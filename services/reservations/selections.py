"""Selections: a patron describes their tastes, staff choose the titles, and the choice becomes an ordinary
reservation allocated as usual (or staff say nothing fitting is available). Inside the caller's transaction."""

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.auth import Principal
from services.common.errors import Conflict, Invalid, NotFound
from services.common.relay import Events
from services.reservations import counter, desk
from services.reservations.calendars import pickup_point
from services.reservations.models import CatalogueTitle, Reservation, Selection
from services.reservations.policy import Policy
from services.reservations.refs import point_ref

OPEN = ("requested",)
YOUTH_AGES = (0, 18)


def check_audience(audience: str, age_min: int | None, age_max: int | None) -> None:
    """Youth selections say for what ages (0–18); adult ones do not."""
    if audience == "adult":
        if age_min is not None or age_max is not None:
            raise Invalid("an age range is for youth selections", field="age_min")
        return
    if age_min is None or age_max is None:
        raise Invalid("a youth selection needs an age range (age_min and age_max)", field="age_min")
    if not (YOUTH_AGES[0] <= age_min <= YOUTH_AGES[1] and YOUTH_AGES[0] <= age_max <= YOUTH_AGES[1]):
        raise Invalid("youth ages are between 0 and 18", field="age_min")
    if age_max < age_min:
        raise Invalid(f"the age range is upside down: {age_min} to {age_max}", field="age_max")


def request(session: Session, events: Events, policy: Policy, principal: Principal, body: dict, channel: str,
            now: datetime) -> Selection:
    card = body["patron"]
    principal.require_card(card)
    check_audience(body["audience"], body.get("age_min"), body.get("age_max"))
    point = pickup_point(session, body["pickup_point"])
    desk.lock_card(session, card)
    held = desk.held_materials(session, card)
    if len(held) + body["documents"] > policy.quota.max_items:
        left = max(policy.quota.max_items - len(held), 0)
        raise Invalid(f"{body['documents']} documents is more than the card's quota allows now ({left} left of "
                      f"{policy.quota.max_items})", field="documents", quota_left=left)
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
        Selection.pickup_point_id == point_id, Selection.status.in_(OPEN)).order_by(Selection.requested_at)))


def _ensure_open(selection: Selection, principal: Principal) -> None:
    if selection.status not in OPEN:
        raise Conflict(f"this selection is already {selection.status}", status=selection.status)
    counter.ensure_free_to_prepare(selection.claimed_by, principal)


def prepare(session: Session, events: Events, policy: Policy, principal: Principal, selection: Selection,
            title_ids: Sequence[str], note: str | None, now: datetime) -> Reservation:
    """The chosen titles become a reservation of the patron's, placed on the selection's channel."""
    _ensure_open(selection, principal)
    if len(title_ids) > selection.documents:
        raise Invalid(f"{len(title_ids)} titles chosen for a selection of {selection.documents}", field="titles")
    kinds = dict(session.execute(select(CatalogueTitle.id, CatalogueTitle.material)
                                 .where(CatalogueTitle.id.in_(title_ids))).all())
    off = [t for t in title_ids if t in kinds and kinds[t] not in selection.kinds]
    if off:
        raise Invalid(f"not among the kinds asked ({', '.join(selection.kinds)}): {', '.join(off)}", field="titles")
    _close(session, selection, "prepared", principal, note, now)  # before placing: its places go to the lines
    reservation = desk.place(session, events, policy, principal, selection.patron, selection.pickup_point_id,
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
    if selection.status not in OPEN:
        raise Conflict(f"this selection is already {selection.status}", status=selection.status)
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
