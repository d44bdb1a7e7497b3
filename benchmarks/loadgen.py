"""A waitress server in a subprocess, and a small keep-alive HTTP/1.1 load generator in pure Python.

The load generator writes pre-built request bytes on persistent connections and reads each response
by its ``Content-Length``: a few microseconds of client work per request, so on a 2-core machine the
server, not the client, sets the pace.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


class ServedApp:
    """``server.py NAME SETTINGS`` running in a subprocess; stops when closed (or when we exit)."""

    def __init__(self, name: str, settings: dict[str, Any] | None = None) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "server.py"), name, json.dumps(settings or {})],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError(f"benchmark server {name!r} did not start: {line!r}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float | None:
        """CPU time all the server's threads have run (Linux ``schedstat``, in ns), else ``None``."""
        try:
            total = 0
            for task in os.listdir(f"/proc/{self.process.pid}/task"):
                with open(f"/proc/{self.process.pid}/task/{task}/schedstat", encoding="ascii") as f:
                    total += int(f.read().split()[0])
            return total / 1e9
        except (OSError, ValueError, IndexError):
            return None

    def close(self) -> None:
        if self.process.poll() is None:
            if self.process.stdin:
                self.process.stdin.close()  # the server exits when its stdin closes
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def __enter__(self) -> "ServedApp":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def request_bytes(path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: localhost", "Accept: text/plain"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Connection:
    """One persistent connection; :meth:`roundtrip` sends the request and reads the whole response."""

    def __init__(self, port: int, request: bytes) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = request
        self.buffer = b""

    def roundtrip(self) -> tuple[int, bytes]:
        self.sock.sendall(self.request)
        buffer = self.buffer
        while b"\r\n\r\n" not in buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            rest += chunk
        self.buffer = rest[length:]
        return int(head[9:12]), head

    def close(self) -> None:
        self.sock.close()


class Load:
    """``connections`` keep-alive connections to one server, each driven by its own thread, in bursts.

    Threads and connections persist between bursts, so that bursts against two servers can alternate
    quickly (a noisy neighbour then slows both alike) without reconnecting or starting threads.
    """

    def __init__(self, port: int, path: str, *, connections: int = 4, headers: dict[str, str] | None = None) -> None:
        request = request_bytes(path, headers)
        self.connections = [Connection(port, request) for _ in range(connections)]
        self._start = threading.Barrier(connections + 1)
        self._end = threading.Barrier(connections + 1)
        self._share = 0
        self._closing = False
        self.statuses: dict[int, int] = {}
        self.head = b""
        self.errors: list[BaseException] = []
        self._threads = [threading.Thread(target=self._drive, args=(conn,), daemon=True) for conn in self.connections]
        for thread in self._threads:
            thread.start()

    def _drive(self, conn: Connection) -> None:
        while True:
            self._start.wait()
            if self._closing:
                return
            seen: dict[int, int] = {}
            try:
                for _ in range(self._share):
                    status, self.head = conn.roundtrip()
                    seen[status] = seen.get(status, 0) + 1
            except BaseException as exc:  # reported by burst(), never swallowed
                self.errors.append(exc)
            for status, count in seen.items():
                self.statuses[status] = self.statuses.get(status, 0) + count
            self._end.wait()

    def burst(self, total: int) -> float:
        """Send about ``total`` requests as fast as they are answered; requests per second (wall clock)."""
        self._share = max(1, total // len(self.connections))
        self._start.wait()
        started = time.perf_counter()
        self._end.wait()
        elapsed = time.perf_counter() - started
        if self.errors:
            raise self.errors[0]
        return self._share * len(self.connections) / elapsed

    def close(self) -> None:
        self._closing = True
        self._start.wait()
        for thread in self._threads:
            thread.join(5)
        for conn in self.connections:
            conn.close()


def load(port: int, path: str, *, total: int, connections: int = 4,
         headers: dict[str, str] | None = None) -> dict[str, Any]:
    """One burst of ``total`` GETs of ``path``: requests per second, the status codes seen, one response head."""
    driver = Load(port, path, connections=connections, headers=headers)
    try:
        rps = driver.burst(total)
    finally:
        driver.close()
    return {"rps": rps, "statuses": driver.statuses, "head": driver.head}
