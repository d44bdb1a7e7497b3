"""An evil HTTP server on a loopback socket: answers raw bytes the test chooses, records what it was sent.

WSGI servers refuse to send malformed headers; an adversary does not, so this one writes the
status line, headers and body exactly as given (CR/LF, NUL, non-ASCII and folded lines included).
"""
from __future__ import annotations

import json
import socket
import threading
from typing import Any, Callable
from urllib.parse import parse_qs

#: ``answer(request) -> raw response bytes``; ``request`` has ``method``, ``path``, ``headers``, ``form``
Answer = Callable[[dict[str, Any]], bytes]


def raw_response(status: int, body: bytes | dict[str, Any] = b"", *, headers: bytes = b"",
                 content_type: bytes = b"application/json") -> bytes:
    """An HTTP/1.1 response; ``headers``: extra raw header lines, each ending in CRLF, sent as they are."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    return (b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n" % (
        status, content_type, len(data)) + headers + b"\r\n" + data)


class EvilServer:
    """Serves ``answer`` for every request (one per connection) until :meth:`stop`."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    request = self._read(conn)
                    self.requests.append(request)
                    conn.sendall(self.answer(request))
                except OSError:
                    continue

    @staticmethod
    def _read(conn: socket.socket) -> dict[str, Any]:
        data = b""
        while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", 0))
        while len(body) < length and (chunk := conn.recv(65536)):
            body += chunk
        form = {k: v[0] for k, v in parse_qs(body.decode("latin-1")).items()}
        return {"method": method, "path": path, "headers": headers, "form": form}

    def stop(self) -> None:
        self.sock.close()
