"""``config.include('pyramid_tokens.devidp')`` and the ``devidp.*`` settings."""
from __future__ import annotations

import pytest
import requests
from pyramid.config import Configurator

from pyramid_tokens.devidp import DevProvider, serve
from pyramid_tokens.devidp.settings import provider_options

BASE = {"devidp.issuer": "http://127.0.0.1:6543/idp"}


def test_settings_build_clients_users_and_options():
    options = provider_options({
        **BASE,
        "devidp.audience": "https://api.example.test/",
        "devidp.device_interval": "0",
        "devidp.device_lifetime": "30",
        "devidp.device_auto_approve": "robot",
        "devidp.clients.web.secret": "s3cret",
        "devidp.clients.web.redirect_uris": "http://a/cb http://b/cb",
        "devidp.clients.web.post_logout_redirect_uris": "http://a/",
        "devidp.clients.web.access_token_lifetime": "60",
        "devidp.clients.web.refresh_token_lifetime": "none",
        "devidp.clients.svc.example.secret": "x",
        "devidp.clients.svc.example.grant_types": "client_credentials",
        "devidp.clients.svc.example.scopes": "api billing.read",
        "devidp.clients.svc.example.resources": "https://billing.example.test/",
        "devidp.users.alice.name": "Alice Liddell",
        "devidp.users.alice.role": "admin",
        "oidc.client_id": "not ours",
    })
    assert options["issuer"] == "http://127.0.0.1:6543/idp"
    assert options["audience"] == "https://api.example.test/"
    assert (options["device_interval"], options["device_lifetime"]) == (0, 30)
    assert options["device_auto_approve"] == "robot"
    clients = {client.client_id: client for client in options["clients"]}
    web, svc = clients["web"], clients["svc.example"]
    assert web.client_secret == "s3cret" and web.redirect_uris == ("http://a/cb", "http://b/cb")
    assert web.access_token_lifetime == 60 and web.refresh_token_lifetime is None
    assert svc.client_id == "svc.example" and svc.grant_types == ("client_credentials",)
    assert svc.resources == ("https://billing.example.test/",)
    (alice,) = options["users"]
    assert (alice.name, alice.email, alice.role) == ("Alice Liddell", "alice@example.test", "admin")
    DevProvider(**options)  # accepted as is


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({}, "devidp.issuer"),
        ({**BASE, "devidp.device_interval": "soon"}, "devidp.device_interval"),
        ({**BASE, "devidp.device_lifetime": "0"}, "devidp.device_lifetime"),
        ({**BASE, "devidp.clients.web.access_token_lifetime": "-1"}, "devidp.clients.web.access_token_lifetime"),
        ({**BASE, "devidp.clients.web.secrett": "x"}, "devidp.clients.web.secrett"),
        ({**BASE, "devidp.clients.web.grant_types": "password"}, "devidp.clients.web"),
        ({**BASE, "devidp.users.bob.age": "3"}, "devidp.users.bob.age"),
        ({**BASE, "devidp.clients.secret": "x"}, "devidp.clients.secret"),
    ],
)
def test_a_malformed_setting_raises_a_value_error_naming_the_key(settings, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        provider_options(settings)


def test_include_serves_the_provider_below_the_route_prefix():
    config = Configurator(settings={
        "devidp.issuer": "http://placeholder/idp",
        "devidp.clients.web.secret": "web-secret",
        "devidp.clients.web.redirect_uris": "http://localhost/callback",
    })
    config.include("pyramid_tokens.devidp", route_prefix="/idp")
    provider = config.registry["pyramid_tokens.devidp"]
    assert isinstance(provider, DevProvider)
    with serve(config.make_wsgi_app()) as server:
        provider.issuer = server.url + "/idp"
        meta = requests.get(server.url + "/idp/.well-known/openid-configuration", timeout=5).json()
        assert meta["issuer"] == provider.issuer
        token = requests.post(meta["token_endpoint"], data={"grant_type": "client_credentials"},
                              auth=("web", "web-secret"), timeout=5)
        assert token.status_code == 200
        assert requests.get(server.url + "/idp/authorize", timeout=5).status_code == 400
        assert requests.get(server.url + "/jwks", timeout=5).status_code == 404  # only below the prefix


def test_include_next_to_other_routes_keeps_them_apart():
    config = Configurator(settings=BASE)
    config.add_route("home", "/")
    config.add_view(lambda request: {"home": True}, route_name="home", renderer="json")
    config.include("pyramid_tokens.devidp", route_prefix="/idp")
    with serve(config.make_wsgi_app()) as server:
        assert requests.get(server.url + "/", timeout=5).json() == {"home": True}
        assert requests.get(server.url + "/idp/jwks", timeout=5).status_code == 200
