"""The patron link of a ready message, called directly: a short signed token naming one reservation until a
moment; what the bearer check makes of it; and the reservation states that close it."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import time_machine

from services.common.auth import (
    DEV_SECRET,
    PATRON_STAFF_OR_LINK,
    RESERVATION_LINK,
    Principal,
    TokenVerifier,
    read_reservation_link,
    reservation_link_token,
)
from services.common.errors import Forbidden, Unauthorized
from services.reservations.domain import LinkClosed, ensure_link_open

RID = "0b5c2f7e-1d3a-4c59-9e7b-2f1a8d6c4e21"
NOW = datetime(2026, 12, 2, 10, tzinfo=UTC)
UNTIL = NOW + timedelta(days=10)
URL_SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."


@dataclass
class Held:
    id: str
    patron: str


@time_machine.travel(NOW, tick=False)
def test_round_trip_of_a_uuid_and_of_any_other_id():
    link = read_reservation_link(None, reservation_link_token(None, RID, UNTIL))
    assert link.reservation_id == RID and link.expires_at == UNTIL
    assert read_reservation_link(None, reservation_link_token(None, "r18", UNTIL)).reservation_id == "r18"
    # An uppercase UUID is another id to reservations: it comes back as given, not normalised.
    assert read_reservation_link(None, reservation_link_token(None, RID.upper(), UNTIL)).reservation_id == RID.upper()
    # A moment within a second rounds up: the link never closes before the moment asked.
    assert read_reservation_link(None, reservation_link_token(None, RID, UNTIL - timedelta(
        microseconds=1))).expires_at == UNTIL


def test_short_enough_for_an_sms_and_url_safe():
    for _ in range(50):
        token = reservation_link_token(None, str(uuid.uuid4()), UNTIL)
        assert len(token) <= 52, token
        assert set(token) <= set(URL_SAFE)
        assert token.count(".") == 1  # never mistaken for a JWT (three parts)


def test_the_token_is_what_the_signer_itself_writes():
    # reservation_link_token signs with the key derived once per secret; the signer (which reads tokens) must agree.
    import struct

    from itsdangerous.encoding import base64_encode

    from services.common.auth import _link_signer, _packed_id
    for rid, config in ((RID, None), ("r18", None), (RID.upper(), None), (RID, {"PATRON_LINK_SECRET": "another"})):
        expires = int(-(-UNTIL.timestamp() // 1))
        signed = _link_signer(config).sign(base64_encode(struct.pack(">I", expires) + _packed_id(rid))).decode()
        assert reservation_link_token(config, rid, UNTIL) == signed


def test_expired_is_unauthorized():
    token = reservation_link_token(None, RID, UNTIL)
    with time_machine.travel(UNTIL - timedelta(seconds=1), tick=False):
        assert read_reservation_link(None, token).reservation_id == RID
    with time_machine.travel(UNTIL, tick=False), pytest.raises(Unauthorized, match="expired"):
        read_reservation_link(None, token)


@time_machine.travel(NOW, tick=False)
def test_tampered_cut_or_signed_with_another_secret_is_unauthorized():
    token = reservation_link_token(None, RID, UNTIL)
    payload, signature = token.split(".")
    other = reservation_link_token(None, "0b5c2f7e-1d3a-4c59-9e7b-2f1a8d6c4e22", UNTIL).split(".")[0]
    later = reservation_link_token(None, RID, UNTIL + timedelta(days=365)).split(".")[0]
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    # The signature's last character holds 2 bits of it and 4 that decoding drops: every other spelling is refused.
    respelt = [f"{payload}.{signature[:-1]}{c}" for c in URL_SAFE if c not in (signature[-1], ".")]
    for bad in (*respelt, f"{other}.{signature}", f"{later}.{signature}", f"{flipped}.{signature}", token[:-1],
                f"{payload}.", f".{signature}", "x.y", token + "A"):
        with pytest.raises(Unauthorized):
            read_reservation_link(None, bad)
    with pytest.raises(Unauthorized):
        read_reservation_link({"PATRON_LINK_SECRET": "another-secret-0123456789abcdef0123"}, token)
    # The link's key is its own: a token signed with the JWT secret is no link.
    assert reservation_link_token({"PATRON_LINK_SECRET": DEV_SECRET}, RID, UNTIL) != token


@time_machine.travel(NOW, tick=False)
def test_the_bearer_check_makes_it_a_link_principal_for_its_reservation_only():
    verifier = TokenVerifier({})
    principal = verifier.authorize(f"Bearer {reservation_link_token(None, RID, UNTIL)}", PATRON_STAFF_OR_LINK)
    assert principal.roles == {RESERVATION_LINK} and principal.reservation_id == RID and principal.is_link
    assert not principal.is_staff and not principal.may_act_for("C1")
    principal.require_reservation(Held(RID, "C1"))
    with pytest.raises(Forbidden, match="another reservation"):
        principal.require_reservation(Held("another", "C1"))
    with pytest.raises(Forbidden):
        principal.require_card("C1")  # a card's records: never with a link
    with pytest.raises(Forbidden):
        verifier.authorize(f"Bearer {reservation_link_token(None, RID, UNTIL)}", ("patron", "staff"))


@time_machine.travel(NOW, tick=False)
def test_a_jwt_cannot_claim_the_link_role():
    claims = {"sub": "C1", "roles": [RESERVATION_LINK, "patron"], "iss": "drive", "aud": "drive",
              "exp": NOW + timedelta(hours=1)}
    principal = TokenVerifier({}).verify("Bearer " + jwt.encode(claims, DEV_SECRET, algorithm="HS256"))
    assert principal.roles == {"patron"} and principal.reservation_id is None
    with pytest.raises(Forbidden):
        principal.require_reservation(Held(RID, "C2"))  # as a patron: their own card only
    principal.require_reservation(Held(RID, "C1"))
    assert not Principal("C1", frozenset({"patron"})).is_link


def test_closed_reservations_and_past_deadlines_close_the_link():
    ensure_link_open("ready", NOW + timedelta(hours=1), NOW)
    ensure_link_open("allocated", None, NOW)  # back to allocation (a stop): still the patron's
    for status in ("collected", "cancelled", "expired"):
        with pytest.raises(LinkClosed, match=status) as refused:
            ensure_link_open(status, NOW + timedelta(hours=1), NOW)
        assert refused.value.status == 409 and refused.value.code == "link_closed"
    with pytest.raises(LinkClosed, match="waited until"):
        ensure_link_open("ready", NOW - timedelta(seconds=1), NOW)
