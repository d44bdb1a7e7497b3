"""Logout ends the login for every copy of the session cookie, also against a request still in flight.

Issue 20 item 5: a saved copy of the pre-logout cookie (another tab, an attacker who copied it)
is anonymous and gets no token, for server-side sessions (memory, file) and for cookie sessions,
whose copy the server cannot delete (the login is on the deny list instead).
"""
from __future__ import annotations

import threading

import jwt
import pytest
import webtest

from pyramid_tokens.web.request import HANDLE

from tests.support.web import base_settings, build_app, counting_reads, login, session_settings

JSON = {"Accept": "application/json"}


class Gate:
    """Holds the in-flight request inside its view until the test lets it go."""

    def __init__(self):
        self.entered = threading.Event()
        self.go = threading.Event()


def session_keys_view(request):
    return sorted(key for key in request.session if not key.startswith("_"))


def make_extra(gate):
    def slow_view(request):
        assert request.authenticated_userid is not None  # logged in when it started
        token = request.get_user_access_token()
        gate.entered.set()
        assert gate.go.wait(10)
        if request.params.get("then") == "renew":
            token = request.get_user_access_token(force_renewal=True)
        request.session["visits"] = request.session.get("visits", 0) + 1  # Beaker saves the whole session
        return {"access_token": token.access_token}

    def extra(config):
        config.add_route("session_keys", "/session-keys")
        config.add_view(session_keys_view, route_name="session_keys", renderer="json")
        config.add_route("slow", "/slow")
        config.add_view(slow_view, route_name="slow", renderer="json")
    return extra


def session_cookie(app):
    return app.cookies["sid"]


def with_cookie(wsgi, value):
    browser = webtest.TestApp(wsgi)
    browser.set_cookie("sid", value)
    return browser


def log_out(app):
    form = app.get("/logout").forms[0]
    return form.submit(status=302)


def assert_anonymous(wsgi, cookie_value):
    browser = with_cookie(wsgi, cookie_value)
    assert browser.get("/whoami").json["userid"] is None
    refused = browser.get("/token", headers=JSON, status=401)
    assert refused.json["error"] == "login_required"


def stored_records(wsgi):
    store = wsgi.registry["pyramid_tokens.manager"].user_tokens.store
    return [key for key in getattr(store, "_data", {}) if not key.startswith("rotated:")]


@pytest.fixture(params=["memory", "file", "cookie"])
def kind(request):
    return request.param


@pytest.fixture
def gate():
    return Gate()


@pytest.fixture
def wsgi(idp, clock, kind, tmp_path, gate):
    return build_app(base_settings(idp, **session_settings(kind, tmp_path)), clock, make_extra(gate))


def test_a_copy_of_the_cookie_saved_before_logout_is_anonymous_and_gets_no_token(wsgi, idp):
    app = webtest.TestApp(wsgi)
    login(app)
    copy = session_cookie(app)
    assert with_cookie(wsgi, copy).get("/whoami").json["userid"] == "alice"
    log_out(app)
    assert_anonymous(wsgi, copy)
    assert app.get("/whoami").json["userid"] is None  # and the browser that logged out, of course
    assert stored_records(wsgi) == []


@pytest.mark.parametrize("then", ["write", "renew"])
def test_a_logout_racing_an_in_flight_request_leaves_the_old_cookie_anonymous(wsgi, idp, gate, then):
    app = webtest.TestApp(wsgi)
    login(app)
    copy = session_cookie(app)
    other_tab = with_cookie(wsgi, copy)
    answers = {}

    def in_flight():
        answers["response"] = other_tab.get("/slow", params={"then": then}, headers=JSON, expect_errors=True)

    thread = threading.Thread(target=in_flight)
    thread.start()
    assert gate.entered.wait(10)  # the other tab's request is inside its view, holding the session
    log_out(app)
    gate.go.set()
    thread.join(10)
    assert not thread.is_alive()
    assert answers["response"].status_int in (200, 401)
    # Whatever the in-flight request wrote back (the session, a cookie with the old handle), the login is over:
    assert_anonymous(wsgi, copy)
    assert_anonymous(wsgi, other_tab.cookies["sid"])
    assert stored_records(wsgi) == []


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_logout_deletes_the_old_session_from_server_side_storage(wsgi, idp):
    app = webtest.TestApp(wsgi)
    login(app)
    copy = session_cookie(app)
    assert HANDLE in with_cookie(wsgi, copy).get("/session-keys").json
    log_out(app)
    assert with_cookie(wsgi, copy).get("/session-keys").json == []  # not merely untrusted: gone


def test_the_token_record_keeps_issuer_session_id_and_login_time_for_back_channel_logout(app, idp, clock):
    login(app)
    manager = app.app.registry["pyramid_tokens.manager"]
    [record] = [value for _, value in manager.user_tokens.store._data.values()]
    assert record["iss"] == idp.issuer
    assert record["login_at"] == clock()
    claims = jwt.decode(record["id_token"], options={"verify_signature": False})
    assert record.get("sid") == claims.get("sid")  # the provider's session, when its ID token names one


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_a_refresh_in_flight_during_logout_does_not_bring_the_forgotten_tokens_back(idp, clock, kind, tmp_path):
    # Without revocation at logout, only the handle's lock keeps the refresh's write from outliving the logout.
    settings = base_settings(idp, **session_settings(kind, tmp_path), **{"tokens.revoke_on_logout": "false"})
    wsgi = build_app(settings, clock, make_extra(Gate()))
    app = webtest.TestApp(wsgi)
    login(app)
    copy = session_cookie(app)
    idp.provider.misbehave("slow", on="refresh_token", seconds=1.0, times=1)
    refreshing = threading.Thread(target=lambda: with_cookie(wsgi, copy).get("/token", params={"force": "1"},
                                                                           headers=JSON, expect_errors=True))
    refreshing.start()
    deadline = threading.Event()
    while idp.provider.faults.triggered == 0 and not deadline.wait(0.01):
        pass  # until the refresh is at the provider, holding the handle's lock
    log_out(app)
    refreshing.join(10)
    assert idp.provider.counters()["token"]["refresh_token"] == 1  # the refresh did happen
    assert stored_records(wsgi) == []
    assert_anonymous(wsgi, copy)


def test_the_security_policy_and_the_token_share_one_read_of_the_record(make_webapp, idp):
    seen = {}

    def extra(config):
        def both(request):
            with counting_reads(request.registry["pyramid_tokens.manager"].user_tokens.store) as reads:
                userid = request.authenticated_userid
                request.identity
                token = request.get_user_access_token()
                seen["reads"] = len(reads)
            return {"sub": userid, "token": bool(token.access_token)}

        def public(request):
            with counting_reads(request.registry["pyramid_tokens.manager"].user_tokens.store) as reads:
                pass
            seen["public_reads"] = len(reads)
            return {}

        config.add_route("both", "/both")
        config.add_view(both, route_name="both", renderer="json")
        config.add_route("plain", "/plain")
        config.add_view(public, route_name="plain", renderer="json")

    app = make_webapp(extra=extra)
    login(app)
    assert app.get("/both").json == {"sub": "alice", "token": True}
    assert seen["reads"] == 1  # identity checked against the record, and the token: one read together
    app.get("/plain")
    assert seen["public_reads"] == 0
