"""Pushed Authorization Requests (RFC 9126) against the development provider, through the Pyramid login.

``oidc.par = auto`` pushes when discovery advertises the endpoint, ``require`` refuses to log in
without one, ``off`` never pushes; a provider that requires PAR is obeyed; a refused push is a
login failure page naming the error, never a 500.
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import jwt
import requests
import webtest

from pyramid_tokens.devidp.par import URN
from tests.support.provider import browser_login
from tests.support.web import base_settings, build_app, login

MANAGER = "pyramid_tokens.manager"


def web_app(idp, **overrides):
    return webtest.TestApp(build_app(base_settings(idp, **overrides)))


def record_posts(app):
    """The provider calls of the app's manager: ``[(url, headers, body)]``."""
    seen = []
    session = app.app.registry[MANAGER].transport.session
    session.hooks["response"].append(lambda r, **kw: seen.append((r.request.url, r.request.headers, r.request.body)))
    return seen


def refusal(url):
    """The provider's error page for an authorization request it refuses (HTTP 400, never the login page)."""
    page = requests.get(url, allow_redirects=False, timeout=10)
    assert page.status_code == 400 and "Request refused" in page.text, page.status_code
    return page.text


def query_of(url):
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def test_with_par_advertised_the_browser_carries_only_client_id_and_request_uri(make_idp):
    idp = make_idp(par=True)
    app = web_app(idp)
    posts = record_posts(app)
    start = app.get("/login", status=302)
    assert set(query_of(start.location)) == {"client_id", "request_uri"}
    assert query_of(start.location)["request_uri"].startswith(URN)
    pushed = [body for url, _, body in posts if url == idp.issuer + "/par"]
    assert len(pushed) == 1
    form = parse_qs(pushed[0])
    assert {"state", "nonce", "code_challenge", "redirect_uri", "scope"} <= set(form)
    assert form["code_challenge_method"] == ["S256"]
    assert [headers.get("Authorization", "")[:6] for url, headers, _ in posts if url.endswith("/par")] == ["Basic "]
    callback = browser_login(start.location, "alice")
    assert app.get(urlsplit(callback).path + "?" + urlsplit(callback).query).status_int == 302
    assert app.get("/token").json["access_token"]
    assert idp.provider.par.pushed == 1


def test_par_off_sends_the_whole_request_through_the_browser_even_when_advertised(make_idp):
    idp = make_idp(par=True)
    app = web_app(idp, **{"oidc.par": "off"})
    start = app.get("/login", status=302)
    assert {"state", "nonce", "code_challenge"} <= set(query_of(start.location))
    login(app)
    assert app.get("/token").json["access_token"] and idp.provider.par.pushed == 0


def test_par_require_against_a_provider_without_par_fails_the_login_with_a_clear_page(idp):
    app = web_app(idp, **{"oidc.par": "require"})
    page = app.get("/login", status=502)
    assert "pushed_authorization_request_endpoint" in page.text and "oidc.par = require" in page.text
    assert idp.provider.counters()["authorize"] == 0


def test_a_provider_that_requires_par_gets_it_by_default_and_refuses_requests_without_it(make_idp):
    idp = make_idp(require_par=True)
    assert idp.provider.metadata()["require_pushed_authorization_requests"] is True
    app = web_app(idp)
    login(app)
    assert app.get("/token").json["access_token"] and idp.provider.par.pushed == 1
    refused = web_app(idp, **{"oidc.par": "off"})
    start = refused.get("/login", status=302)
    assert "requires pushed authorization requests" in refusal(start.location)


def test_a_request_uri_works_once_and_only_for_the_client_that_pushed_it(make_idp):
    idp = make_idp(par=True)
    app = web_app(idp)
    start = app.get("/login", status=302)
    uri = query_of(start.location)["request_uri"]
    assert "client_id is not the client that pushed" in refusal(
        f"{idp.issuer}/authorize?client_id=worker&request_uri={uri}")
    assert "code=" in browser_login(start.location)
    assert "invalid_request_uri" in refusal(start.location)


def test_a_push_refused_for_bad_client_credentials_is_a_page_naming_invalid_client(make_idp):
    idp = make_idp(par=True)
    page = web_app(idp, **{"oidc.client_secret": "not-the-secret"}).get("/login", status=502)
    assert "invalid_client" in page.text and "not-the-secret" not in page.text
    assert idp.provider.counters()["authorize"] == 0


def test_a_push_refused_as_invalid_request_is_a_page_naming_the_error(make_idp):
    idp = make_idp(par=True)
    page = web_app(idp, **{"oidc.callback_path": "/not-registered"}).get("/login", status=502)
    assert "invalid_request" in page.text


def test_a_dpop_login_proves_its_key_at_the_push_and_gets_dpop_tokens(make_idp):
    idp = make_idp(par=True)
    app = web_app(idp, **{"oidc.dpop": "true"})
    posts = record_posts(app)
    login(app)
    [(_, headers, body)] = [post for post in posts if post[0].endswith("/par")]
    proof = jwt.decode(headers["DPoP"], options={"verify_signature": False})
    assert proof["htm"] == "POST" and proof["htu"] == idp.issuer + "/par"
    assert "dpop_jkt" in parse_qs(body)
    token = jwt.decode(app.get("/token").json["access_token"], options={"verify_signature": False})
    assert token["cnf"]["jkt"] == parse_qs(body)["dpop_jkt"][0]


def test_the_provider_refuses_a_pushed_request_uri_parameter(make_idp):
    idp = make_idp(par=True)
    reply = requests.post(idp.issuer + "/par", auth=("web", "web-secret"), timeout=5, data={
        "response_type": "code", "client_id": "web", "request_uri": URN + "x",
        "redirect_uri": "http://localhost/callback", "scope": "openid"})
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_request"
    assert idp.provider.par.pushed == 0
