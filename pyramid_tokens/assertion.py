"""``private_key_jwt`` client authentication (RFC 7523 §2.2 and §3, OpenID Connect Core 1.0 §9).

Instead of a secret the client sends, on every call to the token, revocation and device
authorization endpoints::

    client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
    client_assertion=<JWT signed with the client's private key>

The JWT (RFC 7523 §3) has ``iss`` = ``sub`` = the client id, ``aud`` = the provider's **issuer**
identifier (as RFC 7523bis recommends; OIDC Core §9 allows the token endpoint URL, which we use
only when no issuer is known, i.e. a client configured with a bare ``token_endpoint``), a unique
``jti``, ``iat`` and a short ``exp`` (60 s). The header names the key: the JWK's ``kid`` or, for a
PEM key, its RFC 7638 thumbprint. The provider registers the matching public key.

``iat``/``exp`` use wall-clock time, not the manager's injectable clock: the provider checks them
against its own clock.
"""
from __future__ import annotations

import secrets
import time
from typing import Any

import jwt

from .jwk import PrivateKey, infer_algorithm, load_private_key, public_jwk, thumbprint

#: RFC 7523 §2.2
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: how long an assertion is valid; the provider also refuses a replayed ``jti`` within it
ASSERTION_LIFETIME = 60


class ClientAssertionKey:
    """The private key a client signs its assertions with; its ``repr`` shows no key material."""

    def __init__(self, private_key: PrivateKey, alg: str | None = None, *, kid: str | None = None,
                 setting: str = "client_assertion_alg") -> None:
        self._key = private_key
        self.alg = infer_algorithm(private_key, alg, setting=setting)
        self.public_jwk = public_jwk(private_key)
        self.kid = kid or thumbprint(self.public_jwk)

    @classmethod
    def from_file(cls, path: Any, alg: Any = None, *, prefix: str = "") -> "ClientAssertionKey":
        """Load ``PREFIX.client_assertion_key`` (PEM or JWK); errors name the setting."""
        key, kid = load_private_key(path, setting=f"{prefix}client_assertion_key")
        return cls(key, alg or None, kid=kid, setting=f"{prefix}client_assertion_alg")

    def assertion(self, client_id: str, audience: str, *, now: float | None = None,
                  lifetime: int = ASSERTION_LIFETIME) -> str:
        """A fresh signed client assertion (RFC 7523 §3) for one request."""
        issued = int(time.time() if now is None else now)
        claims = {"iss": client_id, "sub": client_id, "aud": audience, "jti": secrets.token_urlsafe(24),
                  "iat": issued, "exp": issued + lifetime}
        return jwt.encode(claims, self._key, algorithm=self.alg, headers={"kid": self.kid, "typ": "JWT"})

    def public_jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JWK Set to register at the provider (public members, ``kid``, ``alg``, ``use``)."""
        return {"keys": [{**self.public_jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}]}

    def __repr__(self) -> str:
        return f"ClientAssertionKey(alg={self.alg!r}, kid={self.kid!r})"
