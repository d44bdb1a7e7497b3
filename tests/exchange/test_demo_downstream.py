"""The demo's downstream page: the second demo API called on behalf of the user, audiences shown, never values."""
from __future__ import annotations

import re

import webtest
from pyramid.config import Configurator

from pyramid_tokens.demo.api import add_demo_api
from pyramid_tokens.devidp.server import serve

from tests.support.web import base_settings, login
from .conftest import exchanges


def demo(idp, clock, url):
    settings = base_settings(idp, **{
        "tokens.exchange.orders.audience": "orders",
        "tokens.http.orders_api.base_url": url + "/orders-api/",
        "tokens.http.orders_api.token": "exchange:orders",
    })
    config = Configurator(settings=settings)
    config.registry["pyramid_tokens.clock"] = clock
    add_demo_api(config, issuer=idp.issuer, prefix="/api")
    add_demo_api(config, issuer=idp.issuer, audience="orders", prefix="/orders-api", name="demo_orders_api")
    config.include("pyramid_tokens")
    config.include("pyramid_tokens.demo.views")
    return config.make_wsgi_app()


def test_the_downstream_page_shows_both_audiences_and_no_token_value(idp, clock):
    built = {}
    running = serve(lambda environ, start_response: built["app"](environ, start_response))  # the second API, live
    try:
        wsgi = built["app"] = demo(idp, clock, running.url)
        app = webtest.TestApp(wsgi)
        login(app)
        page = app.get("/downstream", headers={"Accept": "text/html"})
    finally:
        running.stop()
    text = re.sub(r"<[^>]+>", " ", page.text)
    assert "HTTP 200" in text
    assert re.search(r"your token: audience\s+api\b", text) and re.search(r"exchanged token: audience\s+orders", text)
    assert re.search(r"exchanged token: subject\s+alice", text)
    store = wsgi.registry["pyramid_tokens.manager"].user_tokens.store
    [record] = [value for key, (_, value) in store._data.items() if not key.startswith("rotated:")]
    for value in (record["access"]["access_token"], record["exchanged"]["orders"]["access_token"]):
        assert value not in page.text
    assert exchanges(idp) == 1
