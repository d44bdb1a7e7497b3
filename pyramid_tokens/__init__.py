"""OAuth 2.0 / OpenID Connect token management for Pyramid and for plain Python.

The core (this package minus :mod:`pyramid_tokens.web`) imports no Pyramid: workers, scripts and
notebooks use :class:`TokenManager`. ``config.include('pyramid_tokens')`` adds the Pyramid layer.
"""
from .errors import ConfigurationError, LoginRequired, TokenError
from .manager import TokenManager
from .tokens import AccessToken

__all__ = ["AccessToken", "ConfigurationError", "LoginRequired", "TokenError", "TokenManager", "includeme"]


def includeme(config):  # type: ignore[no-untyped-def]
    """``config.include('pyramid_tokens')``: the Pyramid layer (imported only here)."""
    from .web import includeme as web_includeme

    web_includeme(config)
