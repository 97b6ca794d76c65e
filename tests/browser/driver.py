"""The browser, in a process of its own: Playwright's sync API does not run under `nameko test` (eventlet's
monkey-patching stops its event loop: the first call never returns), so the tests drive Chromium through this
small loop. One JSON command a line on stdin, one JSON answer a line on stdout:

    {"page": "board", "do": "goto", "args": ["http://…"], "kwargs": {}}  →  {"ok": true, "value": …}

`do` is a method of Playwright's Page, or one of this driver's own: `open` (a fresh browser context: no cookie
shared with another page), `navigations` (how many times the page's main frame navigated since it was opened),
`close`. Run by tests/browser/conftest.py with the venv's python, nothing imported from the project.
"""

import json
import sys
from typing import Any

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    if hasattr(value, "status") and hasattr(value, "headers"):  # a Response (goto, reload)
        return {"status": value.status, "headers": value.headers, "url": value.url}
    return repr(value)


def main() -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        pages: dict[str, Any] = {}
        navigations: dict[str, int] = {}
        print(json.dumps({"ok": True, "value": "ready"}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            name, do = command.get("page", "main"), command["do"]
            args, kwargs = command.get("args", []), command.get("kwargs", {})
            try:
                if do == "open":
                    context = browser.new_context(**kwargs)
                    page = pages[name] = context.new_page()
                    navigations[name] = 0

                    def count(frame: Any, name: str = name, page: Any = page) -> None:
                        if frame == page.main_frame:
                            navigations[name] += 1

                    page.on("framenavigated", count)
                    value: Any = name
                elif do == "navigations":
                    value = navigations[name]
                elif do == "close":
                    pages.pop(name).context.close()
                    value = name
                else:
                    value = jsonable(getattr(pages[name], do)(*args, **kwargs))
                print(json.dumps({"ok": True, "value": value}), flush=True)
            except Exception as exc:  # said to the test, which fails with it
                print(json.dumps({"ok": False, "error": f"{exc.__class__.__name__}: {exc}"}), flush=True)
        browser.close()


if __name__ == "__main__":
    main()
