"""``TokenManager``: everything the package does, without Pyramid.

Workers, scripts and notebooks use it directly; the Pyramid layer builds one per application and
binds it to requests. It owns the provider clients (one discovery per authority), the client token
cache, the user token store and the named HTTP clients.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Mapping

import requests

from . import metrics
from .backchannel import validate_logout_token
from .clienttokens import ClientTokens
from .clock import Clock, system_clock
from .discovery import Discovery
from .dpop import DPoPNonces
from .errors import ConfigurationError, LoginRequired
from .events import LOGOUT_APPLICATION, LOGOUT_BACKCHANNEL, E, Event, EventHub, UserLoggedIn, UserLoggedOut
from .exchange import TokenExchanges, exchange_clients
from .httpclient import NamedClient
from .oidc import OidcClient
from .logins import Logins, index_keys
from .options import ExchangeOptions, Options, parse_settings, read_ini
from .storeselection import client_cache_for, user_store_for
from .tokenclient import TokenClient
from .stores import MemoryStore, TokenStore
from .tokens import AccessToken
from .transport import Transport
from .usertokens import LOCAL_USER, UserTokens

log = logging.getLogger(__name__)


class TokenManager:
    """Client-credentials tokens, user tokens and named HTTP clients for one configuration."""

    def __init__(self, options: Options, *, clock: Clock = system_clock, session: requests.Session | None = None,
                 user_store: TokenStore | None = None, client_cache: TokenStore | None = None,
                 rotations: TokenStore | None = None, session_ttl: float | None = None) -> None:
        self.options = options
        self.clock = clock
        #: every event of this manager's flows (:mod:`pyramid_tokens.events`); see :meth:`subscribe`
        self.events = EventHub()
        self.transport = Transport(session, timeout=options.timeout)
        self._discoveries: dict[str, Discovery] = {}
        self.oidc: OidcClient | None = None
        #: DPoP server nonces per origin (RFC 9449 §8-9), shared by token requests and named HTTP clients
        self.dpop_nonces = DPoPNonces()
        if options.oidc is not None:
            self.oidc = OidcClient(options.oidc, transport=self.transport, clock=clock,
                                   discovery=self.discovery(options.oidc.authority), dpop_nonces=self.dpop_nonces)
        clients: dict[str | None, TokenClient] = {}
        for name, opts in options.clients.items():
            if name is None and self.oidc is not None:
                clients[None] = self.oidc
                continue
            clients[name] = TokenClient(opts.credentials, transport=self.transport, clock=clock,
                                        discovery=self.discovery(opts.authority) if opts.authority else None,
                                        token_endpoint=opts.token_endpoint, dpop_nonces=self.dpop_nonces)
        if client_cache is None:
            client_cache = client_cache_for(options, clock)
        self.client_tokens = ClientTokens(
            clients, client_cache, clock=clock, renew_before=options.cache_lifetime_buffer,
            defaults={name: (o.scope, o.resource) for name, o in options.clients.items()}, events=self.events,
        )
        if type(self).get_client_access_token is TokenManager.get_client_access_token:  # an override in a subclass wins
            self.get_client_access_token = self.client_tokens.get  # the same call, a frame less (~250 ns in all)
        self.user_tokens: UserTokens | None = None
        if self.oidc is not None:
            store = user_store if user_store is not None else MemoryStore(clock)  # an empty store is falsy
            if rotations is None:
                rotations = store if user_store is not None else MemoryStore(clock)
            self.user_tokens = UserTokens(
                self.oidc, store, rotations=rotations,
                clock=clock, renew_before=options.refresh_before_expiration, ttl=session_ttl,
                validate_id_token=self.oidc.validate_refreshed_id_token, events=self.events,
            )
        #: token exchanges (RFC 8693): the exchanging client per exchange; tokens cached with the login
        self.exchanges = TokenExchanges(
            options.exchange,
            exchange_clients(options.exchange, default=self.oidc, clients=clients, make=self._exchange_client),
            users=self.user_tokens, client_tokens=self.client_tokens, clock=clock,
            renew_before=options.refresh_before_expiration,
        )
        #: ended logins (logout, back-channel logout): beside the user tokens, or for cookie sessions in the
        #: client token cache, the one store that is server-side then (shared with tokens.cache = redis://...)
        self.logins = Logins(user_store if user_store is not None else client_cache, clock=clock, ttl=session_ttl)
        self._named: dict[str, NamedClient] = {}
        self._named_lock = threading.Lock()
        self._told_backchannel_support = False

    def _exchange_client(self, opts: ExchangeOptions, at: TokenClient) -> TokenClient:
        """The client of an exchange with credentials of its own, at the provider of ``at``."""
        assert opts.credentials is not None
        return TokenClient(opts.credentials, transport=self.transport, clock=self.clock, discovery=at.discovery,
                           token_endpoint=at._token_endpoint, dpop_nonces=self.dpop_nonces)

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], **kwargs: Any) -> "TokenManager":
        """From a settings dict with ``oidc.*`` and ``tokens.*`` keys (``session.*`` picks the user store)."""
        options = parse_settings(settings)
        clock = kwargs.get("clock", system_clock)
        if "user_store" not in kwargs and options.store != "session":
            kwargs["user_store"] = user_store_for(options, clock)
        return cls(options, **kwargs)

    @classmethod
    def from_ini(cls, path: str, section: str = "app:main", **kwargs: Any) -> "TokenManager":
        """From an .ini file, as ``pserve`` reads it (``%(here)s`` is the file's folder)."""
        return cls.from_settings(read_ini(path, section), **kwargs)

    def discovery(self, authority: str) -> Discovery:
        """The (shared) discovery of ``authority``."""
        key = authority.rstrip("/")
        if key not in self._discoveries:
            self._discoveries[key] = Discovery(key, self.transport, clock=self.clock)
        return self._discoveries[key]

    # -- events ------------------------------------------------------------------------------------
    def subscribe(self, event_type: type[E], subscriber: Callable[[E], Any]) -> Callable[[E], Any]:
        """Call ``subscriber(event)`` for each event of ``event_type`` (or a subclass); returns the subscriber.

        A subscriber that raises is logged and changes nothing in the token flow.
        """
        return self.events.subscribe(event_type, subscriber)

    def unsubscribe(self, event_type: type[Event], subscriber: Callable[[Any], Any]) -> bool:
        """Stop calling ``subscriber`` for ``event_type``; False when it was not subscribed."""
        return self.events.unsubscribe(event_type, subscriber)

    def logged_out(self, sub: str | None, how: str, *, sid: str | None = None) -> None:
        """Tell subscribers and the ``pyramid_tokens.logouts`` counter that a login ended (``how``: see events)."""
        metrics.logout(how)
        self.events.emit(UserLoggedOut(sub=sub, how=how, sid=sid))

    # -- tokens ------------------------------------------------------------------------------------
    def get_client_access_token(self, name: str | None = None, *, force_renewal: bool = False,
                                scope: str | None = None, resource: str | None = None,
                                parameters: Mapping[str, Any] | None = None) -> AccessToken:
        """A client-credentials token of ``name`` (``None``: the OIDC client's own identity)."""
        return self.client_tokens.get(name, force_renewal=force_renewal, scope=scope, resource=resource,
                                      parameters=parameters)

    def _users(self) -> UserTokens:
        if self.user_tokens is None:
            raise LoginRequired("user tokens need the oidc.* login settings")
        return self.user_tokens

    def get_user_access_token(self, *, force_renewal: bool = False, resource: str | None = None,
                              handle: str = LOCAL_USER, store: TokenStore | None = None) -> AccessToken:
        """The user's access token, refreshed first when due (plain Python: the ``device_login`` user)."""
        users = self.user_tokens if self.user_tokens is not None else self._users()  # one call less per token
        return users.access(handle, force_renewal=force_renewal, resource=resource, store=store)[0]

    def get_exchanged_token(self, name: str, *, handle: str | None = None, store: TokenStore | None = None,
                            force_renewal: bool = False) -> AccessToken:
        """The token of the exchange ``tokens.exchange.NAME`` (RFC 8693), exchanged first when due.

        For ``subject = user`` it acts for the login ``handle`` (plain Python: the ``device_login`` user).
        """
        return self.exchanges.get(name, handle=LOCAL_USER if handle is None else handle, store=store,
                                  force_renewal=force_renewal)

    def revoke_user_refresh_token(self, *, handle: str = LOCAL_USER, store: TokenStore | None = None) -> bool:
        """Revoke the user's refresh token at the provider and forget it."""
        return self._users().revoke_refresh_token(handle, store=store)

    def end_login(self, handle: str = LOCAL_USER, *, store: TokenStore | None = None,
                  client_side: bool = False) -> None:
        """Forget the login's tokens (logout; a refused refresh); ``client_side``: also record it as ended.

        The record is deleted under the handle's lock, the lock every write of it takes after
        re-reading it: a refresh in flight finishes first, and nothing it writes outlives this.
        A record kept client-side (a cookie session) lives on in every copy of the cookie, so the
        handle goes on the deny list (:mod:`pyramid_tokens.logins`) too.
        """
        users = self._users()
        store = users.store if store is None else store
        with store.lock(handle, users.lock_timeout):
            record = store.get(handle)
            users.forget(handle, store=store)
        for key in index_keys(record or {}):  # the login leaves the back-channel logout index with its record
            store.index_remove(key, [handle], users.ttl)
        if client_side:
            self.logins.end(handle)

    # -- back-channel logout (OpenID Connect Back-Channel Logout 1.0) ---------------------------------
    def end_sessions(self, sub: str | None = None, sid: str | None = None, *, iss: str | None = None,
                     how: str = LOGOUT_APPLICATION) -> int:
        """End every login of the provider session ``sid`` (of ``sub``, when both), or else of user ``sub``.

        Each login's token record is deleted (:meth:`end_login`) in the store every process shares,
        so its session is anonymous on its next request anywhere; logins kept in cookie sessions are
        ended by a deny-list entry instead (:mod:`pyramid_tokens.logins`), which they cannot be counted
        by. Returns how many server-side logins ended; fires one ``UserLoggedOut`` per login.
        """
        if not sub and not sid:
            raise ValueError("end_sessions() needs a sub or a sid")
        users = self._users()
        iss = iss or self.oidc.discovery.issuer  # type: ignore[union-attr]
        self.logins.end_sessions(iss, sub=sub, sid=sid)
        store = users.store
        ended = []
        for handle in self.logins.handles(store, iss, sub=sub, sid=sid):
            record = store.get(handle)
            if record is None or record.get("iss") != iss or (sid and record.get("sid") != sid) or \
                    (sub and record.get("sub") != sub):
                continue  # already gone, or (a sid also naming a sub) another user's: not this logout's
            self.end_login(handle, store=store)
            ended.append(handle)
            self.logged_out(record.get("sub"), how, sid=record.get("sid"))
        return len(ended)

    def backchannel_logout(self, logout_token: Any) -> int:
        """Validate a provider's logout token (§2.6) and end the logins it names; how many ended.

        Raises :class:`~pyramid_tokens.errors.InvalidLogoutToken` (``check`` names the failed check).
        """
        oidc = self.oidc
        if oidc is None or self.user_tokens is None:
            raise LoginRequired("back-channel logout needs the oidc.* login settings")
        if not self._told_backchannel_support:
            self._told_backchannel_support = True
            metadata = oidc.discovery.metadata()
            log.info("back-channel logout: the provider advertises backchannel_logout_supported=%s, "
                     "backchannel_logout_session_supported=%s (logout tokens are accepted either way)",
                     metadata.get("backchannel_logout_supported") is True,
                     metadata.get("backchannel_logout_session_supported") is True)
        claims = validate_logout_token(logout_token, discovery=oidc.discovery,
                                       client_id=self.options.oidc.credentials.client_id,  # type: ignore[union-attr]
                                       now=self.clock(), first_use=self.logins.first_use)
        return self.end_sessions(sub=claims.sub, sid=claims.sid, iss=claims.iss, how=LOGOUT_BACKCHANNEL)

    # -- named HTTP clients --------------------------------------------------------------------------
    def named_client(self, name: str) -> NamedClient:
        """The shared :class:`NamedClient` (one connection pool) of ``tokens.http.NAME``."""
        client = self._named.get(name)
        if client is None:
            with self._named_lock:
                client = self._named.get(name)
                if client is None:
                    try:
                        opts = self.options.http[name]
                    except KeyError:
                        raise ConfigurationError(f"tokens.http.{name}", "no such named HTTP client") from None
                    client = self._named[name] = NamedClient(
                        name, opts.base_url, retry=opts.retry, timeout=opts.timeout,
                        replay_unsafe_methods=opts.replay_unsafe_methods)
        return client

    def token_source(self, name: str, *, handle: str = LOCAL_USER,
                     store: TokenStore | None = None) -> Callable[[bool], AccessToken] | None:
        """What the named client ``name`` attaches: ``(force_renewal) -> AccessToken``."""
        opts = self.options.http[name]
        if opts.token == "none":
            return None
        if opts.token == "user":
            return lambda force: self.get_user_access_token(force_renewal=force, handle=handle, store=store)
        if opts.token.startswith("exchange:"):
            exchange = opts.token[9:]
            return lambda force: self.get_exchanged_token(exchange, force_renewal=force, handle=handle, store=store)
        client = opts.client_name
        return lambda force: self.get_client_access_token(client, force_renewal=force)

    def http_client(self, name: str, *, handle: str = LOCAL_USER, store: TokenStore | None = None,
                    user_token: Callable[[bool], AccessToken] | None = None) -> requests.Session:
        """A ``requests.Session`` for ``tokens.http.NAME``: base URL, token, retries, renewal on 401.

        ``user_token(force_renewal)`` replaces the user token source of a ``token = user`` (or
        ``exchange:NAME``) client (the Pyramid layer passes the request's, bound to its login).
        """
        client = self.named_client(name)
        opts = self.options.http[name]
        credentials = None  # whose token the client attaches: its TLS client certificate goes along (RFC 8705)
        if opts.token == "user" and self.options.oidc is not None:
            credentials = self.options.oidc.credentials
        elif opts.token.startswith("client") and opts.client_name in self.options.clients:
            credentials = self.options.clients[opts.client_name].credentials
        elif opts.token.startswith("exchange:"):
            credentials = self.exchanges.clients[opts.token[9:]].credentials
        bound = opts.token == "user" or opts.token.startswith("exchange:")  # tokens of a login
        source = user_token if user_token is not None and bound else self.token_source(name, handle=handle, store=store)
        return client.session(source,
                              cert=credentials.cert if credentials is not None else None, dpop_nonces=self.dpop_nonces)

    def close(self) -> None:
        """Close connection pools."""
        for client in self._named.values():
            client.close()
        self.transport.session.close()

    def __repr__(self) -> str:
        names = ", ".join(repr(n or "(oidc)") for n in self.options.clients)
        return (f"TokenManager(authority={self.options.oidc.authority if self.options.oidc else None!r}, "
                f"clients=[{names}], http=[{', '.join(map(repr, self.options.http))}])")

    def device_login(self, *, scope: str | None = None, display: Callable[[Any], Any] | None = None,
                     sleep: Callable[[float], None] | None = None, timeout: float | None = None) -> AccessToken:
        """Log a user in with the device flow (RFC 8628); see :func:`pyramid_tokens.device.device_login`."""
        from .device import device_login

        token = device_login(self.oidc, self.user_tokens, scope=scope, display=display, timeout=timeout,
                             **({"sleep": sleep} if sleep is not None else {}))
        record = self._users().record(LOCAL_USER) or {}
        metrics.login("success")
        self.events.emit(UserLoggedIn(sub=record.get("sub") or "", claims={}))
        return token

    def _repr_html_(self) -> str:
        """Jupyter display: authority, clients and cached tokens, the user, named HTTP clients; no values."""
        from .display import token_manager_html

        return token_manager_html(self)
