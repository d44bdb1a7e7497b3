"""A Pyramid app with Beaker sessions (``redis_json``) and tokens in Redis; Redis failures; a lost lease."""
from __future__ import annotations

import base64
import json
import logging
import os
import pickle
import threading
import time
import zlib

import pytest
import webtest
from pyramid.response import Response
from beaker.cache import clsmap
from beaker.session import Session
from pyramid.exceptions import ConfigurationError as PyramidConfigurationError

from pyramid_tokens import TokenError, TokenManager
from pyramid_tokens.redis import JsonRedisNamespaceManager
from pyramid_tokens.errors import StoreUnavailable
from tests.support.web import base_settings, build_app, login

from .conftest import free_port

JSON = {"Accept": "application/json"}


def redis_settings(idp, url, **overrides):
    """Sessions AND tokens in Redis, the way the README documents it."""
    return base_settings(idp, **{"session.type": "redis_json", "session.url": url, "session.timeout": "3600",
                                 "tokens.store": url, "tokens.cache": url, **overrides})


def user_records(client):
    """The user token sets in Redis: ``{handle: record}`` (sessions, locks, rotation and client records aside)."""
    records = {}
    for key in client.scan_iter("pyramid_tokens:{*}"):  # a record is {prefix}{HANDLE}
        name = key.decode()[len("pyramid_tokens:") + 1:-1]
        if not name.startswith("client:"):
            records[name] = json.loads(client.get(key))
    return records


def refreshes(idp):
    return idp.provider.counters()["token"]["refresh_token"]


def invalid_grants(idp):
    return idp.provider.counters()["token_errors"].get("invalid_grant", 0)


# -- Beaker sessions without pickle ------------------------------------------------------------------
def test_redis_json_is_registered_as_a_beaker_session_type():
    assert clsmap["redis_json"] is JsonRedisNamespaceManager


def test_beaker_session_in_redis_is_json_never_a_pickle(redis_url, redis_server):
    session = Session({}, id="s1", type="redis_json", url=redis_url, data_serializer="json", use_cookies=False,
                      timeout=600)
    session["pyramid_tokens.handle"] = "h-1"
    session.save()
    with redis_server.client() as raw:
        stored = raw.get("pyramid_tokens:session:s1:session")
        ttl = raw.ttl("pyramid_tokens:session:s1:session")
    assert stored[:1] == b"s"  # tagged text: Beaker's own base64 of its JSON serializer's output
    assert json.loads(zlib.decompress(base64.b64decode(stored[1:])))["pyramid_tokens.handle"] == "h-1"
    assert 600 < ttl <= 720  # the session timeout plus Beaker's two minutes
    again = Session({}, id="s1", type="redis_json", url=redis_url, data_serializer="json", use_cookies=False)
    assert again["pyramid_tokens.handle"] == "h-1"


class _Mkdir:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_a_pickle_planted_in_redis_is_never_unpickled(redis_url, redis_server, tmp_path, caplog):
    marker = str(tmp_path / "unpickled")
    with redis_server.client() as raw:
        raw.set("pyramid_tokens:session:s2:session", pickle.dumps(_Mkdir(marker)))
    with caplog.at_level(logging.WARNING):
        session = Session({}, id="s2", type="redis_json", url=redis_url, data_serializer="json", use_cookies=False)
    assert session.is_new and "pyramid_tokens.handle" not in session
    assert not os.path.exists(marker)
    assert "did not write" in caplog.text


def test_redis_json_sessions_refuse_the_pickle_serializer(idp, redis_url):
    with pytest.raises(PyramidConfigurationError, match="data_serializer = json"):
        build_app(redis_settings(idp, redis_url, **{"session.data_serializer": "pickle"}))


def test_beakers_pickling_ext_redis_is_warned_about(idp, redis_url, caplog):
    with caplog.at_level(logging.WARNING):
        build_app(redis_settings(idp, redis_url, **{"session.type": "ext:redis"}))
    assert "use session.type = redis_json" in caplog.text


