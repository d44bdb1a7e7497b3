"""The one Pyramid app every web-level suite drives (WebTest), its settings, and a browser-like login.

The app is the package included in a small Pyramid app, as a user would write it:

* ``/public`` needs no token; ``/whoami`` tells ``request.authenticated_userid``;
* ``/token`` returns the user's access token (``?resource=``, ``?force=1``) and lets every ``TokenError``
  through to the package's own views (login challenge, 503, 502);
* ``/client-token`` (``?name=``, ``?force=1``) and ``/revoke`` answer a ``TokenError`` themselves with
  HTTP 502 and its text, so tests can read what was wrong with those calls;
* ``/call-api`` calls the named client ``api`` (configured by the test's settings).
"""
from __future__ import annotations

from contextlib import contextmanager
from urllib.parse import urlsplit

from pyramid.config import Configurator
from pyramid.response import Response

from pyramid_tokens.errors import TokenError
from pyramid_tokens.web.registry import CLOCK

from .provider import browser_login


def _app_error(exc: TokenError) -> Response:
    return Response(json_body={"error": exc.error, "error_description": exc.error_description, "text": str(exc)},
                    status=502)


def token_view(request):
    token = request.get_user_access_token(resource=request.params.get("resource"),
                                          force_renewal=request.params.get("force") == "1")
    return Response(json_body={"access_token": token.access_token, "expires_at": token.expires_at.timestamp(),
                               "scope": token.scope, "sub": request.authenticated_userid})


def client_token_view(request):
    try:
        token = request.get_client_access_token(request.params.get("name") or None,
                                                force_renewal=request.params.get("force") == "1")
    except TokenError as exc:
        return _app_error(exc)
    return Response(json_body={"access_token": token.access_token})


def revoke_view(request):
    try:
        return Response(json_body={"revoked": request.revoke_user_refresh_token()})
    except TokenError as exc:
        return _app_error(exc)


def api_view(request):
    response = request.http_client("api").get("whoami")
    return Response(json_body={"status": response.status_code, "body": response.json()})


VIEWS = (("public", "/public", lambda request: Response("public")), ("whoami", "/whoami",
         lambda request: Response(json_body={"userid": request.authenticated_userid})),
         ("token", "/token", token_view), ("client_token", "/client-token", client_token_view),
         ("revoke", "/revoke", revoke_view), ("api", "/call-api", api_view))


def build_app(settings, clock=None, extra=None):
    """The app under test; ``clock`` replaces the package's time source, ``extra(config)`` adds to it."""
    config = Configurator(settings=settings)
    if clock is not None:
        config.registry[CLOCK] = clock
    config.include("pyramid_tokens")
    for name, path, view in VIEWS:
        config.add_route(name, path)
        config.add_view(view, route_name=name)
    if extra:
        extra(config)
    return config.make_wsgi_app()


def base_settings(idp, **overrides):
    """The relying party's settings against the development provider ``idp`` (``None`` drops a key)."""
    settings = {
        "oidc.authority": idp.issuer,
        "oidc.client_id": "web",
        "oidc.client_secret": "web-secret",
        "oidc.scope": "openid profile email offline_access api",
        "session.type": "memory",
        "session.key": "sid",
        "session.secret": "test-session-secret",
        "session.data_serializer": "json",
        "session.httponly": "true",
        "session.samesite": "Lax",
    }
    settings.update(overrides)
    return {k: v for k, v in settings.items() if v is not None}


def session_settings(kind, tmp_path):
    """Beaker settings of one session kind: ``memory``, ``file`` (in ``tmp_path``) or an encrypted ``cookie``."""
    if kind == "memory":
        return {"session.type": "memory"}
    if kind == "file":
        return {"session.type": "file", "session.data_dir": str(tmp_path / "sessions"),
                "session.lock_dir": str(tmp_path / "locks")}
    return {"session.type": "cookie", "session.validate_key": "v" * 32, "session.encrypt_key": "e" * 32}


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
    """A complete login through the real provider that must succeed; returns the callback's redirect."""
    response = app.get(callback_path(provider_redirect(app, username, came_from)))
    assert response.status_int == 302, response.text
    return response


def attempt_login(app, username="alice"):
    """A login that may fail: the callback's response, whatever its status."""
    return app.get(callback_path(provider_redirect(app, username)), expect_errors=True)


@contextmanager
def counting_reads(store):
    """Record the keys ``store.get`` is called with inside the block (reads of stored token records)."""
    reads = []
    original = store.get
    store.get = lambda key: reads.append(key) or original(key)
    try:
        yield reads
    finally:
        del store.get
