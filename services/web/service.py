"""The web service: the counter's live board and the patron's page, server-rendered; every read and action goes
through the reservations API with the visitor's token. Entrypoints only."""

from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.wrappers import Request, Response

import services.events  # noqa: F401  (the event catalogue this service hears: fills the registry)
from services.common import Configured, DriveService, broadcast_handler
from services.common.auth import TokenVerifier
from services.common.edge import parse_json, utf8
from services.common.errors import DriveError, Forbidden, Invalid, NotFound
from services.common.fields import Id
from services.common.http import json_response
from services.common.settings import setting
from services.web import counter, pages, visitors, words
from services.web.hub import BoardHub
from services.web.pages import html, page
from services.web.policy import Policy
from services.web.visitors import BOARD, PATRON


class WebService(DriveService):
    name = "web"
    path_ids = {"point_id": Id(60), "reservation_id": Id(36)}

    policy = Configured(Policy)
    # services/common/auth.py's verifier: it tells a staff token from a patron's or a reservation link's
    # (reservations checks again on every call).
    verifier = Configured(TokenVerifier)
    zone = Configured(lambda config: ZoneInfo(setting(config, "DRIVE_TIMEZONE")))
    hub = BoardHub()

    # --- sign-in: the fragment's token, posted once, becomes an HttpOnly cookie -------------------------

    @page("POST", "/session", summary="Sign in: {token, kind: board|patron} → the session cookie")
    def sign_in(self, request: Request) -> Response:
        lang, kind = visitors.lang_of(request), None
        try:
            if not visitors.same_origin(request):
                raise Forbidden("a request from another site", reason="csrf")
            body = parse_json(utf8(request.get_data()))
            kind = body.get("kind") if isinstance(body, dict) else None
            if kind not in (BOARD, PATRON):
                raise Invalid("kind is board or patron")
            cookie, principal = visitors.sign_in(kind, str(body.get("token") or ""), self.verifier, self.policy)
        except DriveError as exc:
            return json_response({"error": exc.code, "message": visitors.refusal_words(lang, exc, str(kind or BOARD))},
                                 exc.status)
        following = None if kind == BOARD else f"/r/{principal.reservation_id}"
        return visitors.set_session(json_response({"next": following}), kind, cookie, self.policy)

    # --- the counter's board -----------------------------------------------------------------------------

    @page("GET", "/boards/<point_id>", summary="The counter's board (HTML)")
    def board(self, request: Request, point_id: str) -> Response:
        lang = visitors.lang_of(request)
        context: dict[str, Any] = {"lang": lang, "point_id": point_id, "kind": BOARD}
        try:
            found = visitors.visitor(request, BOARD, self.verifier, self.policy)
        except DriveError as exc:
            return visitors.with_lang(request, html("signin.html", exc.status, **context,
                                                    message=visitors.refusal_words(lang, exc)))
        if found is None:
            return visitors.with_lang(request, html("signin.html", **context, message=words.say(lang, "no_token")))
        answer = counter.day_sheet(self.policy, found.session.token, point_id, self.zone)
        if not answer.ok:
            return visitors.with_lang(request, html("signin.html", answer.status, **context,
                                                    message=words.refusal(lang, answer.status, answer.body)))
        return visitors.with_lang(request, html("board.html", **context, csrf=found.csrf, who=found.principal.subject,
                                                sheet=pages.sheet_view(answer.body, self.zone)))

    @page("GET", "/boards/<point_id>/sheet", summary="The board's sheet (an HTML fragment the page re-fetches)")
    def board_sheet(self, request: Request, point_id: str) -> Response:
        lang = visitors.lang_of(request)
        try:
            found = visitors.visitor(request, BOARD, self.verifier, self.policy)
        except DriveError as exc:
            return html("notice.html", exc.status, lang=lang, message=visitors.refusal_words(lang, exc))
        if found is None:
            return html("notice.html", 401, lang=lang, message=words.say(lang, "signed_out"))
        answer = counter.day_sheet(self.policy, found.session.token, point_id, self.zone)
        if not answer.ok:
            return html("notice.html", answer.status, lang=lang,
                        message=words.refusal(lang, answer.status, answer.body))
        return html("sheet.html", lang=lang, point_id=point_id, csrf=found.csrf, who=found.principal.subject,
                    sheet=pages.sheet_view(answer.body, self.zone))

    @page("GET", "/boards/<point_id>/stream", summary="The board's live stream (server-sent events: a poke per change)",
          produces="text/event-stream")
    def board_stream(self, request: Request, point_id: str) -> Response:
        try:
            found = visitors.visitor(request, BOARD, self.verifier, self.policy)
        except DriveError as exc:
            return Response(exc.message, status=exc.status, mimetype="text/plain")
        if found is None:
            return Response("not signed in", status=401, mimetype="text/plain")
        # eventlet's WSGI server gathers small writes up to 4 KiB before sending: a poke must leave at once.
        request.environ["eventlet.minimum_write_chunk_size"] = 0
        return Response(self.hub.stream(point_id, self.policy.heartbeat_seconds, self.policy.retry_ms),
                        mimetype="text/event-stream", direct_passthrough=True,
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @page("POST", "/boards/<point_id>/actions", summary="A board's action (claim, release, ready, collect, arrived)")
    def board_action(self, request: Request, point_id: str) -> Response:
        lang = visitors.lang_of(request)
        try:
            found = visitors.checked_post(request, BOARD, self.verifier, self.policy, request.form)
        except DriveError as exc:
            return json_response({"error": exc.code, "message": visitors.refusal_words(lang, exc)}, exc.status)
        answer = counter.board_action(self.policy, found.session.token, request.form)
        if not answer.ok:
            return json_response(words.refusal_body(lang, answer.status, answer.body), answer.status)
        return json_response({"message": words.say(lang, "done")})

    # --- the patron's page (a reservation's link) --------------------------------------------------------

    @page("GET", "/r", summary="The patron link's landing: its script signs in with the fragment's token")
    def patron_landing(self, request: Request) -> Response:
        lang = visitors.lang_of(request)
        return visitors.with_lang(request, html("signin.html", lang=lang, kind=PATRON,
                                                message=words.say(lang, "not_link")))

    @page("GET", "/r/<reservation_id>", summary="The patron's page of one reservation (HTML)")
    def patron_page(self, request: Request, reservation_id: str) -> Response:
        return visitors.with_lang(request, self._patron(request, reservation_id, "patron.html"))

    @page("GET", "/r/<reservation_id>/sheet", summary="The patron page's content (an HTML fragment)")
    def patron_sheet(self, request: Request, reservation_id: str) -> Response:
        return self._patron(request, reservation_id, "reservation.html")

    def _patron(self, request: Request, reservation_id: str, template: str) -> Response:
        lang = visitors.lang_of(request)
        try:
            found = visitors.visitor(request, PATRON, self.verifier, self.policy)
            if found is None or found.principal.reservation_id != reservation_id:
                raise NotFound("open the link of the message again")
        except DriveError as exc:
            message = visitors.refusal_words(lang, exc, PATRON) if exc.status != 404 else words.say(lang, "not_link")
            return html("signin.html", exc.status, lang=lang, kind=PATRON, message=message)
        token = found.session.token
        answer = counter.reservation(self.policy, token, reservation_id)
        if not answer.ok:
            return html("signin.html", answer.status, lang=lang, kind=PATRON,
                        message=words.refusal(lang, answer.status, answer.body))
        held = answer.body
        point_id = held["pickup_point"] if isinstance(held["pickup_point"], str) else held["pickup_point"]["id"]
        appointment = held.get("appointment") if (held.get("appointment") or {}).get("status") == "booked" else None
        return html(template, lang=lang, kind=PATRON, csrf=found.csrf, reservation=held, appointment=appointment,
                    slots=counter.free_slots(self.policy, token, point_id, self.zone,
                                             appointment["starts_at"] if appointment else None),
                    when=lambda value: pages.local_moment(value, self.zone))

    @page("POST", "/r/<reservation_id>/actions", summary="The patron's action: arrived, or book a slot")
    def patron_action(self, request: Request, reservation_id: str) -> Response:
        lang = visitors.lang_of(request)
        try:
            found = visitors.checked_post(request, PATRON, self.verifier, self.policy, request.form)
            if found.principal.reservation_id != reservation_id:
                raise Forbidden("another reservation's page")
        except DriveError as exc:
            return json_response({"error": exc.code, "message": visitors.refusal_words(lang, exc, PATRON)},
                                 exc.status)
        answer = counter.patron_action(self.policy, found.session.token, reservation_id, request.form)
        if not answer.ok:
            return json_response(words.refusal_body(lang, answer.status, answer.body), answer.status)
        done = "told" if request.form.get("action") == "arrived" else "done"
        return json_response({"message": words.say(lang, done)})

    @page("GET", "/static/<name>", summary="The pages' script and style sheet")
    def static(self, request: Request, name: str) -> Response:
        found = pages.static_file(name)
        if found is None:
            raise NotFound(f"no static file {name}")
        return found

    # --- what makes an open board change: each poke makes its page re-fetch the sheet ----------------------

    @broadcast_handler("reservations", "patron_arrived")
    @broadcast_handler("reservations", "reservation_ready")
    @broadcast_handler("reservations", "pickup_slot_booked")
    @broadcast_handler("reservations", "pickup_slot_cancelled")
    @broadcast_handler("reservations", "reservation_collected")
    @broadcast_handler("reservations", "reservation_claimed")
    @broadcast_handler("reservations", "reservation_released")
    def on_board_change(self, event: Any) -> None:
        self.hub.poke(event.data["pickup_point"]["id"], event.type)
