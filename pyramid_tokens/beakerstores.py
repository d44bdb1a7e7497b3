"""Token stores backed by Beaker: its containers, or the cookie-backed session itself.

* :class:`BeakerStore` - a Beaker container of the session's own type (``file``, ``dbm``, ``ext:*``),
  kept apart from the session dict so that Beaker's write-back of a request's session snapshot
  can never put an older, already rotated refresh token over a newer one (pyramid_beaker#26).
  With ``file``/``dbm`` the lock is a :func:`~pyramid_tokens.stores.file_lock`, so processes on one host share it.
* :class:`CookieSessionStore` - inside a cookie-backed session (``session.type = cookie``), refusing
  a token set the browser would drop (RFC 6265 §6.1).
* :func:`delete_stored_session` - what Beaker's ``invalidate()`` leaves behind: the old session's data.

These use Beaker's container and session classes below their documented surface (``namespace``,
``_encrypt_data``): Beaker has no public call for either job.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from typing import Any

from .clock import Clock, system_clock
from .errors import ConfigurationError, TokenError
from .stores import PROCESS_LOCKS, SessionDictStore, TokenStore, file_lock
from .tokens import dumps

#: Beaker containers a :class:`BeakerStore` keeps made (one per logged-in user read lately); the oldest go first
NAMESPACES_KEPT = 1024
#: the most of one cookie (name and value) that browsers keep (RFC 6265 §6.1: at least 4096 bytes)
COOKIE_LIMIT = 4096

log = logging.getLogger(__name__)


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
        self._namespaces: dict[str, Any] = {}
        self._guard = threading.Lock()
        lock_dir = namespace_args.get("lock_dir") or (
            namespace_args["data_dir"] + "/container_file_lock" if namespace_args.get("data_dir") else None)
        #: cross-process locks (file and dbm containers live on this host's disk)
        self._lock_dir = lock_dir if type in ("file", "dbm") else None
        if self._lock_dir:
            os.makedirs(self._lock_dir, mode=0o700, exist_ok=True)

    def _namespace(self, key: str) -> Any:
        """The key's Beaker container, made once and kept (at most :data:`NAMESPACES_KEPT`).

        Making one hashes its file name, checks its directories and registers its lock, about half the
        cost of a read; Beaker's own caches share one container between threads the same way (its open
        count and read/write lock serialise them), and each read still loads the file afresh.
        """
        ns = self._namespaces.get(key)
        if ns is None:
            ns = self._namespace_class(f"pyramid_tokens:{key}", **self._args)
            with self._guard:
                if len(self._namespaces) >= NAMESPACES_KEPT:
                    self._namespaces.pop(next(iter(self._namespaces)), None)
                ns = self._namespaces.setdefault(key, ns)
        return ns

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

    def lock(self, key: str, timeout: float = 30.0) -> Any:
        if self._lock_dir is None:
            return PROCESS_LOCKS.hold(f"beaker:{key}", timeout)
        name = hashlib.sha256(key.encode()).hexdigest()[:40]  # keys may hold any character; file names not
        return file_lock(os.path.join(self._lock_dir, f"pyramid_tokens-{name}.lock")).hold(timeout)


class CookieSessionStore(SessionDictStore):
    """Tokens inside a cookie-backed Beaker session: refuses to write a token set the browser would drop.

    Browsers silently drop a cookie over :data:`COOKIE_LIMIT` (and Beaker refuses a little above it
    with an obscure 500), so the user would seem logged in and lose the session on the next request.
    """

    def set(self, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        previous = self.session.get(self.PREFIX + key)
        super().set(key, value, ttl)
        size = beaker_cookie_size(self.session)
        if size is not None and size > COOKIE_LIMIT:
            if previous is None:
                self.session.pop(self.PREFIX + key, None)
            else:
                self.session[self.PREFIX + key] = previous
            message = (f"the user's tokens would make the session cookie about {size} bytes, over the "
                       f"{COOKIE_LIMIT} bytes browsers keep; keep tokens server-side (session.type = file or "
                       "redis_json, or tokens.store = redis://...) instead of session.type = cookie")
            log.error("pyramid_tokens: %s", message)
            raise TokenError(message, error="session_too_large")


def _inner(session: Any) -> Any:
    """Beaker's session object behind pyramid_beaker's lazy proxy (the proxy itself if it is none)."""
    return session._session() if callable(getattr(type(session), "_session", None)) else session


def beaker_cookie_size(session: Any) -> int | None:
    """Name and signed value of the cookie Beaker would send for ``session`` now; ``None`` if not Beaker's."""
    inner = _inner(session)
    encode, cookie = getattr(inner, "_encrypt_data", None), getattr(inner, "cookie", None)
    if encode is None or cookie is None or not hasattr(cookie, "value_encode"):
        return None
    now = time.time()  # with the keys Beaker adds when it saves
    value = encode({"_id": "0" * 32, "_creation_time": now, **inner, "_accessed_time": now})
    value = value.decode("ascii") if isinstance(value, bytes) else value
    return len(inner.key) + len(cookie.value_encode(value)[1])


def delete_stored_session(session: Any) -> None:
    """Delete the stored data of a server-side Beaker session, so no copy of its cookie finds it again.

    Beaker's ``invalidate()`` only starts a new id and leaves the old data in storage. Cookie
    sessions have no stored data (their logins are ended in :mod:`pyramid_tokens.logins`).
    """
    namespace = getattr(_inner(session), "namespace", None)
    if namespace is None:
        return
    namespace.acquire_write_lock()
    try:
        if "session" in namespace:
            del namespace["session"]
    finally:
        namespace.release_write_lock()
