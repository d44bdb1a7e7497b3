"""Client authentication at the development provider: HTTP Basic credentials, ``private_key_jwt``, mutual TLS.

* RFC 6749 §2.3.1 ``client_secret_basic``: :func:`basic_credentials` reads the ``Authorization``
  header (the provider checks the secret; ``oauth.py`` and ``dpop.py`` only need the client id).

* RFC 7523 §3 / OpenID Connect Core 1.0 §9 ``private_key_jwt``: the ``client_assertion`` is a JWT
  signed with one of the client's registered keys (``DevClient.jwks``), ``iss`` = ``sub`` = the
  client id, ``aud`` the issuer, the token endpoint or the URL of the endpoint it is sent to, an
  unexpired ``exp`` at most :data:`MAX_ASSERTION_LIFETIME` ahead, and a ``jti`` never seen before.
* RFC 8705 §2.1 ``tls_client_auth``: the TLS layer verified the client certificate against the
  trusted CA; the provider matches its subject DN against ``DevClient.tls_client_auth_subject_dn``.
  §2.2 ``self_signed_tls_client_auth``: the certificate must be one the client registered in its
  ``jwks`` (``x5c``); the TLS server must trust it too (tests put it in the server's CA file).
  §3: a token requested over such a connection is bound to the certificate (``cnf.x5t#S256``).

The certificate reaches the views as ``environ["SSL_CLIENT_CERT"]`` (PEM, the mod_ssl convention;
:mod:`pyramid_tokens.devidp.tls` sets it) and oauthlib as the :data:`PEER_CERT` pseudo-header, a
name that cannot arrive over HTTP because it contains a space.
"""
from __future__ import annotations

import base64
import binascii
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ..assertion import JWT_BEARER
from .proofs import ReplayCache
from ..jwk import ALGORITHMS, sha256_b64url

if TYPE_CHECKING:
    from .models import DevClient
    from .provider import DevProvider

log = logging.getLogger("pyramid_tokens.devidp")

#: the pseudo-header carrying the verified TLS client certificate (PEM) into oauthlib requests
PEER_CERT = "Devidp Peer-Certificate"
#: the WSGI environ key a TLS server puts the client certificate in (PEM)
ENVIRON_CERT = "SSL_CLIENT_CERT"
#: an assertion may be valid for at most this long (seconds), which bounds the replay cache
MAX_ASSERTION_LIFETIME = 600


class AssertionRefused(Exception):
    """The client assertion was refused; the message says why (logged, never sent)."""


def peer_certificate(headers: Any) -> x509.Certificate | None:
    """The client certificate of the connection, from the :data:`PEER_CERT` pseudo-header."""
    pem = headers.get(PEER_CERT) if headers is not None else None
    if not pem:
        return None
    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii") if isinstance(pem, str) else pem)
    except ValueError:
        return None


def certificate_thumbprint(cert: x509.Certificate) -> str:
    """RFC 8705 §3.1 ``x5t#S256``: base64url(SHA-256(DER certificate))."""
    return sha256_b64url(cert.public_bytes(Encoding.DER))


