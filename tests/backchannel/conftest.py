"""Fixtures for back-channel logout: an app served on a loopback port, its browsers, and logout tokens.

``make_rp(**settings)`` builds the Pyramid app of ``tests/pyramid`` (``/token`` needs the user's token,
``/whoami`` names the user), serves it on a loopback port so the provider can POST to it, and registers
the provider's ``web`` client with that ``backchannel_logout_uri``. ``rp.browser()`` is a new browser
(its own cookies) on the same app; ``rp.login(browser, user)`` logs it in at the provider.
``sign(idp, **claims)`` signs a logout token with the provider's own key (``None`` drops a claim).
"""
from __future__ import annotations

import dataclasses
import secrets
import time

import pytest
import webtest

from pyramid_tokens.devidp.backchannel import LOGOUT_EVENT
from pyramid_tokens.devidp.server import serve

from tests.support.web import base_settings, build_app, login

JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html"}


class RelyingParty:
    """The app under test: ``wsgi``, its served ``url``, ``manager``, and browsers on it."""

    def __init__(self, idp, wsgi, server, session_required: bool = False):
        self.idp, self.wsgi, self.server = idp, wsgi, server
        self.url = server.url
        self.logout_uri = f"{server.url}/backchannel-logout"
        self.manager = wsgi.registry["pyramid_tokens.manager"]
        web = idp.provider.get_client("web")
        idp.provider.add_client(dataclasses.replace(web, backchannel_logout_uri=self.logout_uri,
                                                    backchannel_logout_session_required=session_required))

    def browser(self) -> webtest.TestApp:
        return webtest.TestApp(self.wsgi)

    def login(self, browser, username="alice"):
        login(browser, username)
        assert self.whoami(browser) == username
        return browser

    @staticmethod
    def whoami(browser):
        return browser.get("/whoami").json["userid"]  # the shared test app's /whoami

    def record(self, browser):
        """The browser's login record in the app's store (``None`` when gone)."""
        handle = self.handle(browser)
        return self.manager.user_tokens.store.get(handle) if handle else None

    def handle(self, browser):
        return browser.get("/dev-handle").json["handle"]

    def post(self, token=None, **kwargs):
        """POST a logout token the way a provider does: a form, server to server."""
        import requests

        if token is not None:
            kwargs.setdefault("data", {"logout_token": token})
        return requests.post(self.logout_uri, timeout=10, **kwargs)


def handle_view(request):
    from pyramid_tokens.web.request import session_handle

    return {"handle": session_handle(request.session)}


def rp_extra(config):
    config.add_route("dev_handle", "/dev-handle")
    config.add_view(handle_view, route_name="dev_handle", renderer="json")


@pytest.fixture
def make_rp(idp):
    running = []

    def factory(session_required=False, clock=None, extra=None, **settings):
        def configure(config):
            rp_extra(config)
            if extra is not None:
                extra(config)
        wsgi = build_app(base_settings(idp, **settings), clock, configure)
        server = serve(wsgi)
        running.append(server)
        return RelyingParty(idp, wsgi, server, session_required)

    yield factory
    for server in running:
        server.stop()


@pytest.fixture
def rp(make_rp):
    return make_rp()


def claims_for(idp, **claims):
    now = int(time.time())
    base = {"iss": idp.issuer, "aud": "web", "iat": now, "exp": now + 120, "jti": secrets.token_urlsafe(12),
            "events": {LOGOUT_EVENT: {}}}
    base.update(claims)
    return {k: v for k, v in base.items() if v is not None}


def sign(idp, headers=None, **claims):
    """A logout token signed with the provider's current key; ``typ`` ``logout+jwt`` unless ``headers`` say."""
    return idp.provider.sign(claims_for(idp, **claims), {"typ": "logout+jwt", **(headers or {})})
