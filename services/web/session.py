"""The pages' session: the signed-in person's bearer token kept in an HttpOnly cookie signed with
WEB_SESSION_SECRET, and the CSRF token tied to that cookie.

The token arrives in the URL's fragment (never sent to a server, so never in an access log), the page's script
posts it here once, and from then on the browser holds it only in a cookie its scripts cannot read. Every POST
carries the CSRF token, an HMAC of the session's random id: a page of another site can make the browser send the
cookie (SameSite aside) but cannot read the CSRF token it would have to send with it.
"""

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

COOKIE = "drive_session"
LANG_COOKIE = "drive_lang"


@dataclass(frozen=True)
class Session:
    token: str  # the bearer token reservations checks for every read and action
    sid: str  # random, per sign-in: what the CSRF token is bound to


def _mac(secret: bytes, purpose: str, value: str) -> str:
    digest = hmac.new(secret, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def new_session(token: str) -> Session:
    return Session(token=token, sid=secrets.token_urlsafe(16))


def seal(secret: bytes, session: Session) -> str:
    """The cookie's value: the session, signed (a cookie altered in the browser reads as no session)."""
    body = base64.urlsafe_b64encode(json.dumps({"t": session.token, "s": session.sid}).encode()).decode()
    return f"{body}.{_mac(secret, 'session', body)}"


def unseal(secret: bytes, cookie: str | None) -> Session | None:
    if not cookie or "." not in cookie:
        return None
    body, mac = cookie.rsplit(".", 1)
    if not hmac.compare_digest(mac, _mac(secret, "session", body)):
        return None
    try:
        data: Any = json.loads(base64.urlsafe_b64decode(body.encode()))
        return Session(token=str(data["t"]), sid=str(data["s"]))
    except (ValueError, KeyError, TypeError):
        return None


def csrf_token(secret: bytes, session: Session) -> str:
    return _mac(secret, "csrf", session.sid)


def csrf_ok(secret: bytes, session: Session | None, offered: str | None) -> bool:
    return session is not None and bool(offered) and hmac.compare_digest(str(offered), csrf_token(secret, session))
