"""What the pages do through the reservations API: the board's sheet and actions, the patron page's reservation,
its slots and its actions. Every read and every action goes to reservations with the visitor's own token."""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.web import api, pages
from services.web.api import Answer
from services.web.policy import Policy

# Board actions → the reservations route each one calls (and the body it sends).
BOARD_ACTIONS = {"claim": "claim", "release": "release", "ready": "ready", "collect": "collect",
                 "arrived": "arrived"}
SLOT_DAYS = 7  # the patron page offers the free slots of the coming week


def day_sheet(policy: Policy, token: str, point_id: str, zone: ZoneInfo) -> Answer:
    return api.call(policy.reservations_url, token, "GET", f"/pickup-points/{point_id}/day-sheet",
                    params={"date": pages.today(zone).isoformat()})


def board_action(policy: Policy, token: str, form: Mapping[str, Any]) -> Answer:
    action, reservation_id = form.get("action"), str(form.get("reservation_id") or "")
    if action not in BOARD_ACTIONS or not reservation_id or len(reservation_id) > 36 or "/" in reservation_id:
        return Answer(400, {"error": "invalid", "message": "unknown action or reservation"})
    body: dict[str, Any] | None = None
    if action == "ready":
        shelf = str(form.get("hold_shelf") or "").strip()
        body = {"hold_shelf": shelf} if shelf else {}
    return api.call(policy.reservations_url, token, "POST", f"/reservations/{reservation_id}/{BOARD_ACTIONS[action]}",
                    json=body)


def reservation(policy: Policy, token: str, reservation_id: str) -> Answer:
    return api.call(policy.reservations_url, token, "GET", f"/reservations/{reservation_id}")


def free_slots(policy: Policy, token: str, point_id: str, zone: ZoneInfo,
               booked: str | None = None) -> list[dict[str, Any]]:
    """The coming week's slots with a free place, but the one already booked (`booked`: its start)."""
    first = pages.today(zone)
    answer = api.call(policy.reservations_url, token, "GET", f"/pickup-points/{point_id}/slots",
                      params={"from": first.isoformat(), "to": (first + timedelta(days=SLOT_DAYS - 1)).isoformat()})
    if not answer.ok or not isinstance(answer.body, list):
        return []
    return [s for s in answer.body if s.get("free", 0) > 0 and s.get("starts_at") != booked]


def patron_action(policy: Policy, token: str, reservation_id: str, form: Mapping[str, Any]) -> Answer:
    action = form.get("action")
    base = f"/reservations/{reservation_id}"
    if action == "arrived":
        return api.call(policy.reservations_url, token, "POST", f"{base}/arrived")
    if action == "book" and form.get("starts_at"):
        return api.call(policy.reservations_url, token, "PUT", f"{base}/appointment",
                        json={"starts_at": str(form["starts_at"])})
    return Answer(400, {"error": "invalid", "message": "unknown action"})
