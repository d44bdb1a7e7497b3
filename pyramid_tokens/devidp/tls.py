"""Serving a WSGI app over TLS on loopback, so mutual TLS (RFC 8705) can be tested for real.

waitress speaks plain HTTP only; this small threaded server (``wsgiref`` and :mod:`ssl`) terminates
TLS itself. It asks every client for a certificate, verifies one that is presented against the
given CA, and hands it to the application as ``environ["SSL_CLIENT_CERT"]`` (PEM), the mod_ssl
convention the provider (``clientauth.py``) and the demo API read. ``client_cert="optional"`` (the
default) lets discovery and JWKS be fetched without a certificate; ``"required"`` refuses any
connection without one. Development and tests only: HTTP/1.0, one connection per request.

    with serve_tls(app, certfile="server.pem", keyfile="server.key", cafile="ca.pem") as server:
        requests.get(server.url + "/", verify="ca.pem", cert=("client.pem", "client.key"))
"""
from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from .clientauth import ENVIRON_CERT
from .provider import DevProvider
from .server import RunningProvider, is_loopback
from .views import make_wsgi_app

log = logging.getLogger("pyramid_tokens.devidp")


class _Handler(WSGIRequestHandler):
    def setup(self) -> None:
        self.request.settimeout(10)
        self.request.do_handshake()  # in this connection's thread, not in the accept loop
        super().setup()

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        environ["HTTPS"] = "on"  # wsgiref derives wsgi.url_scheme = https from it
        der = self.request.getpeercert(binary_form=True)
        if der:
            environ[ENVIRON_CERT] = ssl.DER_cert_to_PEM_cert(der)
        return environ

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("tls server: " + format, *args)


class _TLSServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # no getfqdn(): no reverse DNS on loopback
        self.server_name, self.server_port = self.server_address[:2]
        self.setup_environ()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.info("tls server: connection from %s failed (handshake or client certificate refused)", client_address)


class RunningTLSServer:
    """A WSGI app served over TLS in a daemon thread; ``.url`` (https), ``.port``, ``.stop()``; a context manager."""

    def __init__(self, app: Any, host: str, port: int, context: ssl.SSLContext) -> None:
        self._server = _TLSServer((host, port), context)
        self._server.set_app(app)
        self.host = host
        self.port: int = self._server.server_address[1]
        self.url = f"https://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"tls:{self.port}", daemon=True)
        self._stopped = False
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout)

    def __enter__(self) -> "RunningTLSServer":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RunningTLSServer {self.url}{' stopped' if self._stopped else ''}>"


def server_context(certfile: str, keyfile: str, cafile: str, client_cert: str = "optional") -> ssl.SSLContext:
    """A server-side TLS context that asks for client certificates issued by ``cafile``."""
    if client_cert not in ("optional", "required"):
        raise ValueError("client_cert must be 'optional' or 'required'")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    context.load_verify_locations(cafile)
    context.verify_mode = ssl.CERT_REQUIRED if client_cert == "required" else ssl.CERT_OPTIONAL
    return context


def serve_tls(app: Any, *, certfile: str, keyfile: str, cafile: str, host: str = "127.0.0.1", port: int = 0,
              client_cert: str = "optional") -> RunningTLSServer:
    """Serve ``app`` over TLS on a loopback address in a daemon thread and return at once."""
    if not is_loopback(host):
        raise ValueError(f"refusing to serve on non-loopback host {host!r}: this server is for tests only")
    server = RunningTLSServer(app, host, port, server_context(certfile, keyfile, cafile, client_cert))
    log.info("devidp: serving over TLS on %s (client certificates %s)", server.url, client_cert)
    return server


def start_tls_provider(prefix: str = "/idp", clients: Any = (), *, certfile: str, keyfile: str, cafile: str,
                       host: str = "127.0.0.1", port: int = 0, client_cert: str = "optional",
                       **provider_kwargs: Any) -> RunningProvider:
    """:func:`~pyramid_tokens.devidp.start_provider` over TLS: the issuer is ``https://host:port/prefix``."""
    prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
    provider = DevProvider("https://unbound.invalid", clients, **provider_kwargs)
    server = serve_tls(make_wsgi_app(provider, prefix), certfile=certfile, keyfile=keyfile, cafile=cafile,
                       host=host, port=port, client_cert=client_cert)
    provider.issuer = server.url + prefix
    return RunningProvider(provider, server)  # type: ignore[arg-type]  # same url/stop interface
