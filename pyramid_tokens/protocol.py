"""One client at one token endpoint: grants (RFC 6749 §4.4, §6; RFC 8707 resources) and revocation (RFC 7009).

Builds requests and parses replies; sending goes through :class:`~pyramid_tokens.transport.Transport`.
The token endpoint is configured directly or found through discovery.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

from .clock import Clock, system_clock
from .discovery import Discovery
from .errors import ConfigurationError, TokenError
from .options import ClientCredentials
from .transport import TokenResponse, Transport, error_from_reply, parse_token_response

log = logging.getLogger(__name__)


class TokenClient:
    """Requests tokens for one client, from a configured token endpoint or one found by discovery."""

    def __init__(self, credentials: ClientCredentials, *, transport: Transport, clock: Clock = system_clock,
                 discovery: Discovery | None = None, token_endpoint: str | None = None) -> None:
        if discovery is None and token_endpoint is None:
            raise ConfigurationError("token_endpoint", "a token endpoint or an authority is required")
        self.credentials = credentials
        self.transport = transport
        self.clock = clock
        self.discovery = discovery
        self._token_endpoint = token_endpoint

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
        return self.discovery.metadata()["token_endpoint"]

    def request_token(self, form: Mapping[str, Any], *, what: str, scope: str | None = None,
                      resource: str | None = None) -> TokenResponse:
        """POST a grant to the token endpoint and return the validated response."""
        url = self.token_endpoint()
        reply = self.transport.post_form(url, {**form, "scope": scope, "resource": resource}, what=what,
                                         client=self.credentials)
        response = parse_token_response(reply, what=what, now=self.clock(), requested_scope=scope,
                                        resource=resource, issuer=self.issuer, client_id=self.client_id)
        log.debug("%s for client %s succeeded (expires_at=%s)", what, self.client_id,
                  response.access_token.expires_at)
        return response

    def client_credentials(self, *, scope: str | None = None, resource: str | None = None,
                           extra: Mapping[str, Any] | None = None) -> TokenResponse:
        """RFC 6749 §4.4: a token for the client itself."""
        form = {"grant_type": "client_credentials", **(extra or {})}
        return self.request_token(form, what="client credentials request", scope=scope, resource=resource)

    def refresh(self, refresh_token: str, *, scope: str | None = None, resource: str | None = None) -> TokenResponse:
        """RFC 6749 §6: exchange a refresh token. ``invalid_grant`` raises :class:`LoginRequired`."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self.request_token(form, what="refresh token request", scope=scope, resource=resource)

    def revoke(self, token: str, *, hint: str = "refresh_token") -> bool:
        """RFC 7009: revoke ``token``. False (and a logged notice) when the provider has no revocation endpoint."""
        url = self.discovery.endpoint("revocation_endpoint") if self.discovery else None
        if not url:
            log.info("the provider has no revocation endpoint; the %s of client %s was only forgotten locally",
                     hint, self.client_id)
            return False
        reply = self.transport.post_form(url, {"token": token, "token_type_hint": hint}, what="token revocation",
                                         client=self.credentials)
        if reply.status != 200:
            raise error_from_reply(reply, "token revocation")
        log.info("revoked the %s of client %s", hint, self.client_id)
        return True


def require_str(data: Mapping[str, Any], name: str, what: str) -> str:
    """A required non-empty string member of a provider response."""
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise TokenError(f"{what}: {name} is missing", error="invalid_response")
    return value
