"""Where tokens live: small key/value stores of JSON records with expiry and a per-key lock.

User token sets and cached client tokens both use a :class:`TokenStore`. The lock makes a refresh
single-flight: the caller that takes it renews, the others wait and then re-read the store.

* :class:`MemoryStore` - one process (threads); workers, notebooks, tests.
* :class:`BeakerStore` - a Beaker container of the session's own type (``file``, ``dbm``, ``ext:*``),
  kept apart from the session dict so that Beaker's write-back of a request's session snapshot
  can never put an older, already rotated refresh token over a newer one (pyramid_beaker#26).
  With ``file``/``dbm`` the lock is a file lock, so processes on one host share it.
* :class:`SessionDictStore` - inside a cookie-backed session, for apps without server-side storage.
* ``RedisStore`` (``pyramid_tokens.redis``) - many processes on many hosts.
"""
from __future__ import annotations

import json
import threading
import time
import weakref
from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Any, Iterator, MutableMapping

from .clock import Clock, system_clock
from .errors import ConfigurationError, LockTimeout
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


class MemoryStore(TokenStore):
    """A dict in this process. Thread-safe; expired records are dropped as they are met."""

    def __init__(self, clock: Clock = system_clock) -> None:
        self.clock = clock
        self._data: dict[str, tuple[float | None, dict[str, Any]]] = {}
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

    def prune(self) -> None:
        """Drop every expired record."""
        now = self.clock()
        for key, (expires, _) in list(self._data.items()):
            if expires is not None and now >= expires:
                self._data.pop(key, None)

    def __len__(self) -> int:
        return len(self._data)


class BeakerStore(TokenStore):
    """Records in Beaker containers of the session's type, one namespace per key, as JSON text."""

    def __init__(self, type: str = "file", *, clock: Clock = system_clock, **namespace_args: Any) -> None:
        from beaker.cache import clsmap

        try:
            self._namespace_class = clsmap[type]
        except KeyError:
            raise ConfigurationError("session.type", "Beaker has no container type of that name", type) from None
        self.type = type
        self.clock = clock
        self._args = namespace_args

    def _namespace(self, key: str) -> Any:
        return self._namespace_class(f"pyramid_tokens:{key}", **self._args)

    def get(self, key: str) -> dict[str, Any] | None:
        ns = self._namespace(key)
        ns.acquire_read_lock()
        try:
            raw = ns["record"] if "record" in ns else None
        finally:
            ns.release_read_lock()
        if not isinstance(raw, str):
            return None
        item = json.loads(raw)
        if item.get("expires") is not None and self.clock() >= item["expires"]:
            return None
        return item["value"]

    def set(self, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        ns = self._namespace(key)
        ns.acquire_write_lock()
        try:
            ns["record"] = dumps({"expires": self.clock() + ttl if ttl else None, "value": value})
        finally:
            ns.release_write_lock()

    def delete(self, key: str) -> None:
        ns = self._namespace(key)
        ns.acquire_write_lock()
        try:
            if "record" in ns:
                del ns["record"]
        finally:
            ns.release_write_lock()

    @contextmanager
    def lock(self, key: str, timeout: float = 30.0) -> Iterator[None]:
        with PROCESS_LOCKS.hold(f"beaker:{key}", timeout):
            lock_dir = self._args.get("lock_dir") or (
                self._args["data_dir"] + "/container_file_lock" if self._args.get("data_dir") else None)
            if self.type not in ("file", "dbm") or not lock_dir:
                yield
                return
            from beaker.synchronization import file_synchronizer

            sync = file_synchronizer(identifier=f"pyramid_tokens-lock:{key}", lock_dir=lock_dir)
            deadline = time.monotonic() + timeout
            while not sync.acquire_write_lock(wait=False):
                if time.monotonic() > deadline:
                    raise LockTimeout(f"waited {timeout:g} s for another process renewing the same token")
                time.sleep(0.01)
            try:
                yield
            finally:
                sync.release_write_lock()


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
