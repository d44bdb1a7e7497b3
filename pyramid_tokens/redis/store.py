"""``RedisStore``: token records as JSON in Redis, with expiry, a compare-and-set and a per-key lock.

Records are JSON text (never pickles) with a Redis expiry (``SET ... PX``): a user's token set
expires with the session (the ``ttl`` :class:`~pyramid_tokens.usertokens.UserTokens` passes), a
rotation record after its grace period, a cached client token when it expires.

Keys and Cluster slots: ``{prefix}{KEY}``, the part of the key that names the login (its handle) in
braces, the Redis Cluster hash tag. A key that carries its own ``{...}`` (a rotation record,
``rotated:{HANDLE}:SHA``) keeps it, and the key's lock is ``{prefix}lock:{KEY}``: a login's record,
its lock and its rotation records live in one hash slot, so no operation on them is ever CROSSSLOT.
Back-channel logout's index sets (``{prefix}index:{KEY}``, KEY naming an ``(iss, sid)`` or ``(iss, sub)``)
carry their own hash tag, so each is a slot of its own, only ever touched by single-key commands;
``add`` (the logout token ``jti`` replay cache) is one ``SET NX PX``.

A record carrying an integer ``generation`` above 1 (a renewed token set, a rotation record; 1 is a
new login) is written by a Lua compare-and-set: only when the stored record is absent or of an older
generation, so the late write of a holder that lost its lock cannot put its token set over a newer
one (a refused write is logged and ``set`` returns False). Such a write is *durable*:

* with replicas it is confirmed by ``WAIT`` (``wait_replicas``, default 1 when the master has
  replicas, else 0; at most :data:`WAIT_TIMEOUT`) on the connection that wrote it, so a failover
  right after does not roll it back;
* when it fails (Redis down, a failover under way, no replica confirming) the record is kept in this
  process (:class:`Pending`): ``get`` serves it to this process's callers and a background thread
  writes it as soon as Redis answers (retrying with a bounded back-off); its rotation record, kept the same way, is what
  makes another process holding the old refresh token adopt the new one. It is never silently dropped:
  only a newer record in Redis, a delete or its own expiry end it.

Every other Redis failure becomes :class:`~pyramid_tokens.errors.StoreUnavailable` (a ``TokenError``),
and socket timeouts bound every call, so an unreachable Redis is a quick, clear error, never a hang.
URLs and options: see :mod:`.connect`.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any, Callable, TypeVar

import redis

from ..errors import ConfigurationError, StoreUnavailable
from ..stores import TokenStore
from ..tokens import dumps
from .connect import RedisUrl, parse_url, shared_client
from .lock import RedisLock

log = logging.getLogger(__name__)

#: seconds a durable write waits for its replicas to confirm it
WAIT_TIMEOUT = 0.5
#: seconds after replicas failed to confirm a write during which a request does not wait for them
#: again (its write is kept in this process at once; the background writer still waits)
UNCONFIRMED_BACKOFF = 2.0
#: seconds after a failover during which only the new master's own replicas are waited for (see
#: :meth:`RedisStore.replicas_wanted`)
AFTER_FAILOVER = 30.0
#: seconds between two tries of the background writer, doubling up to the second value
FLUSH_BACKOFF = (0.05, 1.0)

T = TypeVar("T")

#: KEYS[1] record; ARGV: JSON text, ttl in ms (0: none), generation. 1 = written (or already there, the same
#: text), 0 = a newer one is stored.
SET_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then return 1 end  -- a retry of a write whose answer was lost
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


#: KEYS[1] an index set; ARGV: member, ttl in ms (0: none). The set lives at least ttl more (one key, one slot).
INDEX_ADD = """
redis.call('SADD', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
else
  redis.call('PERSIST', KEYS[1])
end
return 1
"""


def describe(client: Any) -> str:
    """``host:port/db`` of a plain client, for messages; never the password."""
    kwargs = getattr(client, "connection_pool", None)
    kwargs = kwargs.connection_kwargs if kwargs is not None else {}
    where = kwargs.get("path") or f"{kwargs.get('host', '?')}:{kwargs.get('port', 6379)}"
    return f"{where}/{kwargs.get('db', 0)}"


class Pending:
    """Durable writes Redis has not confirmed yet: ``key -> (record, JSON text, expiry, generation)``."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[dict[str, Any], str, float | None, int]] = {}
        self.guard = threading.Lock()
        self.writer: threading.Thread | None = None
        self.pid = os.getpid()

    def get(self, key: str) -> tuple[dict[str, Any], str, float | None, int] | None:
        item = self.records.get(key)
        if item is not None and item[2] is not None and time.monotonic() >= item[2]:
            self.drop(key, item)
            return None
        return item

    def drop(self, key: str, item: Any = None) -> None:
        with self.guard:
            if item is None or self.records.get(key) is item:
                self.records.pop(key, None)


class RedisStore(TokenStore):
    """JSON records in Redis shared by all processes; ``lock(key)`` is a :class:`RedisLock`."""

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str | None = None,
                 lock_lease: float | None = None, client: Any = None, setting: str = "tokens.store") -> None:
        self.url: RedisUrl = parse_url(url, setting)
        self.prefix = prefix if prefix is not None else self.url.prefix
        self.lock_lease = float(lock_lease if lock_lease is not None else self.url.lock_lease)
        if self.lock_lease <= 0:
            raise ConfigurationError("lock_lease", "must be positive", self.lock_lease)
        self.client = client if client is not None else shared_client(self.url)
        self.where = describe(self.client) if self.url.topology == "single" else self.url.where()
        self._set_if_newer = self.client.register_script(SET_IF_NEWER)
        self._index_add = self.client.register_script(INDEX_ADD)
        self.locks = RedisLock(self)
        self.pending = Pending()
        self._master: Any = None
        self._unconfirmed_until = float("-inf")
        #: when this process last saw the Sentinels name a new master (``time.monotonic()``)
        self.switched = float("-inf")

    def name(self, kind: str, key: str) -> str:
        """The Redis key of ``key`` (``kind``: ``""`` for the record, ``"lock:"``), hash-tagged by login."""
        return f"{self.prefix}{kind}{key if '{' in key else '{' + key + '}'}"

    def fresh_master(self) -> tuple[str, int] | None:
        """Sentinel: talk to the master the Sentinels name now, and return its address (else None).

        Called before taking, renewing or releasing a lock and before a durable write: after
        ``SENTINEL FAILOVER`` the old master accepts commands until the Sentinels demote it (up to
        10 s), and a lock taken or a token set written there would be lost. redis-py drops the idle
        connections to an old master when it sees a new one named.
        """
        if self.url.topology != "sentinel":
            return None
        master = self.call("find the master", self.client.connection_pool.get_master_address)
        switched = self._master is not None and master != self._master
        self._master = master
        if switched:
            self.switched = time.monotonic()
            log.warning("token store: Redis %s failed over to a new master", self.where)
            self.locks.failed_over()
        return master

    # -- errors -------------------------------------------------------------------------------------
    def call(self, what: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one Redis call; any Redis failure is a :class:`StoreUnavailable` naming ``what``."""
        try:
            return function(*args, **kwargs)
        except redis.exceptions.LockError:
            raise  # a lock that is not ours: the lock's own business, not an outage
        except redis.RedisError as exc:
            raise StoreUnavailable(f"token store: {what} at Redis {self.where} failed ({type(exc).__name__}: "
                                   f"{str(exc)[:120]})") from None

    # -- records ------------------------------------------------------------------------------------
    def get(self, key: str) -> dict[str, Any] | None:
        pending = self.pending.get(key)
        if pending is not None:  # not yet in Redis: this process's callers get the new tokens meanwhile
            return json.loads(pending[1])
        raw = self.call("read", self.client.get, self.name("", key))
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
        name = self.name("", key)
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
            item = (value, text, time.monotonic() + ttl if ttl else None, generation)
            try:
                return self._flush(key, item, first=True)
            except StoreUnavailable as exc:
                with self.pending.guard:
                    current = self.pending.records.get(key)
                    if current is None or current[3] < generation:
                        self.pending.records[key] = item
                log.warning("token store: generation %d of %r not confirmed by Redis %s (%s); kept in this "
                            "process and written as soon as Redis answers", generation, key[:16], self.where, exc)
                self._start_writer()
                return True
        self.pending.drop(key)
        self.call("write", self.client.set, name, text, px=ttl_ms or None)
        return True

    def delete(self, key: str) -> None:
        self.pending.drop(key)
        self.call("delete", self.client.delete, self.name("", key))

    # -- add-if-absent and index sets (Back-Channel Logout: the jti replay cache, logins by sid / sub) ------
    def add(self, key: str, value: dict[str, Any], ttl: float | None = None) -> bool:
        """``SET NX``: only when ``key`` holds nothing, atomically across every process and host."""
        ttl_ms = int(ttl * 1000) if ttl else None
        return bool(self.call("write", self.client.set, self.name("", key), dumps(value), px=ttl_ms, nx=True))

    def index_add(self, key: str, member: str, ttl: float | None = None) -> None:
        """``SADD`` into a set of its own slot (``{prefix}index:{KEY}``), kept at least ``ttl`` more."""
        self.call("index", self._index_add, keys=[self.name("index:", key)], args=[member, int((ttl or 0) * 1000)])

    def index_members(self, key: str) -> list[str]:
        raw = self.call("index read", self.client.smembers, self.name("index:", key))
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in raw or ())

    def index_remove(self, key: str, members: list[str], ttl: float | None = None) -> None:
        if members:
            self.call("index write", self.client.srem, self.name("index:", key), *members)

    # -- durable writes -------------------------------------------------------------------------------
    def _flush(self, key: str, item: tuple[dict[str, Any], str, float | None, int], first: bool = False) -> bool:
        """Compare-and-set ``item`` and confirm it with ``WAIT``; ``StoreUnavailable`` when Redis cannot.

        True when written (or, but for the first try, when Redis already holds this generation or a
        newer one, confirmed); the pending copy is dropped either way.
        """
        value, text, expires, generation = item
        ttl_ms = 0
        if expires is not None:
            ttl_ms = int((expires - time.monotonic()) * 1000)
            if ttl_ms <= 0:
                self.pending.drop(key, item)
                return False
        name = self.name("", key)
        self.fresh_master()
        # a write-back that finds its generation already there confirms it too: it may sit on an old
        # master whose replica was just promoted away, to vanish when that master is demoted
        [written], confirmed = self.durably("write", name, lambda pipe: self._set_if_newer(
            keys=[name], args=[text, ttl_ms, generation], client=pipe),
            wait=not first or time.monotonic() >= self._unconfirmed_until)
        if not written and first:
            log.warning("token store: not writing generation %d of %r: Redis %s holds a newer one "
                        "(a lock was lost under its holder)", generation, key[:16], self.where)
        elif not confirmed:
            raise StoreUnavailable(f"token store: no replica of Redis {self.where} confirmed the write within "
                                   f"{self.wait_timeout():g} s")
        with self.pending.guard:  # Redis answered: a pending copy of this generation or an older one is done
            current = self.pending.records.get(key)
            if current is not None and current[3] <= generation:
                del self.pending.records[key]
        return bool(written) or not first

    def durably(self, what: str, name: str, queue: Callable[[Any], Any], wait: bool = True,
                wanted: int | None = None) -> tuple[list[Any], bool]:
        """Run the commands ``queue`` adds to a pipeline, then ``WAIT``, on one connection to ``name``'s node.

        Returns the commands' results and whether ``wanted`` replicas (default: :meth:`replicas_wanted`)
        confirmed them. One connection, because ``WAIT`` confirms the writes of the
        connection it runs on: on another pooled connection it would confirm nothing of these. On
        Sentinel, a master the Sentinels no longer name after the commands ran confirms nothing
        either: it is about to be demoted, and what was written only there is lost.
        """
        sentinel = self.url.topology == "sentinel"
        master = self.client.connection_pool.master_address if sentinel else None
        for moved in (False, True):
            want = self.replicas_wanted(name) if wanted is None or moved else wanted
            node = self._node(name)
            pipe = node.pipeline(transaction=False)
            queue(pipe)
            if want and wait:
                pipe.wait(want, int(self.wait_timeout() * 1000))
            try:
                results = pipe.execute()
                break
            except redis.exceptions.AskError as exc:  # MOVED or ASK: the slot went to another Cluster node
                if node is self.client or moved:
                    raise StoreUnavailable(f"token store: {what} at Redis {self.where} failed (the slot of "
                                           f"{name[:40]!r} is moving: {str(exc)[:80]})") from None
                # a command through the Cluster client follows the redirection and learns the new owner
                self.call("find the slot's node", self.client.exists, name)
            except redis.RedisError as exc:
                raise StoreUnavailable(f"token store: {what} at Redis {self.where} failed ({type(exc).__name__}: "
                                       f"{str(exc)[:120]})") from None
        acked = results.pop() if want and wait else 0
        confirmed = acked >= want
        if sentinel and self.call("find the master", self.client.connection_pool.sentinel_manager.discover_master,
                                  self.url.service) != master:
            confirmed = False  # failed over under the commands
        if not confirmed:
            self._unconfirmed_until = time.monotonic() + UNCONFIRMED_BACKOFF
        return results, confirmed

    def replicas_wanted(self, name: str) -> int:
        """How many replicas must confirm a durable write: ``wait_replicas``, else 1 when there are any.

        Sentinel: 1 when the Sentinels list a replica that is up, or the master has one connected.
        The Sentinels' list, because a master whose replica is being promoted away has none left of
        its own, while its writes are about to be lost; whatever else the Sentinels say of that
        replica meanwhile (it reports itself a master, its link to them drops) is no reason to
        write unconfirmed. Within :data:`AFTER_FAILOVER` of a new master, the master's own view
        alone: the old master is listed as its replica until the Sentinels turn it into one (up to
        8 s), and waiting for it would hold every refresh off until then.
        """
        if self.url.wait_replicas is not None:
            return self.url.wait_replicas
        if self.url.topology == "sentinel" and time.monotonic() - self.switched >= AFTER_FAILOVER:
            # redis-py's discover_slaves: the replicas the first Sentinel that knows any lists as up
            if self.call("find the replicas", self.client.connection_pool.sentinel_manager.discover_slaves,
                         self.url.service):
                return 1
        info = self.call("replication info", self._node(name).info, "replication")
        return 1 if int(info.get("connected_slaves") or 0) > 0 else 0

    def wait_timeout(self) -> float:
        """Seconds a ``WAIT`` may take: :data:`WAIT_TIMEOUT`, within the socket timeout."""
        return min(WAIT_TIMEOUT, 0.8 * (self.url.timeouts.get("socket_timeout") or WAIT_TIMEOUT / 0.8))

    def _node(self, name: str) -> Any:
        """The plain client of the Cluster node that holds ``name``; the client itself on other topologies."""
        if isinstance(self.client, redis.RedisCluster):
            return self.client.get_redis_connection(self.client.get_node_from_key(name))
        return self.client

    def _start_writer(self) -> None:
        with self.pending.guard:
            if self.pending.pid != os.getpid():  # forked: the parent's thread is not ours
                self.pending.pid, self.pending.writer = os.getpid(), None
            if self.pending.writer is None:
                self.pending.writer = threading.Thread(target=self._write_back, daemon=True,
                                                       name="pyramid_tokens-redis-write-back")
                self.pending.writer.start()

    def _write_back(self) -> None:
        """Write pending records until none is left, backing off while Redis does not answer."""
        delay = FLUSH_BACKOFF[0]
        while True:
            time.sleep(delay)
            with self.pending.guard:
                items = list(self.pending.records.items())
                if not items:
                    self.pending.writer = None
                    return
            try:
                for key, item in items:
                    self._flush(key, item)
                    self.locks.written(key)
                    log.info("token store: wrote back generation %d of %r to Redis %s", item[3], key[:16],
                             self.where)
                delay = FLUSH_BACKOFF[0]
            except StoreUnavailable:
                delay = min(delay * 2, FLUSH_BACKOFF[1])

    # -- the lock -----------------------------------------------------------------------------------
    def lock(self, key: str, timeout: float = 30.0) -> Any:
        """Hold ``key`` exclusively across processes and hosts (bounded wait); see :class:`RedisLock`."""
        return self.locks.hold(key, timeout)

    def __repr__(self) -> str:
        return f"<RedisStore {self.where} prefix={self.prefix!r}>"
