"""Login, callback and logout against the development provider, as a browser would do them."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.support.provider import browser_login

from tests.support.web import login


def session_cookie(app):
    return app.cookies.get("sid")


def test_full_login_lands_on_came_from_with_identity_and_tokens(app, idp):
    response = login(app, "alice", came_from="/token")
    assert response.status_int == 302
    assert urlsplit(response.location).path == "/token"
    data = app.get("/token").json
    assert data["sub"] == "alice"
    assert data["access_token"].count(".") == 2
    assert "api" in data["scope"].split()
    counters = idp.provider.counters()
    assert counters["token"]["authorization_code"] == 1
    assert counters["userinfo"] == 1


def test_login_request_uses_pkce_s256_state_and_nonce(app):
    query = parse_qs(urlsplit(app.get("/login").location).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert len(query["state"][0]) >= 32 and len(query["nonce"][0]) >= 32
    assert query["response_type"] == ["code"]


def test_session_id_changes_at_login(app):
    app.get("/login")
    before = session_cookie(app)
    assert before
    login(app)
    assert session_cookie(app) and session_cookie(app) != before


def test_session_cookie_is_httponly_and_samesite_lax(app):
    response = app.get("/login")
    cookie = [v for k, v in response.headerlist if k == "Set-Cookie"][0]
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()


@pytest.mark.parametrize("target", ["//evil.example/x", "/\\evil.example", "https://evil.example/", "https:evil.example",
                                    "%2F%2Fevil.example", "/%2F/evil.example", "/%5Cevil.example", "\\\\evil.example",
                                    "javascript:alert(1)", "/\tevil", "evil.example"])
def test_came_from_cannot_redirect_off_site(app, target):
    response = login(app, came_from=target)
    assert response.location in ("http://localhost/", "/")


def test_came_from_same_site_path_with_query_is_kept(app):
    response = login(app, came_from="/token?x=1")
    assert response.location.endswith("/token?x=1")


def test_callback_with_unknown_state_fails_without_a_login(app, idp):
    start = app.get("/login")
    callback = urlsplit(browser_login(start.location))
    query = parse_qs(callback.query)
    response = app.get("/callback", params={"code": query["code"][0], "state": "forged"}, status=400)
    assert "state" in response.text
    assert app.get("/token", headers={"Accept": "application/json"}, status=401)
    assert idp.provider.counters()["token"]["authorization_code"] == 0


def test_callback_error_from_provider_shows_failure_page(app):
    start = app.get("/login")
    callback = urlsplit(browser_login(start.location, approve=False))
    response = app.get(callback.path + "?" + callback.query, status=400)
    assert "refused" in response.text
    app.get("/token", headers={"Accept": "application/json"}, status=401)


def test_authorization_code_is_not_accepted_twice(app, idp):
    start = app.get("/login")
    callback = urlsplit(browser_login(start.location))
    app.get(callback.path + "?" + callback.query, status=302)
    # Replaying the same response: the state was consumed, so nothing reaches the provider.
    app.get(callback.path + "?" + callback.query, status=400)
    assert idp.provider.counters()["token"]["authorization_code"] == 1


def test_login_page_is_a_503_while_the_provider_is_down(make_webapp):
    app = make_webapp(**{"oidc.authority": "http://127.0.0.1:9/idp"})
    response = app.get("/login", status=503)
    assert "unavailable" in response.text


def test_app_starts_and_serves_public_pages_while_provider_is_down(make_webapp):
    app = make_webapp(**{"oidc.authority": "http://127.0.0.1:9/idp"})
    assert app.get("/public").text == "public"


def test_browser_without_login_is_redirected_to_login_with_came_from(app):
    response = app.get("/token?x=1", headers={"Accept": "text/html"}, status=302)
    parts = urlsplit(response.location)
    assert parts.path == "/login"
    assert parse_qs(parts.query)["came_from"] == ["/token?x=1"]


def test_api_caller_without_login_gets_401_with_www_authenticate(app):
    response = app.get("/token", headers={"Accept": "application/json"}, status=401)
    assert "WWW-Authenticate" in response.headers
    assert response.json["error"] == "login_required"
    xhr = app.get("/token", headers={"X-Requested-With": "XMLHttpRequest"}, status=401)
    assert xhr.json["login_url"] == "/login"


def test_logout_get_only_shows_a_confirmation_form(app):
    login(app)
    page = app.get("/logout")
    assert "<form method='post'" in page.text
    assert app.get("/token").status_int == 200  # still logged in


def test_logout_post_without_csrf_token_is_refused(app, idp):
    login(app)
    app.post("/logout", status=400)
    assert app.get("/token").status_int == 200
    assert idp.provider.counters()["revocation"] == 0


def test_logout_revokes_ends_session_and_logs_out_at_provider(app, idp):
    login(app)
    page = app.get("/logout")
    response = page.forms[0].submit()
    assert response.status_int == 302
    target = urlsplit(response.location)
    assert response.location.startswith(idp.issuer)
    query = parse_qs(target.query)
    assert query["post_logout_redirect_uri"] == ["http://localhost/"]
    assert "id_token_hint" in query and "state" in query
    assert idp.provider.counters()["revocation"] == 1
    app.get("/token", headers={"Accept": "application/json"}, status=401)
    # the provider sends the browser back only to the registered address
    back = requests.get(response.location, allow_redirects=False, timeout=5)
    assert back.headers["Location"].startswith("http://localhost/")


def test_identity_has_name_and_roles_as_principals(make_webapp):
    from pyramid.security import Allowed

    seen = {}

    def extra(config):
        def who(request):
            seen["identity"] = request.identity
            seen["admin"] = request.has_permission("admin", _Context())
            return {"ok": True}

        config.add_route("who", "/who")
        config.add_view(who, route_name="who", renderer="json")

    app = make_webapp(extra=extra)
    login(app, "admin")
    app.get("/who")
    assert seen["identity"].sub == "admin"
    assert seen["identity"].name == "Admin"
    assert "admin" in seen["identity"].roles
    assert isinstance(seen["admin"], Allowed)


class _Context:
    from pyramid.authorization import Allow

    __acl__ = [(Allow, "role:admin", "admin")]


def test_app_security_policy_is_kept(idp):
    from pyramid.config import Configurator

    from tests.support.web import base_settings

    class Mine:
        def identity(self, request):
            return "mine"

        def authenticated_userid(self, request):
            return "mine"

        def permits(self, request, context, permission):
            return True

        def remember(self, request, userid, **kw):
            return []

        def forget(self, request, **kw):
            return []

    config = Configurator(settings=base_settings(idp))
    config.include("pyramid_tokens")
    config.set_security_policy(Mine())
    config.commit()
    from pyramid.interfaces import ISecurityPolicy

    assert isinstance(config.registry.getUtility(ISecurityPolicy), Mine)


def test_missing_setting_is_a_clear_configuration_error_naming_the_key():
    from pyramid.config import Configurator
    from pyramid.exceptions import ConfigurationError

    config = Configurator(settings={"oidc.authority": "http://127.0.0.1:1/idp"})
    with pytest.raises(ConfigurationError, match="oidc.client_id"):
        config.include("pyramid_tokens")
    config = Configurator(settings={"oidc.authority": "https://x", "oidc.client_id": "a",
                                    "tokens.refresh_before_expiration": "soon"})
    with pytest.raises(ConfigurationError, match="tokens.refresh_before_expiration"):
        config.include("pyramid_tokens")
