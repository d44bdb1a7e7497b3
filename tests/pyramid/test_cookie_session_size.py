"""Cookie-backed sessions: a token set too big for the browser's 4 KB cookie is refused with a clear error."""
from __future__ import annotations

import logging
import secrets
from urllib.parse import urlsplit

import webtest

from pyramid_tokens.devidp import DevUser
from tests.support.provider import browser_login, standard_clients
from pyramid_tokens.beakerstores import COOKIE_LIMIT

from tests.support.web import base_settings, build_app, login

COOKIE_SESSION = {"session.type": "cookie", "session.validate_key": "k" * 32, "session.encrypt_key": "e" * 32,
                  "session.save_accessed_time": "false"}


def login_refused(app, username):
    start = app.get("/login")
    parts = urlsplit(browser_login(start.location, username))
    return app.get(f"{parts.path}?{parts.query}", status=400)


def cookie_app(idp, clock):
    return webtest.TestApp(build_app(base_settings(idp, **COOKIE_SESSION), clock))


def test_login_whose_tokens_fit_sets_a_cookie_under_the_browser_limit(idp, clock):
    app = cookie_app(idp, clock)
    response = login(app)
    cookie = [value for name, value in response.headerlist if name == "Set-Cookie"][0]
    assert len(cookie.split(";")[0].strip()) <= COOKIE_LIMIT
    assert app.get("/token").json["access_token"]


def test_login_whose_tokens_overflow_the_cookie_is_refused_with_the_fix_named(make_idp, clock, caplog):
    # a long display name swells the ID token and the claims kept in the session past 4 KB
    idp = make_idp(clients=standard_clients(), users=[DevUser("bob", name="Bob " + secrets.token_urlsafe(700))])
    app = cookie_app(idp, clock)
    with caplog.at_level(logging.ERROR, logger="pyramid_tokens"):
        refused = login_refused(app, "bob")
    assert refused.status_int == 400  # a failure page naming the fix, never a 500
    assert "4096" in refused.text and "server-side" in refused.text
    assert any("over the 4096 bytes browsers keep" in record.getMessage() for record in caplog.records)
    # nothing half-written reaches the browser: it is not logged in
    assert app.get("/token", headers={"Accept": "application/json"}, status=401).json["error"] == "login_required"
