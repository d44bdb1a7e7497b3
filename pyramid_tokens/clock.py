"""One injectable source of time, so tests of expiry advance a clock instead of sleeping."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Callable

#: A clock is any callable returning the current time as POSIX seconds (like :func:`time.time`).
Clock = Callable[[], float]

system_clock: Clock = time.time


def utc_from_timestamp(ts: float) -> datetime:
    """A timezone-aware UTC datetime for POSIX seconds."""
    return datetime.fromtimestamp(ts, tz=timezone.utc)


class FakeClock:
    """A clock that only moves when told to; thread-safe. Starts at the real time by default."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` and return the new time."""
        with self._lock:
            self._now += seconds
            return self._now
