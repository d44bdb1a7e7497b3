"""Events: what happened to a login or a token, and for whom — never a token value or a secret.

Each event is a small frozen dataclass. The core sends them through an :class:`EventHub`
(``TokenManager.events``): ``TokenManager.subscribe(UserTokenRefreshFailed, fn)`` outside Pyramid; in a
Pyramid app the hub also forwards every event to ``registry.notify``, so ``config.add_subscriber(fn,
UserTokenRefreshFailed)`` works and ``event.request`` is the current request when there is one.

A subscriber that raises is logged and never changes the outcome of the token flow. Events fire once per
thing that happened: a single-flight refresh fires one :class:`UserTokenRefreshed`, not one per waiting
thread; a valid token read fires nothing. Each event is also one log line (:meth:`Event.log_line`).
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Callable, Mapping, TypeVar

log = logging.getLogger(__name__)

E = TypeVar("E", bound="Event")
#: what a log line shows unquoted: printable ASCII without spaces, quotes or ``=``
_PLAIN = re.compile(r"[!#-&(-<>-~]{1,100}")
Subscriber = Callable[[Any], Any]

#: how a user's login ended (:attr:`UserLoggedOut.how`)
LOGOUT_LOCAL = "local"                # the app's own logout, no provider round trip
LOGOUT_RP_INITIATED = "rp-initiated"  # the app's logout, then the provider's end-session endpoint
LOGOUT_BACKCHANNEL = "back-channel"   # the provider's logout token (OpenID Connect Back-Channel Logout 1.0)
LOGOUT_APPLICATION = "application"    # TokenManager.end_sessions() called by the application


@dataclass(frozen=True)
class Event:
    """Base of every event; ``request`` is the Pyramid request when the event happened inside one."""

    request: Any = field(default=None, compare=False, repr=False, kw_only=True)

    #: the log level of the event's log line
    level = logging.INFO

    def log_line(self) -> str:
        """The event as one log line: its name and fields (never values the event does not carry).

        Strings come from the provider or the browser (a ``sub``, an ``error`` parameter): any that is not
        short printable text without spaces is shown quoted (``repr``, cut to 100 characters), so a value
        cannot forge a second line or a field of its own.
        """
        parts = []
        for item in fields(self):
            if item.name == "request" or item.name == "claims":
                continue
            value = getattr(self, item.name)
            if isinstance(value, datetime):
                value = value.isoformat(timespec="seconds")
            elif isinstance(value, str) and not _PLAIN.fullmatch(value):
                value = repr(value[:100])
            if value is not None:
                parts.append(f"{item.name}={value}")
        return f"{type(self).__name__} " + " ".join(parts)


# -- user logins --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UserLoggedIn(Event):
    """A user completed the OpenID Connect login (or the device flow)."""

    sub: str
    sid: str | None = None
    #: the ID token's (and userinfo's) claims as kept for the session
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class LoginFailed(Event):
    """A login could not be completed; ``check`` names what failed (``state``, ``nonce``, ``signature``...)."""

    check: str
    error: str
    level = logging.WARNING


@dataclass(frozen=True)
class UserLoggedOut(Event):
    """A login ended: ``how`` is ``local``, ``rp-initiated``, ``back-channel`` or ``application``."""

    sub: str | None
    how: str
    sid: str | None = None


# -- user tokens --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UserTokenRefreshed(Event):
    """The user's access token was refreshed at the provider; ``rotated``: a new refresh token came too."""

    sub: str | None
    expires_at: datetime | None
    rotated: bool
    resource: str | None = None


@dataclass(frozen=True)
class UserTokenRefreshFailed(Event):
    """A refresh failed: ``login_ended`` when the provider refused the grant (the user must log in again),
    false for an outage or a malformed answer (the login is kept and retried later)."""

    sub: str | None
    error: str
    login_ended: bool
    resource: str | None = None
    level = logging.WARNING


