"""User tokens: the logged-in user's access, refresh and ID tokens, refreshed when due (RFC 6749 §6).

The token set of one login lives in a :class:`~pyramid_tokens.stores.TokenStore` under a random
*handle* that the user's session carries. Reading a valid token costs one store read and no I/O
beyond it. Renewal is single-flight: the caller that takes the handle's lock refreshes; the others
wait, re-read and use the result. Providers rotate refresh tokens, so a request that still holds an
old token set (a stale cookie, a process that read before the rotation) must not send the used
refresh token: a short-lived *rotation record*, keyed by the SHA-256 of the used refresh token,
hands it the result instead of an ``invalid_grant``.
"""
from __future__ import annotations

import copy
import hashlib
import logging
import threading
import time
from typing import Any

from . import metrics
from .clock import Clock, system_clock
from .errors import InvalidResponse, LoginRequired, ProviderUnavailable, StoreUnavailable, SubjectMismatch, \
    TokenError
from .events import EventHub, RefreshTokenRevoked, UserTokenRefreshed, UserTokenRefreshFailed
from .logins import index_keys
from .responses import TokenResponse
from .stores import PROCESS_LOCKS, TokenStore
from .tokenclient import TokenClient
from .tokens import AccessToken

log = logging.getLogger(__name__)

#: the handle of the one user a plain-Python manager holds (after ``device_login``)
LOCAL_USER = "local-user"
#: how long a rotation record lets stale holders of a used refresh token catch up
ROTATION_GRACE = 60.0
#: parsed access tokens kept per process (see :meth:`UserTokens._parsed_token`); the oldest go first
PARSED_TOKENS_MAX = 1024


def rotation_key(refresh_token: str, handle: str) -> str:
    # {handle}: the Redis Cluster hash tag of the login's record, so both live in one slot
    return f"rotated:{{{handle}}}:" + hashlib.sha256(refresh_token.encode()).hexdigest()


def token_of(record: dict[str, Any], resource: str | None) -> AccessToken | None:
    """The record's access token for ``resource`` (``None``: the login's own token)."""
    data = record.get("access") if resource is None else (record.get("resources") or {}).get(resource)
    return AccessToken.from_dict(data) if data else None


def _dpop_key(record: dict[str, Any]) -> Any:
    """The login's DPoP key (RFC 9449), stored as a private JWK in the record; ``None`` without DPoP."""
    if not record.get("dpop_key"):
        return None
    from .dpop import DPoPKey

    return DPoPKey.from_jwk(record["dpop_key"])


