"""DPoP at the development provider (RFC 9449): bound tokens, nonces, and the checks around them.

* §5: a token request with a valid ``DPoP`` proof (``htm`` POST, ``htu`` the token endpoint) gets
  an access token bound to the proof key (``cnf.jkt``, §6.1) with ``token_type`` ``DPoP``; a client
  registered with ``dpop_bound_access_tokens`` (§5.2) must send one. Refresh tokens of public
  clients are bound to the key too (§5), and a code requested with ``dpop_jkt`` (§10) is exchanged
  only with a proof of that key (``invalid_grant`` otherwise).
* §8: with ``require_nonce``, proofs must carry a server nonce; one without it (or with a stale
  one) gets ``400 use_dpop_nonce`` and a ``DPoP-Nonce`` header; every token response carries the
  current nonce. Nonces rotate every ``nonce_lifetime`` seconds; the previous one stays good.
* §7 at userinfo: ``Authorization: DPoP <token>`` with a proof carrying ``ath``; refusals are
  ``401`` with ``WWW-Authenticate: DPoP error=...``.
* Proof ``jti`` values are remembered (§11.1): a replayed proof is refused.

The validated thumbprint reaches oauthlib as the :data:`DPOP_JKT` pseudo-header (a name that
cannot arrive over HTTP), where the token handler and the claims builder pick it up.
"""
from __future__ import annotations

import hashlib
import secrets
import threading
from typing import TYPE_CHECKING, Any

from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from ..dpop import INVALID_DPOP_PROOF, NONCE_HEADER, USE_DPOP_NONCE
from .proofs import InvalidProof, ReplayCache, verify_proof
from ..jwk import ALGORITHMS
from .clientauth import basic_credentials, certificate_confirmation

if TYPE_CHECKING:
    from .provider import DevProvider

#: the pseudo-header carrying the thumbprint of a verified proof key into oauthlib requests
DPOP_JKT = "Devidp DPoP-JKT"
ALGS = " ".join(ALGORITHMS)


