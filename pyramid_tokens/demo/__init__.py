"""The demo: a Pyramid app using pyramid_tokens, with the development provider and two demo APIs.

``pserve development.ini`` serves them all on 127.0.0.1:6543: the app at ``/``, the provider at
``/idp``, the API at ``/api`` and a second, downstream API at ``/orders-api`` (audience
``demo.orders_audience``, ``orders``), which the app calls with an exchanged token (RFC 8693).
Everything here is demo glue; the library is in the package.
"""
from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.settings import asbool


def main(global_config: dict[str, Any] | None, **settings: Any) -> Any:
    """The WSGI application (paste.app_factory ``egg:pyramid_tokens#main``)."""
    with Configurator(settings=settings) as config:
        if settings.get("devidp.issuer"):
            config.include("pyramid_tokens.devidp", route_prefix="/idp")
        if asbool(settings.get("demo.api", True)) and settings.get("oidc.authority"):
            from .api import add_demo_api

            add_demo_api(config, issuer=settings["oidc.authority"], audience=settings.get("demo.api_audience", "api"),
                         prefix="/api")
            add_demo_api(config, issuer=settings["oidc.authority"], prefix="/orders-api", name="demo_orders_api",
                         audience=settings.get("demo.orders_audience", "orders"))
        config.include("pyramid_tokens")
        config.include(".views")
    return config.make_wsgi_app()
