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
"""
from __future__ import annotations

import logging
import os
import threading
import time
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
#: seconds a process waits before taking a lock on a master it has just seen promoted: a token set
#: another process rotated on the old master in the failover's last moment (never replicated) is
#: being written back meanwhile (see :class:`~pyramid_tokens.redis.store.Pending`), and must be
#: read before anyone sends the refresh token it replaced
SWITCH_GRACE = 2.5
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
    """One acquisition: redis-py's lock, when we took it and last renewed it, whether we lost it."""

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
        # thread_local=False: the watchdog thread renews what a request thread took
        lock = OwnLock(self.store.client, self.name(key), timeout=self.store.lock_lease, sleep=POLL,
                    thread_local=False)
        while True:  # in slices, asking each time which master to poll: a failover moves the lock
            self.store.fresh_master()
            grace = self.store.switched + SWITCH_GRACE - time.monotonic()
            if grace > 0:
                time.sleep(min(grace, max(0.0, deadline - time.monotonic())))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeout(f"waited {timeout:g} s for another process renewing the same token")
            if self.store.call("lock", lock.acquire, blocking=True, blocking_timeout=min(remaining, MASTER_CHECK)):
                break
        now = time.monotonic()
        lease = Lease(lock, now, now)
        self._watch(lease)
        return lease

    def release(self, lease: Lease) -> None:
        """Compare-and-delete; never raises (the lease expires by itself when Redis is gone)."""
        with self._guard:
            self._leases.pop(id(lease), None)
        held_for = time.monotonic() - lease.since
        try:
            # on the master the Sentinels name now: a lock replicated to a replica just promoted would
            # otherwise stay there, holding everyone off for a whole lease
            self.store.fresh_master()
            self.store.call("unlock", lease.lock.release)
        except redis.exceptions.LockNotOwnedError:
            log.warning("token lock: the lease ran out %.1f s after it was taken and another process may "
                        "have taken the lock meanwhile; left it alone", held_for)
        except StoreUnavailable as exc:
            log.warning("token lock: could not release (%s); it expires within %g s", exc, self.store.lock_lease)

    # -- the watchdog ----------------------------------------------------------------------------------
    def _watch(self, lease: Lease) -> None:
        with self._guard:
            if self._pid != os.getpid():  # forked: the parent's leases and thread are not ours
                self._pid, self._leases, self._watchdog = os.getpid(), {}, None
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
                self.renew(lease)

    def renew(self, lease: Lease) -> bool:
        """Reset ``lease`` to a full lease; False (given up, and logged) when it is no longer ours."""
        try:
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
