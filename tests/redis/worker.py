"""One worker process of the scale-out tests: a Pyramid app served by waitress, its state in Redis.

``python tests/redis/worker.py SETTINGS_JSON THREADS`` prints ``READY <url> <pid>`` once it listens on
a free loopback port, and serves until its standard input closes (the parent ended or let it go).
"""
from __future__ import annotations

import json
import logging
import os
import sys

from pyramid.config import Configurator

from pyramid_tokens.devidp.server import serve


def token_view(request):
    token = request.get_user_access_token()
    return {"access_token": token.access_token, "expires_at": token.expires_at.timestamp(), "pid": os.getpid()}


def client_token_view(request):
    token = request.get_client_access_token(request.params.get("name") or None)
    return {"access_token": token.access_token, "pid": os.getpid()}


def make_app(settings):
    config = Configurator(settings=settings)
    config.include("pyramid_tokens")
    config.add_route("token", "/token")
    config.add_view(token_view, route_name="token", renderer="json")
    config.add_route("client_token", "/client-token")
    config.add_view(client_token_view, route_name="client_token", renderer="json")
    return config.make_wsgi_app()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format=f"worker {os.getpid()} %(name)s: %(message)s")
    settings, threads = json.loads(sys.argv[1]), int(sys.argv[2])
    server = serve(make_app(settings), threads=threads)
    print("READY", server.url, os.getpid(), flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
