"""Who is at the page: the session cookie read and checked, a sign-in turned into a cookie, a POST's origin and
CSRF token checked. Plain functions; the service's entrypoints call them."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from services.common.auth import RESERVATION_LINK, Principal, TokenVerifier
from services.common.errors import DriveError, Forbidden, Unauthorized
from services.web import session as sessions
from services.web import words
from services.web.policy import Policy

BOARD, PATRON = "board", "patron"
# One cookie per kind of page, each sent only to its own paths: a patron link opened in the counter's browser
# does not sign the counter out.
COOKIES = {BOARD: ("drive_board", "/boards"), PATRON: ("drive_patron", "/r")}


@dataclass(frozen=True)
class Visitor:
    session: sessions.Session
    principal: Principal
    csrf: str


def lang_of(request: Request) -> str:
    return words.language(request.args.get("lang") or request.cookies.get(sessions.LANG_COOKIE))


def with_lang(request: Request, response: Response) -> Response:
    """`?lang=en` switches the pages' language and keeps it (a cookie: not a secret)."""
    asked = request.args.get("lang")
    if asked in words.LANGUAGES:
        response.set_cookie(sessions.LANG_COOKIE, asked, max_age=365 * 86400, samesite="Lax", path="/")
    return response


def may_open(kind: str, principal: Principal, point_id: str | None = None) -> None:
    """A board takes a staff token, a patron page a reservation's link; nothing else opens either."""
    if kind == BOARD and "staff" not in principal.roles:
        raise Forbidden("a counter board needs a staff token", reason="not_staff")
    if kind == PATRON and RESERVATION_LINK not in principal.roles:
        raise Forbidden("a patron page opens with a reservation's link", reason="not_link")


def visitor(request: Request, kind: str, verifier: TokenVerifier, policy: Policy) -> Visitor | None:
    """The signed-in visitor of this kind of page, or None (no cookie, or one altered). Raises Unauthorized when
    the token inside has expired, Forbidden when it is not for this kind of page."""
    name, _ = COOKIES[kind]
    session = sessions.unseal(policy.session_secret, request.cookies.get(name))
    if session is None:
        return None
    principal = verifier.verify(f"Bearer {session.token}")
    may_open(kind, principal)
    return Visitor(session, principal, sessions.csrf_token(policy.session_secret, session))


def same_origin(request: Request) -> bool:
    """A POST from a page of this origin (browsers send Origin with every POST; a tool without one passes and
    still needs the CSRF token)."""
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


def sign_in(kind: str, token: str, verifier: TokenVerifier, policy: Policy) -> tuple[str, Principal]:
    """The cookie's value for this token, once it is known to open this kind of page."""
    if not token or len(token) > 4096:
        raise Unauthorized("no token")
    principal = verifier.verify(f"Bearer {token}")
    may_open(kind, principal)
    return sessions.seal(policy.session_secret, sessions.new_session(token)), principal


def set_session(response: Response, kind: str, value: str, policy: Policy) -> Response:
    name, path = COOKIES[kind]
    # Strict: the cookie never rides on a request another site starts (a link followed from a message is
    # a navigation without it: the page then signs in again from its fragment).
    response.set_cookie(name, value, httponly=True, samesite="Strict", path=path, secure=policy.secure_cookies)
    return response


def checked_post(request: Request, kind: str, verifier: TokenVerifier, policy: Policy,
                 form: Mapping[str, Any]) -> Visitor:
    """A POST of a page: same origin, signed in, its CSRF token right (403 otherwise, 401 when signed out)."""
    if not same_origin(request):
        raise Forbidden("a request from another site", reason="csrf")
    found = visitor(request, kind, verifier, policy)
    if found is None:
        raise Unauthorized("not signed in")
    offered = request.headers.get("X-CSRF-Token") or form.get("csrf")
    if not sessions.csrf_ok(policy.session_secret, found.session, offered):
        raise Forbidden("the CSRF token is missing or wrong", reason="csrf")
    return found


def refusal_words(lang: str, exc: DriveError, kind: str = BOARD) -> str:
    reason = (exc.details or {}).get("reason")
    if reason in ("not_staff", "not_link"):
        return words.say(lang, str(reason))
    if reason == "csrf":
        return words.say(lang, "refused_csrf")
    if exc.status == 401:  # an expired or altered token: a link says so in its own words
        return words.say(lang, "not_link" if kind == PATRON else "signed_out")
    return words.say(lang, "refused_403")
