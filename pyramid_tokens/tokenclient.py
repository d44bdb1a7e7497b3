"""One client at one token endpoint: grants (RFC 6749 §4.1.3, §4.4, §6; RFC 8707 resources) and revocation (RFC 7009).

Builds requests (forms by oauthlib's ``prepare_token_request``) and hands replies to
:mod:`pyramid_tokens.responses`; sending goes through :class:`~pyramid_tokens.transport.Transport`.
The token endpoint is configured directly or found through discovery.

Every call to the provider's endpoints authenticates the client (:mod:`pyramid_tokens.clientauth`:
secret, RFC 7523 ``private_key_jwt`` assertion with ``aud`` = the issuer, or RFC 8705 mutual TLS).
Token requests of a DPoP client carry a proof (RFC 9449 §5) and are retried once when the provider
asks for a nonce (§8); the key used travels with the tokens (``TokenResponse.dpop_key``). A token
type the request cannot honour (``DPoP`` without a key, ``Bearer`` on refresh of a DPoP login) is a
malformed response, and a refresh refused with 400/401 is :class:`~pyramid_tokens.errors.LoginRequired`
whatever the body says.
"""
from __future__ import annotations

import functools
import logging
import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar
from urllib.parse import parse_qsl

from oauthlib.oauth2.rfc6749.parameters import prepare_token_request

from . import metrics
from .clock import Clock, system_clock
from .discovery import Discovery
from .dpop import NONCE_HEADER, USE_DPOP_NONCE, DPoPKey, DPoPNonces, challenge_error, valid_nonce
from .errors import ConfigurationError, InvalidResponse, LoginRequired, TokenError
from .options import ClientCredentials
from .responses import TokenResponse, endpoint_of, error_from_reply, parse_token_response
from .transport import Reply, Transport, endpoint_kind

if TYPE_CHECKING:
    from .tokens import AccessToken

log = logging.getLogger(__name__)
T = TypeVar("T")


def names_endpoint(method: Callable[..., T]) -> Callable[..., T]:
    """A call to ``url`` whose errors (transport ones too) carry that endpoint, without its query, as context."""
    @functools.wraps(method)
    def call(self: Any, url: str, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, url, *args, **kwargs)
        except TokenError as exc:
            if exc.endpoint is None:
                exc.endpoint = endpoint_of(url)
            raise

    return call


def counts_token_request(method: Callable[..., T]) -> Callable[..., T]:
    """A token request, counted by grant type and outcome (``success`` or the error code)."""
    @functools.wraps(method)
    def call(self: Any, form: Mapping[str, Any], *args: Any, **kwargs: Any) -> T:
        grant = str(form.get("grant_type"))
        try:
            response = method(self, form, *args, **kwargs)
        except TokenError as exc:
            metrics.token_request(grant, exc.error)
            raise
        metrics.token_request(grant, "success")
        return response

    return call


def grant_form(grant_type: str, **params: Any) -> dict[str, str]:
    """The form of a token request (RFC 6749 §4.1.3, §4.4.2, §6), by oauthlib's ``prepare_token_request``.

    ``None`` values are left out; client authentication is added later (:mod:`pyramid_tokens.clientauth`).
    """
    body = prepare_token_request(grant_type, include_client_id=False,
                                 **{name: value for name, value in params.items() if value is not None})
    return dict(parse_qsl(body, keep_blank_values=True))


