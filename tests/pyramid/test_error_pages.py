"""No TokenError escapes a view as a 500 (issue 20 items 1 and 11, the web side).

A login challenge for ``LoginRequired``, a 503 for everything temporarily unavailable (one view,
for the common base), a 502 for any other provider error, a failure page at login and callback.
"""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.support.provider import browser_login
from pyramid_tokens.errors import InvalidClient, LockTimeout, ProviderUnavailable, StoreUnavailable

from tests.support.web import login

JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html"}


def raising_view(request):
    raise {"store": StoreUnavailable("redis down"), "lock": LockTimeout("busy"),
           "provider": ProviderUnavailable("down"), "client": InvalidClient("bad client")}[request.params["what"]]


def with_raising_view(config):
    config.add_route("raise", "/raise")
    config.add_view(raising_view, route_name="raise")


@pytest.fixture
def app(make_webapp):
    return make_webapp(extra=with_raising_view)


@pytest.mark.parametrize("fault", ["not_json", "html_error_page", "empty_body"])
def test_a_refresh_answered_with_garbage_after_the_token_expired_is_a_502_not_a_500(app, idp, clock, fault):
    login(app)
    clock.advance(400)  # past the 300 s access token
    idp.provider.misbehave(fault, on="refresh_token", **({"status": 200} if fault == "html_error_page" else {}))
    answer = app.get("/token", headers=JSON, status=502)
    assert answer.json["error"] == "invalid_response"
    assert answer.headers["Cache-Control"] == "no-store"
    page = app.get("/token", headers=HTML, status=502)
    assert "login provider answered with something unusable" in page.text


@pytest.mark.parametrize("what, status, text", [
    ("store", 503, "token store is unavailable"), ("lock", 503, "token store is unavailable"),
    ("provider", 503, "login provider is unavailable"), ("client", 502, "answered with something unusable"),
])
def test_every_token_error_a_view_lets_through_is_a_503_or_a_502(app, what, status, text):
    page = app.get("/raise", params={"what": what}, headers=HTML, status=status)
    assert text in page.text
    if status == 503:
        assert page.headers["Retry-After"] == "5"


def test_logout_while_revocation_fails_still_logs_out(app, idp):
    login(app)
    idp.provider.misbehave("server_error", on="revoke")
    app.get("/logout").forms[0].submit(status=302)
    assert idp.provider.faults.triggered >= 1
    assert app.get("/token", headers=JSON, status=401).json["error"] == "login_required"


def test_callback_whose_code_exchange_returns_no_id_token_is_a_failure_page(app, idp):
    idp.provider.misbehave("token_without_id_token")
    start = app.get("/login")
    parts = urlsplit(browser_login(start.location, "alice"))
    page = app.get(f"{parts.path}?{parts.query}", status=400)
    assert "<title>Login failed</title>" in page.text
    assert app.get("/token", headers=JSON, status=401).json["error"] == "login_required"
