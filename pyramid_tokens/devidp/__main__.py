"""``python -m pyramid_tokens.devidp``: run the development provider alone and print its issuer.

    python -m pyramid_tokens.devidp --port 9000 --client web:web-secret:http://localhost:6543/callback

``--client`` takes ``id:secret:redirect_uri`` (an empty secret makes a public client; repeat the
same id to register more redirect URIs). Loopback only unless ``--allow-non-loopback``.
"""
from __future__ import annotations

import argparse
import logging
import sys
import threading

from .models import DevClient
from .server import start_provider


def parse_clients(specs: list[str]) -> list[DevClient]:
    """``id:secret:redirect_uri`` strings to clients; the redirect URI may itself contain colons."""
    clients: dict[str, DevClient] = {}
    for spec in specs:
        client_id, _, rest = spec.partition(":")
        secret, _, redirect_uri = rest.partition(":")
        if not client_id:
            raise ValueError(f"--client {spec!r}: expected id:secret:redirect_uri")
        known = clients.get(client_id)
        uris = (*(known.redirect_uris if known else ()), *([redirect_uri] if redirect_uri else ()))
        clients[client_id] = DevClient(client_id, secret or None, redirect_uris=uris)
    return list(clients.values())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pyramid_tokens.devidp", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="port (default 9000; 0 picks a free one)")
    parser.add_argument("--prefix", default="/idp", help="issuer path (default /idp)")
    parser.add_argument("--client", action="append", default=[], metavar="ID:SECRET:REDIRECT_URI")
    parser.add_argument("--audience", default="api", help="access token audience when no resource is asked for")
    parser.add_argument("--device-auto-approve", metavar="USER", help="approve every device login as USER")
    parser.add_argument("--allow-non-loopback", action="store_true", help="allow serving beyond this machine")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        clients = parse_clients(args.client)
        running = start_provider(
            args.prefix,
            clients,
            args.host,
            args.port,
            allow_non_loopback=args.allow_non_loopback,
            audience=args.audience,
            device_auto_approve=args.device_auto_approve,
        )
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not clients:
        logging.getLogger("pyramid_tokens.devidp").warning("devidp: no clients registered (use --client)")
    print(running.issuer, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
