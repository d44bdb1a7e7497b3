"""The Pyramid layer: ``config.include('pyramid_tokens')`` registers, and does nothing else.

Settings are parsed once here into :class:`~pyramid_tokens.options.Options`; the
:class:`~pyramid_tokens.TokenManager` is built in a deferred action so that the code-first
directives (``config.add_http_client``, ``config.add_client_credentials_client``) can still add to it.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from pyramid.config import Configurator, PHASE1_CONFIG, PHASE3_CONFIG
from pyramid.csrf import LegacySessionCSRFStoragePolicy
from pyramid.exceptions import ConfigurationError as PyramidConfigurationError
from pyramid.interfaces import ICSRFStoragePolicy, IRequestExtensions, IRequestFactory, IRoutesMapper, ISessionFactory
from pyramid.request import Request
from pyramid.threadlocal import get_current_request
from zope.interface import providedBy

from ..clock import system_clock
from ..errors import ConfigurationError, LoginRequired, TemporarilyUnavailable, TokenError
from ..events import Event, call_subscriber, with_request
from ..manager import TokenManager
from ..options import ClientCredentialsOptions, ExchangeOptions, HttpClientOptions, Options, SessionOptions, \
    check_references, parse_settings
from ..storeselection import user_store_for
from .csrf import SessionCookieCSRFStoragePolicy
from .registry import CLOCK, COOKIE_SESSION, MANAGER, OPTIONS, PENDING
from .request import REQUEST_METHOD_NAMES, RequestMethods

log = logging.getLogger(__name__)

#: Beaker defaults the package needs unless the application chose otherwise: a cookie with a bad
#: signature, or one that fails to decrypt, is "no session" (a new one), never a 500
BEAKER_DEFAULTS = {"session.invalidate_corrupt": "true"}
#: a login (issue 14 and logout) outlives no session: records expire with it, two weeks when unbounded
DEFAULT_SESSION_TTL = 14 * 24 * 3600.0


def includeme(config: Configurator) -> None:
    """Register routes, views, request methods, the security policy and the directives."""
    settings = config.get_settings()
    try:
        options = parse_settings(settings)
    except ConfigurationError as exc:
        raise PyramidConfigurationError(f"pyramid_tokens: {exc}") from exc
    config.registry[OPTIONS] = options
    config.registry[PENDING] = {"http": {}, "clients": {}, "exchange": {}}
    _check_session_settings(options)
    if config.registry.queryUtility(ISessionFactory) is None and options.session.configured:
        for key, value in BEAKER_DEFAULTS.items():
            settings.setdefault(key, value)
        config.include("pyramid_tokens.web.sessions")  # pyramid_beaker, with a save that cannot 500
    if type(config.registry.queryUtility(ICSRFStoragePolicy)) is LegacySessionCSRFStoragePolicy:
        # Pyramid's default (an application's own policy is kept): the same tokens, never a new session
        config.set_csrf_storage_policy(SessionCookieCSRFStoragePolicy(options.session.key))

    config.add_directive("add_http_client", add_http_client)
    config.add_directive("add_client_credentials_client", add_client_credentials_client)
    config.add_directive("add_token_exchange", add_token_exchange)

    # After every default-order action (an app's set_request_factory, its add_route calls), once.
    config.action(None, _install_request_methods, args=(config.registry,), order=PHASE3_CONFIG + 1)
    config.action(None, _routes_after_the_apps, args=(config.registry,), order=PHASE3_CONFIG + 1)
    # The one way LoginRequired becomes a challenge: an exception view (free on routes that never raise).
    config.add_view("pyramid_tokens.web.views.login_required_view", context=LoginRequired)
    # The provider or a shared store down, a lock held past the bounded wait: a 503 to retry.
    config.add_view("pyramid_tokens.web.views.temporarily_unavailable_view", context=TemporarilyUnavailable)
    # Any other TokenError escaping a view: the provider answered wrongly, a 502, never a 500.
    config.add_view("pyramid_tokens.web.views.token_error_view", context=TokenError)

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
        # OpenID Connect Back-Channel Logout 1.0: server to server, so no CSRF token (its own module)
        config.add_route("pyramid_tokens.backchannel_logout", oidc.backchannel_logout_path)
        config.add_view("pyramid_tokens.web.backchannel.backchannel_logout_view",
                        route_name="pyramid_tokens.backchannel_logout", require_csrf=False)

    config.action(None, _build_manager, args=(config.registry,), order=PHASE1_CONFIG + 1)


def _build_manager(registry: Any) -> None:
    options: Options = registry[OPTIONS]
    pending = registry[PENDING]
    options = replace(options, http={**options.http, **pending["http"]},
                      clients={**options.clients, **pending["clients"]},
                      exchange={**options.exchange, **pending["exchange"]})
    try:
        check_references(options)
    except ConfigurationError as exc:
        raise PyramidConfigurationError(f"pyramid_tokens: {exc}") from exc
    registry[OPTIONS] = options
    clock = registry.get(CLOCK) or system_clock  # tests put a FakeClock there
    manager = TokenManager(
        options,
        clock=clock,
        user_store=user_store_for(options, clock),
        session_ttl=options.session.timeout or DEFAULT_SESSION_TTL,
    )
    registry[MANAGER] = manager
    # Events reach config.add_subscriber(fn, EventType) too, carrying the request they happened in.
    manager.events.decorate = _with_current_request
    manager.events.forward = lambda event: _notify(registry, event)
    registry[COOKIE_SESSION] = manager.user_tokens is not None and options.session.in_cookie and \
        options.store == "session"


def _install_request_methods(registry: Any) -> None:
    """The request methods on the app's request class: a subclass of its request factory, made once.

    ``config.add_request_method`` would bind them onto every request instead (see :class:`RequestMethods`).
    """
    factory = registry.queryUtility(IRequestFactory, default=Request)
    if isinstance(factory, type):
        if not issubclass(factory, RequestMethods):
            methods = type(factory.__name__, (RequestMethods, factory), {"__module__": factory.__module__})
            registry.registerUtility(methods, IRequestFactory)
        return
    # A factory that is not a class has no class to extend: Pyramid binds the methods per request, as before.
    extensions = registry.queryUtility(IRequestExtensions)
    if extensions is None:
        from pyramid.config.factories import _RequestExtensions  # what add_request_method registers; no public name

        extensions = _RequestExtensions()
        registry.registerUtility(extensions, IRequestExtensions)
    for name in REQUEST_METHOD_NAMES:
        extensions.methods.setdefault(name, getattr(RequestMethods, name))


def _routes_after_the_apps(registry: Any) -> None:
    """Match the package's routes (login, callback, logout...) after the app's own, which every request tries first.

    Included first, they would be tried (and fail) ahead of each app route on every request. They move back
    only as far as no app route that answers one of their paths, so every path still reaches the route it
    reached before. Pyramid has no call to order routes: this reorders its mapper's ``routelist`` in place.
    """
    mapper = registry.queryUtility(IRoutesMapper)
    routes = mapper.get_routes() if mapper is not None else []
    places = [i for i, route in enumerate(routes) if route.name.startswith("pyramid_tokens.")]
    if not places or places != list(range(places[0], places[0] + len(places))):
        return  # none, or not added together: leave the order alone
    first, ours = places[0], routes[places[0]:places[-1] + 1]
    paths = ["/" + route.pattern.lstrip("/") for route in ours]
    after = routes[places[-1] + 1:]
    stop = next((i for i, route in enumerate(after) if any(route.match(path) is not None for path in paths)),
                len(after))
    routes[first:] = after[:stop] + ours + after[stop:]


def _notify(registry: Any, event: Event) -> None:
    """``registry.notify(event)``, each subscriber on its own: one that raises leaves the others their call."""
    for subscriber in registry.adapters.subscriptions([providedBy(event)], None):
        call_subscriber(subscriber, event)


def _with_current_request(event: Event) -> Event:
    request = get_current_request()
    return event if request is None else with_request(event, request)


def _pending(config: Configurator, kind: str, name: str, make: Any) -> None:
    """Build a directive's options now (a bad value fails at the call) and add them before the manager is built."""
    try:
        opts = make()
    except (ConfigurationError, TypeError) as exc:
        raise PyramidConfigurationError(str(exc)) from exc
    config.action((f"pyramid_tokens.{kind}", name),
                  lambda: config.registry[PENDING][kind].__setitem__(name, opts), order=PHASE1_CONFIG)


