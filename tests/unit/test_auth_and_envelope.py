"""Tokens and the event envelope, without a broker."""

from datetime import UTC, datetime, timedelta

import jwt
import pytest
import time_machine

import services.events  # noqa: F401  (fills the registry)
from services.common.auth import DEV_SECRET, TokenVerifier, issue_token
from services.common.envelope import REGISTRY
from services.common.errors import Forbidden, PermanentFailure, Unauthorized


def test_token_round_trip_and_role_check():
    verifier = TokenVerifier({})
    principal = verifier.authorize(f"Bearer {issue_token({}, 'patron', 'C42')}", ("patron", "staff"))
    assert principal.subject == "C42" and principal.may_act_for("C42") and not principal.may_act_for("C43")
    with pytest.raises(Forbidden):
        verifier.authorize(f"Bearer {issue_token({}, 'patron', 'C42')}", ("staff",))


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer not-a-jwt"])
def test_missing_or_malformed_token_is_unauthorized(header):
    with pytest.raises(Unauthorized):
        TokenVerifier({}).verify(header)


def test_expired_wrong_secret_or_wrong_audience_is_unauthorized():
    now = datetime.now(UTC)
    base = {"sub": "s", "role": "staff", "iss": "drive", "aud": "drive", "exp": now + timedelta(hours=1)}
    for claims, secret in [({**base, "exp": now - timedelta(seconds=5)}, DEV_SECRET),
                           (base, "another-secret"), ({**base, "aud": "elsewhere"}, DEV_SECRET)]:
        with pytest.raises(Unauthorized):
            TokenVerifier({}).verify("Bearer " + jwt.encode(claims, secret, algorithm="HS256"))


def test_a_token_verified_once_still_expires_at_its_expiry():
    verifier = TokenVerifier({})
    header = "Bearer " + issue_token({}, "staff", "agent-1", hours=0.01)  # 36 s
    assert verifier.verify(header).subject == "agent-1"
    assert verifier.verify(header).subject == "agent-1"  # from what was verified
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=40)), pytest.raises(Unauthorized):
        verifier.verify(header)


def test_envelope_built_and_read_back():
    event = REGISTRY.build("inventory", "copy_available", {"barcode": "B1", "title_id": "t", "site": "central",
                                                           "shelf_mark": "R 1", "reason": "released"})
    message = event.to_message()
    assert set(message) == {"id", "type", "version", "occurred_at", "source", "correlation_id", "causation_id",
                            "data"}
    again = REGISTRY.read(message)
    assert again.id == event.id and again.data["barcode"] == "B1"


def test_an_event_that_does_not_fit_its_schema_is_a_permanent_failure():
    message = REGISTRY.build("inventory", "copy_available", {"barcode": "B1", "title_id": "t", "site": "c",
                                                             "shelf_mark": "R", "reason": "released"}).to_message()
    message["data"]["reason"] = "stolen"
    with pytest.raises(PermanentFailure):
        REGISTRY.read(message)
    with pytest.raises(PermanentFailure):
        REGISTRY.read({"type": "x"})


def test_no_personal_data_fields_in_any_event():
    # Patrons are known by card number only. ("name" alone is a pickup point's or a stop's name.)
    personal = {"patron_name", "first_name", "last_name", "surname", "email", "phone", "mobile", "address"}
    for kind in REGISTRY:
        names = set(kind.schema().fields)
        nested = {n for f in kind.schema().fields.values() if hasattr(f, "inner") and hasattr(f.inner, "schema")
                  for n in f.inner.schema.fields}
        assert not (names | nested) & personal, kind.type
