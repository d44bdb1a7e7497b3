"""Fixtures for the Pyramid layer: the demo-like app under test, driven by WebTest, logging in at the dev provider."""
from __future__ import annotations

from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.response import Response

from tests.support.provider import browser_login
from pyramid_tokens.errors import TokenError


def token_view(request):
    token = request.get_user_access_token(resource=request.params.get("resource"),
                                          force_renewal=request.params.get("force") == "1")
    return {"access_token": token.access_token, "expires_at": token.expires_at.timestamp(), "scope": token.scope,
            "sub": request.authenticated_userid}


def public_view(request):
    return Response("public")


def api_view(request):
    response = request.http_client("api").get("whoami")
    return {"status": response.status_code, "body": response.json()}


def client_token_view(request):
    try:
        token = request.get_client_access_token(request.params.get("name") or None)
    except TokenError as exc:
        return {"error": exc.error}
    return {"access_token": token.access_token}


def build_app(settings, clock=None, extra=None):
    config = Configurator(settings=settings)
    if clock is not None:
        config.registry["pyramid_tokens.clock"] = clock
    config.include("pyramid_tokens")
    config.add_route("token", "/token")
    config.add_view(token_view, route_name="token", renderer="json")
    config.add_route("public", "/public")
    config.add_view(public_view, route_name="public")
    config.add_route("api", "/call-api")
    config.add_view(api_view, route_name="api", renderer="json")
    config.add_route("client_token", "/client-token")
    config.add_view(client_token_view, route_name="client_token", renderer="json")
    if extra:
        extra(config)
    return config.make_wsgi_app()


def base_settings(idp, **overrides):
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


@pytest.fixture
def make_webapp(idp, clock):
    def factory(extra=None, **overrides):
        return webtest.TestApp(build_app(base_settings(idp, **overrides), clock, extra))
    return factory


@pytest.fixture
def app(make_webapp):
    return make_webapp()


def login(app, username="alice", came_from=None):
    """Log in through the real provider like a browser; returns the final response of the callback."""
    params = {"came_from": came_from} if came_from else {}
    start = app.get("/login", params=params)
    assert start.status_int == 302
    callback = browser_login(start.location, username)
    parts = urlsplit(callback)
    return app.get(parts.path + ("?" + parts.query if parts.query else ""))


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
