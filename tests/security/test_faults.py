"""Provider outages: down, slow, 5xx, connections dropped mid-response; discovery and JWKS recovering.

Whatever the provider does, the app keeps serving pages that need no token, requests with a
still-valid token keep working, and what fails is a 503 (or the login failure page), never a 500.
"""
from __future__ import annotations

import pytest

from pyramid_tokens import TokenManager
from pyramid_tokens.devidp import make_wsgi_app
from pyramid_tokens.devidp.server import serve
from pyramid_tokens.errors import ProviderUnavailable

from .support import (HTML, JSON, assert_logged_out, assert_login_failed, attempt_login, callback_path, login,
                      provider_redirect, user_record)

TIMEOUT = "0.5"
#: fault -> parameters: each makes a provider call fail as "temporarily unavailable"
OUTAGES = {"server_error": {}, "connection_reset": {}, "slow": {"seconds": 2.0}}


@pytest.fixture
def webapp(make_webapp):
    return make_webapp(**{"tokens.timeout": TIMEOUT})


def assert_serving_public_pages(app):
    assert app.get("/public").text == "public"


# -- refresh ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", sorted(OUTAGES))
def test_refresh_during_an_outage_keeps_the_still_valid_token(webapp, idp, clock, fault):
    login(webapp)
    before = user_record(webapp)
    clock.advance(250)  # 50 s left: inside the refresh margin, still valid
    idp.provider.misbehave(fault, on="refresh_token", **OUTAGES[fault])
    assert webapp.get("/token").json["access_token"] == before["access"]["access_token"]
    assert idp.provider.faults.triggered == 1
    assert user_record(webapp) == before
    assert_serving_public_pages(webapp)
    idp.provider.behave()
    assert webapp.get("/token").json["access_token"] != before["access"]["access_token"]  # recovered


@pytest.mark.parametrize("fault", sorted(OUTAGES))
def test_refresh_during_an_outage_of_an_expired_token_is_a_503(webapp, idp, clock, fault):
    login(webapp)
    before = user_record(webapp)
    clock.advance(400)
    idp.provider.misbehave(fault, on="refresh_token", **OUTAGES[fault])
    page = webapp.get("/token", headers=HTML, status=503)
    assert "unavailable" in page.text and page.headers["Retry-After"] == "5"
    assert webapp.get("/token", headers=JSON, status=503).json["error"] == "temporarily_unavailable"
    assert user_record(webapp) == before
    assert_serving_public_pages(webapp)
    idp.provider.behave()
    assert webapp.get("/token").json["sub"] == "alice"


def test_slow_provider_within_the_timeout_is_just_slow(make_webapp, idp, clock):
    app = make_webapp(**{"tokens.timeout": "2"})
    login(app)
    clock.advance(400)
    idp.provider.misbehave("slow", on="refresh_token", seconds=0.2)
    assert app.get("/token").json["sub"] == "alice"
    assert idp.provider.counters()["token"]["refresh_token"] == 1


# -- login --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", sorted(OUTAGES))
@pytest.mark.parametrize("on", ["authorization_code", "userinfo"])
def test_login_during_an_outage_is_a_503_page_without_a_session(webapp, idp, fault, on):
    idp.provider.misbehave(fault, on=on, **OUTAGES[fault])
    response = attempt_login(webapp)
    assert idp.provider.faults.triggered == 1
    assert_login_failed(response, "The login provider is unavailable right now", status=503)
    assert_logged_out(webapp)
    assert_serving_public_pages(webapp)
    idp.provider.behave()
    login(webapp)
    assert webapp.get("/whoami").json == {"userid": "alice"}


# -- client credentials ----------------------------------------------------------------------------------------------
def worker(idp, clock):
    return TokenManager.from_settings({
        "tokens.clients.worker.authority": idp.issuer, "tokens.clients.worker.client_id": "worker",
        "tokens.clients.worker.client_secret": "worker-secret", "tokens.timeout": TIMEOUT}, clock=clock)


@pytest.mark.parametrize("fault", sorted(OUTAGES))
def test_client_credentials_during_an_outage(idp, clock, fault):
    tm = worker(idp, clock)
    cached = tm.get_client_access_token("worker")
    idp.provider.misbehave(fault, on="client_credentials", **OUTAGES[fault])
    assert tm.get_client_access_token("worker") == cached  # valid and not due: no provider call
    clock.advance(300 - 30)  # 30 s left: due for renewal (60 s buffer), still valid
    assert tm.get_client_access_token("worker") == cached
    assert idp.provider.faults.triggered == 1
    clock.advance(60)  # expired: nothing usable is left
    with pytest.raises(ProviderUnavailable):
        tm.get_client_access_token("worker")
    idp.provider.behave()
    assert tm.get_client_access_token("worker") != cached
    tm.close()