# -- login and refresh, everything in Redis ----------------------------------------------------------
@pytest.mark.parametrize("tokens_store", ["redis URL", "session"])
def test_login_and_refresh_with_sessions_and_tokens_in_redis(idp, clock, redis_url, redis_server, tokens_store):
    """``tokens.store = session`` beside a ``redis_json`` session means: in that Redis, too."""
    overrides = {"tokens.store": "session"} if tokens_store == "session" else {}
    app = webtest.TestApp(build_app(redis_settings(idp, redis_url, **overrides), clock))
    login(app)
    first = app.get("/token").json["access_token"]
    with redis_server.client() as raw:
        [(handle, record)] = user_records(raw).items()
        assert 3500 < raw.ttl(f"pyramid_tokens:{{{handle}}}") <= 3600  # expires with the session
        sessions = [raw.get(key) for key in raw.scan_iter("pyramid_tokens:session:*")]
    assert record["generation"] == 1 and record["refresh_token"]
    assert sessions and all(record["refresh_token"].encode() not in zlib.decompress(base64.b64decode(s[1:]))
                            for s in sessions)  # the session holds the handle, not the tokens
    clock.advance(250)
    second = app.get("/token").json["access_token"]
    assert second != first
    with redis_server.client() as raw:
        [(_, refreshed)] = user_records(raw).items()
        assert len(list(raw.scan_iter("pyramid_tokens:rotated:*"))) == 1  # the rotation record, in Redis too
    assert refreshed["generation"] == 2 and refreshed["refresh_token"] != record["refresh_token"]
    assert refreshes(idp) == 1 and invalid_grants(idp) == 0


# -- Redis failures ----------------------------------------------------------------------------------
def test_user_token_request_with_redis_down_is_a_503_not_a_hang(idp, clock, start_redis):
    server = start_redis()
    app = webtest.TestApp(build_app(redis_settings(idp, server.url()), clock))
    login(app)
    app.get("/token")
    server.stop()
    started = time.monotonic()
    response = app.get("/token", headers=JSON, status=503)
    assert time.monotonic() - started < 2
    assert response.json["error"] == "temporarily_unavailable"
    assert "Redis" in response.json["error_description"]


def test_a_session_that_cannot_be_saved_after_the_view_is_logged_and_the_answer_still_goes_out(
        idp, clock, start_redis, caplog):
    """pyramid_beaker saves the session in a response callback, after every exception view: no 500 there."""
    server = start_redis()

    def extra(config):
        def visit(request):
            request.session["visits"] = request.session.get("visits", 0) + 1
            server.stop()  # Redis goes away after the view ran, before the session is saved
            return Response("answered")

        config.add_route("visit", "/visit")
        config.add_view(visit, route_name="visit")

    app = webtest.TestApp(build_app(redis_settings(idp, server.url()), clock, extra))
    login(app)
    with caplog.at_level(logging.ERROR, logger="pyramid_tokens.web.sessions"):
        response = app.get("/visit")
    assert response.status_int == 200 and response.text == "answered"
    assert "the session could not be saved at the end of the request" in caplog.text
    assert app.get("/token", headers=JSON, status=503).json["error"] == "temporarily_unavailable"


def test_a_session_store_outage_is_a_503_and_never_logs_the_user_out(idp, clock, redis_url, monkeypatch):
    """Beaker's invalidate_corrupt replaces a session whose load fails with a new one, saved once the store
    answers again: a new cookie, the user logged out for good. A read that fails because the store is
    unreachable (here: the session's first read, once, as in a failover) must be a 503 that leaves the login."""
    app = webtest.TestApp(build_app(redis_settings(idp, redis_url), clock))
    login(app)
    token = app.get("/token").json["access_token"]
    cookie = app.cookies["sid"]
    real_read, failed = JsonRedisNamespaceManager.__getitem__, []

    def read_failing_once(self, key):
        if not failed:
            failed.append(key)
            raise StoreUnavailable("session store: read at Redis failed (ConnectionError)")
        return real_read(self, key)

    monkeypatch.setattr(JsonRedisNamespaceManager, "__getitem__", read_failing_once)
    refused = app.get("/token", headers=JSON, status=503)
    assert failed and refused.json["error"] == "temporarily_unavailable"
    assert "Set-Cookie" not in refused.headers and app.cookies["sid"] == cookie
    assert app.get("/token").json["access_token"] == token  # the same login: nothing replaced the session


