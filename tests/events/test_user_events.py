"""Events and metrics of a user's login, refreshes and logout, heard by real subscribers in a Pyramid app.

Subscribers are registered both ways a user would: ``config.add_subscriber(fn, EventType)`` (the
package forwards its events to ``registry.notify``) and ``TokenManager.subscribe``. Every flow talks
HTTP to the development provider; metrics are read from the OpenTelemetry SDK's in-memory reader.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import webtest

from pyramid_tokens.devidp.server import serve
from tests.support.provider import browser_login
from pyramid_tokens.events import (
    Event, LoginFailed, RefreshTokenRevoked, UserLoggedIn, UserTokenRefreshed, UserTokenRefreshFailed,
)
from tests.support.web import base_settings, build_app, login

from .conftest import event_texts

JSON = {"Accept": "application/json"}


def manager_of(app):
    return app.app.registry["pyramid_tokens.manager"]


def stored_record(app):
    store = manager_of(app).user_tokens.store
    records = [value for key, (_, value) in store._data.items() if not key.startswith("rotated:")]
    assert len(records) == 1
    return records[0]


def refreshes(idp):
    return idp.provider.counters()["token"].get("refresh_token", 0)


@pytest.fixture
def make_app(idp, clock, heard):
    """A Pyramid app whose ``config.add_subscriber(heard, Event)`` hears every event of the package."""
    def factory(subscriber=heard, extra=None, **overrides):
        def configure(config):
            config.add_subscriber(subscriber, Event)  # the shared app has /revoke
            if extra:
                extra(config)
        return webtest.TestApp(build_app(base_settings(idp, **overrides), clock, configure))
    return factory


@pytest.fixture
def app(make_app):
    return make_app()


def log_out(app):
    return app.get("/logout").forms[0].submit(status=302)


# -- login --------------------------------------------------------------------------------------------------
def test_a_login_is_one_user_logged_in_event_with_the_request_and_one_login_counted(app, heard, recorded):
    assert login(app).status_int == 302
    assert heard.names() == ["UserLoggedIn"]
    event = heard[0]
    assert event.sub == "alice" and event.claims["email"] == "alice@example.test"
    assert "nonce" not in event.claims and "at_hash" not in event.claims  # kept claims only
    assert event.request is not None and event.request.path == "/callback"  # add_subscriber sees the request
    assert recorded("pyramid_tokens.logins") == {frozenset({("pyramid_tokens.outcome", "success")}): 1}


def test_tokenmanager_subscribe_hears_the_same_events_and_unsubscribe_stops_them(app, heard):
    own = []
    manager_of(app).subscribe(UserLoggedIn, own.append)
    login(app)
    assert own == heard.of(UserLoggedIn) and len(own) == 1
    assert manager_of(app).unsubscribe(UserLoggedIn, own.append) is True
    log_out(app)
    login(app)
    assert len(own) == 1 and len(heard.of(UserLoggedIn)) == 2


@pytest.mark.parametrize("fault, check", [
    ("id_token_wrong_nonce", "nonce"),
    ("id_token_bad_signature", "signature"),
    ("authorization_error", "provider"),
])
def test_a_failed_login_is_one_login_failed_event_naming_the_check(app, idp, heard, recorded, fault, check):
    idp.provider.misbehave(fault)
    start = app.get("/login")
    callback = urlsplit(browser_login(start.location, "alice"))
    app.get(f"{callback.path}?{callback.query}", status=400)
    assert heard.names() == ["LoginFailed"]
    assert heard[0].check == check
    assert recorded("pyramid_tokens.logins") == {
        frozenset({("pyramid_tokens.outcome", "failure"), ("error.type", check)}): 1}


def test_a_callback_with_an_unknown_state_is_a_login_failed_on_state(app, heard):
    app.get("/callback", params={"state": "forged", "code": "x"}, status=400)
    assert [(e.check, e.error) for e in heard.of(LoginFailed)] == [("state", "login_failed")]


# -- refresh ------------------------------------------------------------------------------------------------
@pytest.fixture
def served(make_app):
    """The app under a real 16-thread WSGI server, and the cookie of a logged-in user."""
    test_app = make_app()
    login(test_app)
    server = serve(test_app.app, threads=16)
    yield server, f"sid={test_app.cookies['sid']}"
    server.stop()


def test_sixteen_threads_needing_a_refresh_fire_one_refreshed_event_and_count_one_refresh(
        served, idp, clock, heard, recorded):
    server, cookie = served
    requests.get(server.url + "/token", headers={"Cookie": cookie}, timeout=10).raise_for_status()
    assert heard.names() == ["UserLoggedIn"]  # a valid token read fires nothing
    clock.advance(250)  # inside the 60 s margin
    barrier = threading.Barrier(16)

    def call(_):
        barrier.wait()
        return requests.get(server.url + "/token", headers={"Cookie": cookie}, timeout=30).status_code

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(call, range(16))) == {200}
    assert refreshes(idp) == 1
    assert heard.names() == ["UserLoggedIn", "UserTokenRefreshed"]
    refreshed = heard[1]
    assert refreshed.sub == "alice" and refreshed.rotated is True and refreshed.resource is None
    assert refreshed.expires_at.timestamp() > clock()
    assert refreshed.request is not None and refreshed.request.path == "/token"
    assert recorded.count("pyramid_tokens.token.requests", pyramid_tokens__grant_type="refresh_token") == 1
    assert recorded.count("pyramid_tokens.token.requests", pyramid_tokens__grant_type="refresh_token",
                          pyramid_tokens__outcome="success") == 1
    assert recorded.count("pyramid_tokens.token.cache", pyramid_tokens__cache__result="early_renewal") == 1
    assert recorded.count("pyramid_tokens.token.cache", pyramid_tokens__token__kind="user",
                          pyramid_tokens__cache__result="hit") >= 1


def test_a_refused_refresh_is_one_failed_event_with_invalid_grant_and_the_login_ended(make_app, idp, clock, heard,
                                                                                      recorded):
    only_failures = []
    app = make_app(extra=lambda config: config.add_subscriber(only_failures.append, UserTokenRefreshFailed))
    login(app)
    requests.post(idp.issuer + "/revoke", data={"token": stored_record(app)["refresh_token"]},
                  auth=("web", "web-secret"), timeout=5).raise_for_status()
    clock.advance(250)
    app.get("/token", headers=JSON, status=401)
    app.get("/token", headers=JSON, status=401)  # the login is over: no second refresh, no second event
    failed = heard.of(UserTokenRefreshFailed)
    assert [(e.sub, e.error, e.login_ended) for e in failed] == [("alice", "invalid_grant", True)]
    assert only_failures == failed  # config.add_subscriber(fn, UserTokenRefreshFailed) hears that type only
    assert heard.of(UserTokenRefreshed) == []
    assert recorded("pyramid_tokens.refresh.failures") == {frozenset({("error.type", "invalid_grant")}): 1}
    assert recorded.count("pyramid_tokens.token.requests", pyramid_tokens__grant_type="refresh_token",
                          pyramid_tokens__outcome="invalid_grant") == 1


def test_a_provider_outage_is_a_failed_event_that_keeps_the_login(app, idp, clock, heard, recorded):
    login(app)
    first = app.get("/token").json["access_token"]
    idp.stop()
    clock.advance(250)  # due for renewal, still valid for 50 s
    assert app.get("/token").json["access_token"] == first
    failed = heard.of(UserTokenRefreshFailed)
    assert [(e.sub, e.error, e.login_ended) for e in failed] == [("alice", "temporarily_unavailable", False)]
    assert app.get("/token").json["sub"] == "alice"  # still logged in
    assert recorded("pyramid_tokens.refresh.failures") == {frozenset({("error.type", "temporarily_unavailable")}): 2}
    durations = recorded("pyramid_tokens.provider.duration")
    assert durations[frozenset({("pyramid_tokens.endpoint", "token"), ("error.type", "temporarily_unavailable")})] == 2
    assert durations[frozenset({("pyramid_tokens.endpoint", "token"), ("http.response.status_code", 200)})] == 1


# -- revocation and logout ----------------------------------------------------------------------------------
def test_revocation_fires_refresh_token_revoked_once(app, heard):
    login(app)
    assert app.get("/revoke").json == {"revoked": True}
    assert app.get("/revoke").json == {"revoked": False}
    assert [e.sub for e in heard.of(RefreshTokenRevoked)] == ["alice"]


def test_logout_with_the_providers_end_session_is_rp_initiated(app, idp, heard, recorded):
    login(app)
    sid = heard[0].sid
    response = log_out(app)
    assert response.location.startswith(idp.issuer + "/logout")
    assert heard.names() == ["UserLoggedIn", "RefreshTokenRevoked", "UserLoggedOut"]
    assert (heard[-1].sub, heard[-1].how, heard[-1].sid) == ("alice", "rp-initiated", sid)
    assert recorded("pyramid_tokens.logouts") == {frozenset({("pyramid_tokens.logout.how", "rp-initiated")}): 1}


def test_logout_at_a_provider_without_end_session_is_local(make_app, idp, heard, recorded):
    metadata = idp.provider.metadata
    idp.provider.metadata = lambda: {k: v for k, v in metadata().items() if k != "end_session_endpoint"}
    app = make_app(**{"tokens.revoke_on_logout": "false"})
    login(app)
    assert not log_out(app).location.startswith(idp.issuer)
    assert heard.names() == ["UserLoggedIn", "UserLoggedOut"]
    assert (heard[-1].sub, heard[-1].how) == ("alice", "local")
    assert recorded("pyramid_tokens.logouts") == {frozenset({("pyramid_tokens.logout.how", "local")}): 1}


def test_logging_out_without_a_login_fires_nothing(app, heard, recorded):
    log_out(app)
    assert heard == [] and recorded("pyramid_tokens.logouts") == {}


# -- subscribers that raise, and secrets --------------------------------------------------------------------
def test_a_subscriber_that_raises_changes_no_outcome_and_the_others_still_hear(make_app, idp, clock, heard, caplog):
    def broken(event):
        raise RuntimeError("subscriber bug")

    app = make_app(subscriber=broken, extra=lambda config: config.add_subscriber(heard, Event))
    manager_of(app).subscribe(Event, broken)
    assert login(app).status_int == 302
    assert app.get("/token").json["sub"] == "alice"
    clock.advance(250)
    assert app.get("/token").json["sub"] == "alice"
    assert refreshes(idp) == 1
    log_out(app)
    assert app.get("/token", headers=JSON, status=401).json["error"] == "login_required"
    assert "a subscriber of UserTokenRefreshed raised" in caplog.text
    assert heard.names() == ["UserLoggedIn", "UserTokenRefreshed", "RefreshTokenRevoked", "UserLoggedOut"]


def test_no_event_or_metric_attribute_carries_a_token_code_or_secret(app, idp, clock, heard, recorded):
    start = app.get("/login")
    callback = urlsplit(browser_login(start.location, "alice"))
    query = parse_qs(callback.query)
    app.get(f"{callback.path}?{callback.query}", status=302)
    secrets = {query["code"][0], query["state"][0], "web-secret"}
    record = stored_record(app)
    secrets |= {record["access"]["access_token"], record["refresh_token"], record["id_token"]}
    clock.advance(250)
    app.get("/token")  # a refresh: new access and refresh tokens
    record = stored_record(app)
    secrets |= {record["access"]["access_token"], record["refresh_token"]}
    app.get("/revoke")
    log_out(app)
    app.get("/callback", params={"state": query["state"][0], "code": query["code"][0]}, status=400)  # replayed
    assert heard.names() == ["UserLoggedIn", "UserTokenRefreshed", "RefreshTokenRevoked", "UserLoggedOut",
                             "LoginFailed"]
    shown = [text for event in heard for text in event_texts(event)] + recorded.attribute_values()
    for secret in secrets:
        for text in shown:
            assert secret not in text
    for text in shown:
        assert "eyJ" not in text  # no JWT of any kind (ID token, access token, assertion, proof)
