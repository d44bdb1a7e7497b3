"""Which store holds what, for given settings: user token records, cached client tokens, ended logins.

* ``tokens.store = redis://...``: user tokens in Redis, whatever the session type.
* ``tokens.store = session`` (the default): beside the session, in a store of its own kind -
  memory, Beaker's container of the session's type (file, dbm, ext:*), Redis for Redis sessions -
  or, with ``session.type = cookie``, inside the cookie itself (``None`` here).
* ``tokens.cache``: cached client-credentials tokens, memory or Redis.
"""
from __future__ import annotations

from .beakerstores import BeakerStore
from .clock import Clock
from .errors import ConfigurationError
from .options import Options
from .stores import MemoryStore, TokenStore


def user_store_for(options: Options, clock: Clock) -> TokenStore | None:
    """The server-side store for user tokens; ``None`` means "inside the (cookie-backed) session itself"."""
    if options.store != "session":
        return redis_store(options.store, "tokens.store")
    session = options.session
    if session.in_cookie:
        return None
    if session.type == "memory":
        return MemoryStore(clock)
    if session.type in ("redis_json", "ext:redis"):  # beside a Redis session: JSON records and a cross-process lock
        if not session.url:
            raise ConfigurationError("session.url", f"required with session.type = {session.type}")
        return redis_store(session.url, "session.url")
    args = {name: value for name, value in
            (("data_dir", session.data_dir), ("lock_dir", session.lock_dir), ("url", session.url)) if value}
    return BeakerStore(session.type, clock=clock, **args)


def client_cache_for(options: Options, clock: Clock) -> TokenStore:
    """The store of cached client-credentials tokens (``tokens.cache``)."""
    return redis_store(options.cache, "tokens.cache") if options.cache != "memory" else MemoryStore(clock)


def redis_store(url: str, key: str) -> TokenStore:
    try:
        from .redis import RedisStore  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigurationError(key, "Redis stores need pyramid_tokens.redis (install pyramid_tokens[redis])",
                                 url) from None
    return RedisStore(url, setting=key)
