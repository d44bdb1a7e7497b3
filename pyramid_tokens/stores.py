"""Where tokens live: small key/value stores of JSON records with expiry and a per-key lock.

User token sets and cached client tokens both use a :class:`TokenStore`. The lock makes a refresh
single-flight: the caller that takes it renews, the others wait and then re-read the store. For
back-channel logout a store also keeps small index sets (logins by provider session and user) and an
add-if-absent (the logout token replay cache); the generic ones here hold the store's own lock, which
reaches across processes for the file, dbm and ``FileStore`` stores but not for Beaker's ``ext:*``
containers (use Redis there when several processes receive logout tokens).

* :class:`MemoryStore` - one process (threads); workers, notebooks, tests.
* ``BeakerStore`` and ``CookieSessionStore`` (:mod:`pyramid_tokens.beakerstores`) - Beaker-backed.
* :class:`SessionDictStore` - inside one session mapping, for apps without server-side storage.
* ``FileStore`` (:mod:`pyramid_tokens.filestore`) - one JSON file, for notebooks.
* ``RedisStore`` (``pyramid_tokens.redis``) - many processes on many hosts.
"""
from __future__ import annotations

import json
import os
import threading
import time
import weakref
from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Any, Iterator, MutableMapping

from .clock import Clock, system_clock
from .errors import LockTimeout
from .tokens import dumps


class KeyedLocks:
    """One re-entrant lock per key, created on demand and dropped when nobody holds a reference."""

    def __init__(self) -> None:
        self._locks: "weakref.WeakValueDictionary[str, Any]" = weakref.WeakValueDictionary()
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, key: str, timeout: float) -> Iterator[None]:
        with self._guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.RLock()
        if not lock.acquire(timeout=timeout):
            raise LockTimeout(f"waited {timeout:g} s for another request renewing the same token")
        try:
            yield
        finally:
            lock.release()


#: process-wide: every store in a process shares one set of in-process locks per key
PROCESS_LOCKS = KeyedLocks()

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class FileLock:
    """Re-entrant for one thread, exclusive across threads and (``fcntl.flock`` on ``path``) across processes.

    Hand-written: Beaker's ``file_synchronizer`` is not re-entrant and polls without a deadline of its own.
    """

    def __init__(self, path: str, mode: int = 0o600) -> None:
        self.path = path
        self.mode = mode
        self._rlock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    @contextmanager
    def hold(self, timeout: float) -> Iterator[None]:
        deadline = time.monotonic() + timeout
        if not self._rlock.acquire(timeout=timeout):
            raise LockTimeout(f"waited {timeout:g} s for another thread holding the same token lock")
        try:
            if self._depth == 0:
                self._fd = self._flock(deadline, timeout)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    fd, self._fd = self._fd, None
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
        finally:
            self._rlock.release()

    def _flock(self, deadline: float, timeout: float) -> int:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), self.mode)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockTimeout(f"waited {timeout:g} s for another process holding the same "
                                          "token lock") from None
                    time.sleep(0.01)
        except BaseException:
            os.close(fd)
            raise


#: one lock per lock file per process, dropped when nobody holds it
_FILE_LOCKS: "weakref.WeakValueDictionary[str, FileLock]" = weakref.WeakValueDictionary()
_FILE_LOCKS_GUARD = threading.Lock()


def file_lock(path: str, mode: int = 0o600) -> FileLock:
    """The process's :class:`FileLock` on ``path`` (every store using that file shares it)."""
    with _FILE_LOCKS_GUARD:
        lock = _FILE_LOCKS.get(path)
        if lock is None:
            lock = _FILE_LOCKS[path] = FileLock(path, mode)
        return lock


#: logins one index set keeps (the newest); a user with more concurrent logins loses the oldest from it
INDEX_MAX = 256


