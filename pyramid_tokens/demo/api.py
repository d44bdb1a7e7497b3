"""The demo API: a resource server that accepts the development provider's JWT access tokens.

It validates ``Authorization: Bearer <jwt>`` locally (RFC 6750 §2.1): the signature against the
issuer's JWK Set, found through discovery on the first request and cached by
:class:`jwt.PyJWKClient`, which fetches the set again for an unknown ``kid`` (key rotation);
``typ`` ``at+jwt`` (RFC 9068 §4), ``iss``, ``aud`` containing the audience, ``exp``. Refusals
carry RFC 6750 §3 challenges: no error code when no token was sent, ``invalid_token`` otherwise.

    config = Configurator()
    add_demo_api(config, issuer="http://127.0.0.1:6543/idp", audience="api", prefix="/api")
    # or, standalone: app = make_api_app("http://127.0.0.1:6543/idp")
"""
from __future__ import annotations

import json
import threading
from typing import Any

import jwt
import requests
from pyramid.config import Configurator
from webob import Response

REALM = "demo-api"
#: RFC 6750 §3: error_description may only hold %x20-21 / %x23-5B / %x5D-7E
_SAFE = {chr(c) for c in range(0x20, 0x7F)} - {'"', "\\"}


class InvalidToken(Exception):
    """The access token was refused; the message is the ``error_description``."""


class IssuerUnavailable(Exception):
    """Discovery or the JWK Set could not be fetched."""


class AccessTokenVerifier:
    """Verifies RFC 9068 access tokens of one issuer for one audience; thread-safe, lazy."""

    def __init__(self, issuer: str, audience: str, *, jwks_refetch_cooldown: float = 1.0, timeout: float = 5.0) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.jwks_refetch_cooldown = jwks_refetch_cooldown
        self.timeout = timeout
        self._lock = threading.Lock()
        self._jwks: jwt.PyJWKClient | None = None

    def _jwks_client(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._jwks is None:
                url = f"{self.issuer}/.well-known/openid-configuration"
                try:
                    response = requests.get(url, timeout=self.timeout)
                    response.raise_for_status()
                    metadata = response.json()
                except (requests.RequestException, ValueError) as exc:
                    raise IssuerUnavailable(f"discovery failed: {type(exc).__name__}") from None
                if metadata.get("issuer") != self.issuer or not metadata.get("jwks_uri"):
                    raise IssuerUnavailable("discovery document does not match the issuer")
                self._jwks = jwt.PyJWKClient(
                    metadata["jwks_uri"], cache_keys=True, timeout=self.timeout,
                    cooldown_duration=self.jwks_refetch_cooldown,
                )  # fmt: skip
            return self._jwks

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; raises :class:`InvalidToken` or :class:`IssuerUnavailable`."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("The access token is malformed") from None
        if str(header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
            raise InvalidToken("The token is not an access token (typ)")
        try:
            key = self._jwks_client().get_signing_key(header.get("kid") or "")
        except jwt.PyJWKClientConnectionError:
            raise IssuerUnavailable("the JWK Set could not be fetched") from None
        except jwt.PyJWKClientError:
            raise InvalidToken("The access token was signed with an unknown key") from None
        try:
            return jwt.decode(
                token, key.key, algorithms=["RS256"], audience=self.audience, issuer=self.issuer,
                options={"require": ["iss", "sub", "aud", "exp", "iat", "client_id"]},
            )  # fmt: skip
        except jwt.ExpiredSignatureError:
            raise InvalidToken("The access token expired") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("The access token is not meant for this API (aud)") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("The access token was issued by another issuer (iss)") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("The access token signature is invalid") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"The access token is invalid ({type(exc).__name__})") from None


def _challenge(status: int, error: str | None = None, description: str = "") -> Response:
    challenge = f'Bearer realm="{REALM}"'
    body: dict[str, str] = {}
    if error:
        description = "".join(ch for ch in description if ch in _SAFE)
        challenge += f', error="{error}", error_description="{description}"'
        body = {"error": error, "error_description": description}
    response = Response(json.dumps(body), status=status, content_type="application/json", charset="utf-8")
    response.headers["WWW-Authenticate"] = challenge
    return response


def _bearer_token(request) -> tuple[str | None, bool]:
    """``(token, sent)``: the Bearer token, and whether the request tried Bearer at all."""
    scheme, _, token = (request.headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None, False
    return token.strip() or None, True


def whoami_view_factory(verifier: AccessTokenVerifier):
    def whoami(request) -> Response:
        token, sent = _bearer_token(request)
        if not sent:
            return _challenge(401)
        if token is None:
            return _challenge(400, "invalid_request", "The Bearer credentials are empty")
        try:
            claims = verifier.verify(token)
        except InvalidToken as exc:
            return _challenge(401, "invalid_token", str(exc))
        except IssuerUnavailable:
            return Response(json.dumps({"error": "temporarily_unavailable"}), status=503,
                            content_type="application/json", charset="utf-8")  # fmt: skip
        data = {"sub": claims["sub"], "client_id": claims["client_id"], "scope": claims.get("scope"), "claims": claims}
        response = Response(json.dumps(data), content_type="application/json", charset="utf-8")
        response.cache_control = "no-store"
        return response

    return whoami


def add_demo_api(config: Configurator, *, issuer: str, audience: str = "api", prefix: str = "/api",
                 jwks_refetch_cooldown: float = 1.0) -> None:  # fmt: skip
    """Add ``GET {prefix}/whoami``, answering with the caller's token claims."""
    verifier = AccessTokenVerifier(issuer, audience, jwks_refetch_cooldown=jwks_refetch_cooldown)
    config.add_route("demo_api.whoami", f"{prefix.rstrip('/')}/whoami")
    config.add_view(whoami_view_factory(verifier), route_name="demo_api.whoami", request_method="GET")


def make_api_app(issuer: str, audience: str = "api", *, prefix: str = "/api", jwks_refetch_cooldown: float = 1.0):
    """A standalone WSGI app serving the demo API (``GET {prefix}/whoami``)."""
    config = Configurator()
    add_demo_api(config, issuer=issuer, audience=audience, prefix=prefix, jwks_refetch_cooldown=jwks_refetch_cooldown)
    return config.make_wsgi_app()
