"""``RedisStore``: token records as JSON in Redis, with expiry, a compare-and-set and a per-key lock.

Records are JSON text under ``{prefix}{key}`` (never pickles) with a Redis expiry (``SET ... PX``):
a user's token set expires with the session (the ``ttl`` :class:`~pyramid_tokens.usertokens.UserTokens`
passes), a rotation record after its grace period, a cached client token when it expires.

A record carrying an integer ``generation`` above 1 (a renewed token set, a rotation record; 1 is a
new login) is written by a Lua compare-and-set: only when the stored record is absent or of an older
generation. Renewals happen under the key's lock, so this never refuses a normal write; it is what
keeps "never overwritten by an older one" true when a lock was lost under its holder (a process
paused for longer than its lease, a Redis failover dropping the lock key): the late write of the
holder that lost its lock cannot put its token set over the newer one. A refused write is logged
and ``set`` returns False.

Every Redis failure becomes :class:`~pyramid_tokens.stores.StoreUnavailable` (a ``TokenError``), and
socket timeouts bound every call, so an unreachable Redis is a quick, clear error, never a hang.

URL: ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS, ``unix://`` for a socket), any
redis-py query option (``socket_timeout``, ``socket_connect_timeout``, ...) plus two of ours:
``prefix`` (default ``pyramid_tokens:``) and ``lock_lease`` (seconds, default 10; see :mod:`.lock`).
"""
from __future__ import annotations

import json
import logging
import threading
from typing import Any, Callable, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..errors import ConfigurationError
from ..errors import StoreUnavailable
from ..stores import TokenStore
from ..tokens import dumps
from .lock import DEFAULT_LEASE, RedisLock

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "pyramid_tokens:"
#: seconds; a Redis call (connect, or one command's answer) that takes longer is an error
DEFAULT_SOCKET_TIMEOUT = 2.0
#: query options of the URL that are ours, not redis-py's
OWN_OPTIONS = ("prefix", "lock_lease")

T = TypeVar("T")

#: KEYS[1] record; ARGV: JSON text, ttl in ms (0: none), generation. 1 = written, 0 = a newer one is stored.
SET_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, record = pcall(cjson.decode, current)
  if ok and type(record) == 'table' then
    local stored = tonumber(record['generation'])
    if stored and stored >= tonumber(ARGV[3]) then return 0 end
  end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"""

_clients: dict[str, redis.Redis] = {}
_clients_guard = threading.Lock()


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """``(url for redis-py, our own options)``: ``prefix`` and ``lock_lease`` come out of the query."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in OWN_OPTIONS}
    rest = urlencode([(k, v) for k, v in query if k not in OWN_OPTIONS])
    return urlunsplit(parts._replace(query=rest)), ours


def shared_client(url: str) -> redis.Redis:
    """One redis-py client (one connection pool) per URL and process, with bounded socket timeouts.

    The URL's own ``socket_timeout``/``socket_connect_timeout`` win over our defaults. A failed
    call is retried once at once (a pooled connection the server closed), never with back-off.
    """
    with _clients_guard:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = redis.Redis.from_url(
                url, socket_timeout=DEFAULT_SOCKET_TIMEOUT, socket_connect_timeout=DEFAULT_SOCKET_TIMEOUT,
                retry=Retry(NoBackoff(), 1))
        return client


def describe(client: redis.Redis) -> str:
    """``host:port/db`` (or the socket path) of a client, for messages; never the password."""
    kwargs = client.connection_pool.connection_kwargs
    where = kwargs.get("path") or f"{kwargs.get('host', '?')}:{kwargs.get('port', 6379)}"
    return f"{where}/{kwargs.get('db', 0)}"


class RedisStore(TokenStore):
    """JSON records in Redis shared by all processes; ``lock(key)`` is a :class:`RedisLock`."""

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str | None = None,
                 lock_lease: float | None = None, client: redis.Redis | None = None) -> None:
        connection_url, options = split_url(url)
        self.prefix = prefix if prefix is not None else options.get("prefix", DEFAULT_PREFIX)
        try:
            self.lock_lease = float(lock_lease if lock_lease is not None else options.get("lock_lease", DEFAULT_LEASE))
        except ValueError:
            raise ConfigurationError("lock_lease", "expected seconds", options.get("lock_lease")) from None
        if self.lock_lease <= 0:
            raise ConfigurationError("lock_lease", "must be positive", self.lock_lease)
        self.client = client if client is not None else shared_client(connection_url)
        self.where = describe(self.client)
        self._set_if_newer = self.client.register_script(SET_IF_NEWER)
        self.locks = RedisLock(self)

    # -- errors -------------------------------------------------------------------------------------
    def call(self, what: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one Redis call; any Redis failure is a :class:`StoreUnavailable` naming ``what``."""
        try:
            return function(*args, **kwargs)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"token store: {what} at Redis {self.where} failed ({type(exc).__name__}: "
                                   f"{exc})") from None

    # -- records ------------------------------------------------------------------------------------
    def get(self, key: str) -> dict[str, Any] | None:
        raw = self.call("read", self.client.get, self.prefix + key)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            log.warning("token store: record %r at Redis %s is not JSON; ignoring it", key[:16], self.where)
            return None
        return value if isinstance(value, dict) else None

    def set(self, key: str, value: dict[str, Any], ttl: float | None = None) -> bool:
        """Store ``value`` (expiring after ``ttl`` s); a record with a ``generation`` only over an older one."""
        name = self.prefix + key
        ttl_ms = 0
        if ttl:
            ttl_ms = int(ttl * 1000)
            if ttl_ms <= 0:  # already expired, as MemoryStore would have it
                self.delete(key)
                return False
        text = dumps(value)
        generation = value.get("generation")
        if isinstance(generation, int) and not isinstance(generation, bool) and generation > 1:
            # generation 1 is a new login: it always lands (a re-login on the same handle included)
            if self.call("write", self._set_if_newer, keys=[name], args=[text, ttl_ms, generation]):
                return True
            log.warning("token store: not writing generation %d of %r: Redis %s holds a newer one "
                        "(a lock was lost under its holder)", generation, key[:16], self.where)
            return False
        self.call("write", self.client.set, name, text, px=ttl_ms or None)
        return True

    def delete(self, key: str) -> None:
        self.call("delete", self.client.delete, self.prefix + key)

    # -- the lock -----------------------------------------------------------------------------------
    def lock(self, key: str, timeout: float = 30.0) -> Any:
        """Hold ``key`` exclusively across processes and hosts (bounded wait); see :class:`RedisLock`."""
        return self.locks.hold(key, timeout)

    def __repr__(self) -> str:
        return f"<RedisStore {self.where} prefix={self.prefix!r}>"
