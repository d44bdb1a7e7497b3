"""Ended logins: a deny list over a token store, so no copy of an ended login's cookie is trusted again.

A login is the token record a session's *handle* names. Ending one at logout (OpenID Connect
RP-Initiated Logout 1.0 §2) deletes that record; with cookie sessions the record lives in the
browser's cookie, which the server cannot delete, so the handle is also recorded here as ended
until the session would have expired anyway. Back-Channel Logout 1.0 §2.7 ends logins by the
provider's ``sid`` or ``sub``: :meth:`Logins.end_sessions` records a cut-off per ``(iss, sid)`` /
``(iss, sub)``, and every login of that session or user that began before it is ended. The token
record carries ``iss``, ``sid`` and ``login_at`` for it.
"""
from __future__ import annotations

import hashlib
from typing import Any

from .clock import Clock, system_clock
from .stores import TokenStore

#: how long an entry is kept when no session lifetime is known (Beaker's sessions have none by default)
DEFAULT_TTL = 14 * 24 * 3600.0


def _key(kind: str, *parts: str) -> str:
    # provider-sent values of any length and character become fixed-size keys
    return f"ended-{kind}:" + hashlib.sha256("\x00".join(parts).encode()).hexdigest()


class Logins:
    """``end(handle)`` / ``is_ended(handle, record)`` and, for back-channel logout, ``end_sessions``."""

    def __init__(self, store: TokenStore, *, clock: Clock = system_clock, ttl: float | None = None) -> None:
        self.store = store
        self.clock = clock
        #: entries outlive every session they can refuse: the sessions' own lifetime
        self.ttl = ttl or DEFAULT_TTL

    def end(self, handle: str) -> None:
        """Record the login under ``handle`` as ended (its record may still live in a cookie)."""
        self.store.set(_key("handle", handle), {"at": self.clock()}, self.ttl)

    def end_sessions(self, iss: str, sub: str | None = None, sid: str | None = None) -> None:
        """Every login of ``(iss, sid)``, or of ``(iss, sub)``, that began until now is ended."""
        now = {"at": self.clock()}
        if sid:
            self.store.set(_key("sid", iss, sid), now, self.ttl)
        elif sub:
            self.store.set(_key("sub", iss, sub), now, self.ttl)

    def is_ended(self, handle: str, record: dict[str, Any] | None = None) -> bool:
        """Whether the login is over: its handle ended, or (given its record) its provider session or user."""
        if self.store.get(_key("handle", handle)) is not None:
            return True
        iss, login_at = (record or {}).get("iss"), (record or {}).get("login_at")
        if not isinstance(iss, str) or not isinstance(login_at, (int, float)):
            return False
        for kind, value in (("sid", record.get("sid")), ("sub", record.get("sub"))):  # type: ignore[union-attr]
            if isinstance(value, str):
                entry = self.store.get(_key(kind, iss, value))
                if entry is not None and login_at <= entry.get("at", 0):
                    return True
        return False