@dataclass(frozen=True)
class RefreshTokenRevoked(Event):
    """The user's refresh token was revoked at the provider (RFC 7009)."""

    sub: str | None


# -- client tokens ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClientTokenAcquired(Event):
    """A client-credentials token was handed out: ``from_cache`` false when it was fetched from the provider."""

    client: str | None
    expires_at: datetime | None
    from_cache: bool
    level = logging.DEBUG


@dataclass(frozen=True)
class ClientTokenFailed(Event):
    """A client-credentials token could not be obtained."""

    client: str | None
    error: str
    level = logging.WARNING


class EventHub:
    """Subscribers per event type (a subscriber of a base class hears its subclasses) and one optional forwarder.

    Thread-safe: subscribing replaces the tuple a concurrent :meth:`emit` may be reading.
    """

    def __init__(self) -> None:
        self._subscribers: dict[type, tuple[Subscriber, ...]] = {}
        self._lock = threading.Lock()
        #: ``event -> None`` also told of every event (the Pyramid layer's ``registry.notify``)
        self.forward: Subscriber | None = None
        #: ``event -> event`` applied before subscribers run (the Pyramid layer attaches the request)
        self.decorate: Callable[[Event], Event] | None = None

    def subscribe(self, event_type: type[E], subscriber: Callable[[E], Any]) -> Callable[[E], Any]:
        """Call ``subscriber(event)`` for every event of ``event_type`` (or a subclass); returns the subscriber."""
        if not (isinstance(event_type, type) and issubclass(event_type, Event)):
            raise TypeError(f"subscribe() takes an event class from pyramid_tokens.events, not {event_type!r}")
        with self._lock:
            self._subscribers[event_type] = (*self._subscribers.get(event_type, ()), subscriber)
        return subscriber

    def unsubscribe(self, event_type: type[Event], subscriber: Subscriber) -> bool:
        """Stop calling ``subscriber`` (compared by equality, so a bound method works) for ``event_type``;
        False when it was not subscribed."""
        with self._lock:
            current = self._subscribers.get(event_type, ())
            if subscriber not in current:
                return False
            left = tuple(s for s in current if s != subscriber)  # equality: obj.method works
            if left:
                self._subscribers[event_type] = left
            else:
                del self._subscribers[event_type]
            return True

    def emit(self, event: Event) -> None:
        """Log the event's line, then tell every subscriber and the forwarder; their errors are logged only."""
        if self.decorate is not None:
            try:
                event = self.decorate(event)
            except Exception:  # noqa: BLE001 - an event must never break the token flow
                log.exception("pyramid_tokens: could not prepare %s for its subscribers", type(event).__name__)
        if log.isEnabledFor(event.level):  # the line is only built when someone reads it
            log.log(event.level, "%s", event.log_line())
        for cls in type(event).__mro__:
            for subscriber in self._subscribers.get(cls, ()):
                call_subscriber(subscriber, event)
        if self.forward is not None:
            call_subscriber(self.forward, event)


def call_subscriber(subscriber: Subscriber, event: Event) -> None:
    """``subscriber(event)``; what it raises is logged, never passed on."""
    try:
        subscriber(event)
    except Exception:  # noqa: BLE001 - a subscriber that raises must not change any outcome
        log.exception("pyramid_tokens: a subscriber of %s raised; the token flow goes on", type(event).__name__)


def with_request(event: E, request: Any) -> E:
    """A copy of ``event`` that carries ``request``."""
    return replace(event, request=request)


__all__ = [
    "ClientTokenAcquired", "ClientTokenFailed", "Event", "EventHub", "LOGOUT_APPLICATION", "LOGOUT_BACKCHANNEL",
    "LOGOUT_LOCAL", "LOGOUT_RP_INITIATED", "LoginFailed", "RefreshTokenRevoked", "UserLoggedIn", "UserLoggedOut",
    "UserTokenRefreshFailed", "UserTokenRefreshed", "call_subscriber", "with_request",
]
