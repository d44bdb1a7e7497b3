"""The demo API: a resource server that accepts the development provider's JWT access tokens.

It validates ``Authorization: Bearer <jwt>`` locally (RFC 6750 §2.1): the signature against the
issuer's JWK Set, found through discovery on the first request and cached by
:class:`jwt.PyJWKClient`, which fetches the set again for an unknown ``kid`` (key rotation);
``typ`` ``at+jwt`` (RFC 9068 §4), ``iss``, ``aud`` containing the audience, ``exp``. Refusals
carry RFC 6750 §3 challenges: no error code when no token was sent, ``invalid_token`` otherwise.

Sender-constrained tokens: a DPoP-bound token (``cnf.jkt``, RFC 9449 §7) is accepted only as
``Authorization: DPoP <jwt>`` with a valid proof of its key (``typ``, signature, ``htm``, ``htu``,
``iat`` window, ``jti`` replay, ``ath``), refusals being ``WWW-Authenticate: DPoP error=...``
challenges; with ``require_dpop_nonce`` proofs must carry the API's nonce (§9: ``use_dpop_nonce``
plus ``DPoP-Nonce``). A certificate-bound token (``cnf.x5t#S256``, RFC 8705 §3) is accepted only
over a TLS connection with that client certificate (``environ["SSL_CLIENT_CERT"]``).

    config = Configurator()
    add_demo_api(config, issuer="http://127.0.0.1:6543/idp", audience="api", prefix="/api")
    # or, standalone: app = make_api_app("http://127.0.0.1:6543/idp")
"""
from __future__ import annotations

import json
import os
import secrets
import ssl
import threading
import time
from typing import Any

import jwt
import requests
from pyramid.config import Configurator
from webob import Response

from ..devidp.proofs import InvalidProof, ReplayCache, verify_proof
from ..dpop import NONCE_HEADER, USE_DPOP_NONCE
from ..jwk import ALGORITHMS, sha256_b64url