def test_client_token_view_during_an_outage_still_serves_the_cached_token(webapp, idp, clock):
    cached = webapp.get("/client-token").json["access_token"]
    idp.provider.misbehave("server_error", on="client_credentials")
    clock.advance(270)
    assert webapp.get("/client-token").json["access_token"] == cached
    assert webapp.get("/client-token", params={"force": "1"}, status=502).json["error"] == "temporarily_unavailable"


# -- provider down (connection refused) and back -----------------------------------------------------------------------
def test_provider_down_then_back(make_idp, make_webapp, clock):
    idp = make_idp()
    app = make_webapp(idp, **{"tokens.timeout": TIMEOUT})
    login(app)
    before = user_record(app)
    port = idp.server.port
    idp.stop()

    assert_serving_public_pages(app)
    assert app.get("/token").json["access_token"] == before["access"]["access_token"]  # valid: no call needed
    clock.advance(250)
    assert app.get("/token").json["access_token"] == before["access"]["access_token"]  # due: refresh fails, kept
    clock.advance(150)
    assert app.get("/token", headers=JSON, status=503).json["error"] == "temporarily_unavailable"
    stranger = make_webapp(idp)
    assert "unavailable" in stranger.get("/login", status=503).text
    assert user_record(app) == before

    try:
        server = serve(make_wsgi_app(idp.provider, "/idp"), port=port)
    except OSError:  # pragma: no cover - the port was taken meanwhile
        pytest.skip("could not restart the provider on its port")
    try:
        assert app.get("/token").json["access_token"] != before["access"]["access_token"]  # refreshed
        assert idp.provider.counters()["token_errors"].get("invalid_grant", 0) == 0
        clock.advance(3)  # the stranger's failed discovery is retried after retry_after (2 s)
        login(stranger, "carol")
        assert stranger.get("/whoami").json == {"userid": "carol"}
    finally:
        server.stop()


def test_provider_dies_between_the_authorization_and_the_callback(make_idp, make_webapp):
    idp = make_idp()
    app = make_webapp(idp, **{"tokens.timeout": TIMEOUT})
    location = provider_redirect(app)
    idp.stop()
    response = app.get(callback_path(location), status=503)
    assert_login_failed(response, "The login provider is unavailable right now", status=503)
    assert_logged_out(app)
    assert_serving_public_pages(app)


# -- discovery and JWKS unavailable at start, recovering later -------------------------------------------------------------
@pytest.mark.parametrize("fault", ["server_error", "connection_reset", "not_json"])
def test_discovery_unavailable_at_start_then_recovering(make_webapp, idp, clock, fault):
    idp.provider.misbehave(fault, on="discovery")
    app = make_webapp(**{"tokens.timeout": TIMEOUT})  # the app starts: discovery is lazy
    assert_serving_public_pages(app)
    assert "unavailable" in app.get("/login", status=503).text
    assert "unavailable" in app.get("/login", status=503).text  # failure remembered: no second call yet
    assert idp.provider.faults.triggered == 1
    assert_logged_out(app)
    idp.provider.behave()
    assert "unavailable" in app.get("/login", status=503).text  # until retry_after has passed
    clock.advance(3)
    login(app)
    assert app.get("/whoami").json == {"userid": "alice"}


@pytest.mark.parametrize("fault", ["server_error", "connection_reset"])
def test_jwks_unavailable_at_the_first_login_then_recovering(make_webapp, idp, clock, fault):
    app = make_webapp(**{"tokens.timeout": TIMEOUT})
    idp.provider.misbehave(fault, on="jwks")
    response = attempt_login(app)
    assert idp.provider.faults.triggered == 1
    assert_login_failed(response, "The login provider is unavailable right now", status=503)
    assert_logged_out(app)
    idp.provider.behave()
    clock.advance(11)
    login(app)
    assert app.get("/whoami").json == {"userid": "alice"}


def test_jwks_that_is_not_a_key_set_fails_the_login_closed(make_webapp, idp):
    app = make_webapp()
    idp.provider.misbehave("empty_body", on="jwks")
    assert_login_failed(attempt_login(app), "JWKS: expected a JSON object")
    assert idp.provider.faults.triggered == 1
    assert_logged_out(app)
