"""Redis for many processes on many hosts: token store, cross-process lock, JSON-only Beaker sessions.

* :class:`RedisStore` - ``tokens.store = redis://...`` (user token sets, keyed by the per-login
  handle the session carries, with rotation records beside them) and ``tokens.cache = redis://...``
  (client-credentials tokens shared by every process).
* :class:`RedisLock` - the store's per-key lock: single-flight renewal across processes and hosts.
* :class:`JsonRedisNamespaceManager` - ``session.type = redis_json``: Beaker sessions in Redis that
  never unpickle what they read (Beaker's own ``ext:redis`` pickles every value).

URLs for one server, Sentinel and Cluster: :mod:`.connect`. Needs redis-py (``pip install pyramid_tokens[redis]``).
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["JsonRedisNamespaceManager", "RedisLock", "RedisStore"]

_HOME = {"JsonRedisNamespaceManager": ".sessions", "RedisLock": ".lock", "RedisStore": ".store"}


def __getattr__(name: str) -> Any:
    # Imported on first use, so that Beaker's entry-point scan can load ``.sessions`` (which reports a
    # missing redis-py the way Beaker expects) without this package importing redis-py first.
    if name in _HOME:
        return getattr(import_module(_HOME[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