def add_http_client(config: Configurator, name: str, *, base_url: str, token: str = "user",
                    retry: Any = (), timeout: float = 10.0, replay_unsafe_methods: bool = False) -> None:
    """Directive: a named HTTP client, the code-first twin of ``tokens.http.NAME.*``."""
    _pending(config, "http", name, lambda: HttpClientOptions.create(
        name, prefix=f"add_http_client({name!r}).", base_url=base_url, token=token, retry=retry, timeout=timeout,
        replay_unsafe_methods=replay_unsafe_methods))


def add_client_credentials_client(config: Configurator, name: str, **values: Any) -> None:
    """Directive: a named client-credentials client, the twin of ``tokens.clients.NAME.*``."""
    _pending(config, "clients", name, lambda: ClientCredentialsOptions.create(
        name, prefix=f"add_client_credentials_client({name!r}).", **values))


def add_token_exchange(config: Configurator, name: str, **values: Any) -> None:
    """Directive: a token exchange (RFC 8693), the twin of ``tokens.exchange.NAME.*``."""
    _pending(config, "exchange", name, lambda: ExchangeOptions.create(
        name, prefix=f"add_token_exchange({name!r}).", **values))


def _check_session_settings(options: Options) -> None:
    """Warn about unsafe Beaker session settings: tokens deserve HttpOnly, SameSite and JSON."""
    session: SessionOptions = options.session
    if not session.configured:
        return
    if not session.json:
        log.warning("session.data_serializer is not json: Beaker will unpickle session data")
    if session.type in ("ext:redis", "ext:rediscluster"):
        log.warning("session.type = %s: Beaker pickles every value it keeps in Redis, so whoever can write to "
                    "that Redis can run code here; use session.type = redis_json", session.type)
    if not session.httponly:
        log.warning("session.httponly is not true: scripts can read the session cookie")
    if not session.samesite:
        log.warning("session.samesite is not set: use Lax")
    if options.oidc is not None and options.oidc.authority.startswith("https://") and not session.secure:
        # Beaker marks the cookie Secure only when told; it never looks at the request's scheme.
        log.warning("session.secure is not true: set it when the app is served over HTTPS")
    if session.in_cookie:
        log.warning("session.type = cookie keeps tokens in the browser cookie (4 KB limit); set "
                    "session.save_accessed_time = false so read-only requests do not re-send stale tokens")
