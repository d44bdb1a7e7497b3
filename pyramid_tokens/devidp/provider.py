"""The development OpenID provider: its configuration, keys, claims, signing and client authentication.

* OpenID Connect Discovery 1.0 §3 and RFC 8414 §2: provider metadata (:meth:`DevProvider.metadata`),
  with RFC 9207 §3 ``authorization_response_iss_parameter_supported``.
* RFC 6749 §2.3.1: ``client_secret_basic`` and ``client_secret_post``, RFC 7523 ``private_key_jwt``
  and RFC 8705 ``tls_client_auth`` / ``self_signed_tls_client_auth``, one method per request
  (:meth:`DevProvider.authenticate_client`); with ``assertion_audience="token_endpoint"`` an
  assertion's ``aud`` must be the token endpoint URL (OIDC Core §9), as some providers demand.
* RFC 9126 pushed authorization requests (``par.py``), advertised with ``par=True``, required with
  ``require_par=True``; RFC 8705 §5 ``mtls_endpoint_aliases`` with ``mtls_endpoint_aliases=True``.
* RFC 9449 DPoP-bound and RFC 8705 certificate-bound access tokens (``cnf``; ``dpop.py``).
* RFC 9068 §2: JWT access tokens (``typ: at+jwt``); RFC 8707 §2: ``aud`` from ``resource``.
* OpenID Connect Core 1.0 §2 and §3.1.3.6: ID tokens with ``at_hash``; §12.2: refreshed ID tokens
  keep ``auth_time`` and carry no ``nonce``.

This module holds no HTTP: the oauthlib server (``oauth.py``/``validator.py``) is built over a
provider by ``views.add_routes``, which routes the Pyramid views of ``views.py`` to it.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from typing import Any

import jwt

from ..clock import Clock, system_clock
from ..jwk import b64url
from .clientauth import AssertionRefused, AssertionVerifier, basic_credentials, check_self_signed, check_tls_client
from .backchannel import BackchannelLogout
from .counters import Counters
from .dpop import DPoPServer, confirmation
from .faults import FaultMode, issue_id_token
from .keys import ALGORITHM, KeySet
from .par import PushedRequests
from .models import DEFAULT_SCOPES, GRANT_TYPES, DevClient, DevUser
from .state import DeviceCode, Grant, State, new_user_code

log = logging.getLogger("pyramid_tokens.devidp")

DISCOVERY_PATH = "/.well-known/openid-configuration"
DEVICE_VERIFICATION_PATH = "/device"
#: metadata name -> path below the issuer; views.py routes the same paths
ENDPOINT_PATHS = {
    "authorization_endpoint": "/authorize",
    "token_endpoint": "/token",
    "jwks_uri": "/jwks",
    "userinfo_endpoint": "/userinfo",
    "revocation_endpoint": "/revoke",
    "end_session_endpoint": "/logout",
    "device_authorization_endpoint": "/device_authorization",
}
#: RFC 9126 §5: served always, advertised only when the provider is made with ``par=True``
PAR_PATH = "/par"
#: RFC 8705 §5: metadata name -> path of its mTLS alias (the same views), advertised with ``mtls_endpoint_aliases``
MTLS_ALIASES = {name: "/mtls" + path for name, path in (
    ("token_endpoint", "/token"), ("revocation_endpoint", "/revoke"), ("userinfo_endpoint", "/userinfo"),
    ("pushed_authorization_request_endpoint", PAR_PATH), ("device_authorization_endpoint", "/device_authorization"))}
SELF_SIGNED = "self_signed_tls_client_auth"
SECRET_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
CLAIMS_SUPPORTED = [
    "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "azp",
    "name", "preferred_username", "email", "role", "sid",
]  # fmt: skip


def _positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number of seconds")
    return value


class DevProvider:
    """A development OpenID provider: in-memory, any user name logs in, keys generated at start.

    Serve it with :func:`pyramid_tokens.devidp.make_wsgi_app` or :func:`start_provider`, or
    include it in a Pyramid app with ``config.include('pyramid_tokens.devidp')``.
    """

    def __init__(
        self,
        issuer: str,
        clients: tuple[DevClient, ...] | list[DevClient] = (),
        users: tuple[DevUser, ...] | list[DevUser] = (),
        *,
        audience: str = "api",
        device_interval: int = 5,
        device_lifetime: int = 600,
        device_auto_approve: str | None = None,
        code_lifetime: int = 60,
        clock: Clock = system_clock,
        require_dpop_nonce: bool = False,
        par: bool = False,
        require_par: bool = False,
        assertion_audience: str = "any",
        mtls_endpoint_aliases: bool = False,
    ) -> None:
        if assertion_audience not in ("any", "token_endpoint"):
            raise ValueError("assertion_audience must be 'any' or 'token_endpoint'")
        self.assertion_audience = assertion_audience
        self.mtls_endpoint_aliases = mtls_endpoint_aliases
        self.issuer = issuer
        self.audience = audience
        self.device_interval = _positive_int("device_interval", device_interval, allow_zero=True)
        self.device_lifetime = _positive_int("device_lifetime", device_lifetime)
        self.device_auto_approve = device_auto_approve or None
        self.code_lifetime = _positive_int("code_lifetime", code_lifetime)
        self.clock = clock
        self.keys = KeySet()
        self.state = State()
        self.counter = Counters()
        self._clients_lock = threading.Lock()
        self._clients = {client.client_id: client for client in clients or ()}
        self._users = {user.username: user for user in users or ()}
        #: RFC 9449 state (nonces, proof replay, bindings); RFC 7523 assertion checks (jti replay)
        self.dpop = DPoPServer(self, require_nonce=require_dpop_nonce)
        self.assertions = AssertionVerifier(self)
        #: OpenID Connect Back-Channel Logout 1.0: sessions (sid) and the logout tokens sent when they end
        self.backchannel = BackchannelLogout(self)
        #: RFC 9126 pushed authorization requests
        self.par = PushedRequests(self, advertised=par, required=require_par)
        #: the current misbehaviour for tests (:mod:`pyramid_tokens.devidp.faults`); none by default
        self.faults = FaultMode()
        log.warning(
            "pyramid_tokens.devidp is a DEVELOPMENT OpenID provider: any user name logs in without a "
            "password and all state is in memory. Never use it to protect anything real."
        )
        if self.device_auto_approve:
            log.warning(
                "devidp: device_auto_approve is ON: every device authorization is approved as user %r",
                self.device_auto_approve,
            )

    # -- where it lives ----------------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        return self._issuer

    @issuer.setter
    def issuer(self, value: str) -> None:
        self._issuer = value.rstrip("/")

    def url(self, path: str) -> str:
        return f"{self.issuer}{path}"

    def endpoint(self, name: str) -> str:
        """The URL of the endpoint a metadata name (``token_endpoint``, ...) names."""
        if name == "pushed_authorization_request_endpoint":
            return self.url(PAR_PATH)
        return self.url(ENDPOINT_PATHS[name])

    @property
    def verification_uri(self) -> str:
        return self.url(DEVICE_VERIFICATION_PATH)

    # -- clients and users -------------------------------------------------------------------------
    @property
    def clients(self) -> dict[str, DevClient]:
        """A snapshot of the registered clients by id; use :meth:`add_client` to change them."""
        with self._clients_lock:
            return dict(self._clients)

    def add_client(self, client: DevClient) -> None:
        """Register a client, replacing any client with the same id."""
        with self._clients_lock:
            self._clients[client.client_id] = client

    def get_client(self, client_id: str | None) -> DevClient | None:
        with self._clients_lock:
            return self._clients.get(client_id or "")

    def user(self, username: str) -> DevUser:
        """The registered user, or one made up for the name."""
        return self._users.get(username) or DevUser.for_username(username)

    # -- published documents -----------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """The discovery document (OpenID Connect Discovery 1.0 §3)."""
        clients = self.clients.values()
        scopes = sorted(set(DEFAULT_SCOPES).union(*(client.scopes for client in clients)))
        auth_methods = SECRET_AUTH_METHODS + (["none"] if any(not c.confidential for c in clients) else [])
        auth_methods += ["private_key_jwt"] if any(c.jwks is not None for c in clients) else []
        auth_methods += ["tls_client_auth"] if any(c.tls_client_auth_subject_dn for c in clients) else []
        auth_methods += [SELF_SIGNED] if any(c.token_endpoint_auth_method == SELF_SIGNED for c in clients) else []
        extra: dict[str, Any] = self.par.metadata(self.url(PAR_PATH))
        if self.mtls_endpoint_aliases:
            extra["mtls_endpoint_aliases"] = {name: self.url(path) for name, path in MTLS_ALIASES.items()}
        return {
            "issuer": self.issuer,
            **{name: self.endpoint(name) for name in ENDPOINT_PATHS},
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "fragment"],
            "grant_types_supported": list(GRANT_TYPES) + sorted(  # token exchange, when a client may use it
                {grant for client in clients for grant in client.grant_types} - set(GRANT_TYPES)),
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "subject_types_supported": ["public"],
            "scopes_supported": scopes,
            "claims_supported": CLAIMS_SUPPORTED,
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "authorization_response_iss_parameter_supported": True,
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256"],
            "dpop_signing_alg_values_supported": ["ES256", "RS256", "PS256"],
            "tls_client_certificate_bound_access_tokens": True,
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
            **extra,
        }

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return self.keys.jwks()

    def misbehave(self, fault: str, *, on: Any = None, times: int | None = None, **params: Any) -> None:
        """Misbehave in ONE named way from now on (tests only; see :mod:`~pyramid_tokens.devidp.faults`)."""
        self.faults.set(fault, on=on, times=times, **params)
        log.warning("devidp: misbehaving on purpose: %s", fault)

    def behave(self) -> None:
        """Stop misbehaving."""
        self.faults.clear()

    def rotate_keys(self, keep_old: bool = True) -> str:
        """Sign with a new key from now on; returns its ``kid``. Old keys stay published if ``keep_old``."""
        key = self.keys.rotate(keep_old=keep_old)
        log.info("devidp: signing key rotated to kid=%s (old keys kept: %s)", key.kid, keep_old)
        return key.kid

    # -- counters -----------------------------------------------------------------------------------
    def counters(self) -> dict[str, Any]:
        """A snapshot of the request counters (see :mod:`pyramid_tokens.devidp.counters`)."""
        return self.counter.snapshot()

    def reset_counters(self) -> None:
        self.counter.reset()

    # -- client authentication (RFC 6749 §2.3) ------------------------------------------------------
    def authenticate_client(self, request: Any) -> bool:
        """Authenticate the client of an oauthlib request; the one place that does so.

        ``client_secret_basic`` (Authorization header) or ``client_secret_post`` (body) for
        clients with a secret, ``private_key_jwt`` (RFC 7523, ``clientauth.py``) for clients with
        registered keys, ``tls_client_auth`` (RFC 8705 §2.1: client_id only, over a connection with
        the registered certificate subject), ``none`` (client_id only) for public clients. Using two
        methods in one request fails (RFC 6749 §2.3), as does a method other than the client's
        ``token_endpoint_auth_method`` when it registered one. On success sets ``request.client``,
        ``request.client_id`` and ``request.client_auth_method`` and counts the method.
        """
        basic = basic_credentials(request.headers.get("Authorization"))
        asserted = getattr(request, "client_assertion", None) is not None or \
            getattr(request, "client_assertion_type", None) is not None
        if asserted and (basic is not None or request.client_secret is not None):
            return self._auth_failed(request.client_id, "two authentication methods")
        if basic is not None and request.client_secret is not None:
            return self._auth_failed(request.client_id, "two authentication methods")
        if asserted:  # RFC 7523 private_key_jwt: the verified assertion names the client
            try:
                asserted_client = self.assertions.verify(request)
            except AssertionRefused as exc:
                return self._auth_failed(request.client_id, f"private_key_jwt refused: {exc}")
            client_id, secret, method = asserted_client.client_id, None, "private_key_jwt"
        elif basic is not None:
            client_id, secret = basic
            method = "client_secret_basic"
            if request.client_id and request.client_id != client_id:
                return self._auth_failed(client_id, "client_id differs from the Basic credentials")
        elif request.client_secret is not None:
            client_id, secret, method = request.client_id, request.client_secret, "client_secret_post"
        else:
            client_id, secret, method = request.client_id, None, "none"
        client = self.get_client(client_id)
        if client is None:
            return self._auth_failed(client_id, "unknown client")
        if method == "private_key_jwt":
            pass  # verified above against the client's registered keys
        elif method == "none" and client.token_endpoint_auth_method == SELF_SIGNED:  # RFC 8705 §2.2
            if not check_self_signed(client, request):
                return self._auth_failed(client_id, "no client certificate registered in the client's jwks")
            method = SELF_SIGNED
        elif method == "none" and client.tls_client_auth_subject_dn:  # RFC 8705 §2.1 tls_client_auth
            if not check_tls_client(client, request):
                return self._auth_failed(client_id, "no client certificate with the registered subject DN")
            method = "tls_client_auth"
        elif client.confidential:
            if not secret or not client.client_secret or \
                    not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
                return self._auth_failed(client_id, f"bad credentials ({method})")
        elif secret:
            return self._auth_failed(client_id, "public client presented a secret")
        else:
            method = "none"  # a public client naming itself, also with an empty Basic password
        if client.token_endpoint_auth_method and method != client.token_endpoint_auth_method and \
                {method, client.token_endpoint_auth_method} != set(SECRET_AUTH_METHODS):
            return self._auth_failed(client_id, f"{method} is not the client's registered method")
        request.client = client
        request.client_id = client.client_id
        request.client_auth_method = method
        self.counter.client_authenticated(method)
        return True

    @staticmethod
    def _auth_failed(client_id: str | None, reason: str) -> bool:
        log.info("devidp: client authentication failed for client_id=%r: %s", client_id, reason)
        return False

    # -- JOSE ---------------------------------------------------------------------------------------
    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        """Sign ``claims`` as a compact JWS with the current key (RS256, ``kid`` in the header)."""
        key = self.keys.current
        return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid, **(headers or {})})

    def verify(self, token: str, *, typ: str | None = None, verify_exp: bool = True) -> dict[str, Any]:
        """The claims of a JWT this provider signed; raises :class:`jwt.InvalidTokenError` otherwise.

        Checks the signature against the published keys, ``iss``, ``typ`` when given (``at+jwt``
        also matches ``application/at+jwt``, RFC 9068 §4) and ``exp`` against the provider clock.
        """
        header = jwt.get_unverified_header(token)
        key = self.keys.find(header.get("kid"))
        if key is None:
            raise jwt.InvalidTokenError("unknown key id")
        if typ is not None and str(header.get("typ", "")).lower() not in (typ, f"application/{typ}"):
            raise jwt.InvalidTokenError(f"not a {typ} token")
        claims = jwt.decode(
            token,
            key.public_key,
            algorithms=[ALGORITHM],
            issuer=self.issuer,
            options={"verify_aud": False, "verify_exp": False, "verify_iat": False, "require": ["iss", "sub", "exp"]},
        )
        if verify_exp and self.clock() >= claims["exp"]:
            raise jwt.ExpiredSignatureError("token expired")
        return claims

    # -- tokens -------------------------------------------------------------------------------------
    @staticmethod
    def access_token_lifetime(request: Any) -> int:
        return request.client.access_token_lifetime

    def access_token(self, request: Any) -> str:
        """A signed RFC 9068 access token for an oauthlib token request (oauthlib's token generator)."""
        claims = self._access_token_claims(request)
        request.devidp_access_claims = claims
        return self.sign(claims, {"typ": "at+jwt"})

    def _access_token_claims(self, request: Any) -> dict[str, Any]:
        now = int(self.clock())
        client: DevClient = request.client
        grant: Grant | None = getattr(request, "devidp_grant", None)
        user: DevUser | None = request.user
        resources = getattr(request, "devidp_resources", ()) or (grant.resources if grant else ())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user.username if user else client.client_id,
            "aud": (resources[0] if len(resources) == 1 else list(resources)) if resources else self.audience,
            "exp": now + request.expires_in,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "client_id": client.client_id,
            "scope": " ".join(request.scopes or ()),
        }
        cnf = confirmation(request.headers)  # RFC 9449 §6.1 jkt, RFC 8705 §3.1 x5t#S256
        if cnf:
            claims["cnf"] = cnf
        if user is not None:
            if grant is not None and grant.auth_time is not None:
                claims["auth_time"] = grant.auth_time
            claims.update(user.claims(request.scopes or ()))
        claims.update(getattr(request, "devidp_claims", None) or {})  # token exchange: aud, sub, act (exchange.py)
        return claims

    def id_token(self, request: Any, token: dict[str, Any]) -> str:
        """A signed ID token for an oauthlib token request whose response is ``token``."""
        return issue_id_token(self, request, self._id_token_claims(request, token))  # signed, unless a fault

    def _id_token_claims(self, request: Any, token: dict[str, Any]) -> dict[str, Any]:
        now = int(self.clock())
        client: DevClient = request.client
        grant: Grant = request.devidp_grant
        user: DevUser = request.user
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user.username,
            "aud": client.client_id,
            "azp": client.client_id,
            "exp": now + client.id_token_lifetime,
            "iat": now,
            "auth_time": grant.auth_time,
            "sid": self.backchannel.note(user.username, grant),  # Back-Channel Logout 1.0 §2.1
        }
        code = getattr(request, "devidp_code", None)
        if code is not None and code.nonce:  # only the code exchange repeats the nonce (§12.2)
            claims["nonce"] = code.nonce
        if "access_token" in token:
            digest = hashlib.sha256(token["access_token"].encode("ascii")).digest()
            claims["at_hash"] = b64url(digest[: len(digest) // 2])  # computed here, not by the client's check
        claims.update(user.claims(request.scopes or ()))
        return claims

    @staticmethod
    def issues_refresh_token(request: Any) -> bool:
        """A refresh token comes with user grants that include ``offline_access`` (OIDC Core §11)."""
        grant: Grant | None = getattr(request, "devidp_grant", None)
        return (
            grant is not None
            and grant.username is not None
            and "offline_access" in grant.scopes
            and "refresh_token" in request.client.grant_types
        )

    # -- device authorization (RFC 8628 §3.2, §3.3) -------------------------------------------------
    def start_device_authorization(
        self, client: DevClient, scopes: list[str], resources: tuple[str, ...]
    ) -> DeviceCode:
        now = self.clock()
        record = DeviceCode(
            device_code=secrets.token_urlsafe(32),
            user_code=new_user_code(),
            grant=Grant(client_id=client.client_id, scopes=tuple(scopes), resources=resources),
            expires_at=now + self.device_lifetime,
            interval=self.device_interval,
        )
        record = self.state.add_device(record, now)
        if self.device_auto_approve:
            self.state.decide_device(record.user_code, self.device_auto_approve, True, now)
            log.info("devidp: device authorization for client %s auto-approved", client.client_id)
        return record

    def decide_device(self, user_code: str, username: str, approve: bool) -> str:
        """The user's decision at the verification URI; see :meth:`State.decide_device`."""
        outcome = self.state.decide_device(user_code, username, approve, self.clock())
        log.info("devidp: device authorization decision: %s", outcome)
        return outcome
