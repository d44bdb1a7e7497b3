"""One process of the two-process exchange test: a TokenManager on a shared Redis store asking for an exchange.

``python tests/exchange/exchange_process.py SETTINGS_JSON THREADS`` prints ``READY``, waits for a line on
standard input, then asks for the ``orders`` exchange from THREADS threads at once and prints a JSON list
of the SHA-256 digests of the tokens it got (never the tokens).
"""
from __future__ import annotations

import hashlib
import json
import sys
import threading

from pyramid_tokens import TokenManager


def main() -> None:
    settings, threads = json.loads(sys.argv[1]), int(sys.argv[2])
    manager = TokenManager.from_settings(settings)
    print("READY", flush=True)
    sys.stdin.readline()
    start, got = threading.Barrier(threads), []

    def ask() -> None:
        start.wait()
        token = manager.get_exchanged_token("orders")
        got.append(hashlib.sha256(token.access_token.encode()).hexdigest())

    workers = [threading.Thread(target=ask) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    print(json.dumps(got), flush=True)


if __name__ == "__main__":
    main()
