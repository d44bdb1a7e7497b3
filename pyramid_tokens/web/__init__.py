"""The Pyramid layer: ``config.include('pyramid_tokens')`` registers, and does nothing else.

Settings are parsed once here into :class:`~pyramid_tokens.options.Options`; the
:class:`~pyramid_tokens.TokenManager` is built in a deferred action so that the code-first
directives (``config.add_http_client``, ``config.add_client_credentials_client``) can still add to it.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from pyramid.config import Configurator, PHASE1_CONFIG
from pyramid.exceptions import ConfigurationError as PyramidConfigurationError
from pyramid.tweens import EXCVIEW

from ..clock import system_clock
from ..errors import ConfigurationError, LoginRequired, ProviderUnavailable
from ..manager import TokenManager, user_store_from_settings
from ..options import ClientCredentialsOptions, HttpClientOptions, Options, check_references, parse_settings
from ..errors import LockTimeout, StoreUnavailable

log = logging.getLogger(__name__)

MANAGER = "pyramid_tokens.manager"
OPTIONS = "pyramid_tokens.options"
PENDING = "pyramid_tokens.pending"


def includeme(config: Configurator) -> None:
    """Register routes, views, request methods, the tween, the security policy and the directives."""
    settings = config.get_settings()
    try:
        options = parse_settings(settings)
    except ConfigurationError as exc:
        raise PyramidConfigurationError(f"pyramid_tokens: {exc}") from exc
    config.registry[OPTIONS] = options
    config.registry[PENDING] = {"http": {}, "clients": {}}
    _check_session_settings(settings)
    if config.registry.queryUtility(_session_factory_iface()) is None and \
            any(key.startswith("session.") for key in settings):
        config.include("pyramid_beaker")

    config.add_directive("add_http_client", add_http_client)
    config.add_directive("add_client_credentials_client", add_client_credentials_client)
    config.add_tween("pyramid_tokens.web.tween.tween_factory", over=EXCVIEW)

    from . import request as req

    config.add_request_method(req.get_user_access_token, "get_user_access_token")
    config.add_request_method(req.revoke_user_refresh_token, "revoke_user_refresh_token")
    config.add_request_method(req.get_client_access_token, "get_client_access_token")
    config.add_request_method(req.http_client, "http_client")
    config.add_view("pyramid_tokens.web.views.login_required_view", context=LoginRequired)
    config.add_view("pyramid_tokens.web.views.provider_unavailable_view", context=ProviderUnavailable)
    # a shared token store (Redis) down, or a lock held past the bounded wait: a 503 to retry too
    config.add_view("pyramid_tokens.web.views.provider_unavailable_view", context=StoreUnavailable)
    config.add_view("pyramid_tokens.web.views.provider_unavailable_view", context=LockTimeout)

    if options.oidc is not None:
        from .security import OidcSecurityPolicy

        config.set_security_policy(OidcSecurityPolicy(options.oidc))
        oidc = options.oidc
        config.add_route("pyramid_tokens.login", oidc.login_path)
        config.add_route("pyramid_tokens.callback", oidc.callback_path)
        config.add_route("pyramid_tokens.logout", oidc.logout_path)
        config.add_view("pyramid_tokens.web.views.login_view", route_name="pyramid_tokens.login")
        config.add_view("pyramid_tokens.web.views.callback_view", route_name="pyramid_tokens.callback")
        config.add_view("pyramid_tokens.web.views.logout_view", route_name="pyramid_tokens.logout")

    config.action(None, _build_manager, args=(config.registry, settings), order=PHASE1_CONFIG + 1)


def _session_factory_iface() -> Any:
    from pyramid.interfaces import ISessionFactory

    return ISessionFactory


def _build_manager(registry: Any, settings: dict[str, Any]) -> None:
    options: Options = registry[OPTIONS]
    pending = registry[PENDING]
    options = replace(options, http={**options.http, **pending["http"]},
                      clients={**options.clients, **pending["clients"]})
    try:
        check_references(options)
    except ConfigurationError as exc:
        raise PyramidConfigurationError(f"pyramid_tokens: {exc}") from exc
    registry[OPTIONS] = options
    clock = registry.get("pyramid_tokens.clock") or system_clock  # tests put a FakeClock there
    manager = TokenManager(
        options,
        clock=clock,
        user_store=user_store_from_settings(settings, options, clock),
        session_ttl=float(settings["session.timeout"]) if settings.get("session.timeout") else 14 * 24 * 3600,
    )
    registry[MANAGER] = manager
    registry["pyramid_tokens.cookie_session"] = manager.user_tokens is not None and \
        str(settings.get("session.type") or "memory") == "cookie" and options.store == "session"


def add_http_client(config: Configurator, name: str, *, base_url: str, token: str = "user",
                    retry: Any = (), timeout: float = 10.0, replay_unsafe_methods: bool = False) -> None:
    """Directive: a named HTTP client, the code-first twin of ``tokens.http.NAME.*``."""
    try:
        opts = HttpClientOptions.create(name, prefix=f"add_http_client({name!r}).", base_url=base_url, token=token,
                                        retry=retry, timeout=timeout, replay_unsafe_methods=replay_unsafe_methods)
    except ConfigurationError as exc:
        raise PyramidConfigurationError(str(exc)) from exc
    config.action(("pyramid_tokens.http", name),
                  lambda: config.registry[PENDING]["http"].__setitem__(name, opts), order=PHASE1_CONFIG)


def add_client_credentials_client(config: Configurator, name: str, **values: Any) -> None:
    """Directive: a named client-credentials client, the twin of ``tokens.clients.NAME.*``."""
    try:
        opts = ClientCredentialsOptions.create(name, prefix=f"add_client_credentials_client({name!r}).", **values)
    except (ConfigurationError, TypeError) as exc:
        raise PyramidConfigurationError(str(exc)) from exc
    config.action(("pyramid_tokens.client", name),
                  lambda: config.registry[PENDING]["clients"].__setitem__(name, opts), order=PHASE1_CONFIG)


def _check_session_settings(settings: dict[str, Any]) -> None:
    """Warn about unsafe Beaker session settings: tokens deserve HttpOnly, SameSite and JSON."""
    if not any(key.startswith("session.") for key in settings):
        return
    kind = str(settings.get("session.type") or "")
    if str(settings.get("session.data_serializer", "pickle")).lower() != "json":
        if kind == "redis_json":
            raise PyramidConfigurationError("pyramid_tokens: session.type = redis_json needs "
                                            "session.data_serializer = json (it never unpickles)")
        log.warning("session.data_serializer is not json: Beaker will unpickle session data")
    if kind in ("ext:redis", "ext:rediscluster"):
        log.warning("session.type = %s: Beaker pickles every value it keeps in Redis, so whoever can write to "
                    "that Redis can run code here; use session.type = redis_json", kind)
    if str(settings.get("session.httponly", "false")).lower() not in ("true", "1", "yes", "on"):
        log.warning("session.httponly is not true: scripts can read the session cookie")
    if not settings.get("session.samesite"):
        log.warning("session.samesite is not set: use Lax")
    if str(settings.get("oidc.authority") or "").startswith("https://") and \
            str(settings.get("session.secure", "false")).lower() not in ("true", "1", "yes", "on"):
        # Beaker marks the cookie Secure only when told; it never looks at the request's scheme.
        log.warning("session.secure is not true: set it when the app is served over HTTPS")
    if str(settings.get("session.type") or "") == "cookie":
        log.warning("session.type = cookie keeps tokens in the browser cookie (4 KB limit); set "
                    "session.save_accessed_time = false so read-only requests do not re-send stale tokens")
