"""The counter's board in a real browser (Chromium), against the services as processes: live arrivals without a
reload, actions and their refusals in words, the connection-lost sign and the catch-up after a restart, and what
may not open a board."""

import requests

from services.common.auth import issue_token
from tests.browser.conftest import POINT
from tests.e2e.helpers import seed_ready
from tests.helpers import wait_for


def staff_token(subject: str = "agent-a") -> str:
    return issue_token({}, "staff", subject, hours=1)


def open_board(browser, counter, subject: str = "agent-a"):
    board = browser.page("board")
    board.goto(counter.board_url(staff_token(subject)))
    board.wait_for_selector("#sheet", timeout=5000)
    board.wait_for_function("() => document.body.dataset.live === 'open'", timeout=5000)
    board.wait_for_function("() => !!document.body.dataset.refreshed", timeout=5000)  # its first re-fetch done
    return board


def test_an_arrival_appears_on_the_open_board_within_two_seconds_without_reload(counter, browser):
    rid, = seed_ready(counter.system.urls["reservations"], 1, POINT, patron="A")
    board = open_board(browser, counter)
    # Signed in: the token left the address bar, the cookie is HttpOnly (no script reads it).
    assert "#" not in board.evaluate("location.href")
    assert board.evaluate("document.cookie") == ""
    assert "A0000" in board.text("#walk-ins") and "A0000" not in board.text("#outside")
    navigations = board.navigations()
    board.evaluate("window.stillThisPage = true")

    assert counter.reservations.post(f"/reservations/{rid}/arrived").status_code == 200
    board.wait_text("#outside", "A0000", timeout=2000)
    assert board.navigations() == navigations and board.evaluate("window.stillThisPage === true")


def test_hand_over_from_the_board_collects_through_the_api(counter, browser):
    rid, = seed_ready(counter.system.urls["reservations"], 1, POINT, patron="H")
    board = open_board(browser, counter)
    board.click(f"#collect-{rid}")
    board.wait_text("#notice", "C'est fait", timeout=3000)
    wait_for(lambda: counter.reservations.get(f"/reservations/{rid}").json()["status"] == "collected",
             what="the reservation collected")
    board.wait_for_function(f"() => !document.getElementById('collect-{rid}')", timeout=2000)


def test_a_claim_refused_409_is_said_in_words(counter, browser):
    rid, = seed_ready(counter.system.urls["reservations"], 1, POINT, status="allocated", patron="K")
    other = {"Authorization": f"Bearer {staff_token('agent-b')}"}
    assert counter.reservations.post(f"/reservations/{rid}/claim", headers=other).status_code == 200
    assert counter.reservations.post(f"/reservations/{rid}/arrived").status_code == 200  # shows it: arrived early
    board = open_board(browser, counter, "agent-a")
    assert "K0000" in board.text("#early")
    board.click(f"#claim-{rid}")
    board.wait_text("#notice", "agent-b s'en occupe déjà", timeout=3000)
    assert "refused" in board.get_attribute("#notice", "class")


def test_the_english_board_and_the_keyboard(counter, browser):
    rid, = seed_ready(counter.system.urls["reservations"], 1, POINT, patron="E")
    board = open_board(browser, counter)
    board.click("a[lang=en]")
    board.wait_text("h1", "Counter", timeout=3000)
    board.wait_for_function("() => document.body.dataset.live === 'open'", timeout=5000)
    board.focus(f"#arrived-{rid}")  # by keyboard: the focused button, Enter
    board.press(f"#arrived-{rid}", "Enter")
    board.wait_text("#notice", "Done", timeout=3000)
    board.wait_text("#outside", "E0000", timeout=2000)


def test_connection_lost_shows_and_the_board_catches_up_after_a_restart(counter, browser):
    rid, = seed_ready(counter.system.urls["reservations"], 1, POINT, patron="L")
    board = open_board(browser, counter)
    assert board.is_hidden("#connection")
    assert counter.stop_web() < 6  # an open stream does not hold the stop (the hub ends it)
    board.wait_for_selector("#connection", state="visible", timeout=3000)
    # Said while the web service was down: no process heard it, the re-fetch on reconnection heals it.
    assert counter.reservations.post(f"/reservations/{rid}/arrived").status_code == 200
    counter.start_web()
    board.wait_for_selector("#connection", state="hidden", timeout=10000)
    board.wait_text("#outside", "L0000", timeout=2000)


