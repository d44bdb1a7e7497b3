"""Token exchange in a Pyramid app: ``request.get_exchanged_token``, the directive, named clients, logout."""
from __future__ import annotations

import pytest
import webtest
from pyramid.exceptions import ConfigurationError as PyramidConfigurationError

from pyramid_tokens.demo.api import make_api_app
from pyramid_tokens.devidp.server import serve

from tests.support.web import base_settings, build_app, login
from .conftest import exchanges

JSON = {"Accept": "application/json"}
ORDERS = {"tokens.exchange.orders.audience": "orders"}


def downstream_view(request):
    token = request.get_exchanged_token("orders")
    claims = token.claims()
    return {"aud": claims["aud"], "sub": claims["sub"], "issued_token_type": token.issued_token_type}


def call_orders_view(request):
    answer = request.http_client("orders").get("/api/whoami", timeout=5)
    return {"status": answer.status_code, "aud": answer.json()["claims"]["aud"], "sub": answer.json()["sub"]}


def extra(config):
    config.add_route("downstream", "/downstream")
    config.add_view(downstream_view, route_name="downstream", renderer="json")
    config.add_route("call_orders", "/call-orders")
    config.add_view(call_orders_view, route_name="call_orders", renderer="json")


def webapp(idp, clock, configure=None, **settings):
    def setup(config):
        extra(config)
        if configure is not None:
            configure(config)

    return webtest.TestApp(build_app(base_settings(idp, **settings), clock, setup))


def records(app):
    store = app.app.registry["pyramid_tokens.manager"].user_tokens.store
    return {key: value for key, (_, value) in store._data.items() if not key.startswith("rotated:")}


def test_each_logged_in_user_gets_an_exchanged_token_of_their_own(idp, clock):
    wsgi = webapp(idp, clock, **ORDERS).app
    alice, bob = webtest.TestApp(wsgi), webtest.TestApp(wsgi)
    login(alice, "alice")
    login(bob, "bob")
    assert alice.get("/downstream").json == {"aud": "orders", "sub": "alice",
                                             "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"}
    assert bob.get("/downstream").json["sub"] == "bob"
    assert alice.get("/downstream").json["sub"] == "alice" and exchanges(idp) == 2


def test_an_anonymous_request_for_an_exchanged_token_is_a_login_challenge(idp, clock):
    app = webapp(idp, clock, **ORDERS)
    assert app.get("/downstream", headers=JSON, status=401).json["error"] == "login_required"
    assert "/login" in app.get("/downstream", headers={"Accept": "text/html"}, status=302).location
    assert exchanges(idp) == 0


def test_logout_removes_the_exchanged_token_and_a_new_login_exchanges_anew(idp, clock):
    app = webapp(idp, clock, **ORDERS)
    login(app)
    app.get("/downstream")
    [record] = records(app).values()
    assert "orders" in record["exchanged"]
    app.get("/logout").forms[0].submit(status=302)
    assert records(app) == {}
    assert app.get("/downstream", headers=JSON, status=401).json["error"] == "login_required"
    login(app)
    app.get("/downstream")
    assert exchanges(idp) == 2


def test_the_directive_configures_an_exchange_like_the_settings(idp, clock):
    app = webapp(idp, clock, configure=lambda config: config.add_token_exchange("orders", audience="orders"))
    login(app)
    assert app.get("/downstream").json["aud"] == "orders"
    options = app.app.registry["pyramid_tokens.manager"].options.exchange["orders"]
    assert options.subject == "user" and options.audience == "orders"


def test_the_directive_refuses_an_exchange_without_a_target(idp, clock):
    with pytest.raises(PyramidConfigurationError, match="audience or a resource"):
        webapp(idp, clock, configure=lambda config: config.add_token_exchange("orders", scope="api"))


def test_a_named_client_with_token_exchange_calls_the_downstream_api_for_the_user(idp, clock):
    orders_api = serve(make_api_app(idp.issuer, audience="orders"))
    try:
        app = webapp(idp, clock, **ORDERS, **{"tokens.http.orders.base_url": orders_api.url,
                                              "tokens.http.orders.token": "exchange:orders"})
        login(app, "bob")
        assert app.get("/call-orders").json == {"status": 200, "aud": "orders", "sub": "bob"}
        assert app.get("/call-orders").json["status"] == 200 and exchanges(idp) == 1
    finally:
        orders_api.stop()
