"""Client-credentials tokens (RFC 6749 §4.4), cached until shortly before they expire.

Tokens are cached per client, scope, resource and extra parameters. A cold or expiring entry is
renewed by exactly one request however many threads (or, with a shared store, processes) ask at
once: the first takes the entry's lock, the others wait and re-read. Failed responses are never cached.
"""
from __future__ import annotations

import hashlib
import logging
import math
from typing import Any, Mapping

from . import metrics
from .clock import Clock, system_clock
from .errors import InvalidResponse, ProviderUnavailable, TokenError
from .events import ClientTokenAcquired, ClientTokenFailed, EventHub
from .tokenclient import TokenClient
from .errors import StoreUnavailable
from .stores import MemoryStore, TokenStore
from .tokens import AccessToken, dumps

log = logging.getLogger(__name__)

#: cached branches (by the caller's arguments) kept at most; further combinations take the full path
HOT_MAX = 4096


class ClientTokens:
    """The client-credentials tokens of all configured clients, through one cache."""

    def __init__(self, clients: Mapping[str | None, TokenClient], cache: TokenStore, *,
                 defaults: Mapping[str | None, tuple[str | None, str | None]] | None = None,
                 clock: Clock = system_clock, renew_before: float = 60.0, lock_timeout: float = 30.0,
                 events: EventHub | None = None) -> None:
        self.clients = clients
        #: where tokens handed out and failures are told (``TokenManager.events``)
        self.events = events if events is not None else EventHub()
        self.cache = cache
        #: per client: its configured (scope, resource)
        self.defaults = dict(defaults or {})
        self.clock = clock
        self.renew_before = renew_before
        self.lock_timeout = lock_timeout
        #: memo of cache keys per (name, scope, resource) of calls without extra parameters
        self._keys: dict[tuple[str | None, str | None, str | None], str] = {}
        #: with a MemoryStore, per (name, scope, resource) as the caller passed them: ``(cache key, the store's
        #: entry, its AccessToken, renewal deadline or inf)``, reused while the store holds that very entry
        self._hot: dict[tuple[str | None, str | None, str | None], tuple[str, Any, AccessToken, float]] = {}
        #: a plain MemoryStore's ``dict.get``, read inline on the cached branch: its ``get`` is a frame more, and
        #: its expiry check is implied (an entry outlives its token's renewal deadline, the one thing checked
        #: here; every write or delete replaces the entry object, so an identical one is the record parsed)
        self._peek = cache._data.get if type(cache) is MemoryStore else None
        #: per cache key: the stored record last parsed, its AccessToken and renewal deadline
        self._parsed: dict[str, tuple[dict[str, Any], AccessToken, float | None]] = {}

    def _client(self, name: str | None) -> TokenClient:
        try:
            return self.clients[name]
        except KeyError:
            label = "the OIDC client's own identity" if name is None else f"client {name!r}"
            raise TokenError(f"{label} is not configured", error="invalid_client") from None

    def cache_key(self, name: str | None, scope: str | None, resource: str | None,
                  parameters: Mapping[str, Any] | None) -> str:
        """A short key that identifies the client (id and token endpoint) and the request."""
        if not parameters:
            key = self._keys.get((name, scope, resource))
            if key is None:
                key = self._keys[(name, scope, resource)] = self._make_key(name, scope, resource, None)
            return key
        return self._make_key(name, scope, resource, parameters)

    def _make_key(self, name: str | None, scope: str | None, resource: str | None,
                  parameters: Mapping[str, Any] | None) -> str:
        client = self._client(name)
        where = client.issuer or client._token_endpoint
        identity = dumps([client.client_id, where, name, scope, resource, dict(parameters or {})])
        return "client:" + hashlib.sha256(identity.encode()).hexdigest()

    # Not keyword-only, unlike the rest of the API: CPython fills missing keyword-only arguments from a dict,
    # about 40 ns a call, a fifth of a cached token (TokenManager.get_client_access_token is this method).
    def get(self, name: str | None = None, force_renewal: bool = False, scope: str | None = None,
            resource: str | None = None, parameters: Mapping[str, Any] | None = None) -> AccessToken:
        """The client's token, from the cache while more than ``renew_before`` seconds are left.

        When a shared cache (Redis) cannot be reached, the token is requested directly (and logged):
        the cache saves requests, it must not stop the client.
        """
        try:
            if not force_renewal and not parameters:
                # The cached branch in this frame: what the store held when this call last parsed it, still there.
                # A token this process already handed out fires no event again, only the counter.
                hot = self._hot.get((name, scope, resource))
                if hot is not None and self._peek(hot[0]) is hot[1] and self.clock() < hot[3]:
                    metrics.token_cache("client", "hit")
                    return hot[2]
            try:
                return self._get(name, force_renewal=force_renewal, scope=scope, resource=resource,
                                 parameters=parameters)
            except StoreUnavailable as exc:
                log.warning("client %s: token cache unavailable (%s); requesting a token directly",
                            name or "(oidc client)", exc.error_description)
                default_scope, default_resource = self.defaults.get(name, (None, None))
                token = self._client(name).client_credentials(
                    scope=scope if scope is not None else default_scope,
                    resource=resource if resource is not None else default_resource, extra=parameters).access_token
                return self._acquired(name, token, from_cache=False)
        except TokenError as exc:
            self.events.emit(ClientTokenFailed(client=name, error=exc.error))
            raise

    def _acquired(self, name: str | None, token: AccessToken, *, from_cache: bool) -> AccessToken:
        self.events.emit(ClientTokenAcquired(client=name, expires_at=token.expires_at, from_cache=from_cache))
        return token

    def _get(self, name: str | None = None, *, force_renewal: bool = False, scope: str | None = None,
             resource: str | None = None, parameters: Mapping[str, Any] | None = None) -> AccessToken:
        default_scope, default_resource = self.defaults.get(name, (None, None))
        call = (name, scope, resource)
        scope = scope if scope is not None else default_scope
        resource = resource if resource is not None else default_resource
        key = self.cache_key(name, scope, resource, parameters)
        seen = self.cache.get(key)
        if seen is not None and not force_renewal:
            token, deadline = self._parse(key, seen)
            if deadline is None or self.clock() < deadline:
                metrics.token_cache("client", "hit")
                if self._peek is not None and not parameters and (call in self._hot or len(self._hot) < HOT_MAX):
                    held = self._peek(key)
                    if held is not None and held[1] is seen:
                        self._hot[call] = (key, held, token, math.inf if deadline is None else deadline)
                return self._acquired(name, token, from_cache=True)
        with self.cache.lock(key, self.lock_timeout):
            current = self.cache.get(key)
            if current is not None and (not force_renewal or current != seen):
                token = AccessToken.from_dict(current)
                if not token.renewal_due(self.renew_before, self.clock()):
                    metrics.token_cache("client", "hit")  # renewed by another caller while we waited
                    return self._acquired(name, token, from_cache=True)
            expired = current is None or AccessToken.from_dict(current).is_expired(self.clock())
            metrics.token_cache("client", "miss" if expired else "early_renewal")
            try:
                response = self._client(name).client_credentials(scope=scope, resource=resource, extra=parameters)
            except (ProviderUnavailable, InvalidResponse) as exc:  # down, or answering garbage
                if current is None or force_renewal or AccessToken.from_dict(current).is_expired(self.clock()):
                    raise
                # Renewal was only due early (renew_before): the cached token is still valid, keep using it.
                log.warning("client %s: renewal failed (%s); using the cached token until it expires",
                            name or "(oidc client)", exc)
                return self._acquired(name, AccessToken.from_dict(current), from_cache=True)
            token = response.access_token
            expires_in = token.expires_in(self.clock())
            try:
                self.cache.set(key, token.to_dict(), ttl=expires_in if expires_in is not None else None)
            except StoreUnavailable as exc:  # the token is good; only the cache missed it
                log.warning("client %s: could not cache the new token (%s)", name or "(oidc client)",
                            exc.error_description)
            log.info("client %s: new client-credentials token (scope=%s, resource=%s, expires at %s)",
                     name or "(oidc client)", scope, resource, token.expires_at)
            return self._acquired(name, token, from_cache=False)

    def _parse(self, key: str, record: dict[str, Any]) -> tuple[AccessToken, float | None]:
        """The record as an AccessToken with its renewal deadline, parsed once per stored record."""
        hit = self._parsed.get(key)
        if hit is not None and (hit[0] is record or hit[0] == record):
            return hit[1], hit[2]
        token = AccessToken.from_dict(record)
        deadline = token.renewal_deadline(self.renew_before)
        if len(self._parsed) >= 4096:
            self._parsed.clear()
        self._parsed[key] = (record, token, deadline)
        return token, deadline

    def evict(self, name: str | None = None, *, scope: str | None = None, resource: str | None = None,
              parameters: Mapping[str, Any] | None = None) -> None:
        """Drop a cached token so that the next call requests a new one."""
        default_scope, default_resource = self.defaults.get(name, (None, None))
        self.cache.delete(self.cache_key(name, scope if scope is not None else default_scope,
                                         resource if resource is not None else default_resource, parameters))