def test_a_patron_token_and_a_forged_cookie_never_open_a_board(counter, browser):
    board = browser.page("board")
    board.goto(f"{counter.base}/boards/{POINT}#{issue_token({}, 'patron', 'P1', hours=1)}")
    board.wait_text("#signin", "jeton du personnel", timeout=3000)
    assert board.query_selector("#sheet") is None
    assert "#" not in board.evaluate("location.href")
    # The same token straight at the session endpoint, and a cookie not signed by the web service: refused.
    answer = requests.post(f"{counter.base}/session", json={"token": issue_token({}, "patron", "P1"),
                                                            "kind": "board"}, timeout=10)
    assert answer.status_code == 403
    forged = requests.get(f"{counter.base}/boards/{POINT}", cookies={"drive_board": "e30.forged"}, timeout=10)
    assert 'id="sheet"' not in forged.text


def test_the_pages_carry_a_strict_csp_and_a_post_without_csrf_token_is_refused(counter, browser):
    rid, = seed_ready(counter.system.urls["reservations"], 1, POINT, patron="S")
    http = requests.Session()
    signed = http.post(f"{counter.base}/session", json={"token": staff_token(), "kind": "board"}, timeout=10)
    assert signed.status_code == 200
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/boards" in cookie
    page = http.get(f"{counter.base}/boards/{POINT}", timeout=10)
    assert page.status_code == 200 and 'id="sheet"' in page.text
    csp = page.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["Referrer-Policy"] == "no-referrer" and page.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in page.text and "style=" not in page.text
    refused = http.post(f"{counter.base}/boards/{POINT}/actions", data={"action": "collect", "reservation_id": rid},
                        timeout=10)
    assert refused.status_code == 403
    assert counter.reservations.get(f"/reservations/{rid}").json()["status"] == "ready"
    # From another site, even with the right token: refused too.
    csrf = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    crossing = http.post(f"{counter.base}/boards/{POINT}/actions", headers={"Origin": "https://evil.example",
                                                                           "X-CSRF-Token": csrf},
                         data={"action": "collect", "reservation_id": rid}, timeout=10)
    assert crossing.status_code == 403
    done = http.post(f"{counter.base}/boards/{POINT}/actions", headers={"X-CSRF-Token": csrf},
                     data={"action": "collect", "reservation_id": rid}, timeout=10)
    assert done.status_code == 200, done.text
    # The token was never in a URL the server saw, nor in its log.
    log = counter.web.replicas[0].log_path.read_text()
    assert cookie.split(";")[0].split("=", 1)[1] not in log and "eyJ" not in log


def test_the_open_board_still_shows_arrivals_after_the_broker_dropped_every_connection(counter, browser,
                                                                                       rabbit_manager):
    """What a broker restart does to the services (their connections closed by the broker), without restarting
    the broker that other tests share: every connection of this test's vhost is closed from the management API."""
    first, then = seed_ready(counter.system.urls["reservations"], 2, POINT, patron="B")
    board = open_board(browser, counter)
    vhost = counter.system.vhost

    def web_queues() -> list[dict]:
        return [q for q in rabbit_manager.get_queues(vhost) if "--web." in q["name"] and q.get("consumers")]

    # The management API's consumer counts lag a few seconds behind the broker.
    wait_for(lambda: len(web_queues()) == 7, timeout=15, interval=0.5, what="the web process's seven queues consumed")
    refreshed = board.get_attribute("body", "data-refreshed")
    log = counter.web.replicas[0].log_path

    def drop_every_connection() -> bool:
        """The management API lists a connection a moment after it opened: drop again until the web process's
        broadcast consumer has lost its own."""
        for connection in rabbit_manager.get_connections():
            if connection["vhost"] == vhost:
                try:
                    rabbit_manager.delete_connection(connection["name"])
                except Exception:  # gone meanwhile
                    pass
        return "Connection to broker lost" in log.read_text()

    wait_for(drop_every_connection, timeout=20, interval=1, what="the web process's broker connection dropped")
    # The broadcast queues go with their connection (exclusive). Back on the broker, the web process pokes its
    # open boards, which re-fetch: whatever was said while it was away is on them.
    board.wait_for_function("(before) => document.body.dataset.refreshed !== before", arg=refreshed, timeout=30000)
    assert board.is_hidden("#connection")  # the board's own stream did not drop: the web process stayed up
    wait_for(lambda: len(web_queues()) == 7, timeout=30, interval=0.5, what="the web process consuming again")
    assert counter.reservations.post(f"/reservations/{first}/arrived").status_code == 200
    board.wait_text("#outside", "B0000", timeout=5000)
    assert counter.reservations.post(f"/reservations/{then}/arrived").status_code == 200
    board.wait_text("#outside", "B0001", timeout=2000)
