"""``RedisLock``: one lock per key across processes and hosts, for single-flight token renewal.

* Acquire: ``SET key token NX PX lease`` with a random token per acquisition (in a script that also
  accepts the key when it already holds our token, so a retried SET whose answer was lost cannot
  lock us out). Threads of one process first queue on an in-process lock for the same key, so at
  most one thread per process polls Redis. The wait is bounded: past ``timeout`` it raises
  :class:`~pyramid_tokens.stores.LockTimeout`. Polling backs off from 2 ms to 25 ms, with jitter.
* Release: compare-and-delete in a Lua script; a lock that is no longer ours (its lease ran out and
  another process took it) is left alone. Releasing never raises: a failed release is logged and the
  lease expires by itself.
* Lease: short (``lock_lease``, default 10 s) and renewed every third of it by a watchdog thread
  while the holder lives. Why a watchdog rather than a lease sized from the token request's timeout:
  what runs under the lock is not one bounded request but up to three (discovery, token, JWKS for the
  refreshed ID token), each with its own timeout, plus retries a provider client may add; a lease
  sized for the worst case would be a minute or more, and that is how long every user of a process
  that died holding it would wait. With a watchdog a live holder never loses its lock however long
  its calls take (they are bounded by the transport's timeouts anyway), and a dead holder's lock is
  gone within ``lock_lease`` seconds. If the holder is frozen (paused longer than the lease) it
  can lose the lock; the store's generation compare-and-set then keeps its late write from
  replacing newer tokens.
"""
from __future__ import annotations

import logging
import os
import random
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from ..errors import LockTimeout, StoreUnavailable
from ..stores import PROCESS_LOCKS

if TYPE_CHECKING:  # pragma: no cover
    from .store import RedisStore

log = logging.getLogger(__name__)

#: seconds a lock outlives a holder that stopped renewing it
DEFAULT_LEASE = 10.0
FIRST_POLL = 0.002
MAX_POLL = 0.025

#: KEYS[1] lock; ARGV: token, lease ms. 1 = ours now.
ACQUIRE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""
#: KEYS[1] lock; ARGV: token, lease ms. 1 = renewed, 0 = no longer ours.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
#: KEYS[1] lock; ARGV: token. 1 = released, 0 = no longer ours (left alone).
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(eq=False)
class Lease:
    """One acquisition: the lock's Redis key, our random token, when we took it, whether we lost it."""

    name: str
    token: str
    since: float
    lost: bool = False


class RedisLock:
    """The per-key locks of one :class:`~pyramid_tokens.redis.RedisStore`, with their watchdog."""

    def __init__(self, store: "RedisStore") -> None:
        self.store = store
        client = store.client
        self._acquire = client.register_script(ACQUIRE)
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)
        self._local = threading.local()
        self._guard = threading.Lock()
        self._leases: dict[int, Lease] = {}
        self._watchdog: threading.Thread | None = None
        self._pid = os.getpid()

    @property
    def lease_ms(self) -> int:
        return max(1, int(self.store.lock_lease * 1000))

    def name(self, key: str) -> str:
        """The Redis key of ``key``'s lock."""
        return f"{self.store.prefix}lock:{key}"

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
        name, token = self.name(key), secrets.token_hex(16)
        delay = FIRST_POLL
        while not self.store.call("lock", self._acquire, keys=[name], args=[token, self.lease_ms]):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeout(f"waited {timeout:g} s for another process renewing the same token")
            time.sleep(min(remaining, delay * random.uniform(0.5, 1.5)))
            delay = min(delay * 2, MAX_POLL)
        lease = Lease(name, token, time.monotonic())
        self._watch(lease)
        return lease

    def release(self, lease: Lease) -> None:
        """Compare-and-delete; never raises (the lease expires by itself when Redis is gone)."""
        with self._guard:
            self._leases.pop(id(lease), None)
        held_for = time.monotonic() - lease.since
        try:
            released = self.store.call("unlock", self._release, keys=[lease.name], args=[lease.token])
        except StoreUnavailable as exc:
            log.warning("token lock: could not release (%s); it expires within %g s", exc, self.store.lock_lease)
            return
        if not released:
            log.warning("token lock: the lease ran out %.1f s after it was taken and another process may "
                        "have taken the lock meanwhile; left it alone", held_for)

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
        """Extend ``lease`` by a full lease; False (and logged) when it is no longer ours."""
        try:
            renewed = self.store.call("renew lock", self._renew, keys=[lease.name], args=[lease.token, self.lease_ms])
        except StoreUnavailable as exc:
            log.warning("token lock: could not renew the lease (%s)", exc)
            return False
        if not renewed:
            with self._guard:
                if self._leases.pop(id(lease), None) is None:
                    return False  # released meanwhile
            lease.lost = True
            log.warning("token lock: lease lost %.1f s after it was taken (the holder was paused for longer "
                        "than %g s?)", time.monotonic() - lease.since, self.store.lock_lease)
        return bool(renewed)
