"""Bearer tokens: who is calling, and may they. Checked once, here, for every protected route.

Two kinds of bearer: the identity provider's JWTs (or `drive token`'s), and the patron link that the ready message
carries (`reservation_link_token`): a short signed token naming one reservation, for a patron without a login.
"""

import hashlib
import hmac
import struct
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

import jwt
from itsdangerous import BadData, Signer
from itsdangerous.encoding import base64_decode, base64_encode
from itsdangerous.signer import SigningAlgorithm

from services.common.errors import Forbidden, Unauthorized
from services.common.settings import COMMON, setting

TOKEN_ROLES = ("patron", "staff", "analyst", "ops")  # the roles a JWT may carry
RESERVATION_LINK = "reservation-link"  # the bearer of a ready message's link: one reservation, no login
ROLES = (*TOKEN_ROLES, RESERVATION_LINK)
# Who may call a route (`route(..., roles=...)`): each tuple names the roles, any one of which is enough.
ANYONE = TOKEN_ROLES  # anyone signed in; not a patron link, which opens its own reservation's routes only
PATRON_OR_STAFF = ("patron", "staff")
# The routes a patron link opens, for its own reservation only: read it, "I'm here", book or move or give back a slot.
PATRON_STAFF_OR_LINK = ("patron", "staff", RESERVATION_LINK)
ANYONE_OR_LINK = ROLES  # the free slots, among which the patron page books or moves its slot
STAFF = ("staff",)
TEAM = ("staff", "analyst")  # the library's people: counter staff and the analysts who steer the tour
ANALYST = ("analyst",)
OPS = ("ops",)
DEV_SECRET = COMMON.default("JWT_SECRET")


class OwnedReservation(Protocol):
    """What `Principal.require_reservation` reads of a reservation (the model lives in the reservations service)."""

    id: str
    patron: str


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[str]
    reservation_id: str | None = None  # set for a patron link: the one reservation it may touch

    @property
    def is_staff(self) -> bool:
        return "staff" in self.roles

    @property
    def is_link(self) -> bool:
        return self.reservation_id is not None

    def may_act_for(self, card: str) -> bool:
        """Staff act for any patron (a phone reservation); a patron only for their own card."""
        return self.is_staff or ("patron" in self.roles and self.subject == card)

    def require_card(self, card: str) -> None:
        if not self.may_act_for(card):
            raise Forbidden("this card's records belong to another patron")

    def require_reservation(self, reservation: OwnedReservation) -> None:
        """A patron link opens its own reservation only; anyone else, as for the reservation's card."""
        if self.is_link:
            if reservation.id != self.reservation_id:
                raise Forbidden("this link is for another reservation")
            return
        self.require_card(reservation.patron)


