"""The demo's pages let ``LoginRequired`` reach the login challenge (issue 20 item 13)."""
from __future__ import annotations

import re

import webtest
from pyramid.config import Configurator

from tests.support.web import base_settings, login


def demo_app(idp, clock):
    config = Configurator(settings=base_settings(idp, **{"demo.api": "false"}))
    config.registry["pyramid_tokens.clock"] = clock
    config.include("pyramid_tokens")
    config.include("pyramid_tokens.demo.views")
    return webtest.TestApp(config.make_wsgi_app())


def test_home_after_the_revoked_refresh_token_expired_is_a_login_challenge_not_a_message(idp, clock):
    app = demo_app(idp, clock)
    login(app)
    home = app.get("/", headers={"Accept": "text/html"})
    assert "Logged in as" in home.text
    token = re.search(r"name='csrf_token' value='([^']+)'", home.text).group(1)
    app.post("/revoke", {"csrf_token": token}, status=302)
    clock.advance(400)  # the access token expired; without a refresh token only a new login renews
    challenged = app.get("/", headers={"Accept": "text/html"}, status=302)
    assert challenged.location.startswith("http://localhost/login?came_from=")
    assert "not logged in" in app.get("/", headers={"Accept": "text/html"}).text  # the identity is gone too