def test_user_token_request_with_a_hung_redis_is_a_503_within_the_socket_timeout(idp, clock, start_redis):
    server = start_redis()
    url = server.url(0, socket_timeout=0.3)
    app = webtest.TestApp(build_app(base_settings(idp, **{"tokens.store": url}), clock))
    login(app)
    server.freeze()
    try:
        started = time.monotonic()
        app.get("/token", headers=JSON, status=503)
        assert time.monotonic() - started < 2
    finally:
        server.thaw()


def test_redis_unreachable_at_start_lets_the_app_start_and_user_tokens_fail_clearly(idp):
    url = f"redis://127.0.0.1:{free_port()}/0"
    manager = TokenManager.from_settings(redis_settings(idp, url))
    started = time.monotonic()
    with pytest.raises(TokenError) as caught:
        manager.get_user_access_token(handle="some-login")
    assert time.monotonic() - started < 1
    assert isinstance(caught.value, StoreUnavailable) and "Redis" in str(caught.value)


def test_client_token_cache_down_falls_back_to_a_direct_token_request(idp, caplog):
    url = f"redis://127.0.0.1:{free_port()}/0"
    manager = TokenManager.from_settings({
        "tokens.cache": url, "tokens.clients.worker.authority": idp.issuer,
        "tokens.clients.worker.client_id": "worker", "tokens.clients.worker.client_secret": "worker-secret",
        "tokens.clients.worker.scope": "api"})
    with caplog.at_level(logging.WARNING):
        first = manager.get_client_access_token("worker")
        second = manager.get_client_access_token("worker")
    assert first.access_token and second.access_token
    assert idp.provider.counters()["by_client"]["worker"]["client_credentials"] == 2  # nothing cached
    assert "token cache unavailable" in caplog.text and "requesting a token directly" in caplog.text


# -- a holder that lost its lock -------------------------------------------------------------------
class _HeldRefresh:
    """A provider client whose refresh waits (a paused process) before it is sent."""

    def __init__(self, client):
        self.client, self.entered, self.go = client, threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(self.client, name)

    def refresh(self, *args, **kwargs):
        self.entered.set()
        assert self.go.wait(10)
        return self.client.refresh(*args, **kwargs)


def test_a_holder_whose_lease_ran_out_neither_overwrites_newer_tokens_nor_logs_the_user_out(
        idp, clock, redis_url, redis_server):
    settings = redis_settings(idp, redis_url)
    app = webtest.TestApp(build_app(settings, clock))
    login(app)
    with redis_server.client() as raw:
        [(handle, _)] = user_records(raw).items()
    paused, other = (TokenManager.from_settings(settings, clock=clock) for _ in range(2))  # two "processes"
    held = paused.user_tokens.client = _HeldRefresh(paused.user_tokens.client)
    clock.advance(250)
    result = {}
    thread = threading.Thread(target=lambda: result.update(token=paused.get_user_access_token(handle=handle)))
    thread.start()
    assert held.entered.wait(10)  # the paused process holds the lock and is about to send refresh token 1
    with redis_server.client() as raw:
        assert raw.delete(f"pyramid_tokens:lock:{{{handle}}}") == 1  # ...and its lease runs out
    renewed = other.get_user_access_token(handle=handle)  # another process takes the lock and refreshes
    held.go.set()  # the paused one wakes up and sends the used refresh token: invalid_grant
    thread.join(10)
    assert result["token"].access_token == renewed.access_token  # it uses the other's result
    with redis_server.client() as raw:
        [(_, record)] = user_records(raw).items()
    assert record["generation"] == 2 and record["access"]["access_token"] == renewed.access_token
    assert idp.provider.state.peek_refresh_token(record["refresh_token"]) is not None  # still the live one
    assert refreshes(idp) == 1 and invalid_grants(idp) == 1
    assert app.get("/token").json["access_token"] == renewed.access_token  # still logged in