REALM = "demo-api"
DPOP_ALGS = " ".join(ALGORITHMS)
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
                ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE")  # the CAs requests trusted for discovery
                self._jwks = jwt.PyJWKClient(
                    metadata["jwks_uri"], cache_keys=True, timeout=self.timeout,
                    cooldown_duration=self.jwks_refetch_cooldown,
                    ssl_context=ssl.create_default_context(cafile=ca_bundle) if ca_bundle else None,
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


class ProofChecker:
    """The API's DPoP side (RFC 9449 §7, §9): proof checks, ``jti`` replay cache, optional nonces."""

    def __init__(self, *, require_nonce: bool = False, nonce_lifetime: float = 300.0, max_age: float = 60.0) -> None:
        self.require_nonce = require_nonce
        self.nonce_lifetime = nonce_lifetime
        self.max_age = max_age
        self.replay = ReplayCache()
        self._lock = threading.Lock()
        self._nonces: list[tuple[str, float]] = []  # newest first: (nonce, issued at)

    def nonce(self) -> str:
        """The API's current nonce; rotated every ``nonce_lifetime`` seconds, the previous one stays good."""
        with self._lock:
            if not self._nonces or time.time() - self._nonces[0][1] >= self.nonce_lifetime:
                self._nonces = [(secrets.token_urlsafe(16), time.time()), *self._nonces[:1]]
            return self._nonces[0][0]

    def rotate_nonce(self) -> str:
        with self._lock:
            self._nonces = [(secrets.token_urlsafe(16), time.time()), *self._nonces[:1]]
            return self._nonces[0][0]

    def _nonce_ok(self, value: str | None) -> bool:
        self.nonce()
        with self._lock:
            return value is not None and value in {nonce for nonce, _ in self._nonces}

    def check(self, request, token: str) -> str:
        """The thumbprint of the key that signed the request's valid proof; raises :class:`InvalidProof`."""
        jkt, _ = verify_proof(request.headers.get("DPoP"), method=request.method, url=request.path_url,
                              access_token=token, replay=self.replay, max_age=self.max_age,
                              nonce_ok=self._nonce_ok if self.require_nonce else None)
        return jkt


def _challenge(status: int, error: str | None = None, description: str = "", *, scheme: str = "Bearer",
               nonce: str | None = None) -> Response:
    body: dict[str, str] = {}
    params = f'realm="{REALM}"'
    if error:
        description = "".join(ch for ch in description if ch in _SAFE)
        params += f', error="{error}", error_description="{description}"'
        body = {"error": error, "error_description": description}
    if scheme == "DPoP":  # RFC 9449 §7.1
        challenge = f'DPoP {params}, algs="{DPOP_ALGS}"'
    else:  # RFC 6750 §3
        challenge = f"Bearer {params}"
    response = Response(json.dumps(body), status=status, content_type="application/json", charset="utf-8")
    response.headers["WWW-Authenticate"] = challenge
    if nonce:
        response.headers[NONCE_HEADER] = nonce
    return response


def _credentials(request) -> tuple[str | None, str | None]:
    """``(scheme, token)``: ``Bearer`` or ``DPoP`` (``scheme`` None when neither was tried)."""
    scheme, _, token = (request.headers.get("Authorization") or "").strip().partition(" ")
    for known in ("Bearer", "DPoP"):
        if scheme.lower() == known.lower():
            return known, token.strip() or None
    return None, None


def _binding_problem(request, scheme: str, claims: dict[str, Any], proof_jkt: str | None) -> str | None:
    """Why a sender-constrained token may not be used as it was sent, or ``None``."""
    cnf = claims.get("cnf") if isinstance(claims.get("cnf"), dict) else {}
    if scheme == "DPoP" and not cnf.get("jkt"):
        return "The access token is not DPoP-bound"
    if cnf.get("jkt") and scheme != "DPoP":  # RFC 9449 §7.2
        return "The access token is DPoP-bound: send it with the DPoP scheme and a proof"
    if cnf.get("jkt") and cnf["jkt"] != proof_jkt:
        return "The DPoP proof was signed by another key than the token is bound to (cnf.jkt)"
    if cnf.get("x5t#S256"):
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        pem = request.environ.get("SSL_CLIENT_CERT")
        der = x509.load_pem_x509_certificate(pem.encode("ascii")).public_bytes(Encoding.DER) if pem else b""
        if not der or sha256_b64url(der) != cnf["x5t#S256"]:
            return "The access token is bound to another TLS client certificate (cnf.x5t#S256)"
    return None


def whoami_view_factory(verifier: AccessTokenVerifier, proofs: ProofChecker | None = None):
    proofs = proofs or ProofChecker()

    def whoami(request) -> Response:
        scheme, token = _credentials(request)
        if scheme is None:
            return _challenge(401)
        if token is None:
            return _challenge(400, "invalid_request", f"The {scheme} credentials are empty", scheme=scheme)
        try:
            claims = verifier.verify(token)
        except InvalidToken as exc:
            return _challenge(401, "invalid_token", str(exc), scheme=scheme)
        except IssuerUnavailable:
            return Response(json.dumps({"error": "temporarily_unavailable"}), status=503,
                            content_type="application/json", charset="utf-8")  # fmt: skip
        jkt = None
        if scheme == "DPoP":
            try:
                jkt = proofs.check(request, token)
            except InvalidProof as exc:
                nonce = proofs.nonce() if exc.error == USE_DPOP_NONCE else None
                return _challenge(401, exc.error, exc.description, scheme="DPoP", nonce=nonce)
        problem = _binding_problem(request, scheme, claims, jkt)
        if problem:
            dpop_bound = scheme == "DPoP" or bool((claims.get("cnf") or {}).get("jkt"))
            return _challenge(401, "invalid_token", problem, scheme="DPoP" if dpop_bound else scheme)
        data = {"sub": claims["sub"], "client_id": claims["client_id"], "scope": claims.get("scope"), "claims": claims}
        response = Response(json.dumps(data), content_type="application/json", charset="utf-8")
        response.cache_control = "no-store"
        if scheme == "DPoP" and proofs.require_nonce:
            response.headers[NONCE_HEADER] = proofs.nonce()
        return response

    return whoami


def add_demo_api(config: Configurator, *, issuer: str, audience: str = "api", prefix: str = "/api",
                 jwks_refetch_cooldown: float = 1.0, require_dpop_nonce: bool = False,
                 name: str = "demo_api") -> None:  # fmt: skip
    """Add ``GET {prefix}/whoami`` (and POST), answering with the caller's token claims.

    The API's :class:`ProofChecker` is ``config.registry["pyramid_tokens.{name}.proofs"]``; ``name``
    tells two demo APIs in one app apart (the demo's second, downstream API for token exchange).
    """
    verifier = AccessTokenVerifier(issuer, audience, jwks_refetch_cooldown=jwks_refetch_cooldown)
    proofs = config.registry[f"pyramid_tokens.{name}.proofs"] = ProofChecker(require_nonce=require_dpop_nonce)
    config.add_route(f"{name}.whoami", f"{prefix.rstrip('/')}/whoami")
    config.add_view(whoami_view_factory(verifier, proofs), route_name=f"{name}.whoami",
                    request_method=("GET", "POST"))


def make_api_app(issuer: str, audience: str = "api", *, prefix: str = "/api", jwks_refetch_cooldown: float = 1.0,
                 require_dpop_nonce: bool = False):
    """A standalone WSGI app serving the demo API (``GET {prefix}/whoami``); ``app.registry`` holds its parts."""
    config = Configurator()
    add_demo_api(config, issuer=issuer, audience=audience, prefix=prefix, jwks_refetch_cooldown=jwks_refetch_cooldown,
                 require_dpop_nonce=require_dpop_nonce)
    return config.make_wsgi_app()
