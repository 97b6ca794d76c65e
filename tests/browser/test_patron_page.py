"""The patron's page in a real browser (a phone-sized Chromium): the ready message's link read from the file sink,
"I'm here" pressed and seen on the counter's open board, a slot booked; another reservation's page, an expired
link and a link on a board refused."""

import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from services.common.auth import reservation_link_token
from tests.browser.conftest import PHONE, POINT
from tests.browser.test_board import open_board
from tests.e2e.helpers import seed_ready
from tests.helpers import wait_for

LINK = re.compile(r"https?://[^\s\"]+/r#[^\s\"]+")
# Set to a folder (docs) to keep the screenshots the README shows: `DRIVE_SCREENSHOTS=docs make test`.
SCREENSHOTS = os.environ.get("DRIVE_SCREENSHOTS")


@pytest.fixture
def post_office(counter, tmp_path):
    """Notifications as a process on the file sink, its links to this web service."""
    sink = tmp_path / "messages"
    notifications = counter.system.start("notifications", replicas=1, NOTIFY_FILE_SINK_DIR=str(sink), SMTP_HOST="",
                                         SMS_GATEWAY_URL="", WEB_URL=counter.base)
    notifications.headers = counter.reservations.headers
    notifications.sink = sink
    return notifications


def link_in_the_message(sink: Path, to: str) -> str:
    def mailed() -> list[str]:
        path = sink / "email.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        return [link for m in map(json.loads, lines) if m["to"] == to for link in LINK.findall(m["body"])]

    return wait_for(mailed, timeout=15, what=f"the ready message to {to} in the sink")[0]


def ready_with_message(counter, post_office, card_prefix: str) -> tuple[str, str]:
    """A reservation made ready by staff (its copies set aside), and the link its ready message carries."""
    rid, = seed_ready(counter.system.urls["reservations"], 1, POINT, status="allocated", patron=card_prefix)
    card = f"{card_prefix}0000"
    email = f"{card.lower()}@example.org"
    assert post_office.call("PUT", f"/patrons/{card}/contact", json={"email": email}).status_code == 200
    assert counter.reservations.post(f"/reservations/{rid}/ready", json={"hold_shelf": "H-12"}).status_code == 200
    return rid, link_in_the_message(post_office.sink, email)


def test_the_messages_link_says_im_here_and_the_open_board_shows_it(counter, post_office, browser):
    rid, link = ready_with_message(counter, post_office, "M")
    assert link.startswith(f"{counter.base}/r#")
    board = open_board(browser, counter)
    assert "M0000" in board.text("#walk-ins") and "M0000" not in board.text("#outside")

    phone = browser.page("phone", PHONE)
    phone.goto(link)
    phone.wait_for_selector("#im-here", timeout=5000)
    assert phone.evaluate("location.pathname") == f"/r/{rid}" and "#" not in phone.evaluate("location.href")
    assert "H-12" in phone.text("main") and "Titre" in phone.text("main")
    free = phone.text_content(".slot-choice")
    phone.click(".slot-choice")
    phone.wait_text("#notice", "C'est fait", timeout=3000)
    phone.wait_text("#booked", free.split(" · ")[0], timeout=2000)
    assert counter.reservations.get(f"/reservations/{rid}").json()["appointment"]["status"] == "booked"

    phone.click("#im-here")
    phone.wait_text("#notice", "Le comptoir sait que vous êtes là", timeout=3000)
    board.wait_text("#outside", "M0000", timeout=2000)
    assert counter.reservations.get(f"/reservations/{rid}").json()["arrived_at"]
    # The link's token reached the web service in a POST body only: in no URL, so in no log line.
    token = link.partition("#")[2]
    log = counter.web.replicas[0].log_path.read_text()
    assert f"GET /r/{rid} " in log and "POST /session" in log  # the access lines are there, the token is not
    for process in (*counter.web.replicas, *counter.reservations.replicas):
        assert token not in process.log_path.read_text()
    if SCREENSHOTS:  # a busier counter for the picture: walk-ins, and one arrived before it was ready, claimed
        url = counter.system.urls["reservations"]
        seed_ready(url, 2, POINT, patron="W")
        early, = seed_ready(url, 1, POINT, status="allocated", patron="E")
        counter.reservations.post(f"/reservations/{early}/claim")
        counter.reservations.post(f"/reservations/{early}/arrived")
        board.wait_text("#early", "E0000", timeout=2000)
        board.reload()
        board.wait_for_function("() => document.body.dataset.live === 'open'", timeout=5000)
        board.screenshot(path=str(Path(SCREENSHOTS) / "board.png"), full_page=True)
        phone.screenshot(path=str(Path(SCREENSHOTS) / "patron-page.png"), full_page=True)


def test_another_reservations_page_an_expired_link_and_a_link_on_a_board_are_refused(counter, post_office, browser):
    rid, link = ready_with_message(counter, post_office, "N")
    other, = seed_ready(counter.system.urls["reservations"], 1, POINT, patron="O")
    phone = browser.page("phone", PHONE)
    phone.goto(link)
    phone.wait_for_selector("#im-here", timeout=5000)
    # Signed in with N's link, O's page shows nothing of O's, and its actions are refused.
    answer = phone.goto(f"{counter.base}/r/{other}")
    assert answer["status"] == 404 and phone.query_selector("#im-here") is None
    assert "O0000" not in phone.text("body")
    csrf = phone.get_attribute('meta[name="csrf-token"]', "content") if phone.query_selector(
        'meta[name="csrf-token"]') else ""
    assert csrf == ""
    refused = phone.evaluate("""async ([url]) => (await fetch(url, {method: 'POST',
        body: new URLSearchParams({action: 'arrived'})})).status""", [f"{counter.base}/r/{other}/actions"])
    assert refused == 403
    assert not counter.reservations.get(f"/reservations/{other}").json()["arrived_at"]

    expired = reservation_link_token(None, rid, datetime.now(UTC) - timedelta(seconds=1))
    late = browser.page("late", PHONE)
    late.goto(f"{counter.base}/r#{expired}")
    late.wait_text("#signin", "a expiré", timeout=3000)
    assert late.query_selector("#im-here") is None and "#" not in late.evaluate("location.href")

    board = browser.page("board")
    board.goto(f"{counter.base}/boards/{POINT}#{link.partition('#')[2]}")
    board.wait_text("#signin", "jeton du personnel", timeout=3000)
    assert board.query_selector("#sheet") is None
    assert requests.post(f"{counter.base}/session", json={"token": link.partition("#")[2], "kind": "board"},
                         timeout=10).status_code == 403