class UserTokens:
    """Reads, renews, revokes and forgets users' token sets."""

    def __init__(self, client: TokenClient, store: TokenStore, *, rotations: TokenStore | None = None,
                 clock: Clock = system_clock, renew_before: float = 60.0, ttl: float | None = None,
                 lock_timeout: float = 30.0, validate_id_token: Any = None, events: EventHub | None = None) -> None:
        self.client = client
        #: where refreshes, refresh failures and revocations are told (``TokenManager.events``)
        self.events = events if events is not None else EventHub()
        self.store = store
        self.rotations = store if rotations is None else rotations
        self.clock = clock
        self.renew_before = renew_before
        self.ttl = ttl
        self.lock_timeout = lock_timeout
        #: ``(TokenResponse, sub) -> claims`` checking a refreshed ID token; ``None`` skips the check
        self.validate_id_token = validate_id_token
        #: ``(handle, resource) -> (copy of the stored token dict, AccessToken, renewal deadline)``
        self._parsed: dict[tuple[str, str | None], tuple[dict[str, Any], AccessToken, float | None]] = {}
        self._parsed_lock = threading.Lock()

    # -- login and logout ---------------------------------------------------------------------------
    def save_login(self, handle: str, tokens: TokenResponse, sub: str, *, store: TokenStore | None = None,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Store the token set of a new login under ``handle``."""
        record = {
            "sub": sub,
            "access": tokens.access_token.to_dict(),
            "refresh_token": tokens.refresh_token,
            "id_token": tokens.id_token,
            "resources": {},
            "generation": 1,
            "refreshes": 0,
            # RFC 9449: the login's DPoP key lives with its tokens, so every process proves with it
            **({"dpop_key": tokens.dpop_key.private_jwk()} if tokens.dpop_key is not None else {}),
            **(extra or {}),
        }
        store = self.store if store is None else store
        store.set(handle, record, self.ttl)
        self._index(store, handle, record)
        return record

    def _index(self, store: TokenStore, handle: str, record: dict[str, Any]) -> None:
        # Back-Channel Logout 1.0 §2.7: the login is found by (iss, sid) and (iss, sub) for as long as it lives
        for key in index_keys(record):
            store.index_add(key, handle, self.ttl)

    def record(self, handle: str, *, store: TokenStore | None = None) -> dict[str, Any] | None:
        """The stored token set (for display: refresh count, expiry, ID token)."""
        return (self.store if store is None else store).get(handle)

    def forget(self, handle: str, *, store: TokenStore | None = None) -> None:
        (self.store if store is None else store).delete(handle)
        with self._parsed_lock:
            for key in [key for key in self._parsed if key[0] == handle]:
                del self._parsed[key]

    # -- the access token ----------------------------------------------------------------------------
    def get_access_token(self, handle: str, *, force_renewal: bool = False, resource: str | None = None,
                         store: TokenStore | None = None) -> AccessToken:
        """The user's access token (for ``resource``), refreshed first when it is due."""
        return self.access(handle, force_renewal=force_renewal, resource=resource, store=store)[0]

    def access(self, handle: str, *, force_renewal: bool = False, resource: str | None = None,
               store: TokenStore | None = None) -> tuple[AccessToken, float | None]:
        """:meth:`get_access_token` with the token's renewal deadline (POSIX time, ``None``: never due).

        The deadline of a stored token is computed once per stored record (see :meth:`_parsed_token`),
        so a caller that keeps the token for a while (the Pyramid layer, for one request) compares
        ``clock() < deadline`` and does no datetime arithmetic of its own.
        """
        store = self.store if store is None else store  # not ``or``: an empty MemoryStore is falsy
        seen = store.get(handle)
        if seen is None:
            raise LoginRequired("no user is logged in")
        if not force_renewal:
            # A valid token costs the store read above and no parsing (see _parsed_token).
            data = seen.get("access") if resource is None else (seen.get("resources") or {}).get(resource)
            if data:
                parsed = self._parsed.get((handle, resource))
                if parsed is None or parsed[0] != data:
                    parsed = self._parsed_token(handle, resource, data)
                if parsed[2] is None or self.clock() < parsed[2]:  # i.e. not token.renewal_due(renew_before, now)
                    metrics.token_cache("user", "hit")  # the one thing a valid read records (a no-op without otel)
                    return parsed[1], parsed[2]
        token = self._renew(handle, store, seen, resource, force_renewal)
        return token, token.renewal_deadline(self.renew_before)

    def _parsed_token(self, handle: str, resource: str | None,
                      data: dict[str, Any]) -> tuple[dict[str, Any], AccessToken, float | None]:
        """Parse a stored token dict once: ``(copy of data, AccessToken, renewal deadline)``.

        Kept per handle and resource and reused only while the stored dict is equal to the copy,
        so a changed record (a refresh here or in another process) is always parsed afresh.
        """
        token = AccessToken.from_dict(data)
        parsed = (copy.deepcopy(data), token, token.renewal_deadline(self.renew_before))
        with self._parsed_lock:
            if len(self._parsed) >= PARSED_TOKENS_MAX:
                del self._parsed[next(iter(self._parsed))]
            self._parsed[(handle, resource)] = parsed
        return parsed

    def _renew(self, handle: str, store: TokenStore, seen: dict[str, Any], resource: str | None,
               force: bool) -> AccessToken:
        deadline = time.monotonic() + self.lock_timeout
        # The threads of this process queue here, not on the store's lock (a round trip to Redis, a
        # file lock): the first renews, the others find its result in the record and never take it.
        with PROCESS_LOCKS.hold(f"renew:{id(store)}:{handle}", self.lock_timeout):
            token = self._renewed(store.get(handle), seen, resource, force)
            if token is not None:
                return token
            return self._renew_locked(handle, store, seen, resource, force, max(deadline - time.monotonic(), 0.001))

    def _renewed(self, record: dict[str, Any] | None, seen: dict[str, Any], resource: str | None,
                 force: bool) -> AccessToken | None:
        """The record's token when another caller renewed it since ``seen`` (or, unforced, it is not due)."""
        if record is None:
            raise LoginRequired("the user's tokens were cleared")
        token = token_of(record, resource)
        renewed_meanwhile = record.get("generation") != seen.get("generation")
        if token is not None and (renewed_meanwhile or not force) and \
                not token.renewal_due(self.renew_before, self.clock()):
            return token
        return None

    def _renew_locked(self, handle: str, store: TokenStore, seen: dict[str, Any], resource: str | None,
                      force: bool, timeout: float) -> AccessToken:
        with store.lock(handle, timeout):
            record = store.get(handle)
            token = self._renewed(record, seen, resource, force)
            if token is not None:
                return token  # another caller (another process) renewed while we waited
            token = token_of(record, resource)
            refresh_token = record.get("refresh_token")
            if not refresh_token:
                # Without a refresh token only a new login renews; a forced renewal (an API's 401) says so.
                if token is not None and not force and not token.is_expired(self.clock()):
                    return token
                raise LoginRequired("the access token cannot be renewed without a refresh token")
            adopted = self.rotations.get(rotation_key(refresh_token, handle))
            if adopted is not None and adopted.get("sub") == record.get("sub"):
                log.info("user %s: refresh token already rotated by another request; adopting its result",
                         record.get("sub"))
                record = adopted
                store.set(handle, record, self.ttl)
                token = token_of(record, resource)
                if token is not None and not token.renewal_due(self.renew_before, self.clock()):
                    return token
                refresh_token = record["refresh_token"]
            metrics.token_cache("user", "miss" if token is None or token.is_expired(self.clock()) else "early_renewal")
            return self._refresh(handle, store, record, refresh_token, resource, token)

    def _refresh(self, handle: str, store: TokenStore, record: dict[str, Any], refresh_token: str,
                 resource: str | None, current: AccessToken | None) -> AccessToken:
        sub = record.get("sub")
        try:
            token_type = current.token_type if current is not None else (record.get("access") or {}).get("token_type")
            tokens = self.client.refresh(refresh_token, resource=resource, dpop=_dpop_key(record),
                                         token_type=token_type)
        except LoginRequired as exc:
            latest = store.get(handle)
            if latest is not None and latest.get("generation") != record.get("generation"):
                # Renewed meanwhile by another holder (our lock's lease ran out under us): not a logout.
                renewed = token_of(latest, resource)
                if renewed is not None and not renewed.is_expired(self.clock()):
                    log.warning("user %s: refresh token refused (%s) after another process renewed it; "
                                "using its result", sub, exc.error)
                    return renewed
            log.warning("user %s: refresh token refused (%s); login required", sub, exc.error)
            store.delete(handle)
            self._failed(sub, exc.error, resource, login_ended=True)
            raise LoginRequired("the refresh token is no longer accepted; please log in again",
                                error=exc.error, status_code=exc.status_code, endpoint=exc.endpoint) from None
        except (ProviderUnavailable, InvalidResponse) as exc:  # down, or answering garbage: same to the user
            self._failed(sub, exc.error, resource, login_ended=False)
            if current is not None and not current.is_expired(self.clock()):
                log.warning("user %s: refresh failed (%s); using the current token until it expires at %s",
                            sub, exc, current.expires_at)
                return current
            raise
        updated = dict(record)
        updated["refresh_token"] = tokens.refresh_token or refresh_token  # keep it when not rotated
        updated["generation"] = int(record.get("generation") or 0) + 1
        updated["refreshes"] = int(record.get("refreshes") or 0) + 1
        if tokens.dpop_key is not None:
            updated["dpop_key"] = tokens.dpop_key.private_jwk()
        if resource is None:
            updated["access"] = tokens.access_token.to_dict()
        else:
            updated["resources"] = {**(record.get("resources") or {}), resource: tokens.access_token.to_dict()}
        if tokens.id_token:
            try:
                if self.validate_id_token is not None:
                    self.validate_id_token(tokens, sub)
                updated["id_token"] = tokens.id_token
            except SubjectMismatch:
                # The provider answered for another user: its access token is not this user's. Fail closed.
                log.warning("user %s: the refresh was answered for another user; login required", sub)
                store.delete(handle)
                self._failed(sub, "invalid_id_token", resource, login_ended=True)
                raise LoginRequired("the provider answered the refresh for another user; please log in again",
                                    error="login_required") from None
            except TokenError as exc:
                # The rotated refresh token must not be lost over a bad ID token: keep the old ID token.
                log.warning("user %s: refreshed ID token rejected (%s); keeping the previous one", sub, exc)
        store.set(handle, updated, self.ttl)
        try:
            self._index(store, handle, updated)  # the record's expiry moved on: its index entries' too
        except StoreUnavailable as exc:  # the refreshed tokens are kept (durably, RedisStore) all the same
            log.warning("user %s: could not extend the login's back-channel logout index (%s)", sub, exc)
        if tokens.refresh_token and tokens.refresh_token != refresh_token:
            self.rotations.set(rotation_key(refresh_token, handle), updated, ROTATION_GRACE)
        log.info("user %s: refreshed access token%s (refresh #%d, expires at %s)", sub,
                 f" for {resource}" if resource else "", updated["refreshes"], tokens.access_token.expires_at)
        self.events.emit(UserTokenRefreshed(sub=sub, expires_at=tokens.access_token.expires_at, resource=resource,
                                            rotated=updated["refresh_token"] != refresh_token))
        return tokens.access_token

    def _failed(self, sub: str | None, error: str, resource: str | None, *, login_ended: bool) -> None:
        metrics.refresh_failure(error)
        self.events.emit(UserTokenRefreshFailed(sub=sub, error=error, login_ended=login_ended, resource=resource))

    # -- revocation -----------------------------------------------------------------------------------
    def revoke_refresh_token(self, handle: str, *, store: TokenStore | None = None) -> bool:
        """Revoke the refresh token at the provider (RFC 7009) and forget it; idempotent.

        Returns True when the provider confirmed the revocation. The token is forgotten locally even
        when the provider cannot be reached; the error is raised afterwards so the caller knows.
        """
        store = self.store if store is None else store
        with store.lock(handle, self.lock_timeout):
            record = store.get(handle)
            refresh_token = record.get("refresh_token") if record else None
            if not refresh_token:
                return False
            store.set(handle, {**record, "refresh_token": None, "generation": int(record.get("generation") or 0) + 1},
                      self.ttl)
        revoked = self.client.revoke(refresh_token, hint="refresh_token")
        if revoked:
            self.events.emit(RefreshTokenRevoked(sub=record.get("sub")))
        return revoked
