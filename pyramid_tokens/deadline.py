"""A deadline for a whole provider call: connect, status line, headers and body.

urllib3's timeouts bound each socket operation, so a server that sends one byte a second never
trips them and holds the calling thread for as long as it likes. Here one process-wide watchdog
thread keeps a heap of deadlines; when one passes, it shuts down the sockets of that call, which
ends a blocked read at once (no thread per call, nothing polled). Hand-written because neither
requests nor urllib3 offers a total deadline (urllib3 ``Timeout(total=)`` does not cover reads).

A call opts in with :func:`deadline` around the ``requests`` call, on a session that has
:class:`DeadlineAdapter` mounted; the adapter's connections register their socket with the
watchdog before reading the response, on fresh and on reused connections alike.
"""
from __future__ import annotations

import contextvars
import heapq
import itertools
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class Deadline:
    """The end of one call; ``expired`` once the watchdog has cut its connection."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.expired = False
        self.done = False
        self.sockets: list[socket.socket] = []

    def passed(self) -> bool:
        """Whether the call ran out of time (cut by the watchdog, or a socket timeout at the very end)."""
        return self.expired or time.monotonic() >= self.at

    def remaining(self) -> float:
        return max(0.001, self.at - time.monotonic())


_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("pyramid_tokens_deadline", default=None)


def _shut(sock: socket.socket) -> None:
    try:  # the plain socket's shutdown, also for an SSLSocket: the reading thread owns the TLS state
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: the call is over


class _Watchdog:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: Deadline, sock: socket.socket) -> None:
        with self._cond:
            if deadline.expired:
                _shut(sock)
                return
            if not deadline.sockets:
                heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            deadline.sockets.append(sock)
            if self._thread is None or not self._thread.is_alive():  # also after a fork
                self._thread = threading.Thread(target=self._run, name="pyramid_tokens-deadlines", daemon=True)
                self._thread.start()
            self._cond.notify()

    def release(self, deadline: Deadline) -> None:
        with self._cond:
            deadline.done = True
            deadline.sockets.clear()

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and (self._heap[0][0] <= now or self._heap[0][2].done):
                    _, _, deadline = heapq.heappop(self._heap)
                    if not deadline.done:
                        deadline.expired = True
                        for sock in deadline.sockets:
                            _shut(sock)
                        deadline.sockets.clear()
                self._cond.wait(self._heap[0][0] - now if self._heap else None)


WATCHDOG = _Watchdog()


@contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """Bound every connection the enclosed ``requests`` call reads from to ``seconds`` in total."""
    current = Deadline(seconds)
    token = _current.set(current)
    try:
        yield current
    finally:
        WATCHDOG.release(current)
        _current.reset(token)


class _Watched:
    sock: Any

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        current = _current.get()
        if current is not None and self.sock is not None:
            WATCHDOG.watch(current, self.sock)
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections obey the :func:`deadline` of the call in progress.

    Direct and through an HTTP(S) proxy (``HTTPS_PROXY``); a SOCKS proxy keeps urllib3's own pools,
    so there only the per-read timeout and the check between body chunks apply.
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager
