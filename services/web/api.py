"""The reservations API as the pages call it: with the signed-in person's token, every answer kept as it came
(the API is the truth; the pages only say its refusals in words)."""

from dataclasses import dataclass
from typing import Any

import requests

TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return self.status < 400


def call(base: str, token: str, method: str, path: str, **kwargs: Any) -> Answer:
    """One request to reservations; a network failure is an answer too (503 `unreachable`), shown in words."""
    try:
        response = requests.request(method, base + path, headers={"Authorization": f"Bearer {token}"},
                                    timeout=TIMEOUT_SECONDS, **kwargs)
    except requests.RequestException as exc:
        return Answer(503, {"error": "unreachable",
                            "message": f"reservations does not answer ({exc.__class__.__name__})"})
    try:
        body = response.json()
    except ValueError:
        body = {"error": "unexpected", "message": response.text[:200]}
    return Answer(response.status_code, body)
