"""Pushed Authorization Requests at the development provider (RFC 9126).

* §2: ``POST /par`` takes the authorization request's parameters from an authenticated client
  (any of the client's methods, as at the token endpoint), checks them as the authorization endpoint
  would (client, redirect URI, scope, PKCE), and answers ``201`` with a one-time ``request_uri``
  valid for :data:`LIFETIME` seconds. ``request_uri`` itself may not be pushed (§2.1).
* §4: the authorization endpoint replaces a request carrying ``client_id`` and ``request_uri`` by the
  pushed parameters; the ``client_id`` must be the pusher's. With ``require_par`` (§5,
  ``require_pushed_authorization_requests``) a request without ``request_uri`` is refused.
* RFC 9449 §10.1: a DPoP proof on the push binds the code to its key, as ``dpop_jkt`` does.
"""
from __future__ import annotations

import secrets
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from oauthlib.common import Request as OAuthRequest
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from .proofs import InvalidProof, verify_proof

if TYPE_CHECKING:
    from .provider import DevProvider

#: RFC 9126 §2.2: the ``request_uri`` prefix
URN = "urn:ietf:params:oauth:request_uri:"
#: seconds a pushed request stays usable (§2.2 suggests between 5 and 600)
LIFETIME = 60
#: the most pushed requests kept at once
MAX_PENDING = 10_000


class ParRefused(Exception):
    """A pushed request (or its use) was refused: an OAuth ``error`` and its description."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


class PushedRequests:
    """The provider's pushed authorization requests by ``request_uri`` (in memory, one-time)."""

    def __init__(self, provider: "DevProvider", *, advertised: bool = False, required: bool = False) -> None:
        self.provider = provider
        self.advertised = advertised or required
        self.required = required
        #: how many requests were pushed (tests: PAR was used)
        self.pushed = 0
        self._lock = threading.Lock()
        self._requests: dict[str, tuple[str, dict[str, str], float]] = {}  # uri -> (client_id, params, expires)

    def metadata(self, endpoint: str) -> dict[str, Any]:
        """The discovery members of §5."""
        if not self.advertised:
            return {}
        return {"pushed_authorization_request_endpoint": endpoint,
                "require_pushed_authorization_requests": self.required}

    def push(self, request: Any, oauth_args: tuple[Any, ...], validate: Any) -> str:
        """Keep an authenticated client's pushed parameters; the ``request_uri``.

        ``oauth_args``: oauthlib's ``(uri, method, body, headers)`` of the request (with the TLS client
        certificate); ``validate(query)`` raises the authorization endpoint's :class:`OAuth2Error`.
        """
        provider = self.provider
        params = {key: value for key, value in request.POST.items()}
        if "request_uri" in params:
            raise ParRefused("invalid_request", "request_uri must not be pushed (RFC 9126 §2.1)")
        oauth = OAuthRequest(*oauth_args)
        if not provider.authenticate_client(oauth):
            raise ParRefused("invalid_client", "client authentication failed", 401)
        params["client_id"] = oauth.client_id
        jkt = self._dpop_key(request)
        if jkt is not None:
            if params.get("dpop_jkt") not in (None, jkt):
                raise ParRefused("invalid_dpop_proof", "dpop_jkt is not the key of the DPoP proof")
            params["dpop_jkt"] = jkt
        try:
            validate(urlencode(params))
        except OAuth2Error as e:
            raise ParRefused(e.error, e.description or e.error) from None
        except ValueError:  # oauthlib refuses to parse the parameters
            raise ParRefused("invalid_request", "the pushed request could not be parsed") from None
        uri = URN + secrets.token_urlsafe(24)
        now = provider.clock()
        with self._lock:
            self._requests = {k: v for k, v in self._requests.items() if v[2] > now}
            if len(self._requests) >= MAX_PENDING:
                raise ParRefused("temporarily_unavailable", "too many pushed requests", 503)
            self._requests[uri] = (oauth.client_id, params, now + LIFETIME)
            self.pushed += 1
        return uri

    def resolve(self, query: str, *, consume: bool = False) -> str:
        """The authorization request a query stands for (§4): the pushed one for a ``request_uri``."""
        params = dict(parse_qsl(query, keep_blank_values=True))
        uri = params.get("request_uri")
        if uri is None:
            if self.required:
                raise ParRefused("invalid_request", "this provider requires pushed authorization requests")
            return query
        with self._lock:
            entry = self._requests.pop(uri, None) if consume else self._requests.get(uri)
        if entry is None or entry[2] <= self.provider.clock():
            raise ParRefused("invalid_request_uri", "the request_uri is unknown, used or expired")
        if params.get("client_id") != entry[0]:
            raise ParRefused("invalid_request", "client_id is not the client that pushed the request")
        return urlencode(entry[1])

    def _dpop_key(self, request: Any) -> str | None:
        proof = request.headers.get("DPoP")
        if proof is None:
            return None
        dpop = self.provider.dpop
        try:
            jkt, _ = verify_proof(proof, method="POST", url=request.path_url, replay=dpop.replay,
                                  nonce_ok=dpop.nonce_ok if dpop.require_nonce else None,
                                  now=self.provider.clock(), max_age=dpop.max_age)
        except InvalidProof as exc:
            raise ParRefused(exc.error, exc.description) from None
        return jkt
