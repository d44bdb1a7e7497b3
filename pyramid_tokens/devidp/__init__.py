"""A development OpenID provider, so the demo and the tests talk to a real provider over real HTTP.

OpenID Connect Core 1.0 and Discovery 1.0 on OAuth 2.0 (RFC 6749) with PKCE S256 (RFC 7636),
JWT access tokens (RFC 9068), revocation (RFC 7009), device authorization (RFC 8628), resource
indicators (RFC 8707), ``iss`` in authorization responses (RFC 9207) and RP-initiated logout.
Built on oauthlib's server side; the module docstrings name the sections each part implements.

For development and tests only: any user name logs in without a password, state is in memory.

Python::

    from pyramid_tokens.devidp import DevClient, start_provider
    with start_provider(clients=[DevClient("web", "web-secret", redirect_uris=["http://localhost/cb"])]) as idp:
        print(idp.issuer)

Pyramid (settings documented in :mod:`pyramid_tokens.devidp.settings`)::

    config.include("pyramid_tokens.devidp", route_prefix="/idp")
    provider = config.registry["pyramid_tokens.devidp"]

Command line: ``python -m pyramid_tokens.devidp --port 9000 --client web:web-secret:http://localhost/cb``.
"""
from __future__ import annotations

from .models import DevClient, DevUser
from .provider import DevProvider
from .server import RunningProvider, RunningServer, serve, start_provider
from .settings import provider_options
from .views import REGISTRY_KEY, add_routes, make_wsgi_app

__all__ = [
    "DevClient",
    "DevProvider",
    "DevUser",
    "RunningProvider",
    "RunningServer",
    "includeme",
    "make_wsgi_app",
    "serve",
    "start_provider",
]


def includeme(config) -> None:
    """Build the provider from the ``devidp.*`` settings and add its routes below ``route_prefix``.

    The provider is registered at once as ``config.registry["pyramid_tokens.devidp"]``; a
    malformed setting raises a ``ValueError`` naming its key.
    """
    config.registry[REGISTRY_KEY] = DevProvider(**provider_options(config.get_settings()))
    add_routes(config)
