"""Ended logins: a deny list over a token store, so no copy of an ended login's cookie is trusted again.

A login is the token record a session's *handle* names. Ending one at logout (OpenID Connect
RP-Initiated Logout 1.0 §2) deletes that record; with cookie sessions the record lives in the
browser's cookie, which the server cannot delete, so the handle is also recorded here as ended
until the session would have expired anyway. Back-Channel Logout 1.0 §2.7 ends logins by the
provider's ``sid`` or ``sub``: :meth:`Logins.end_sessions` records a cut-off per ``(iss, sid)`` /
``(iss, sub)``, and every login of that session or user that began before it is ended. The token
record carries ``iss``, ``sid`` and ``login_at`` for it.

Server-side records are found through an *index* in the token store (:func:`index_keys`: one set
of handles per ``(iss, sid)`` and per ``(iss, sub)``, written at login, see
:meth:`~pyramid_tokens.stores.TokenStore.index_add`), so a logout token ends them in every process
that shares the store. A logout token's ``jti`` is accepted once (§2.6 step 10 is the provider's
promise; the replay cache is ours): :meth:`Logins.first_use`, an add-if-absent in the same store.
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


def login_facts(claims: Any, now: float) -> dict[str, Any]:
    """What a login's record keeps for back-channel logout: the ID token's ``iss`` and ``sid``, and when."""
    facts: dict[str, Any] = {"iss": claims.get("iss"), "login_at": now}
    if isinstance(claims.get("sid"), str):
        facts["sid"] = claims["sid"]
    return facts


def index_keys(record: dict[str, Any]) -> list[str]:
    """The index sets a login's record belongs to: ``(iss, sid)`` and ``(iss, sub)``, those it carries."""
    iss = record.get("iss")
    if not isinstance(iss, str):
        return []
    return [_index_key(kind, iss, value) for kind in ("sid", "sub")
            if isinstance(value := record.get(kind), str) and value]


def _index_key(kind: str, iss: str, value: str) -> str:
    return f"logins-by-{kind}:" + hashlib.sha256(f"{iss}\x00{value}".encode()).hexdigest()


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

    def first_use(self, iss: str, jti: str, ttl: float) -> bool:
        """True the first time ``(iss, jti)`` is seen within ``ttl`` seconds, False for a replay (§2.6)."""
        return self.store.add(_key("jti", iss, jti), {"at": self.clock()}, max(ttl, 1.0))

    def handles(self, store: TokenStore, iss: str, sub: str | None = None, sid: str | None = None) -> list[str]:
        """The handles indexed in ``store`` under ``(iss, sid)``, or without ``sid`` under ``(iss, sub)``."""
        kind, value = ("sid", sid) if sid else ("sub", sub)
        return store.index_members(_index_key(kind, iss, value)) if value else []

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
