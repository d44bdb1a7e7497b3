"""Malformed token responses become a TokenError that says what was wrong (a local server, real sockets)."""
from __future__ import annotations

import json
import time

import pytest

from pyramid_tokens import TokenError, TokenManager
from pyramid_tokens.devidp.server import serve

CASES = {
    "not-json": (200, "text/html", b"<html>oops</html>", "not JSON"),
    "html-error": (400, "text/html", b"<h1>Bad</h1>", "not JSON"),
    "empty": (200, "application/json", b"", "expected a JSON object"),
    "no-access-token": (200, "application/json", json.dumps({"token_type": "Bearer"}).encode(), "no access_token"),
    "expires-string": (200, "application/json",
                       json.dumps({"access_token": "x", "token_type": "Bearer", "expires_in": "3600"}).encode(),
                       "expires_in must be a number"),
    "expires-negative": (200, "application/json",
                         json.dumps({"access_token": "x", "token_type": "Bearer", "expires_in": -5}).encode(),
                         "outside"),
    "expires-zero": (200, "application/json",
                     json.dumps({"access_token": "x", "token_type": "Bearer", "expires_in": 0}).encode(), "outside"),
    "expires-huge": (200, "application/json",
                     json.dumps({"access_token": "x", "token_type": "Bearer", "expires_in": 10**12}).encode(),
                     "outside"),
    "unknown-type": (200, "application/json",
                     json.dumps({"access_token": "x", "token_type": "MAC", "expires_in": 60}).encode(),
                     "unsupported token_type"),
    "server-error": (502, "text/plain", b"bad gateway", "server error"),
    "oversized": (200, "application/json", b'{"access_token": "' + b"x" * 400_000 + b'"}', "larger than"),
    "400-no-error": (400, "application/json", b"{}", "without an OAuth error"),
}


def bad_provider(environ, start_response):
    name = environ["PATH_INFO"].strip("/").split("/")[0]
    if name == "slow":
        start_response("200 OK", [("Content-Type", "application/json")])
        return _trickle()
    status, ctype, body, _ = CASES[name]
    start_response(f"{status} X", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def _trickle():
    for _ in range(40):
        time.sleep(0.1)
        yield b" "


@pytest.fixture(scope="module")
def server():
    running = serve(bad_provider)
    yield running
    running.stop()


def manager(server, case, **extra):
    return TokenManager.from_settings({
        "tokens.clients.c.token_endpoint": f"{server.url}/{case}/token",
        "tokens.clients.c.client_id": "c", "tokens.clients.c.client_secret": "s", **extra})


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_token_response_is_a_clear_token_error(server, case):
    with pytest.raises(TokenError) as info:
        manager(server, case).get_client_access_token("c")
    assert CASES[case][3] in str(info.value)


def test_response_that_never_ends_times_out(server):
    started = time.monotonic()
    with pytest.raises(TokenError, match="within"):
        manager(server, "slow", **{"tokens.timeout": "1"}).get_client_access_token("c")
    assert time.monotonic() - started < 3


def test_unreachable_provider_is_a_token_error():
    tm = TokenManager.from_settings({"tokens.clients.c.token_endpoint": "http://127.0.0.1:9/token",
                                     "tokens.clients.c.client_id": "c"})
    with pytest.raises(TokenError, match="could not reach 127.0.0.1:9") as info:
        tm.get_client_access_token("c")
    assert info.value.error == "temporarily_unavailable"
