"""``private_key_jwt`` client authentication (RFC 7523 §2.2 and §3, OpenID Connect Core 1.0 §9).

Instead of a secret the client sends, on every call to the token, revocation, pushed authorization
and device authorization endpoints::

    client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
    client_assertion=<JWT signed with the client's private key>

The JWT (RFC 7523 §3) has ``iss`` = ``sub`` = the client id, ``aud`` = the provider's **issuer**
identifier by default (as RFC 7523bis recommends) or, with ``client_assertion_audience =
token_endpoint``, the token endpoint URL (OIDC Core §9's wording, which many providers still
require), a unique ``jti``, ``iat`` and a short ``exp`` (60 s).

The header names the key (RFC 7515 §4.1.4 ``kid``): ``client_assertion_kid`` when the provider
registered the key under a name of its own (``none``: no ``kid``), else the JWK's ``kid`` or, for a
PEM key, its RFC 7638 thumbprint. With ``client_assertion_cert`` the header also carries the
certificate's thumbprints, ``x5t#S256`` (RFC 7515 §4.1.8) and ``x5t`` (SHA-1, §4.1.7, which
certificate-credential providers such as Entra ID require).

``iat``/``exp`` use wall-clock time, not the manager's injectable clock: the provider checks them
against its own clock.
"""
from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import ConfigurationError
from .jwk import PrivateKey, b64url, infer_algorithm, load_private_key, public_jwk, thumbprint

#: RFC 7523 §2.2
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: how long an assertion is valid; the provider also refuses a replayed ``jti`` within it
ASSERTION_LIFETIME = 60
#: ``client_assertion_kid = none``: send no ``kid`` header
NO_KID = "none"


def certificate_thumbprints(path: Any, private_key: PrivateKey, *, setting: str) -> dict[str, str]:
    """``{"x5t#S256": ..., "x5t": ...}`` of the PEM certificate at ``path``, which must be ``private_key``'s."""
    text = str(path or "").strip()
    try:
        with open(text, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read(1024 * 1024))
    except OSError as exc:
        raise ConfigurationError(setting, f"cannot read the certificate ({exc.strerror or type(exc).__name__})",
                                 text) from None
    except ValueError:
        raise ConfigurationError(setting, "expected a PEM certificate", text) from None
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if cert.public_key().public_bytes(*spki) != private_key.public_key().public_bytes(*spki):
        raise ConfigurationError(setting, "the certificate is not the client_assertion_key's", text)
    der = cert.public_bytes(Encoding.DER)
    return {"x5t#S256": b64url(hashlib.sha256(der).digest()),
            "x5t": b64url(hashlib.sha1(der).digest())}  # noqa: S324 - x5t is SHA-1 by definition (RFC 7515 §4.1.7)


class ClientAssertionKey:
    """The private key a client signs its assertions with; its ``repr`` shows no key material.

    ``kid``: the header's key id (``None``: none is sent); ``thumbprints``: ``x5t#S256``/``x5t`` headers.
    """

    def __init__(self, private_key: PrivateKey, alg: str | None = None, *, kid: str | None = None,
                 setting: str = "client_assertion_alg", send_kid: bool = True,
                 thumbprints: dict[str, str] | None = None) -> None:
        self._key = private_key
        self.alg = infer_algorithm(private_key, alg, setting=setting)
        self.public_jwk = public_jwk(private_key)
        self.kid: str | None = (kid or thumbprint(self.public_jwk)) if send_kid else None
        self.thumbprints = dict(thumbprints or {})

    @classmethod
    def from_file(cls, path: Any, alg: Any = None, *, prefix: str = "", kid: Any = None,
                  cert: Any = None) -> "ClientAssertionKey":
        """Load ``PREFIX.client_assertion_key`` (PEM or JWK), ``_kid`` and ``_cert``; errors name the setting."""
        key, own_kid = load_private_key(path, setting=f"{prefix}client_assertion_key")
        chosen = str(kid).strip() if kid is not None and str(kid).strip() else None
        if chosen is not None and (len(chosen) > 200 or not chosen.isprintable()):
            raise ConfigurationError(f"{prefix}client_assertion_kid", "expected a printable key id", chosen)
        thumbprints = certificate_thumbprints(cert, key, setting=f"{prefix}client_assertion_cert") if cert else None
        return cls(key, alg or None, kid=chosen if chosen not in (None, NO_KID) else own_kid,
                   setting=f"{prefix}client_assertion_alg", send_kid=chosen != NO_KID, thumbprints=thumbprints)

    def assertion(self, client_id: str, audience: str, *, now: float | None = None,
                  lifetime: int = ASSERTION_LIFETIME) -> str:
        """A fresh signed client assertion (RFC 7523 §3) for one request."""
        issued = int(time.time() if now is None else now)
        claims = {"iss": client_id, "sub": client_id, "aud": audience, "jti": secrets.token_urlsafe(24),
                  "iat": issued, "exp": issued + lifetime}
        headers: dict[str, str] = {"typ": "JWT", **self.thumbprints}
        if self.kid is not None:
            headers["kid"] = self.kid
        return jwt.encode(claims, self._key, algorithm=self.alg, headers=headers)

    def public_jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JWK Set to register at the provider (public members, ``kid``, ``alg``, ``use``)."""
        kid = {"kid": self.kid} if self.kid is not None else {}
        return {"keys": [{**self.public_jwk, **kid, "alg": self.alg, "use": "sig"}]}

    def __repr__(self) -> str:
        return f"ClientAssertionKey(alg={self.alg!r}, kid={self.kid!r})"
