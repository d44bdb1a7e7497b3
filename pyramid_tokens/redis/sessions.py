"""``session.type = redis_json``: Beaker sessions in Redis that never unpickle what they read.

Beaker's own ``ext:redis`` stores every value with ``pickle.dumps`` and reads it back with
``pickle.loads``: whoever can write to that Redis (another app sharing it, a leaked password, an
SSRF into the Redis port) can run code in every worker. This namespace manager keeps the same layout
but stores only bytes, text and JSON, each behind a one-byte tag, and refuses anything else it finds
(an old pickled value is treated as absent, and logged). Beaker's session payload is the bytes of
its ``data_serializer``, so use it with ``session.data_serializer = json`` (the Pyramid include
refuses ``redis_json`` with the pickle serializer).

Registered for Beaker through the ``beaker.backends`` entry point ``redis_json``::

    session.type = redis_json
    session.url = redis://127.0.0.1:6379/0   # or redis+sentinel://..., redis+cluster://... (see .connect)
    session.data_serializer = json
    session.timeout = 3600          # also the Redis expiry of the session (plus Beaker's 2 minutes;
                                    # 14 days without it)
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

from beaker.container import NamespaceManager
from beaker.exceptions import InvalidCacheBackendError

try:
    import redis
    from beaker.ext.redisnm import RedisSynchronizer

    from .connect import parse_url, shared_client
    from .store import describe
except ImportError:  # Beaker skips a backend that raises this from its entry point
    raise InvalidCacheBackendError("session.type = redis_json needs redis-py: pip install pyramid_tokens[redis]")

from ..errors import StoreUnavailable

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "pyramid_tokens:session:"
#: seconds a session lives in Redis without ``session.timeout`` (as long as the user tokens' default)
DEFAULT_TTL = 14 * 24 * 3600
BYTES, TEXT, JSON = b"b", b"s", b"j"


def encode(value: Any) -> bytes:
    """A tagged value: raw bytes, UTF-8 text or JSON; anything else is a ``TypeError``."""
    if isinstance(value, (bytes, bytearray)):
        return BYTES + bytes(value)
    if isinstance(value, str):
        return TEXT + value.encode("utf-8")
    try:
        return JSON + json.dumps(value, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError):
        raise TypeError(f"redis_json stores bytes, text and JSON values only, not {type(value).__name__}") from None


def decode(raw: bytes) -> Any:
    """The value of a tagged value; ``KeyError`` for anything we did not write (a pickle, say)."""
    tag, body = raw[:1], raw[1:]
    if tag == BYTES:
        return body
    if tag == TEXT:
        return body.decode("utf-8")
    if tag == JSON:
        return json.loads(body)
    raise KeyError("not a redis_json value")


class _SessionLock(RedisSynchronizer):
    """Beaker's Redis lock with a bounded wait, a short lease and Redis errors as :class:`StoreUnavailable`.

    Beaker's own waits for ever (in 0.2 s steps) behind a 15-minute lease: one crashed worker holding it
    would hang every later save of that session.
    """

    LOCK_EXPIRATION = 30
    #: the longest a save waits for another request saving the same session
    WAIT = 5.0

    def __init__(self, identifier: str, client: Any, where: str) -> None:
        super().__init__(identifier, client)
        self.where = where

    def _failed(self, what: str, exc: Exception) -> StoreUnavailable:
        return StoreUnavailable(f"session store: {what} at Redis {self.where} failed ({type(exc).__name__})")

    def do_acquire_write_lock(self, wait: bool) -> bool:
        deadline = time.monotonic() + self.WAIT
        while True:
            try:
                if self.client.set(self.identifier, self._get_owner_id(), ex=self.LOCK_EXPIRATION, nx=True):
                    return True
            except redis.RedisError as exc:
                raise self._failed("lock", exc) from None
            if not wait:
                return False
            if time.monotonic() > deadline:
                raise StoreUnavailable(f"session store: another request held the session's lock for over "
                                       f"{self.WAIT:g} s")
            time.sleep(0.05)

    def do_release_write_lock(self) -> None:
        try:
            super().do_release_write_lock()
        except redis.RedisError as exc:
            raise self._failed("unlock", exc) from None


class JsonRedisNamespaceManager(NamespaceManager):
    """Beaker's namespace API over Redis with tagged bytes/text/JSON values; no pickle anywhere."""

    def __init__(self, namespace: str, url: Any = None, timeout: Any = None, prefix: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(namespace)
        if not url:
            raise ValueError("session.type = redis_json needs session.url (redis://host:port/db)")
        self.lock_dir = None  # Redis itself is the lock
        self.timeout = int(timeout) if timeout else DEFAULT_TTL  # never a key that outlives every session
        self.prefix = prefix or DEFAULT_PREFIX
        if isinstance(url, str):
            parsed = parse_url(url, "session.url")
            self.client = shared_client(parsed)
            self.where = describe(self.client) if parsed.topology == "single" else parsed.where()
        else:
            self.client, self.where = url, describe(url)

    def _key(self, key: Any) -> str:
        if isinstance(key, bytes):
            key = key.decode("ascii")
        return f"{self.prefix}{self.namespace}:{key}"

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"session store: {what} at Redis {self.where} failed "
                                   f"({type(exc).__name__})") from None

    def get_creation_lock(self, key: Any) -> RedisSynchronizer:
        return _SessionLock(self._key(key), self.client, self.where)  # lock values are ids, nothing is unpickled

    def __getitem__(self, key: Any) -> Any:
        raw = self._call("read", self.client.get, self._key(key))
        if raw is None:
            raise KeyError(key)
        try:
            return decode(raw)
        except (KeyError, ValueError):
            log.warning("session store: %s holds a value redis_json did not write (a pickle?); ignoring it",
                        self._key(key)[:48])
            raise KeyError(key) from None

    def __contains__(self, key: Any) -> bool:
        return bool(self._call("read", self.client.exists, self._key(key)))

    def has_key(self, key: Any) -> bool:
        return key in self

    def set_value(self, key: Any, value: Any, expiretime: Any = None) -> None:
        expires = int(expiretime) if expiretime else self.timeout
        self._call("write", self.client.set, self._key(key), encode(value), ex=expires or None)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.set_value(key, value)

    def __delitem__(self, key: Any) -> None:
        self._call("delete", self.client.delete, self._key(key))

    def do_remove(self) -> None:
        keys = self.keys()
        if keys:
            self._call("delete", self.client.delete, *keys)

    def keys(self) -> list[bytes]:
        return list(self._call("scan", lambda: list(self.client.scan_iter(match=self._key("*"), count=100))))