class DPoPError(OAuth2Error):
    """A refused DPoP request: 400 at the token endpoint (§5), 401 with a DPoP challenge at a resource (§7.1)."""

    def __init__(self, error: str, description: str, *, status_code: int = 400, nonce: str | None = None) -> None:
        self.error = error
        super().__init__(description=description, status_code=status_code)
        self.nonce = nonce

    @property
    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.status_code == 401:
            headers["WWW-Authenticate"] = (f'DPoP error="{self.error}", error_description="{self.description}", '
                                           f'algs="{ALGS}"')
        if self.nonce:
            headers[NONCE_HEADER] = self.nonce
        return headers


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class DPoPServer:
    """The provider's DPoP state: nonces, proof replay cache, code and refresh token bindings."""

    def __init__(self, provider: "DevProvider", *, require_nonce: bool = False, nonce_lifetime: float = 300.0,
                 max_age: float = 60.0) -> None:
        self.provider = provider
        self.require_nonce = require_nonce
        self.nonce_lifetime = nonce_lifetime
        self.max_age = max_age
        self.replay = ReplayCache(clock=lambda: provider.clock())
        self._lock = threading.Lock()
        self._nonces: list[tuple[str, float]] = []  # newest first: (nonce, issued at)
        self._codes: dict[str, str] = {}  # code -> dpop_jkt
        self._refresh: dict[str, str] = {}  # sha256(refresh token) -> jkt

    # -- nonces (§8) ---------------------------------------------------------------------------------
    def nonce(self) -> str:
        """The current nonce, rotated every ``nonce_lifetime`` seconds."""
        now = self.provider.clock()
        with self._lock:
            if not self._nonces or now - self._nonces[0][1] >= self.nonce_lifetime:
                self._nonces = [(secrets.token_urlsafe(16), now), *self._nonces[:1]]
            return self._nonces[0][0]

    def rotate_nonce(self) -> str:
        """Start a new nonce now (tests: the previous one stays valid for one more period)."""
        with self._lock:
            self._nonces = [(secrets.token_urlsafe(16), self.provider.clock()), *self._nonces[:1]]
            return self._nonces[0][0]

    def nonce_ok(self, value: str | None) -> bool:
        current = self.nonce()
        with self._lock:
            valid = {nonce for nonce, issued in self._nonces
                     if self.provider.clock() - issued < 2 * self.nonce_lifetime}
        return value is not None and (value == current or value in valid)

    def nonce_header(self) -> dict[str, str]:
        """``DPoP-Nonce`` for responses, when nonces are required."""
        return {NONCE_HEADER: self.nonce()} if self.require_nonce else {}

    # -- bindings ----------------------------------------------------------------------------------------
    def bind_code(self, code: str, jkt: str | None) -> None:
        """§10: the authorization request named ``dpop_jkt``; the exchange must prove that key."""
        if jkt:
            with self._lock:
                self._codes[code] = jkt

    def bind_refresh_token(self, refresh_token: str, jkt: str) -> None:
        with self._lock:
            self._refresh[_digest(refresh_token)] = jkt

    # -- the token endpoint (§5) ---------------------------------------------------------------------------
    def check_token_request(self, request: Any) -> str | None:
        """The proven key's thumbprint (``None`` without a proof); raises :class:`DPoPError`."""
        form = request.POST
        client = self.provider.get_client(form.get("client_id") or _basic_client_id(request))
        with self._lock:
            code_jkt = self._codes.get(form.get("code") or "") if form.get("grant_type") == "authorization_code" \
                else None
            refresh_jkt = self._refresh.get(_digest(form.get("refresh_token") or "")) \
                if form.get("grant_type") == "refresh_token" else None
        proof = request.headers.get("DPoP")
        if proof is None:
            if client is not None and client.dpop_bound_access_tokens:
                raise DPoPError(INVALID_DPOP_PROOF, "this client must send a DPoP proof")
            if code_jkt or refresh_jkt:
                raise DPoPError("invalid_grant", "the grant is bound to a DPoP key; send a proof of it")
            return None
        try:
            jkt, _ = verify_proof(proof, method="POST", url=request.path_url, replay=self.replay,
                                  nonce_ok=self.nonce_ok if self.require_nonce else None,
                                  now=self.provider.clock(), max_age=self.max_age)
        except InvalidProof as exc:
            nonce = self.nonce() if exc.error == USE_DPOP_NONCE else None
            raise DPoPError(exc.error, exc.description, nonce=nonce) from None
        if code_jkt and code_jkt != jkt:
            raise DPoPError("invalid_grant", "the code is bound to another DPoP key (dpop_jkt)")
        if refresh_jkt and refresh_jkt != jkt:
            raise DPoPError("invalid_grant", "the refresh token is bound to another DPoP key")
        return jkt

    # -- resources: userinfo (§7) --------------------------------------------------------------------------
    def resource_headers(self, request: Any) -> dict[str, str]:
        """oauthlib headers for a resource request: a checked DPoP token becomes Bearer + :data:`DPOP_JKT`."""
        scheme, _, token = (request.headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "dpop":
            return {}
        token = token.strip()
        try:
            jkt, _ = verify_proof(request.headers.get("DPoP"), method=request.method, url=request.path_url,
                                  access_token=token, replay=self.replay, now=self.provider.clock(),
                                  nonce_ok=self.nonce_ok if self.require_nonce else None, max_age=self.max_age)
        except InvalidProof as exc:
            nonce = self.nonce() if exc.error == USE_DPOP_NONCE else None
            raise DPoPError(exc.error, exc.description, status_code=401, nonce=nonce) from None
        return {"Authorization": f"Bearer {token}", DPOP_JKT: jkt}


# -- hooks for oauthlib's side (token handler, claims, bearer validation) -----------------------------------
def confirmation(headers: Any) -> dict[str, str]:
    """The ``cnf`` claim of a token being issued: the proven DPoP key and/or the TLS client certificate."""
    cnf = certificate_confirmation(headers)
    jkt = headers.get(DPOP_JKT) if headers is not None else None
    if jkt:
        cnf["jkt"] = jkt
    return cnf


def binding_satisfied(claims: dict[str, Any], headers: Any) -> bool:
    """A bound token is used as bound: the proof's key (``cnf.jkt``) and the connection's certificate."""
    cnf = claims.get("cnf") or {}
    if not isinstance(cnf, dict):
        return False
    if cnf.get("jkt") and cnf["jkt"] != headers.get(DPOP_JKT):
        return False  # a DPoP token without a proof of its key, or sent as Bearer (§7.2)
    if cnf.get("x5t#S256") and certificate_confirmation(headers).get("x5t#S256") != cnf["x5t#S256"]:
        return False
    return True


def _basic_client_id(request: Any) -> str | None:
    basic = basic_credentials(request.headers.get("Authorization"))
    return basic[0] if basic else None