def subject_dn(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class AssertionVerifier:
    """Checks ``private_key_jwt`` client assertions for one provider."""

    def __init__(self, provider: "DevProvider") -> None:
        self.provider = provider
        self.replay = ReplayCache(clock=lambda: provider.clock())

    def verify(self, request: Any) -> "DevClient":
        """The client a valid assertion authenticates; raises :class:`AssertionRefused`."""
        if getattr(request, "client_assertion_type", None) != JWT_BEARER:
            raise AssertionRefused("client_assertion_type is not jwt-bearer")
        assertion = getattr(request, "client_assertion", None)
        if not isinstance(assertion, str) or not assertion:
            raise AssertionRefused("no client_assertion")
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AssertionRefused("the client assertion is not a JWT") from None
        client_id = unverified.get("sub")
        client = self.provider.get_client(client_id if isinstance(client_id, str) else None)
        if client is None:
            raise AssertionRefused("unknown client (sub)")
        if request.client_id and request.client_id != client.client_id:
            raise AssertionRefused("client_id differs from the assertion's sub")
        keys = client.public_keys()
        if not keys:
            raise AssertionRefused("the client registered no keys")
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise AssertionRefused("unsupported alg")
        kid = header.get("kid")
        # a kid naming none of the registered keys is refused, as real providers do (RFC 7515 §4.1.4)
        candidates = [k for k in keys if k.get("kid") == kid] if kid and any(k.get("kid") for k in keys) else keys
        if not candidates:
            raise AssertionRefused(f"no registered key has kid {str(kid)[:64]!r}")
        claims = None
        for jwk in candidates:
            try:
                key = jwt.PyJWK(jwk, algorithm=alg).key
            except (jwt.PyJWTError, ValueError, TypeError, KeyError):
                continue  # a key of another type, or not a usable JWK
            try:
                claims = jwt.decode(
                    assertion, key, algorithms=[alg], audience=self._audiences(request), issuer=client.client_id,
                    options={"require": ["iss", "sub", "aud", "exp", "jti"], "verify_exp": False,
                             "verify_iat": False, "verify_nbf": False},
                )  # fmt: skip
                break
            except (jwt.InvalidSignatureError, jwt.InvalidKeyError):
                continue
            except jwt.InvalidAudienceError:
                raise AssertionRefused("wrong aud") from None
            except (jwt.PyJWTError, ValueError, TypeError) as exc:
                raise AssertionRefused(f"invalid assertion ({type(exc).__name__})") from None
        if claims is None:
            raise AssertionRefused("the signature matches none of the client's keys")
        now = self.provider.clock()
        exp = claims["exp"]
        if not isinstance(exp, (int, float)) or now >= exp:
            raise AssertionRefused("the assertion expired")
        if exp > now + MAX_ASSERTION_LIFETIME:
            raise AssertionRefused("the assertion lives too long")
        if not isinstance(claims["jti"], str) or not claims["jti"]:
            raise AssertionRefused("no jti")
        if not self.replay.first_use(f"{client.client_id}:{claims['jti']}", exp):
            raise AssertionRefused("the assertion was used before (jti replay)")
        return client

    def _audiences(self, request: Any) -> list[str]:
        provider = self.provider
        token_endpoints = [provider.endpoint("token_endpoint"), provider.url("/mtls/token")]
        if provider.assertion_audience == "token_endpoint":  # OIDC Core §9's wording, as some providers demand
            return token_endpoints
        return [provider.issuer, *token_endpoints, _without_query(request.uri)]


# hand-written: oauthlib leaves reading the Basic header to the validator, and WebOb does not decode it
def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """``(client_id, secret)`` from an ``Authorization: Basic`` header (RFC 6749 §2.3.1), else None.

    Both parts are form-urlencoded before base64 encoding, so they are decoded here. A malformed
    Basic header gives ``("", "")``, which authenticates nobody.
    """
    scheme, _, value = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return "", ""
    return unquote_plus(client_id), unquote_plus(secret)


def check_tls_client(client: "DevClient", request: Any) -> bool:
    """RFC 8705 §2.1.2: the connection's certificate has the client's registered subject DN."""
    cert = peer_certificate(request.headers)
    if cert is None or not client.tls_client_auth_subject_dn:
        return False
    return subject_dn(cert) == client.tls_client_auth_subject_dn


def check_self_signed(client: "DevClient", request: Any) -> bool:
    """RFC 8705 §2.2: the connection's certificate is the first ``x5c`` of one of the client's registered JWKs."""
    cert = peer_certificate(request.headers)
    if cert is None:
        return False
    der = base64.b64encode(cert.public_bytes(Encoding.DER)).decode()
    return any(isinstance(k.get("x5c"), list) and k["x5c"][:1] == [der] for k in client.public_keys())


def certificate_confirmation(headers: Any) -> dict[str, str]:
    """``{"x5t#S256": ...}`` for a token requested over a connection with a client certificate (RFC 8705 §3)."""
    cert = peer_certificate(headers)
    return {"x5t#S256": certificate_thumbprint(cert)} if cert is not None else {}
