"""Objects a request leaves for the cyclic garbage collector: ``python benchmarks/garbage.py``.

Whole WSGI requests (``/token`` for a logged-in user, ``/public``) are served in-process with the collector
switched off; ``gc.collect()`` then says how many unreachable objects they left, which a server's
collector would have had to find. The static app (pyramid_beaker only, the same session contents) is
the baseline. Not a test: the figure is reported, and ``run.py`` prints it as row 2i.
"""
from __future__ import annotations

import gc
import json
from typing import Any, Callable

import webtest

from apps import session_settings, static_app
from harness import Row
from hotpath import LoggedIn
from throughput import SAME, _wsgi_call


def left_per_request(call: Callable[[], Any], requests: int = 200) -> float:
    """Unreachable objects per request after ``requests`` calls with the collector off."""
    for _ in range(20):
        call()  # warm up: imports, first parses, caches
    gc.collect()
    gc.disable()
    try:
        for _ in range(requests):
            call()
        return gc.collect() / requests
    finally:
        gc.enable()


def run(issuer: str) -> dict[str, float]:
    bench = LoggedIn(issuer)
    static = static_app({**session_settings(), **SAME})
    seeded = webtest.TestApp(static)
    seeded.post("/seed", json.dumps(bench.same_contents))
    cookie = f"sid={seeded.cookies['sid']}"
    return {f"{name} {path}": left_per_request(_wsgi_call(app, path, sid))
            for path in ("/token", "/public")
            for name, app, sid in (("ours", bench.app, bench.cookie), ("static", static, cookie))}


def rows(issuer: str) -> tuple[list[Row], list[str]]:
    """Row 2i: objects left per request by ours and by the static app, on both routes."""
    found = run(issuer)
    ours = " / ".join(f"{found['ours ' + path]:g}" for path in ("/token", "/public"))
    static = " / ".join(f"{found['static ' + path]:g}" for path in ("/token", "/public"))
    ok = all(found["ours " + path] <= found["static " + path] for path in ("/token", "/public"))
    return [Row("2i", "objects left for the cyclic garbage collector per request (gc off, then gc.collect()): "
                      "/token / /public, in-process WSGI calls", ours, f"static app {static}", None,
                "≤ the static app's", ok)], []


if __name__ == "__main__":
    from fixtures import provider, quiet

    quiet()
    with provider() as idp:
        for what, count in run(idp.issuer).items():
            print(f"{what}: {count:g} objects left for the cyclic collector per request")
