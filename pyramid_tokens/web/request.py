"""Request methods: the SPEC's ``request.*`` API, bound to this request's user and session."""
from __future__ import annotations

import logging
import time
from functools import cached_property
from typing import Any

import requests
from pyramid.request import Request

from ..errors import LoginRequired, TokenError
from ..stores import SessionDictStore, TokenStore
from ..tokens import AccessToken

HANDLE = "pyramid_tokens.handle"
IDENTITY = "pyramid_tokens.identity"
#: the most of one cookie (name and value) that browsers keep (RFC 6265 §6.1: at least 4096 bytes)
COOKIE_LIMIT = 4096

log = logging.getLogger(__name__)


def session_handle(session: Any) -> str | None:
    """The handle in ``session``, read with ``[]``: Beaker's session proxy serves ``.get`` by a slow ``__getattr__``."""
    try:
        return session[HANDLE]
    except KeyError:
        return None


class CookieSessionStore(SessionDictStore):
    """Tokens inside a cookie-backed Beaker session: refuses to write a token set the browser would drop.

    Browsers silently drop a cookie over :data:`COOKIE_LIMIT` (and Beaker refuses a little above it
    with an obscure 500), so the user would seem logged in and lose the session on the next request.
    """

    def set(self, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        previous = self.session.get(self.PREFIX + key)
        super().set(key, value, ttl)
        size = beaker_cookie_size(self.session)
        if size is not None and size > COOKIE_LIMIT:
            if previous is None:
                self.session.pop(self.PREFIX + key, None)
            else:
                self.session[self.PREFIX + key] = previous
            message = (f"the user's tokens would make the session cookie about {size} bytes, over the "
                       f"{COOKIE_LIMIT} bytes browsers keep; keep tokens server-side (session.type = file or "
                       "redis_json, or tokens.store = redis://...) instead of session.type = cookie")
            log.error("pyramid_tokens: %s", message)
            raise TokenError(message, error="session_too_large")


def beaker_cookie_size(session: Any) -> int | None:
    """Name and signed value of the cookie Beaker would send for ``session`` now; ``None`` if not Beaker's."""
    inner = session._session() if callable(getattr(type(session), "_session", None)) else session
    encode, cookie = getattr(inner, "_encrypt_data", None), getattr(inner, "cookie", None)
    if encode is None or cookie is None or not hasattr(cookie, "value_encode"):
        return None
    now = time.time()  # with the keys Beaker adds when it saves
    value = encode({"_id": "0" * 32, "_creation_time": now, **inner, "_accessed_time": now})
    value = value.decode("ascii") if isinstance(value, bytes) else value
    return len(inner.key) + len(cookie.value_encode(value)[1])


class UserBinding:
    """This request's user: the handle in its session and the store that holds its tokens."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.manager = request.registry["pyramid_tokens.manager"]
        #: per resource: the token this request already read and the time it becomes due for renewal
        self._tokens: dict[str | None, tuple[AccessToken, float | None]] = {}

    def access_token(self, *, force_renewal: bool = False, resource: str | None = None) -> AccessToken:
        """The user's token. Like the session, the stored record is read at most once per request:
        later calls reuse the token while it is not due for renewal (checked on every call)."""
        if not force_renewal:
            hit = self._tokens.get(resource)
            if hit is not None and (hit[1] is None or self.manager.clock() < hit[1]):
                return hit[0]
        token = self.manager.get_user_access_token(force_renewal=force_renewal, resource=resource,
                                                   handle=self.require_handle(), store=self.store)
        self._tokens[resource] = (token, token.renewal_deadline(self.manager.options.refresh_before_expiration))
        return token

    def forget_tokens(self) -> None:
        """Drop what this request remembered (revocation, logout, an ended login)."""
        self._tokens.clear()

    @property
    def handle(self) -> str | None:
        return session_handle(self.request.session)

    @cached_property
    def store(self) -> TokenStore:
        # Computed once per request: the setting is fixed at start-up and request.session is reified.
        if self.request.registry.get("pyramid_tokens.cookie_session"):
            return CookieSessionStore(self.request.session, self.manager.clock)
        return self.manager.user_tokens.store

    def require_handle(self) -> str:
        try:
            handle = self.request.session[HANDLE]  # inlined session_handle(): once per token read
        except KeyError:
            handle = None
        if not handle or self.manager.user_tokens is None:
            raise LoginRequired("no user is logged in")
        return handle

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
    """The logged-in user's access token, refreshed first when it expires within the configured margin."""
    return user_binding(request).access_token(force_renewal=force_renewal, resource=resource)


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
    manager = request.registry["pyramid_tokens.manager"]
    return manager.get_client_access_token(name, force_renewal=force_renewal, scope=scope, resource=resource)


def http_client(request: Request, name: str) -> requests.Session:
    """The named ``requests.Session``; ``token = user`` clients act for this request's user."""
    binding = user_binding(request)
    manager = binding.manager
    if manager.options.http.get(name) is not None and manager.options.http[name].token == "user":
        session = manager.http_client(
            name, user_token=lambda force: binding.access_token(force_renewal=force))
    else:
        session = manager.http_client(name)
    request.add_finished_callback(lambda _request: session.close())
    return session
