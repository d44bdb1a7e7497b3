"""Events and metrics outside Pyramid: client-credentials tokens, named-client retries and 401 replays, DPoP nonces.

A plain :class:`~pyramid_tokens.TokenManager` with ``subscribe``; the provider is the development
provider over HTTP, the resource server a small WSGI app on a loopback socket that answers 503 or 401
on purpose. Metrics are read from the OpenTelemetry SDK's in-memory reader.
"""
from __future__ import annotations

import json
import threading

import pytest

from pyramid_tokens import TokenManager
from pyramid_tokens.devidp.models import DEVICE_CODE_GRANT
from pyramid_tokens.devidp.server import serve
from pyramid_tokens.errors import InvalidClient, TokenError
from pyramid_tokens.events import ClientTokenAcquired, ClientTokenFailed, Event
from tests.sender.test_dpop_flows import clients as dpop_clients, worker as dpop_worker
from tests.support.provider import worker_settings

from .conftest import event_texts


class FlakyApi:
    """``/fail-once``: 503 the first time, then 200. ``/stale-once``: 401 ``invalid_token`` the first time."""

    def __init__(self) -> None:
        self.seen: dict[str, list[str | None]] = {}
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"]
        with self.lock:
            calls = self.seen.setdefault(path, [])
            calls.append(environ.get("HTTP_AUTHORIZATION"))
            first = len(calls) == 1
        status, headers = "200 OK", []
        if first and path.endswith("/fail-once"):
            status = "503 Service Unavailable"
        elif first and path.endswith("/stale-once"):
            status, headers = "401 Unauthorized", [("WWW-Authenticate", 'Bearer error="invalid_token"')]
        body = json.dumps({"path": path}).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers])
        return [body]


@pytest.fixture
def flaky():
    api = FlakyApi()
    server = serve(api)
    server.app = api
    yield server
    server.stop()


def manager(idp, api=None, **extra):
    named = {"tokens.http.api.base_url": api.url + "/api/", "tokens.http.api.token": "client:worker",
             "tokens.http.api.retry": "0"} if api else {}
    return TokenManager.from_settings(worker_settings(idp, **named, **extra))


def test_client_credentials_cold_then_from_cache_are_two_acquired_events_and_one_request(idp, heard, recorded):
    tm = manager(idp)
    tm.subscribe(Event, heard)
    first = tm.get_client_access_token("worker")
    assert tm.get_client_access_token("worker") == first
    assert [(e.client, e.from_cache, e.expires_at) for e in heard] == [
        ("worker", False, first.expires_at), ("worker", True, first.expires_at)]
    assert recorded.count("pyramid_tokens.token.requests", pyramid_tokens__grant_type="client_credentials",
                          pyramid_tokens__outcome="success") == 1
    assert recorded("pyramid_tokens.token.cache") == {
        frozenset({("pyramid_tokens.token.kind", "client"), ("pyramid_tokens.cache.result", "miss")}): 1,
        frozenset({("pyramid_tokens.token.kind", "client"), ("pyramid_tokens.cache.result", "hit")}): 1,
    }


def test_a_refused_client_is_one_failed_event_and_a_counted_error(idp, heard, recorded):
    tm = manager(idp, **{"tokens.clients.worker.client_secret": "wrong-secret"})
    tm.subscribe(ClientTokenFailed, heard)
    with pytest.raises(InvalidClient):
        tm.get_client_access_token("worker")
    assert [(e.client, e.error) for e in heard] == [("worker", "invalid_client")]
    assert recorded.count("pyramid_tokens.token.requests", pyramid_tokens__outcome="invalid_client") == 1
    assert all("wrong-secret" not in text for text in event_texts(heard[0]) + recorded.attribute_values())


def test_a_named_client_retry_is_counted_for_that_client(idp, flaky, heard, recorded):
    tm = manager(idp, flaky)
    tm.subscribe(Event, heard)
    assert tm.http_client("api").get("fail-once").status_code == 200
    assert len(flaky.app.seen["/api/fail-once"]) == 2
    assert recorded("pyramid_tokens.http.retries") == {frozenset({("pyramid_tokens.client", "api")}): 1}
    assert recorded("pyramid_tokens.http.replays") == {}
    assert [e.from_cache for e in heard] == [False]  # one token for both attempts


