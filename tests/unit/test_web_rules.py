"""The web service's rules as plain functions: the session cookie and its CSRF token, the refusals in words, who
may open which page, the open boards' pokes."""

import pytest

from services.common.auth import RESERVATION_LINK, Principal
from services.common.errors import Forbidden
from services.web import session as sessions
from services.web import visitors, words
from services.web.hub import BoardHub
from services.web.pages import CSP

SECRET = b"a-test-secret-of-at-least-thirty-two-chars"


def test_a_sealed_session_reads_back_and_an_altered_one_reads_as_none():
    opened = sessions.new_session("tok.en.value")
    cookie = sessions.seal(SECRET, opened)
    assert sessions.unseal(SECRET, cookie) == opened
    body, mac = cookie.rsplit(".", 1)
    assert sessions.unseal(SECRET, f"{body}x.{mac}") is None
    assert sessions.unseal(b"another-secret-another-secret-another", cookie) is None
    assert sessions.unseal(SECRET, None) is None and sessions.unseal(SECRET, "garbage") is None


def test_the_csrf_token_belongs_to_its_session_only():
    one, two = sessions.new_session("t"), sessions.new_session("t")
    token = sessions.csrf_token(SECRET, one)
    assert sessions.csrf_ok(SECRET, one, token)
    assert not sessions.csrf_ok(SECRET, two, token)
    assert not sessions.csrf_ok(SECRET, one, None) and not sessions.csrf_ok(SECRET, None, token)


@pytest.mark.parametrize(("roles", "kind", "allowed"), [
    ({"staff"}, visitors.BOARD, True), ({"patron"}, visitors.BOARD, False), ({RESERVATION_LINK}, visitors.BOARD, False),
    ({RESERVATION_LINK}, visitors.PATRON, True), ({"staff"}, visitors.PATRON, False),
])
def test_a_board_takes_staff_and_a_patron_page_a_link(roles, kind, allowed):
    link = "r" if RESERVATION_LINK in roles else None
    principal = Principal(subject="x", roles=frozenset(roles), reservation_id=link)
    if allowed:
        visitors.may_open(kind, principal)
    else:
        with pytest.raises(Forbidden):
            visitors.may_open(kind, principal)


def test_refusals_in_words_in_both_languages():
    claimed = {"error": "conflict", "message": "agent-b is preparing this one", "details": {"claimed_by": "agent-b"}}
    assert words.refusal("fr", 409, claimed) == "Refusé : agent-b s'en occupe déjà."
    assert words.refusal("en", 409, claimed) == "Refused: agent-b is already on it."
    state = {"error": "conflict", "message": "…", "details": {"status": "collected"}}
    assert words.refusal("fr", 409, state) == "Refusé : impossible pour une réservation « retirée »."
    assert words.refusal("en", 409, {"error": "link_closed", "message": "…"}).startswith("Refused: this link")
    assert words.refusal("xx", 503, {}) == words.say("fr", "refused_503")  # an unknown language: French


def test_every_word_is_said_in_both_languages():
    assert set(words.CATALOGUE["fr"]) == set(words.CATALOGUE["en"])


def test_the_csp_allows_no_inline_code_and_no_framing():
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP
    assert "script-src 'self'" in CSP and "frame-ancestors 'none'" in CSP


def test_a_poke_reaches_the_boards_of_its_point_only_and_a_stop_ends_them():
    hub = BoardHub()
    hub.setup()
    here, there = hub.stream("p1", heartbeat=5, retry_ms=500), hub.stream("p2", heartbeat=5, retry_ms=500)
    assert next(here).startswith(b"retry: 500\n\nevent: hello") and next(there)
    assert hub.poke("p1", "patron_arrived") == 1 and hub.open_boards() == 2
    assert next(here) == b'event: changed\ndata: {"event": "patron_arrived"}\n\n'
    hub.stop()
    assert list(here) == [] and list(there) == []
    assert hub.open_boards() == 0


def test_a_quiet_stream_sends_heartbeat_comments():
    hub = BoardHub()
    hub.setup()
    stream = hub.stream("p1", heartbeat=0.01, retry_ms=500)
    next(stream)
    assert next(stream) == b": heartbeat\n\n"
    stream.close()  # the browser went away: the board is forgotten
    assert hub.open_boards() == 0