class TokenVerifier:
    """HS256 with a shared secret (embedded default) or the identity provider's keys (JWKS URL)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.issuer = setting(config, "JWT_ISSUER")
        self.audience = setting(config, "JWT_AUDIENCE")
        self.secret = setting(config, "JWT_SECRET")
        jwks_url = setting(config, "JWT_JWKS_URL")
        self.jwks = jwt.PyJWKClient(jwks_url, cache_keys=True) if jwks_url else None

        self.config = config
        # Tokens already verified, until their expiry (at most VERIFIED_SECONDS): a client sends the same token
        # with every request, and checking its signature again was a few percent of a placement's CPU.
        self.verified: dict[str, tuple[Principal, float]] = {}

    VERIFIED_SECONDS = 60.0
    VERIFIED_MAX = 4096

    def verify(self, authorization: str | None) -> Principal:
        known = self.verified.get(authorization or "")
        if known is not None and time.time() < known[1]:
            return known[0]
        principal, expires = self._verify(authorization)
        if expires is not None:
            if len(self.verified) >= self.VERIFIED_MAX:
                self.verified.clear()
            self.verified[authorization or ""] = (principal, min(expires, time.time() + self.VERIFIED_SECONDS))
        return principal

    def _verify(self, authorization: str | None) -> tuple[Principal, float | None]:
        """The principal, and until when its verification holds (None: check again next time, a patron link)."""
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("a bearer token is required (Authorization: Bearer <token>)")
        token = authorization.removeprefix("Bearer ").strip()
        if token.count(".") == 1:  # a JWT has three parts; a patron link two (its payload, its signature)
            link = read_reservation_link(self.config, token)
            return Principal(subject=f"link:{link.reservation_id}", roles=frozenset({RESERVATION_LINK}),
                             reservation_id=link.reservation_id), None
        try:
            if self.jwks is not None:
                key = self.jwks.get_signing_key_from_jwt(token).key
                algorithms = ["RS256", "ES256"]
            else:
                key, algorithms = self.secret, ["HS256"]
            claims = jwt.decode(token, key, algorithms=algorithms, audience=self.audience, issuer=self.issuer,
                                options={"require": ["sub", "exp"]})
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from exc
        roles = claims.get("roles") or [claims.get("role")]
        principal = Principal(subject=str(claims["sub"]), roles=frozenset(r for r in roles if r in TOKEN_ROLES))
        return principal, float(claims["exp"])

    def authorize(self, authorization: str | None, roles: Iterable[str]) -> Principal:
        principal = self.verify(authorization)
        if not principal.roles & set(roles):
            raise Forbidden(f"this needs one of the roles: {', '.join(sorted(roles))}")
        return principal


def issue_token(config: Mapping[str, Any], role: str, subject: str, hours: float = 12) -> str:
    """A token signed with the shared secret, for the embedded default and tests (`drive token`)."""
    now = datetime.now(UTC)
    claims = {"sub": subject, "role": role, "iss": setting(config, "JWT_ISSUER"),
              "aud": setting(config, "JWT_AUDIENCE"), "iat": now, "exp": now + timedelta(hours=hours)}
    return jwt.encode(claims, setting(config, "JWT_SECRET"), algorithm="HS256")


# --- the patron link -------------------------------------------------------------------------------------------
# It goes in an SMS, so every byte counts: the payload is binary (expiry, then the id: 16 bytes for a UUID), and the
# signature HMAC-SHA256 cut to 128 bits (RFC 2104 §5 allows truncation to half the hash). About 50 characters.
_LINK_SALT = "drive.reservation-link"
_UUID, _TEXT = b"u", b"t"  # how the payload holds the reservation id


class _TruncatedHmacSha256(SigningAlgorithm):
    def get_signature(self, key: bytes, value: bytes) -> bytes:
        return hmac.new(key, value, hashlib.sha256).digest()[:16]


@dataclass(frozen=True)
class ReservationLink:
    reservation_id: str
    expires_at: datetime


def _link_signer(config: Mapping[str, Any] | None) -> Signer:
    return _signer_of(setting(config, "PATRON_LINK_SECRET"))


@lru_cache(maxsize=8)
def _signer_of(secret: str) -> Signer:
    return Signer(secret, salt=_LINK_SALT, digest_method=hashlib.sha256, algorithm=_TruncatedHmacSha256())


@lru_cache(maxsize=8)
def _link_key(secret: str) -> bytes:
    return _signer_of(secret).derive_key()


def _packed_id(reservation_id: str) -> bytes:
    try:
        packed = uuid.UUID(reservation_id)
        if str(packed) == reservation_id:
            return _UUID + packed.bytes
    except ValueError:
        pass
    return _TEXT + reservation_id.encode()


def reservation_link_token(config: Mapping[str, Any] | None, reservation_id: str, until: datetime) -> str:
    """A compact URL-safe token that opens this one reservation until `until` (whole seconds, rounded up)."""
    expires = int(-(-until.timestamp() // 1))
    value = base64_encode(struct.pack(">I", expires) + _packed_id(reservation_id))
    # What `Signer.sign` writes (value, separator, signature), with the key derived once per secret: every ready
    # message carries a link, and the signer's set-up and key derivation cost more than the HMAC itself.
    secret = setting(config, "PATRON_LINK_SECRET")
    signature = _TruncatedHmacSha256().get_signature(_link_key(secret), value)
    return (value + _signer_of(secret).sep + base64_encode(signature)).decode()


def read_reservation_link(config: Mapping[str, Any] | None, token: str) -> ReservationLink:
    """The reservation a patron link opens; Unauthorized if its signature is wrong or it has expired."""
    signer = _link_signer(config)
    try:
        value = signer.unsign(token.encode())
        # One spelling only: the signature's last character carries bits that base64 decoding ignores.
        if signer.sign(value) != token.encode():
            raise BadData("not the token as it was issued")
        payload = base64_decode(value)
        (expires,), kind, packed = struct.unpack(">I", payload[:4]), payload[4:5], payload[5:]
        if kind == _UUID and len(packed) == 16:
            reservation_id = str(uuid.UUID(bytes=packed))
        elif kind == _TEXT and packed:
            reservation_id = packed.decode()
        else:
            raise ValueError("unknown payload")
    except (BadData, ValueError, struct.error, UnicodeDecodeError) as exc:
        raise Unauthorized("this link is not valid (altered or cut short)") from exc
    expires_at = datetime.fromtimestamp(expires, UTC)
    if expires_at <= datetime.now(UTC):
        raise Unauthorized(f"this link expired on {expires_at.isoformat()}", expired_at=expires_at.isoformat())
    return ReservationLink(reservation_id, expires_at)
