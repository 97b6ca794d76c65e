"""The browser tier: the services as processes (tests/e2e's `system`), the pages opened in Debian's Chromium.

Playwright's sync API does not run under `nameko test` (eventlet's monkey-patching: its first call never returns),
so the browser lives in a process of its own (driver.py) and `browser.page(name)` hands out proxies whose
methods are Playwright's Page methods, called over a pipe."""

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Processes, Service, system  # noqa: F401  (the services as processes)
from tests.helpers import EVERY_DAY, wait_for

DRIVER = Path(__file__).resolve().parent / "driver.py"
POINT = "central-adult"
TABLET = {"width": 1024, "height": 768}
PHONE = {"width": 390, "height": 844}


class BrowserError(AssertionError):
    pass


class Browser:
    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, str(DRIVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, bufsize=1)
        assert self._read() == "ready"

    def _read(self) -> Any:
        line = self.process.stdout.readline()
        if not line:
            raise BrowserError(f"the browser driver exited ({self.process.poll()})")
        answer = json.loads(line)
        if not answer["ok"]:
            raise BrowserError(answer["error"])
        return answer["value"]

    def send(self, page: str, do: str, *args: Any, **kwargs: Any) -> Any:
        self.process.stdin.write(json.dumps({"page": page, "do": do, "args": args, "kwargs": kwargs}) + "\n")
        self.process.stdin.flush()
        return self._read()

    def page(self, name: str, viewport: dict | None = None) -> "Page":
        self.send(name, "open", viewport=viewport or TABLET, locale="fr-FR")
        return Page(self, name)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Page:
    """One tab (in a browser context of its own): `page.goto(url)`, `page.text_content("#x")`… as in Playwright."""

    def __init__(self, browser: Browser, name: str) -> None:
        self.browser, self.name = browser, name

    def __getattr__(self, method: str) -> Any:
        return lambda *args, **kwargs: self.browser.send(self.name, method, *args, **kwargs)

    def text(self, selector: str) -> str:
        return self.browser.send(self.name, "text_content", selector) or ""

    def wait_text(self, selector: str, text: str, timeout: float = 2000) -> None:
        """Until the element's text holds `text` (a `timeout` in ms: the promise the pages make)."""
        try:
            self.browser.send(self.name, "wait_for_function", "([s, t]) => { const e = document.querySelector(s); "
                              "return !!e && e.textContent.includes(t); }", arg=[selector, text], timeout=timeout)
        except BrowserError:
            shown = self.browser.send(self.name, "evaluate", "(s) => document.querySelector(s)?.textContent", selector)
            raise BrowserError(f"{selector} did not show {text!r} within {timeout} ms: it shows {shown!r}") from None


@pytest.fixture
def browser():
    opened = Browser()
    yield opened
    opened.close()


class Counter:
    """Reservations and the web service as processes, the point's calendar open every day."""

    def __init__(self, processes: Processes, reservations: Service, web: Service, web_port: int) -> None:
        self.system, self.reservations, self.web, self.web_port = processes, reservations, web, web_port

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def board_url(self, token: str, point: str = POINT) -> str:
        return f"{self.base}/boards/{point}#{token}"

    def stop_web(self) -> float:
        """The web process stopped (SIGTERM); returns how long it took, open streams and all."""
        started = time.monotonic()
        self.web.stop()
        self.system.services.remove(self.web)
        return time.monotonic() - started

    def start_web(self) -> None:
        """The web process again, on the same port (as a pod behind its Kubernetes service)."""
        self.web = start_web(self.system, self.reservations, self.web_port)


def start_web(processes: Processes, reservations: Service, port: int, **env: str) -> Service:
    return processes.start("web", replicas=1, WEB_ADDRESS=f"127.0.0.1:{port}", RESERVATIONS_URL=reservations.base,
                        BOARD_HEARTBEAT_SECONDS="1", BOARD_RETRY_MS="500",
                        LOG_LEVEL="INFO", **env)  # every access line logged: the tests look for tokens in them


@pytest.fixture
def counter(system, token):  # noqa: F811  (the fixture imported above)
    from nameko.testing.utils import find_free_port

    reservations = system.start("reservations", replicas=1)
    reservations.headers = token("staff", "agent-a")
    assert reservations.call("PUT", f"/pickup-points/{POINT}/calendar",
                             json={"opening_hours": EVERY_DAY}).status_code == 200
    port = find_free_port()
    web = start_web(system, reservations, port)
    wait_for(lambda: web.get("/health").status_code == 200, what="web to answer")
    return Counter(system, reservations, web, port)
