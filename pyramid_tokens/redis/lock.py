"""``RedisLock``: one lock per key across processes and hosts, for single-flight token renewal.

The lock itself is redis-py's :class:`redis.lock.Lock` (``SET key token NX PX lease``, a Lua
compare-and-delete release, ``reacquire`` to renew; :class:`OwnLock` adds one line for a retried
``SET`` whose answer was lost): threads of one process first queue on an
in-process lock for the same key, so at most one thread per process polls Redis, and the wait is
bounded (past ``timeout``: :class:`~pyramid_tokens.errors.LockTimeout`). A lock that is no longer
ours when released (its lease ran out and another process took it) is left alone and logged;
releasing never raises, and a lock that cannot be released expires by itself.

What stays ours is the watchdog (nobody has one): the lease is short (``lock_lease``, default
10 s) and renewed every third of it while the holder lives. Why a watchdog rather than a lease sized
from the token request's timeout: what runs under the lock is up to three requests (discovery, token,
JWKS), each with its own timeout, plus retries; a lease sized for the worst case would be a minute or
more, and that is how long every user of a process that died holding it would wait. With a watchdog
a live holder keeps its lock however long its calls take, and a dead holder's lock is gone within
``lock_lease`` seconds. Across a failover the watchdog's renewal is retried like every call
(see :mod:`.connect`); a lease it cannot renew before it runs out, or that another holder took,
is given up (``lost``), and the store's generation compare-and-set then keeps the late write of the
holder that lost it from replacing newer tokens.

With replicas (Sentinel, or a Cluster with replicas) a lock must survive a failover, or two holders
refresh the same token set. So a lock counts only once the replicas confirm it (``WAIT``, as for a
durable write; otherwise it is let go and taken again); one released on a master just failed over
from is released on the new master too (:meth:`RedisLock.failed_over`); and a lease under which a
token set was written that Redis has not confirmed is kept until the write-back lands.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import redis
from redis.lock import Lock

from ..errors import LockTimeout, StoreUnavailable
from ..stores import PROCESS_LOCKS

if TYPE_CHECKING:  # pragma: no cover
    from .store import RedisStore

log = logging.getLogger(__name__)

#: seconds between two polls of a lock another process holds
POLL = 0.005
#: seconds a waiter polls one master before asking the Sentinels again which master to poll
MASTER_CHECK = 0.5


class OwnLock(Lock):
    """redis-py's lock that also takes a lock already holding our token.

    redis-py retries a command whose connection failed (a failover): when the first ``SET NX`` took
    the lock but its answer was lost, the retry finds the key taken - by us. redis-py's own
    ``do_acquire`` would then wait out our own lease; this one sees its token and holds the lock.
    """

    def do_acquire(self, token: bytes) -> bool:
        return super().do_acquire(token) or self.redis.get(self.name) == token


@dataclass(eq=False)
class Lease:
    """One acquisition: the record's key, redis-py's lock, when we took it and last renewed it, whether we lost it."""

    key: str
    lock: Lock
    since: float
    renewed: float
    lost: bool = False

    @property
    def name(self) -> str:
        return self.lock.name


class RedisLock:
    """The per-key locks of one :class:`~pyramid_tokens.redis.RedisStore`, with their watchdog."""

    def __init__(self, store: "RedisStore") -> None:
        self.store = store
        self._local = threading.local()
        self._guard = threading.Lock()
        self._leases: dict[int, Lease] = {}
        #: leases kept after their holder was done, until the token set written under them is in Redis
        self._deferred: dict[str, Lease] = {}
        #: ``(when, lock name, token)`` of the locks released lately (Sentinel; see failed_over)
        self._released: deque[tuple[float, str, bytes | str]] = deque(maxlen=1024)
        self._watchdog: threading.Thread | None = None
        self._pid = os.getpid()

    def name(self, key: str) -> str:
        """The Redis key of ``key``'s lock (in the hash slot of ``key``'s record)."""
        return self.store.name("lock:", key)

    @contextmanager
    def hold(self, key: str, timeout: float) -> Iterator[Lease | None]:
        """Hold ``key``'s lock; re-entrant within a thread; ``LockTimeout`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with PROCESS_LOCKS.hold(f"redis:{id(self)}:{key}", timeout):
            held: set[str] = self._local.__dict__.setdefault("keys", set())
            if key in held:
                yield None
                return
            lease = self.acquire(key, deadline, timeout)
            held.add(key)
            try:
                yield lease
            finally:
                held.discard(key)
                self.release(lease)

    def acquire(self, key: str, deadline: float, timeout: float) -> Lease:
        with self._guard:
            kept = self._deferred.pop(key, None)
        if kept is not None and not kept.lost:
            return kept  # still ours: this process's token set is not in Redis yet (see release)
        # thread_local=False: the watchdog thread renews what a request thread took
        lock = OwnLock(self.store.client, self.name(key), timeout=self.store.lock_lease, sleep=POLL,
                       thread_local=False)
        while True:  # in slices, asking each time which master to poll: a failover moves the lock
            self.store.fresh_master()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeout(f"waited {timeout:g} s for another process renewing the same token")
            if self.store.call("lock", lock.acquire, blocking=True, blocking_timeout=min(remaining, MASTER_CHECK)):
                if self.confirm(lock):
                    break
                self.let_go(lock)
        now = time.monotonic()
        lease = Lease(key, lock, now, now)
        self._watch(lease)
        return lease

    def confirm(self, lock: Lock) -> bool:
        """True when the lock just taken is ours and on as many replicas as a durable write wants.

        A lock only the master holds is lost when a replica is promoted: its holder would go on
        refreshing while a second holder, on the new master, does the same with the same refresh
        token. Renewing the lease (a write on the same connection) and ``WAIT`` for it make sure the
        replicas hold the lock before anything runs under it.
        """
        token, lease_ms = lock.local.token, int(self.store.lock_lease * 1000)
        try:
            wanted = self.store.replicas_wanted(lock.name)
            if not wanted and self.store.url.topology != "sentinel":
                return True  # no replica to lose it to
            [ours], confirmed = self.store.durably("lock", lock.name, lambda pipe: lock.lua_reacquire(
                keys=[lock.name], args=[token, lease_ms], client=pipe), wanted=wanted)
        except StoreUnavailable as exc:
            log.warning("token lock: could not confirm a lock just taken (%s); taking it again", exc)
            return False
        if not confirmed:
            log.warning("token lock: no replica of Redis %s confirmed the lock within %g s (a failover under "
                        "way?); taking it again", self.store.where, self.store.wait_timeout())
        return bool(ours) and confirmed

    def let_go(self, lock: Lock) -> None:
        """Release a lock that was never used (not confirmed); never raises."""
        token, lock.local.token = lock.local.token, None
        try:
            self.unlock(lock, token)
        except (redis.exceptions.LockError, StoreUnavailable):
            pass  # not ours any more, or Redis is gone: it expires within the lease

    def unlock(self, lock: Lock, token: bytes | str) -> None:
        """Compare-and-delete on the master the Sentinels name (remembered for :meth:`failed_over`)."""
        if self.store.url.topology == "sentinel":
            with self._guard:
                self._released.append((time.monotonic(), lock.name, token))
        self.store.fresh_master()
        self.store.call("unlock", lock.do_release, token)

    def failed_over(self) -> None:
        """The Sentinels named a new master: release there the locks released lately on the old one.

        A lock is on the replica too (see :meth:`confirm`), and sometimes only there: taken just before
        a ``WAIT`` that failed, or released on the old master after the replica was promoted. Left
        there, it would hold everyone off until its lease ran out.
        """
        cutoff = time.monotonic() - self.store.lock_lease
        with self._guard:
            released = [(name, token) for when, name, token in self._released if when >= cutoff]
            self._released.clear()
        for name, token in released:
            try:
                self.store.call("unlock", OwnLock.lua_release, keys=[name], args=[token], client=self.store.client)
            except StoreUnavailable:
                pass  # it expires within the lease

    def release(self, lease: Lease) -> None:
        """Compare-and-delete; never raises (the lease expires by itself when Redis is gone).

        A token set written under the lease that Redis has not confirmed yet (kept in this process,
        see :class:`~pyramid_tokens.redis.store.Pending`) keeps the lease: the watchdog renews it
        until the store's write-back lands (:meth:`written`), so no other process reads the token set
        it replaces and sends a used refresh token. This process's callers meanwhile read the kept set.
        """
        if lease.lost:
            return
        if self.store.pending.get(lease.key) is not None:
            with self._guard:
                deferred = id(lease) in self._leases
                if deferred:
                    self._deferred[lease.key] = lease
            if deferred:
                if self.store.pending.get(lease.key) is None:  # written back meanwhile
                    self.written(lease.key)
                return
        with self._guard:
            self._leases.pop(id(lease), None)
        held_for = time.monotonic() - lease.since
        token, lease.lock.local.token = lease.lock.local.token, None
        try:
            self.unlock(lease.lock, token)
        except redis.exceptions.LockNotOwnedError:
            log.warning("token lock: the lease ran out %.1f s after it was taken and another process may "
                        "have taken the lock meanwhile; left it alone", held_for)
        except StoreUnavailable as exc:
            log.warning("token lock: could not release (%s); it expires within %g s", exc, self.store.lock_lease)

    def written(self, key: str) -> None:
        """The store's write-back put ``key``'s token set in Redis: release a lease kept for it."""
        with self._guard:
            lease = self._deferred.pop(key, None)
        if lease is not None:
            self.release(lease)

    # -- the watchdog ----------------------------------------------------------------------------------
    def _watch(self, lease: Lease) -> None:
        with self._guard:
            if self._pid != os.getpid():  # forked: the parent's leases and thread are not ours
                self._pid, self._leases, self._deferred, self._watchdog = os.getpid(), {}, {}, None
            self._leases[id(lease)] = lease
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._run, name="pyramid_tokens-lock-watchdog",
                                                  daemon=True)
                self._watchdog.start()

    def _run(self) -> None:
        """Renew every held lease each third of the lease; end when nothing is held."""
        while True:
            time.sleep(self.store.lock_lease / 3)
            with self._guard:
                leases = list(self._leases.values())
                if not leases:
                    self._watchdog = None
                    return
            for lease in leases:
                if self._deferred.get(lease.key) is lease and self.store.pending.get(lease.key) is None:
                    self.written(lease.key)  # its kept token set ended otherwise (a logout deleted it)
                else:
                    self.renew(lease)

    def renew(self, lease: Lease) -> bool:
        """Reset ``lease`` to a full lease; False (given up, and logged) when it is no longer ours."""
        try:
            self.store.fresh_master()  # renew where the lock is now: on the master the Sentinels name
            self.store.call("renew lock", lease.lock.reacquire)
            lease.renewed = time.monotonic()
            return True
        except redis.exceptions.LockNotOwnedError:
            why = "another holder took it (the holder was paused for longer than the lease?)"
        except StoreUnavailable as exc:
            if time.monotonic() - lease.renewed < self.store.lock_lease:
                log.warning("token lock: could not renew the lease yet (%s); trying again", exc)
                return False
            why = "Redis did not answer for a whole lease"
        with self._guard:
            if self._leases.pop(id(lease), None) is None:
                return False  # released meanwhile
        lease.lost = True
        log.warning("token lock: lease given up %.1f s after it was taken: %s", time.monotonic() - lease.since, why)
        return False
