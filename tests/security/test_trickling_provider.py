"""``tokens.timeout`` bounds a whole provider call, however slowly the bytes arrive.

Raw-socket servers in the test trickle one part of the answer (the TLS handshake, the status line,
the headers, the body) a byte at a time, faster than any single socket timeout would notice, or accept and never
answer. Each call must end with ``ProviderUnavailable`` within ``timeout`` plus a small margin, and
the process keeps serving other provider calls meanwhile.
"""
from __future__ import annotations

import socket
import threading
import time

import pytest

from pyramid_tokens.errors import ProviderUnavailable
from pyramid_tokens.transport import Transport

TIMEOUT = 1.0
MARGIN = 2.0
#: a byte every so often: far below the per-read socket timeout, so only a whole-call deadline stops it
PACE = 0.2

STATUS = b"HTTP/1.1 200 OK\r\n"
HEADERS = b"Content-Type: application/json\r\nContent-Length: 100000\r\nX-Filler: " + b"a" * 1000 + b"\r\n\r\n"
BODY = b'{"keys": [' + b" " * 100000


class SlowServer:
    """Accepts connections on loopback; sends ``prefix`` at once, then ``trickle`` one byte per PACE."""

    def __init__(self, prefix: bytes, trickle: bytes, scheme: str = "http") -> None:
        self.prefix, self.trickle = prefix, trickle
        self.stopped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"{scheme}://127.0.0.1:{self.listener.getsockname()[1]}/slow"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)  # the request
            try:
                conn.sendall(self.prefix)
                for byte in self.trickle:
                    if self.stopped.wait(PACE):
                        return
                    conn.sendall(bytes([byte]))
                self.stopped.wait()  # everything sent, never more: the answer stays incomplete
            except OSError:
                return  # the client hung up: what the deadline is for

    def stop(self) -> None:
        self.stopped.set()
        self.listener.close()


#: a TLS handshake record announcing 16 KiB (RFC 8446 §5.1), its body trickled: the client waits for all of it
TLS_RECORD = b"\x16\x03\x03\x40\x00"
TRICKLES = {
    "tls_handshake": (TLS_RECORD, b"\x02" * 16384, "https"),
    "status_line": (b"", STATUS + HEADERS),
    "headers": (STATUS, HEADERS),
    "body": (STATUS + HEADERS, BODY),
    "never_answers": (b"", b""),
}


@pytest.fixture(params=sorted(TRICKLES))
def slow_server(request):
    server = SlowServer(*TRICKLES[request.param])
    yield server
    server.stop()


@pytest.fixture
def fast_server():
    """A provider that answers at once, with a small JSON object."""
    listener = socket.create_server(("127.0.0.1", 0))
    stopped = threading.Event()

    def serve():
        listener.settimeout(0.1)
        while not stopped.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n"
                             b"Connection: close\r\n\r\n{\"ok\": true}")

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/fast"
    stopped.set()
    listener.close()


def timed_call(transport: Transport, url: str) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    try:
        transport.get_json(url, what="discovery")
    except BaseException as exc:  # noqa: BLE001 - the test inspects whatever came out
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


def test_a_trickling_or_silent_provider_is_unavailable_within_the_timeout(slow_server):
    error, elapsed = timed_call(Transport(timeout=TIMEOUT), slow_server.url)
    assert isinstance(error, ProviderUnavailable), error
    assert f"within {TIMEOUT:g} s" in error.error_description
    assert elapsed < TIMEOUT + MARGIN


def test_other_provider_calls_are_served_while_one_trickles(slow_server, fast_server):
    transport = Transport(timeout=TIMEOUT)
    outcome: list = []
    slow = threading.Thread(target=lambda: outcome.append(timed_call(transport, slow_server.url)))
    slow.start()
    time.sleep(PACE)  # the slow call is under way
    assert transport.get_json(fast_server, what="discovery") == {"ok": True}
    assert slow.is_alive()  # the fast answer did not wait for the slow one
    slow.join(TIMEOUT + MARGIN)
    assert not slow.is_alive()
    error, elapsed = outcome[0]
    assert isinstance(error, ProviderUnavailable) and elapsed < TIMEOUT + MARGIN


def test_many_trickling_calls_at_once_each_end_within_the_timeout():
    server = SlowServer(STATUS, HEADERS)
    transport = Transport(timeout=TIMEOUT)
    outcomes: list = []
    threads = [threading.Thread(target=lambda: outcomes.append(timed_call(transport, server.url))) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT + MARGIN)
        assert not any(thread.is_alive() for thread in threads)
        assert len(outcomes) == 8
        assert all(isinstance(error, ProviderUnavailable) and elapsed < TIMEOUT + MARGIN
                   for error, elapsed in outcomes)
    finally:
        server.stop()


def test_a_connection_cut_at_the_deadline_is_not_reused_for_the_next_call(fast_server):
    """After a trickling call, the same transport still gets complete, correct answers."""
    server = SlowServer(STATUS, HEADERS)
    transport = Transport(timeout=TIMEOUT)
    try:
        error, _ = timed_call(transport, server.url)
        assert isinstance(error, ProviderUnavailable)
        assert [transport.get_json(fast_server, what="discovery") for _ in range(3)] == [{"ok": True}] * 3
    finally:
        server.stop()


def test_a_trickling_http_proxy_is_cut_at_the_timeout_too():
    """Through ``HTTP_PROXY``/``HTTPS_PROXY`` (requests' proxies), the whole call is still bounded."""
    proxy = SlowServer(STATUS, HEADERS)
    transport = Transport(timeout=TIMEOUT)
    transport.session.proxies = {"http": proxy.url.rsplit("/", 1)[0]}
    try:
        error, elapsed = timed_call(transport, "http://provider.invalid/.well-known/openid-configuration")
        assert isinstance(error, ProviderUnavailable), error
        assert elapsed < TIMEOUT + MARGIN
    finally:
        proxy.stop()