class TokenClient:
    """Requests tokens for one client, from a configured token endpoint or one found by discovery."""

    def __init__(self, credentials: ClientCredentials, *, transport: Transport, clock: Clock = system_clock,
                 discovery: Discovery | None = None, token_endpoint: str | None = None,
                 dpop_nonces: DPoPNonces | None = None) -> None:
        if discovery is None and token_endpoint is None:
            raise ConfigurationError("token_endpoint", "a token endpoint or an authority is required")
        self.credentials = credentials
        self.transport = transport
        self.clock = clock
        self.discovery = discovery
        self._token_endpoint = token_endpoint
        #: server nonces per origin (RFC 9449 §8), shared with the named HTTP clients by the manager
        self.dpop_nonces = dpop_nonces if dpop_nonces is not None else DPoPNonces()
        self._own_dpop_key: DPoPKey | None = None
        self._dpop_lock = threading.Lock()

    @property
    def client_id(self) -> str:
        return self.credentials.client_id

    @property
    def issuer(self) -> str | None:
        return self.discovery.authority if self.discovery else None

    def token_endpoint(self) -> str:
        if self._token_endpoint:
            return self._token_endpoint
        assert self.discovery is not None
        return self.discovery.endpoint("token_endpoint", required=True, mtls=self.credentials.cert is not None)

    def assertion_audience(self) -> str:
        """The ``aud`` of client assertions: the issuer (the token endpoint when so configured, or when only
        that is known)."""
        if self.discovery is None or self.credentials.assertion_audience == "token_endpoint":
            return self.token_endpoint()
        return self.discovery.issuer

    # -- DPoP keys (RFC 9449) -------------------------------------------------------------------------
    def client_dpop_key(self) -> DPoPKey | None:
        """The key of the client's own (client-credentials) tokens: the configured one, or one made per process.

        Each cached token keeps the key it is bound to, so processes sharing a cache need not share this key.
        """
        if not self.credentials.dpop:
            return None
        if self.credentials.dpop_key is not None:
            return self.credentials.dpop_key
        with self._dpop_lock:
            if self._own_dpop_key is None:
                self._own_dpop_key = DPoPKey.generate()
            return self._own_dpop_key

    def new_login_dpop_key(self) -> DPoPKey | None:
        """The key for a new user login: the configured one, or a fresh ES256 key."""
        if not self.credentials.dpop:
            return None
        return self.credentials.dpop_key or DPoPKey.generate()

    # -- requests -------------------------------------------------------------------------------------
    @names_endpoint
    def post_form(self, url: str, data: Mapping[str, Any], *, what: str, dpop: DPoPKey | None = None) -> Reply:
        """POST to one of the provider's endpoints as this client (authenticated; mTLS certificate).

        With ``dpop`` the request carries a proof (RFC 9449 §4) with the origin's last nonce; a
        ``use_dpop_nonce`` refusal bringing a new ``DPoP-Nonce`` is retried once (§8).
        """
        if self.discovery is not None:
            self.discovery.check_client_auth(self.credentials)  # warns once about unadvertised methods
        reply: Reply | None = None
        for attempt in (1, 2):
            headers = {}
            if dpop is not None:
                headers["DPoP"] = dpop.proof("POST", url, nonce=self.dpop_nonces.get(url))
            audience = self.assertion_audience() if self.credentials.assertion_key is not None else None
            reply = self.transport.post_form(url, data, what=what, client=self.credentials, headers=headers,
                                             audience=audience)
            if dpop is None:
                return reply
            fresh = self._remember_nonce(url, reply, what)
            error = reply.data.get("error") if isinstance(reply.data, dict) else None
            if attempt == 2 or not fresh or reply.status != 400 or error != USE_DPOP_NONCE:
                return reply
            log.debug("%s: the provider asked for a DPoP nonce; retrying once with it", what)
            metrics.dpop_nonce_retry(endpoint_kind(what))
        assert reply is not None
        return reply

    def _remember_nonce(self, url: str, reply: Reply, what: str) -> bool:
        """Keep the reply's ``DPoP-Nonce`` (True when new); one that is not RFC 9449 ``NQCHAR`` is malformed."""
        nonce = reply.headers.get(NONCE_HEADER)
        if nonce is not None and not valid_nonce(nonce):
            raise InvalidResponse(f"{what}: the DPoP-Nonce header is not an RFC 9449 nonce",
                                  status_code=reply.status, endpoint=endpoint_of(url))
        return self.dpop_nonces.remember(url, reply.headers)

    @names_endpoint
    def get_json(self, url: str, *, what: str, token: "AccessToken | None" = None,
                 authorization: str | None = None) -> dict[str, Any]:
        """GET a JSON object with an access token (userinfo): the mTLS certificate, and a DPoP proof for a
        DPoP-bound token, retried once when the server asks for a nonce (RFC 9449 §9)."""
        headers = {"Authorization": token.authorization if token is not None else str(authorization)} \
            if token is not None or authorization else {}
        if token is not None and token.token_type == "DPoP" and token.dpop_key is None:
            raise TokenError(f"{what}: a DPoP token cannot be sent without its key's proof", error="invalid_token")
        if token is None or token.dpop_key is None or token.token_type != "DPoP":
            return self.transport.get_json(url, what=what, headers=headers, cert=self.credentials.cert)
        reply: Reply | None = None
        for attempt in (1, 2):
            headers["DPoP"] = token.dpop_key.proof("GET", url, access_token=token.access_token,
                                                   nonce=self.dpop_nonces.get(url))
            reply = self.transport.request("GET", url, what=what, headers=headers, cert=self.credentials.cert)
            fresh = self._remember_nonce(url, reply, what)
            if attempt == 2 or not fresh or reply.status != 401 or \
                    challenge_error(reply.headers.get("WWW-Authenticate")) != USE_DPOP_NONCE:
                break
            metrics.dpop_nonce_retry(endpoint_kind(what))
        assert reply is not None
        if reply.status != 200:
            raise error_from_reply(reply, what, url=url)
        if not isinstance(reply.data, dict):
            raise InvalidResponse(f"{what}: expected a JSON object", status_code=reply.status,
                                  endpoint=endpoint_of(url))
        return reply.data

    @counts_token_request
    def request_token(self, form: Mapping[str, Any], *, what: str, scope: str | None = None,
                      resource: str | None = None, dpop: DPoPKey | None = None) -> TokenResponse:
        """POST a grant to the token endpoint and return the validated response (DPoP-bound with ``dpop``).

        A ``DPoP`` token needs a proof on every use (RFC 9449 §7.1): one answered to a request made
        without a DPoP key is malformed.
        """
        url = self.token_endpoint()
        reply = self.post_form(url, {**form, "scope": scope, "resource": resource}, what=what, dpop=dpop)
        response = parse_token_response(reply, what=what, now=self.clock(), requested_scope=scope,
                                        resource=resource, issuer=self.issuer, client_id=self.client_id,
                                        url=url)
        access = response.access_token
        if access.token_type == "DPoP" and dpop is None:
            raise InvalidResponse(f"{what}: token_type DPoP answered to a request without a DPoP proof",
                                  status_code=reply.status, endpoint=endpoint_of(url))
        if dpop is not None:
            if access.token_type == "DPoP":
                access = access.with_(dpop_key=dpop)
            response = replace(response, access_token=access, dpop_key=dpop)
        log.debug("%s for client %s succeeded (expires_at=%s)", what, self.client_id,
                  response.access_token.expires_at)
        return response

    def client_credentials(self, *, scope: str | None = None, resource: str | None = None,
                           extra: Mapping[str, Any] | None = None) -> TokenResponse:
        """RFC 6749 §4.4: a token for the client itself."""
        form = {**grant_form("client_credentials"), **(extra or {})}  # extra parameters as given, not oauthlib's
        return self.request_token(form, what="client credentials request", scope=scope, resource=resource,
                                  dpop=self.client_dpop_key())

    def refresh(self, refresh_token: str, *, scope: str | None = None, resource: str | None = None,
                dpop: DPoPKey | None = None, token_type: str | None = None) -> TokenResponse:
        """RFC 6749 §6: exchange a refresh token.

        ``invalid_grant``, and a 400 or 401 without an OAuth error body (real providers refuse dead
        refresh tokens that way too), raise :class:`LoginRequired`. ``dpop``: the login's DPoP key
        (RFC 9449 §5); a DPoP client without one uses a new key. ``token_type``: the current token's;
        a DPoP login answered with a Bearer token is malformed (a downgrade from sender-constrained tokens).
        """
        form = grant_form("refresh_token", refresh_token=refresh_token)
        try:
            response = self.request_token(form, what="refresh token request", scope=scope, resource=resource,
                                          dpop=dpop or self.new_login_dpop_key())
        except InvalidResponse as exc:
            if exc.status_code not in (400, 401):
                raise
            # RFC 6749 §5.2 puts refusals at 400/401; whatever the body (an HTML page), the refresh token is refused
            raise LoginRequired(f"refresh token request: refused with HTTP {exc.status_code} without an OAuth error",
                                status_code=exc.status_code, endpoint=exc.endpoint) from None
        if token_type == "DPoP" and response.access_token.token_type != "DPoP":
            raise InvalidResponse("refresh token request: a DPoP-bound login was answered with token_type "
                                  f"{response.access_token.token_type}", status_code=200,
                                  endpoint=endpoint_of(self.token_endpoint()))
        return response

    def revoke(self, token: str, *, hint: str = "refresh_token") -> bool:
        """RFC 7009: revoke ``token``. False (and a logged notice) when the provider has no revocation endpoint."""
        # the form is written here: oauthlib's prepare_token_revocation_request refuses http:// even on loopback
        url = self.discovery.endpoint("revocation_endpoint", mtls=self.credentials.cert is not None) \
            if self.discovery else None
        if not url:
            log.info("the provider has no revocation endpoint; the %s of client %s was only forgotten locally",
                     hint, self.client_id)
            return False
        reply = self.post_form(url, {"token": token, "token_type_hint": hint}, what="token revocation")
        if reply.status != 200:
            raise error_from_reply(reply, "token revocation", url=url)
        log.info("revoked the %s of client %s", hint, self.client_id)
        return True

