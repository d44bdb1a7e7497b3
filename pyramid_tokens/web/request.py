"""Request methods: the SPEC's ``request.*`` API, bound to this request's user and session."""
from __future__ import annotations

import logging
import weakref
from typing import Any

import requests
from pyramid.request import Request

from ..beakerstores import CookieSessionStore
from ..errors import LoginRequired
from ..stores import ReadOnceView, TokenStore
from ..tokens import AccessToken
from .registry import COOKIE_SESSION, MANAGER

HANDLE = "pyramid_tokens.handle"
IDENTITY = "pyramid_tokens.identity"

log = logging.getLogger(__name__)


def session_handle(session: Any) -> str | None:
    """The handle in ``session``, read with ``[]``: Beaker's session proxy serves ``.get`` by a slow ``__getattr__``."""
    try:
        return session[HANDLE]
    except KeyError:
        return None


class UserBinding:
    """This request's user: the handle in its session and the store that holds its tokens.

    It holds the request by a weak reference: a binding kept in ``request.__dict__`` that pointed
    back at its request would make every request that touches tokens a reference cycle, garbage for
    the cyclic collector instead of memory freed when the request ends.
    """

    def __init__(self, request: Request) -> None:
        self._request = weakref.ref(request)
        self.manager = request.registry[MANAGER]
        self.clock = self.manager.clock
        self.in_cookie = bool(request.registry.get(COOKIE_SESSION))
        self._alive: bool | None = None
        self._store: TokenStore | None = None
        #: per resource: the token this request already read and the time it becomes due for renewal
        self.tokens: dict[str | None, tuple[AccessToken, float | None]] = {}

    @property
    def request(self) -> Request:
        request = self._request()
        if request is None:  # only a binding kept past its request (a session or closure outliving it)
            raise LoginRequired("the request this user's tokens belong to has ended")
        return request

    def access_token(self, *, force_renewal: bool = False, resource: str | None = None) -> AccessToken:
        """The user's token. Like the session, the stored record is read at most once per request:
        later calls reuse the token while it is not due for renewal (checked on every call)."""
        if not force_renewal:
            hit = self.tokens.get(resource)
            if hit is not None and (hit[1] is None or self.clock() < hit[1]):
                return hit[0]
        users = self.manager.user_tokens
        handle = self.require_handle()
        # the deadline comes with the token: computed once per stored record, not per request
        kept = self.tokens[resource] = users.access(handle, force_renewal=force_renewal, resource=resource,
                                                    store=self.store)
        return kept[0]

    def forget_tokens(self) -> None:
        """Drop what this request remembered (revocation, logout, an ended login)."""
        self.tokens.clear()

    @property
    def handle(self) -> str | None:
        return session_handle(self.request.session)

    @property
    def store(self) -> TokenStore:
        # Made once per request (not functools.cached_property: in Python 3.11 that takes one lock shared by
        # every instance); the setting is fixed at start-up and request.session is reified.
        store = self._store
        if store is None:
            if self.in_cookie:
                store = CookieSessionStore(self.request.session, self.clock)
            else:
                # one read of the record per request, shared by the security policy and the token read
                store = ReadOnceView(self.manager.user_tokens.store)
            self._store = store
        return store

    def require_handle(self) -> str:
        try:
            handle = self.request.session[HANDLE]  # inlined session_handle(): once per token read
        except KeyError:
            handle = None
        if not handle or self.manager.user_tokens is None:
            raise LoginRequired("no user is logged in")
        if self.in_cookie and not self.login_alive():
            raise LoginRequired("this login has ended")  # a copy of a logged-out cookie
        return handle

    def login_alive(self) -> bool:
        """The session's login still stands: its token record exists (and, in a cookie, was not ended).

        Decided once per request. A server-side record is gone after logout or a refused refresh, so
        a saved copy of the old cookie (or a session an in-flight request wrote back) is anonymous.
        """
        if self._alive is None:
            handle = self.handle
            record = self.record()
            self._alive = record is not None and not (
                self.in_cookie and self.manager.logins.is_ended(handle, record))  # type: ignore[arg-type]
        return self._alive

    def record(self) -> dict[str, Any] | None:
        """The stored token set (refresh count, expiry, ID token) or ``None``."""
        handle = self.handle
        if not handle or self.manager.user_tokens is None:
            return None
        return self.manager.user_tokens.record(handle, store=self.store)


