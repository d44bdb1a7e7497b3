"""The application under attack and the assertions the security suite shares.

The app is the package included in a small Pyramid app: ``/public`` needs no token, ``/token``
needs the user's access token, ``/client-token`` a client-credentials token, ``/revoke`` revokes
the user's refresh token. A ``TokenError`` that the package leaves to the application (neither
``LoginRequired`` nor ``ProviderUnavailable``) is answered with HTTP 502 and its text, so tests can
read what was wrong; the two others reach the package's own challenge and 503 views.
"""
from __future__ import annotations

import html
from urllib.parse import parse_qs, urlsplit

from pyramid.config import Configurator
from pyramid.response import Response

from tests.support.provider import browser_login
from pyramid_tokens.errors import LoginRequired, ProviderUnavailable, TokenError

JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html"}


def _app_error(exc: TokenError) -> Response:
    return Response(json_body={"error": exc.error, "error_description": exc.error_description, "text": str(exc)},
                    status=502)


def token_view(request):
    try:
        token = request.get_user_access_token(force_renewal=request.params.get("force") == "1")
    except (LoginRequired, ProviderUnavailable):
        raise
    except TokenError as exc:
        return _app_error(exc)
    return Response(json_body={"access_token": token.access_token, "sub": request.authenticated_userid})


def client_token_view(request):
    try:
        token = request.get_client_access_token(force_renewal=request.params.get("force") == "1")
    except TokenError as exc:
        return _app_error(exc)
    return Response(json_body={"access_token": token.access_token})


def revoke_view(request):
    try:
        return Response(json_body={"revoked": request.revoke_user_refresh_token()})
    except TokenError as exc:
        return _app_error(exc)


def whoami_view(request):
    return Response(json_body={"userid": request.authenticated_userid})


def build_app(settings, clock=None):
    config = Configurator(settings=settings)
    if clock is not None:
        config.registry["pyramid_tokens.clock"] = clock
    config.include("pyramid_tokens")
    for name, path, view in (("public", "/public", lambda request: Response("public")),
                             ("token", "/token", token_view), ("client_token", "/client-token", client_token_view),
                             ("revoke", "/revoke", revoke_view), ("whoami", "/whoami", whoami_view)):
        config.add_route(name, path)
        config.add_view(view, route_name=name)
    return config.make_wsgi_app()


def settings_for(idp, **overrides):
    """The relying party's settings against ``idp`` (the Pyramid suite's, so both attack the same app)."""
    from ..pyramid.conftest import base_settings

    return base_settings(idp, **overrides)


# -- logging in like a browser --------------------------------------------------------------------------
def callback_path(location: str) -> str:
    parts = urlsplit(location)
    return parts.path + ("?" + parts.query if parts.query else "")


def provider_redirect(app, username="alice", came_from=None):
    """Start a login at the app and log in at the provider; the provider's redirect back (not followed)."""
    start = app.get("/login", params={"came_from": came_from} if came_from else {})
    assert start.status_int == 302, start.text
    return browser_login(start.location, username)


def login(app, username="alice", came_from=None):
    """A complete login that must succeed; returns the callback's redirect."""
    response = app.get(callback_path(provider_redirect(app, username, came_from)))
    assert response.status_int == 302, response.text
    return response


def attempt_login(app, username="alice"):
    """A login that may fail: the callback's response, whatever its status."""
    return app.get(callback_path(provider_redirect(app, username)), expect_errors=True)


def query_of(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query)


# -- assertions ------------------------------------------------------------------------------------------
def page_text(response) -> str:
    return html.unescape(response.text)


def assert_login_failed(response, message: str, status: int = 400) -> None:
    """The callback ended in the package's failure page, saying ``message``."""
    assert response.status_int == status, response.text[:500]
    assert "<title>Login failed</title>" in response.text
    assert message in page_text(response), page_text(response)[-800:]
    assert response.headers.get("Cache-Control") == "no-store"


def assert_logged_out(app) -> None:
    """No logged-in session: no identity, and a request that needs the user's token is challenged."""
    assert app.get("/whoami").json == {"userid": None}
    challenged = app.get("/token", headers=JSON, status=401)
    assert challenged.json["error"] == "login_required"
    assert app.get("/token", headers=HTML, status=302).location.startswith("http://localhost/login")


def user_record(app):
    """The one stored user token set of this app (rotation records aside)."""
    manager = app.app.registry["pyramid_tokens.manager"]
    store = manager.user_tokens.store
    records = [value for key, (_, value) in store._data.items() if not key.startswith("rotated:")]
    assert len(records) == 1, records
    return records[0]
