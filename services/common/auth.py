"""Bearer tokens: who is calling, and may they. Checked once, here, for every protected route."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from services.common.errors import Forbidden, Unauthorized
from services.common.settings import COMMON, setting

ROLES = ("patron", "staff", "analyst", "ops")
# Who may call a route (`route(..., roles=...)`): each tuple names the roles, any one of which is enough.
ANYONE = ROLES
PATRON_OR_STAFF = ("patron", "staff")
STAFF = ("staff",)
TEAM = ("staff", "analyst")  # the library's people: counter staff and the analysts who steer the tour
ANALYST = ("analyst",)
OPS = ("ops",)
DEV_SECRET = COMMON.default("JWT_SECRET")


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[str]

    @property
    def is_staff(self) -> bool:
        return "staff" in self.roles

    def may_act_for(self, card: str) -> bool:
        """Staff act for any patron (a phone reservation); a patron only for their own card."""
        return self.is_staff or ("patron" in self.roles and self.subject == card)

    def require_card(self, card: str) -> None:
        if not self.may_act_for(card):
            raise Forbidden("this card's records belong to another patron")


class TokenVerifier:
    """HS256 with a shared secret (embedded default) or the identity provider's keys (JWKS URL)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.issuer = setting(config, "JWT_ISSUER")
        self.audience = setting(config, "JWT_AUDIENCE")
        self.secret = setting(config, "JWT_SECRET")
        jwks_url = setting(config, "JWT_JWKS_URL")
        self.jwks = jwt.PyJWKClient(jwks_url, cache_keys=True) if jwks_url else None

    def verify(self, authorization: str | None) -> Principal:
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("a bearer token is required (Authorization: Bearer <token>)")
        token = authorization.removeprefix("Bearer ").strip()
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
        return Principal(subject=str(claims["sub"]), roles=frozenset(r for r in roles if r in ROLES))

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
