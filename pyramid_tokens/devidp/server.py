"""Serving WSGI apps on loopback in a background thread (waitress), and starting a provider that way.

Development only: :func:`serve` refuses a non-loopback host unless told otherwise, because the
provider logs in anyone. Port 0 picks a free port; the bound port is known before serving starts.
"""
from __future__ import annotations

import ipaddress
import logging
import threading
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from .models import DevClient
from .provider import DevProvider
from .views import make_wsgi_app

log = logging.getLogger("pyramid_tokens.devidp")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class RunningServer:
    """A WSGI app served by waitress in a daemon thread; a context manager."""

    def __init__(self, app: Any, host: str, port: int, threads: int) -> None:
        bind = "127.0.0.1" if host == "localhost" else host.strip("[]")  # one socket, one port
        self._server = create_server(app, host=bind, port=port, threads=threads, ident="pyramid_tokens")
        self.host = host
        self.port: int = self._server.effective_port
        url_host = f"[{bind}]" if ":" in bind else host
        self.url = f"http://{url_host}:{self.port}"
        self._thread = threading.Thread(target=self._run, name=f"waitress:{self.port}", daemon=True)
        self._stopped = False
        self._thread.start()

    def _run(self) -> None:
        try:
            self._server.run()
        except OSError:  # sockets closed under the loop while stopping
            if not self._stopped:
                raise

    def stop(self, timeout: float = 5.0) -> None:
        """Finish in-flight requests, close every socket and wait for the server thread."""
        if self._stopped:
            return
        self._stopped = True
        self._server.task_dispatcher.shutdown(timeout=timeout)
        # Close every socket from inside the loop thread; the loop ends once its map is empty. The
        # loop runs trigger thunks holding trigger.lock, so holding it here guarantees the pipe is
        # written to before the thunk can close it (pull_trigger() alone races with that).
        socket_map = self._server._map  # waitress's per-server socket map (wasyncore.dispatcher._map)
        trigger = self._server.trigger
        with trigger.lock:
            trigger.thunks.append(lambda: wasyncore.close_all(socket_map))
            trigger._physical_pull()
        self._thread.join(timeout)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RunningServer {self.url}{' stopped' if self._stopped else ''}>"


def serve(
    app: Any, host: str = "127.0.0.1", port: int = 0, threads: int = 8, allow_non_loopback: bool = False
) -> RunningServer:
    """Serve ``app`` in a daemon thread and return at once; ``.url``, ``.port``, ``.stop()``."""
    if not is_loopback(host):
        if not allow_non_loopback:
            raise ValueError(
                f"refusing to serve on non-loopback host {host!r}: the development provider logs in anyone; "
                "pass allow_non_loopback=True (--allow-non-loopback) if you really mean it"
            )
        log.warning("devidp: serving on NON-LOOPBACK host %s; anyone who can reach it can log in", host)
    server = RunningServer(app, host, port, threads)
    log.info("devidp: serving on %s", server.url)
    return server


class RunningProvider:
    """A :class:`DevProvider` served on loopback; a context manager and a plain object."""

    def __init__(self, provider: DevProvider, server: RunningServer) -> None:
        self.provider = provider
        self.server = server

    @property
    def issuer(self) -> str:
        return self.provider.issuer

    @property
    def url(self) -> str:
        """The server root (the issuer without its path prefix)."""
        return self.server.url

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> RunningProvider:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RunningProvider issuer={self.issuer!r}>"


def start_provider(
    prefix: str = "/idp",
    clients: tuple[DevClient, ...] | list[DevClient] = (),
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    allow_non_loopback: bool = False,
    threads: int = 8,
    **provider_kwargs: Any,
) -> RunningProvider:
    """Start a provider on ``host:port`` (0: any free port) under ``prefix``; its issuer is set once bound."""
    prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
    provider = DevProvider("http://unbound.invalid", clients, **provider_kwargs)
    server = serve(make_wsgi_app(provider, prefix), host, port, threads=threads, allow_non_loopback=allow_non_loopback)
    provider.issuer = server.url + prefix
    return RunningProvider(provider, server)
