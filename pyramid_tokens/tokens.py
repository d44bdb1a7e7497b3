"""Token values: the :class:`AccessToken` users receive, and the renewal rule shared by user and client tokens."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from .clock import system_clock, utc_from_timestamp

#: claims that only matter to the client's checks, left out of the display
_SECRET_CLAIMS = {"at_hash", "c_hash", "nonce", "sid"}
#: Token types we know how to present (RFC 6750 Bearer, RFC 9449 DPoP), normalised to their canonical case.
KNOWN_TOKEN_TYPES = {"bearer": "Bearer", "dpop": "DPoP"}


def renewal_deadline(expires_at: float | None, obtained_at: float | None, renew_before: float) -> float | None:
    """The time from which a token is due for renewal (``None``: never), to compute once per token.

    ``renew_before`` is capped at half the token's lifetime, so a token that lives 45 s is not renewed
    on every call merely because the configured 60 s exceed it.
    """
    if expires_at is None:
        return None
    if obtained_at is not None and expires_at > obtained_at:
        renew_before = min(renew_before, (expires_at - obtained_at) / 2)
    return expires_at - renew_before


@dataclass(frozen=True, repr=False)
class AccessToken:
    """An access token and what is known about it; its ``repr`` never shows the value."""

    access_token: str
    token_type: str = "Bearer"
    expires_at: datetime | None = None
    scope: str | None = None
    resource: str | None = None
    #: when the token was obtained (UTC); ``renew_before`` is capped relative to its lifetime
    obtained_at: datetime | None = None
    #: the provider (issuer) and client the token was obtained from, for display
    issuer: str | None = field(default=None, compare=False)
    client_id: str | None = field(default=None, compare=False)
    #: the :class:`~pyramid_tokens.dpop.DPoPKey` a ``DPoP`` token is bound to (RFC 9449 §6); never shown
    dpop_key: Any = field(default=None, compare=False)
    #: RFC 8693 §2.2.1: what a token exchange issued (``urn:ietf:params:oauth:token-type:access_token``, ...)
    issued_token_type: str | None = None

    # -- time -----------------------------------------------------------------------------------
    def expires_in(self, now: float | None = None) -> float | None:
        """Seconds until expiry (negative when expired), or ``None`` when the lifetime is unknown."""
        if self.expires_at is None:
            return None
        return self.expires_at.timestamp() - (system_clock() if now is None else now)

    def is_expired(self, now: float | None = None) -> bool:
        """True once the expiry time has passed."""
        remaining = self.expires_in(now)
        return remaining is not None and remaining <= 0

    def renewal_due(self, renew_before: float, now: float) -> bool:
        """True when the token should be renewed, ``renew_before`` seconds ahead (see :func:`renewal_deadline`)."""
        deadline = self.renewal_deadline(renew_before)
        return deadline is not None and now >= deadline

    def renewal_deadline(self, renew_before: float) -> float | None:
        """POSIX time from which :meth:`renewal_due` is true, or ``None`` when never."""
        return renewal_deadline(
            self.expires_at.timestamp() if self.expires_at else None,
            self.obtained_at.timestamp() if self.obtained_at else None,
            renew_before,
        )

    # -- presentation -----------------------------------------------------------------------------
    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value: ``<token_type> <access_token>``."""
        return f"{self.token_type} {self.access_token}"

    def dpop_proof(self, method: str, url: str, *, nonce: str | None = None) -> str | None:
        """The ``DPoP`` header value for calling ``url`` with this token (RFC 9449 §7), or ``None`` for Bearer."""
        if self.dpop_key is None or self.token_type != "DPoP":
            return None
        return self.dpop_key.proof(method, url, access_token=self.access_token, nonce=nonce)

    def claims(self) -> dict[str, Any] | None:
        """The token's JWT claims, decoded WITHOUT verification (display only); ``None`` if not a JWT."""
        import jwt  # local import: only display needs it

        try:
            claims = jwt.decode(self.access_token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        return claims if isinstance(claims, dict) else None

    def __repr__(self) -> str:
        expires = self.expires_at.isoformat() if self.expires_at else None
        return (
            f"AccessToken(token_type={self.token_type!r}, expires_at={expires!r}, "
            f"scope={self.scope!r}, resource={self.resource!r}, access_token='<redacted>')"
        )

    __str__ = __repr__

    def _repr_html_(self) -> str:
        """Jupyter display: expiry, scopes and the (unverified) claims; never the token value."""
        from .html import countdown, format_claim, table  # only a notebook needs HTML

        claims = self.claims() or {}
        audience = claims.get("aud")
        rows = [
            ("type", self.token_type),
            ("issuer", claims.get("iss") or self.issuer or "—"),
            ("subject", claims.get("sub") or "—"),
            ("audience", ", ".join(map(str, audience)) if isinstance(audience, list) else audience or "—"),
            ("scopes", self.scope or claims.get("scope") or "—"),
            ("resource", self.resource or "—"),
            ("expires", f"{self.expires_at:%Y-%m-%d %H:%M:%S} UTC (in {countdown(self.expires_in())})"
             if self.expires_at else "no expiry given"),
        ]
        shown = [(k, format_claim(v)) for k, v in claims.items() if k not in _SECRET_CLAIMS]
        claims_html = (f"<details><summary>JWT claims (decoded, <b>not verified</b>)</summary>{table(shown)}"
                       f"</details>") if shown else "<p><i>opaque token (not a JWT)</i></p>"
        return (f"<div class='pyramid-tokens-access-token'><b>AccessToken</b> <span style='color:#888'>(value hidden)"
                f"</span>{table(rows)}{claims_html}</div>")

    # -- storage ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (times as POSIX seconds) for stores and sessions.

        A DPoP-bound token keeps its key with it (``dpop_key``, a private JWK), so that every process
        reading the token from a shared store signs proofs with the key the token is bound to.
        """
        data = {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_at": self.expires_at.timestamp() if self.expires_at else None,
            "scope": self.scope,
            "resource": self.resource,
            "obtained_at": self.obtained_at.timestamp() if self.obtained_at else None,
            "issuer": self.issuer,
            "client_id": self.client_id,
        }
        if self.dpop_key is not None:
            data["dpop_key"] = self.dpop_key.private_jwk()
        if self.issued_token_type is not None:
            data["issued_token_type"] = self.issued_token_type
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AccessToken":
        """Inverse of :meth:`to_dict`."""
        expires_at, obtained_at = data.get("expires_at"), data.get("obtained_at")
        return cls(
            access_token=data["access_token"],
            token_type=data.get("token_type") or "Bearer",
            expires_at=utc_from_timestamp(expires_at) if expires_at is not None else None,
            scope=data.get("scope"),
            resource=data.get("resource"),
            obtained_at=utc_from_timestamp(obtained_at) if obtained_at is not None else None,
            issuer=data.get("issuer"),
            client_id=data.get("client_id"),
            dpop_key=_dpop_key(data["dpop_key"]) if data.get("dpop_key") else None,
            issued_token_type=data.get("issued_token_type"),
        )

    def with_(self, **changes: Any) -> "AccessToken":
        """A copy with some fields changed."""
        return replace(self, **changes)


def _dpop_key(jwk: dict[str, Any]) -> Any:
    from .dpop import DPoPKey  # only DPoP-bound tokens need it (parsed once per process and key)

    return DPoPKey.from_jwk(jwk)


def dumps(data: Any) -> str:
    """Compact JSON, the one serialisation used for stored token records."""
    return json.dumps(data, separators=(",", ":"), sort_keys=True)

