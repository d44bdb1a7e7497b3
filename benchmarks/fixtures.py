"""What every section needs: the development provider on loopback, and logging in like a browser."""
from __future__ import annotations

import logging
import os
import sys
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

import requests

from pyramid_tokens.devidp import DevClient, DevUser, start_provider

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo: tests.support
from tests.support.provider import browser_login  # noqa: E402 - test-only helpers, not in the wheel

from apps import REDIRECT_URI


def bench_clients(lifetime: int = 3600) -> list[DevClient]:
    """``web`` (login, refresh) and ``worker`` (client credentials); tokens outlive the whole run."""
    return [
        DevClient("web", "web-secret", redirect_uris=[REDIRECT_URI], post_logout_redirect_uris=["http://localhost/"],
                  scopes="openid profile email offline_access api", access_token_lifetime=lifetime,
                  id_token_lifetime=lifetime),
        DevClient("worker", "worker-secret", grant_types=["client_credentials"], scopes="api",
                  access_token_lifetime=lifetime),
    ]


def quiet() -> None:
    """Only errors from the libraries measured: their per-request logging would be measured too."""
    logging.basicConfig(level=logging.ERROR)
    for name in ("pyramid_tokens", "pyramid_tokens.devidp", "waitress", "beaker"):
        logging.getLogger(name).setLevel(logging.ERROR)


def provider(users: list[DevUser] | None = None) -> Any:
    """A development provider with the benchmark's clients; ``.issuer``, ``.provider.counters()``, ``.stop()``."""
    return start_provider(clients=bench_clients(), users=users or [])


def webtest_login(test_app: Any, username: str = "alice") -> Any:
    """Log in through the real provider with a WebTest app, as the test suite does; the callback's response."""
    start = test_app.get("/login")
    callback = urlsplit(browser_login(start.location, username))
    return test_app.get(callback.path + "?" + callback.query)


def served_login(url: str, username: str = "alice") -> str:
    """Log in at an app served on ``url`` (as ``Host: localhost``); returns its session cookie ``sid=...``."""
    host = {"Host": "localhost"}
    start = requests.get(url + "/login", headers=host, allow_redirects=False, timeout=10)
    cookie = _sid(start)
    callback = urlsplit(browser_login(start.headers["Location"], username))
    done = requests.get(f"{url}{callback.path}?{callback.query}", headers={**host, "Cookie": cookie},
                        allow_redirects=False, timeout=10)
    if done.status_code != 302:
        raise RuntimeError(f"login at {url} failed: HTTP {done.status_code} {done.text[:200]}")
    return _sid(done) or cookie


def _sid(response: requests.Response) -> str:
    jar = SimpleCookie()
    jar.load(response.headers.get("Set-Cookie", ""))
    return f"sid={jar['sid'].value}" if "sid" in jar else ""
