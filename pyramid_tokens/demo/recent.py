"""The demo's memory of recent events per user (:mod:`pyramid_tokens.events`), heard with ``config.add_subscriber``.

Bounded both ways: the last :data:`PER_USER` events of at most :data:`USERS` users (the least recently
active forgotten first), kept in this process only, since the demo shows them and nothing else reads them.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from typing import Any

from ..events import Event

#: events kept per user, and users kept at most
PER_USER = 10
USERS = 200
#: the registry key of the demo's :class:`RecentEvents`
RECENT = "pyramid_tokens.demo.recent_events"


class RecentEvents:
    """``remember(event)`` (a Pyramid subscriber) and ``of(sub)``: ``[(seconds since the epoch, log line)]``."""

    def __init__(self) -> None:
        self._by_sub: OrderedDict[str, deque[tuple[float, str]]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, event: Event) -> None:
        sub = getattr(event, "sub", None)
        if not isinstance(sub, str) or not sub:
            return  # a client token event, or a login that failed before anyone was known
        line = event.log_line()
        with self._lock:
            kept = self._by_sub.pop(sub, None) or deque(maxlen=PER_USER)
            kept.append((time.time(), line))
            self._by_sub[sub] = kept
            while len(self._by_sub) > USERS:
                self._by_sub.popitem(last=False)

    def of(self, sub: str) -> list[tuple[float, str]]:
        """The user's recent events, newest first."""
        with self._lock:
            return list(reversed(self._by_sub.get(sub, ())))


def recent_events(registry: Any) -> RecentEvents:
    return registry[RECENT]