class TokenStore(ABC):
    """JSON records under string keys, with optional expiry, and an exclusive lock per key."""

    @abstractmethod
    def get(self, key: str) -> dict[str, Any] | None:
        """The record, or ``None`` when absent or expired."""

    @abstractmethod
    def set(self, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        """Store ``value``; it expires after ``ttl`` seconds when given."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Forget the record (no error when absent)."""

    def lock(self, key: str, timeout: float = 30.0) -> Any:
        """A context manager holding the exclusive lock for ``key`` (bounded wait)."""
        return PROCESS_LOCKS.hold(f"{id(self)}:{key}", timeout)

    # -- add-if-absent and the session index (OpenID Connect Back-Channel Logout 1.0 §2.6-2.7) ------------
    def add(self, key: str, value: dict[str, Any], ttl: float | None = None) -> bool:
        """Store ``value`` only when ``key`` holds nothing; False when it did (a replayed ``jti``).

        Atomic as far as :meth:`lock` reaches (RedisStore: one ``SET NX``).
        """
        with self.lock(key):
            if self.get(key) is not None:
                return False
            self.set(key, value, ttl)
            return True

    def index_add(self, key: str, member: str, ttl: float | None = None) -> None:
        """Add ``member`` (a login's handle) to the set under ``key``; the set lives at least ``ttl`` more."""
        with self.lock(key):
            members = [m for m in self.index_members(key) if m != member][-(INDEX_MAX - 1):]
            self.set(key, {"members": [*members, member]}, ttl)

    def index_members(self, key: str) -> list[str]:
        """The members of the set under ``key`` (empty when there is none)."""
        members = (self.get(key) or {}).get("members")
        return [m for m in members if isinstance(m, str)] if isinstance(members, list) else []

    def index_remove(self, key: str, members: list[str], ttl: float | None = None) -> None:
        """Take ``members`` out of the set under ``key`` (logins that ended); the others stay."""
        with self.lock(key):
            left = [m for m in self.index_members(key) if m not in members]
            if left:
                self.set(key, {"members": left}, ttl)
            else:
                self.delete(key)


class MemoryStore(TokenStore):
    """A dict in this process. Thread-safe; expired records are dropped as they are met."""

    def __init__(self, clock: Clock = system_clock) -> None:
        self.clock = clock
        self._data: dict[str, tuple[float | None, dict[str, Any]]] = {}
        self._sets: dict[str, tuple[float | None, list[str]]] = {}
        self._writes = 0

    def get(self, key: str) -> dict[str, Any] | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if expires is not None and self.clock() >= expires:
            self._data.pop(key, None)
            return None
        return value

    def set(self, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        # Records are replaced, never mutated in place: readers on other threads see old or new.
        self._data[key] = (self.clock() + ttl if ttl else None, json.loads(dumps(value)))
        self._writes += 1
        if self._writes % 1000 == 0:
            self.prune()

    def delete(self, key: str) -> None:
        self._data.pop(key, None)

    # index sets apart from the records: ``len()`` and a walk over the records count token records only
    def index_add(self, key: str, member: str, ttl: float | None = None) -> None:
        with PROCESS_LOCKS.hold(f"{id(self)}:index:{key}", 30.0):
            members = [m for m in self.index_members(key) if m != member][-(INDEX_MAX - 1):]
            self._sets[key] = (self.clock() + ttl if ttl else None, [*members, member])

    def index_members(self, key: str) -> list[str]:
        item = self._sets.get(key)
        if item is None or (item[0] is not None and self.clock() >= item[0]):
            return []
        return list(item[1])

    def index_remove(self, key: str, members: list[str], ttl: float | None = None) -> None:
        with PROCESS_LOCKS.hold(f"{id(self)}:index:{key}", 30.0):
            item = self._sets.get(key)
            left = [m for m in self.index_members(key) if m not in members]
            if left and item is not None:
                self._sets[key] = (item[0], left)
            else:
                self._sets.pop(key, None)

    def prune(self) -> None:
        """Drop every expired record."""
        now = self.clock()
        for key, (expires, _) in list(self._data.items()):
            if expires is not None and now >= expires:
                self._data.pop(key, None)
        for key, (expires, _) in list(self._sets.items()):
            if expires is not None and now >= expires:
                self._sets.pop(key, None)

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        """The live records as ``(key, record)`` pairs: a snapshot, for diagnostics and tests."""
        now = self.clock()
        return [(key, value) for key, (expires, value) in list(self._data.items()) if expires is None or now < expires]

    def __len__(self) -> int:
        return len(self._data)


class SessionDictStore(TokenStore):
    """Records inside one (cookie-backed) session mapping; the lock is in-process, keyed like the record."""

    PREFIX = "pyramid_tokens.record."

    def __init__(self, session: MutableMapping[str, Any], clock: Clock = system_clock) -> None:
        self.session = session
        self.clock = clock

    def get(self, key: str) -> dict[str, Any] | None:
        item = self.session.get(self.PREFIX + key)
        if not item or (item.get("expires") is not None and self.clock() >= item["expires"]):
            return None
        return item["value"]

    def set(self, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        self.session[self.PREFIX + key] = {"expires": self.clock() + ttl if ttl else None,
                                           "value": json.loads(dumps(value))}

    def delete(self, key: str) -> None:
        self.session.pop(self.PREFIX + key, None)

    def lock(self, key: str, timeout: float = 30.0) -> Any:
        return PROCESS_LOCKS.hold(f"session:{key}", timeout)

    def index_add(self, key: str, member: str, ttl: float | None = None) -> None:
        """Nothing: a login inside a browser's cookie cannot be found server-side (the deny list ends it)."""

    def index_members(self, key: str) -> list[str]:
        return []

    def index_remove(self, key: str, members: list[str], ttl: float | None = None) -> None:
        pass


class ReadOnceView(TokenStore):
    """One request's view of a store: each record is read from it once, and the read is shared.

    The security policy (is the login still there?) and the token read of the same request then
    cost one store read together. Reads under :meth:`lock` always go to the store: a renewal, or
    anything else that writes, re-reads the record it is about to replace.
    """

    def __init__(self, store: TokenStore) -> None:
        self.store = store
        self._seen: dict[str, dict[str, Any] | None] = {}
        self._locked = 0

    def get(self, key: str) -> dict[str, Any] | None:
        if not self._locked:
            try:
                return self._seen[key]
            except KeyError:
                pass
        value = self._seen[key] = self.store.get(key)
        return value

    def set(self, key: str, value: dict[str, Any], ttl: float | None = None) -> Any:
        written = self.store.set(key, value, ttl)
        if written is False:  # a store may refuse a stale write (RedisStore: a newer generation is there)
            self._seen.pop(key, None)
        else:
            self._seen[key] = json.loads(dumps(value))  # what the store now holds, not the caller's dict
        return written

    def delete(self, key: str) -> None:
        self.store.delete(key)
        self._seen[key] = None

    def add(self, key: str, value: dict[str, Any], ttl: float | None = None) -> bool:
        self._seen.pop(key, None)
        return self.store.add(key, value, ttl)

    def index_add(self, key: str, member: str, ttl: float | None = None) -> None:
        self.store.index_add(key, member, ttl)

    def index_members(self, key: str) -> list[str]:
        return self.store.index_members(key)

    def index_remove(self, key: str, members: list[str], ttl: float | None = None) -> None:
        self.store.index_remove(key, members, ttl)

    @contextmanager
    def lock(self, key: str, timeout: float = 30.0) -> Iterator[None]:
        with self.store.lock(key, timeout):
            self._locked += 1
            try:
                yield
            finally:
                self._locked -= 1
