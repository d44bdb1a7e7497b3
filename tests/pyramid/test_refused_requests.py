"""A request refused by the CSRF check never touches the session (issue 20 item 12).

A cross-site POST carries no SameSite=Lax session cookie; if the check created a session, the 400's
``Set-Cookie`` would replace the victim's login cookie: any site could log the user out and orphan
the server-side session and tokens.
"""
from __future__ import annotations

import pytest
from pyramid.response import Response

from tests.support.web import login

JSON = {"Accept": "application/json"}


def revoke_view(request):  # like the demo's "revoke refresh token" button
    request.revoke_user_refresh_token()
    return Response("revoked")


def with_revoke(config):
    config.add_route("revoke_button", "/revoke-button")
    config.add_view(revoke_view, route_name="revoke_button", request_method="POST", require_csrf=True)


@pytest.fixture
def app(make_webapp):
    return make_webapp(extra=with_revoke)


def set_cookies(response):
    return [value for name, value in response.headerlist if name.lower() == "set-cookie"]


@pytest.mark.parametrize("path", ["/logout", "/revoke-button"])
def test_cross_site_post_without_the_session_cookie_is_refused_without_a_session(app, idp, path):
    login(app)
    cookie = app.cookies["sid"]
    app.reset()  # the attacker's page: the browser withholds the Lax cookie on a cross-site POST
    refused = app.post(path, {"csrf_token": "guessed"}, status=400)
    assert set_cookies(refused) == []
    app.set_cookie("sid", cookie)
    assert app.get("/token", headers=JSON).json["sub"] == "alice"  # the victim is still logged in


@pytest.mark.parametrize("path", ["/logout", "/revoke-button"])
def test_post_with_the_victims_cookie_but_without_the_token_leaves_the_login_intact(app, idp, path):
    login(app)
    before = app.get("/token", headers=JSON).json["access_token"]
    refused = app.post(path, status=400)
    assert all("sid=;" not in cookie and "Max-Age=0" not in cookie for cookie in set_cookies(refused))
    after = app.get("/token", headers=JSON).json
    assert after["sub"] == "alice" and after["access_token"] == before
    assert idp.provider.counters()["revocation"] == 0  # nothing was revoked