def user_binding(request: Request) -> UserBinding:
    """This request's :class:`UserBinding` (handle, store, record), made on first use and kept on the request.

    A plain function rather than a reified request property: any such property makes Pyramid derive
    a new request class for every request, a cost even routes that never touch tokens would pay.
    """
    try:
        return request.__dict__["user_tokens"]
    except KeyError:
        binding = request.__dict__["user_tokens"] = UserBinding(request)
        return binding


def get_user_access_token(request: Request, *, force_renewal: bool = False, resource: str | None = None) -> AccessToken:
    """The logged-in user's access token, refreshed first when it expires within ``tokens.refresh_before_expiration`` seconds."""
    # The valid-token path in this one frame: the token this request already read, its deadline not yet reached.
    binding = request.__dict__.get("user_tokens")
    if binding is not None and not force_renewal:
        hit = binding.tokens.get(resource)
        if hit is not None and (hit[1] is None or binding.clock() < hit[1]):
            return hit[0]
    return user_binding(request).access_token(force_renewal=force_renewal, resource=resource)


def get_exchanged_token(request: Request, name: str, *, force_renewal: bool = False) -> AccessToken:
    """The token of ``tokens.exchange.NAME`` (RFC 8693), for this request's user when the subject is the user."""
    manager = request.registry[MANAGER]
    opts = manager.options.exchange.get(name)
    if opts is None or opts.subject != "user":
        return manager.get_exchanged_token(name, force_renewal=force_renewal)
    binding = user_binding(request)
    return manager.get_exchanged_token(name, handle=binding.require_handle(), store=binding.store,
                                       force_renewal=force_renewal)


def revoke_user_refresh_token(request: Request) -> bool:
    """Revoke the user's refresh token at the provider (RFC 7009) and forget it; idempotent."""
    binding = user_binding(request)
    if not binding.handle or binding.manager.user_tokens is None:
        return False
    binding.forget_tokens()
    return binding.manager.revoke_user_refresh_token(handle=binding.handle, store=binding.store)


def get_client_access_token(request: Request, name: str | None = None, *, force_renewal: bool = False,
                            scope: str | None = None, resource: str | None = None) -> AccessToken:
    """A client-credentials token; ``name=None`` is the OIDC client's own identity."""
    manager = request.registry[MANAGER]
    return manager.get_client_access_token(name, force_renewal=force_renewal, scope=scope, resource=resource)


def http_client(request: Request, name: str) -> requests.Session:
    """The named ``requests.Session``; ``token = user`` clients act for this request's user."""
    binding = user_binding(request)
    manager = binding.manager
    if manager.options.http.get(name) is not None and manager.options.http[name].token == "user":
        session = manager.http_client(
            name, user_token=lambda force: binding.access_token(force_renewal=force))
    elif manager.options.http.get(name) is not None and manager.options.http[name].token.startswith("exchange:"):
        exchange = manager.options.http[name].token[9:]
        session = manager.http_client(
            name, user_token=lambda force: get_exchanged_token(request, exchange, force_renewal=force))
    else:
        session = manager.http_client(name)
    request.add_finished_callback(lambda _request: session.close())
    return session


class RequestMethods:
    """The SPEC's request methods, put on the application's request class once, at configuration time.

    Pyramid's ``config.add_request_method`` binds each method onto every request (``apply_request_extensions``):
    about a microsecond per method and a reference cycle per request, paid by routes that never touch tokens.
    """

    get_user_access_token = get_user_access_token
    revoke_user_refresh_token = revoke_user_refresh_token
    get_client_access_token = get_client_access_token
    get_exchanged_token = get_exchanged_token
    http_client = http_client


#: the names of :class:`RequestMethods`, for a request factory that is not a class (bound per request)
REQUEST_METHOD_NAMES = tuple(name for name in vars(RequestMethods) if not name.startswith("_"))
