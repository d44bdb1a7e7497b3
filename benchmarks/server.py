"""Serve one of the benchmark apps with waitress in this (sub)process: ``server.py NAME SETTINGS_JSON``.

Prints ``PORT <n>`` once bound to a free loopback port, then serves until its standard input closes
(the runner holds the other end, so the server never outlives the run).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from waitress.server import create_server  # noqa: E402

from apps import APPS  # noqa: E402

#: waitress threads; the apps are CPU-bound Python, so more threads would only add switching
THREADS = 4


def main() -> None:
    name, settings = sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    logging.basicConfig(level=logging.ERROR)
    app = APPS[name](settings)
    server = create_server(app, host="127.0.0.1", port=0, threads=THREADS, ident="bench",
                           connection_limit=256, channel_timeout=60)
    print(f"PORT {server.effective_port}", flush=True)

    def stop_when_orphaned() -> None:
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=stop_when_orphaned, daemon=True).start()
    server.run()


if __name__ == "__main__":
    main()