def test_a_401_replay_renews_the_client_token_and_is_counted(idp, flaky, heard, recorded):
    tm = manager(idp, flaky)
    tm.subscribe(ClientTokenAcquired, heard)
    reply = tm.http_client("api").get("stale-once")
    assert reply.status_code == 200 and [r.status_code for r in reply.history] == [401]
    first, second = flaky.app.seen["/api/stale-once"]
    assert first != second  # the replay carried the renewed token
    assert [e.from_cache for e in heard] == [False, False]  # the first token, then the forced renewal
    assert recorded("pyramid_tokens.http.replays") == {frozenset({("pyramid_tokens.client", "api")}): 1}
    assert recorded("pyramid_tokens.http.retries") == {}
    assert recorded.count("pyramid_tokens.token.requests", pyramid_tokens__grant_type="client_credentials") == 2


def test_a_dpop_nonce_retry_at_the_token_endpoint_and_at_the_api_are_counted(make_idp, make_api, recorded):
    idp = make_idp(clients=dpop_clients(), require_dpop_nonce=True)
    api = make_api(idp, require_dpop_nonce=True)
    tm = dpop_worker(idp, api)
    reply = tm.http_client("api").get("whoami")
    assert reply.status_code == 200 and [r.status_code for r in reply.history] == [401]
    assert recorded("pyramid_tokens.dpop.nonce_retries") == {
        frozenset({("pyramid_tokens.endpoint", "token")}): 1,
        frozenset({("pyramid_tokens.endpoint", "resource")}): 1,
    }
    assert recorded.count("pyramid_tokens.token.requests", pyramid_tokens__outcome="success") == 1
    assert recorded("pyramid_tokens.http.replays") == {}  # a nonce is not an expired token
    assert not any("eyJ" in value for value in recorded.attribute_values())


def test_a_subscriber_that_raises_changes_no_client_token_outcome(idp, flaky, caplog):
    def broken(event):
        raise RuntimeError("subscriber bug")

    tm = manager(idp, flaky)
    tm.subscribe(Event, broken)
    token = tm.get_client_access_token("worker")
    assert tm.get_client_access_token("worker") == token
    assert tm.http_client("api").get("stale-once").status_code == 200
    assert "a subscriber of ClientTokenAcquired raised" in caplog.text


def odd_token_endpoint(environ, start_response):
    """A token endpoint refusing every grant with an error code of its own making."""
    body = json.dumps({"error": "vendor_specific_refusal_42"}).encode()
    start_response("400 Bad Request", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def test_an_error_code_no_rfc_defines_is_recorded_as_other_but_told_to_subscribers_as_sent(heard, recorded):
    server = serve(odd_token_endpoint)
    try:
        tm = TokenManager.from_settings({"tokens.clients.odd.token_endpoint": server.url + "/token",
                                         "tokens.clients.odd.client_id": "odd",
                                         "tokens.clients.odd.client_secret": "odd-secret"})
        tm.subscribe(ClientTokenFailed, heard)
        for _ in range(3):
            with pytest.raises(TokenError):
                tm.get_client_access_token("odd")
    finally:
        server.stop()
    assert [e.error for e in heard] == ["vendor_specific_refusal_42"] * 3
    assert recorded("pyramid_tokens.token.requests") == {
        frozenset({("pyramid_tokens.grant_type", "client_credentials"), ("pyramid_tokens.outcome", "other")}): 3}


def test_a_device_login_in_plain_python_is_one_user_logged_in_event_and_a_counted_login(make_idp, heard, recorded):
    from tests.core.test_device import User, manager as device_manager

    idp = make_idp(device_auto_approve="alice")
    tm = device_manager(idp)
    tm.subscribe(Event, heard)
    user = User()
    tm.device_login(display=user.display, sleep=user.sleep)
    tm.get_user_access_token()  # a valid read: nothing more
    assert [(type(e).__name__, e.sub) for e in heard] == [("UserLoggedIn", "alice")]
    assert recorded("pyramid_tokens.logins") == {frozenset({("pyramid_tokens.outcome", "success")}): 1}
    assert recorded.count("pyramid_tokens.token.requests", pyramid_tokens__grant_type=DEVICE_CODE_GRANT,
                          pyramid_tokens__outcome="success") == 1
