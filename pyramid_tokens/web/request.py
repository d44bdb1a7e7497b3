"""Request methods: the SPEC's ``request.*`` API, bound to this request's user and session."""
from __future__ import annotations

from typing import Any

import requests
from pyramid.request import Request

from ..errors import LoginRequired
from ..stores import SessionDictStore, TokenStore
from ..tokens import AccessToken

HANDLE = "pyramid_tokens.handle"
IDENTITY = "pyramid_tokens.identity"


class UserBinding:
    """This request's user: the handle in its session and the store that holds its tokens."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.manager = request.registry["pyramid_tokens.manager"]

    @property
    def handle(self) -> str | None:
        return self.request.session.get(HANDLE)

    @property
    def store(self) -> TokenStore:
        if self.request.registry.get("pyramid_tokens.cookie_session"):
            return SessionDictStore(self.request.session, self.manager.clock)
        return self.manager.user_tokens.store

    def require_handle(self) -> str:
        handle = self.handle
        if not handle or self.manager.user_tokens is None:
            raise LoginRequired("no user is logged in")
        return handle

    def record(self) -> dict[str, Any] | None:
        """The stored token set (refresh count, expiry, ID token) or ``None``."""
        handle = self.handle
        if not handle or self.manager.user_tokens is None:
            return None
        return self.manager.user_tokens.record(handle, store=self.store)


def get_user_access_token(request: Request, *, force_renewal: bool = False, resource: str | None = None) -> AccessToken:
    """The logged-in user's access token, refreshed first when it expires within the configured margin."""
    binding = request.user_tokens
    return binding.manager.get_user_access_token(force_renewal=force_renewal, resource=resource,
                                                 handle=binding.require_handle(), store=binding.store)


def revoke_user_refresh_token(request: Request) -> bool:
    """Revoke the user's refresh token at the provider (RFC 7009) and forget it; idempotent."""
    binding = request.user_tokens
    if not binding.handle or binding.manager.user_tokens is None:
        return False
    return binding.manager.revoke_user_refresh_token(handle=binding.handle, store=binding.store)


def get_client_access_token(request: Request, name: str | None = None, *, force_renewal: bool = False,
                            scope: str | None = None, resource: str | None = None) -> AccessToken:
    """A client-credentials token; ``name=None`` is the OIDC client's own identity."""
    manager = request.registry["pyramid_tokens.manager"]
    return manager.get_client_access_token(name, force_renewal=force_renewal, scope=scope, resource=resource)


def http_client(request: Request, name: str) -> requests.Session:
    """The named ``requests.Session``; ``token = user`` clients act for this request's user."""
    binding = request.user_tokens
    manager = binding.manager
    if manager.options.http.get(name) is not None and manager.options.http[name].token == "user":
        session = manager.http_client(name, handle=binding.handle or "", store=binding.store)
    else:
        session = manager.http_client(name)
    request.add_finished_callback(lambda _request: session.close())
    return session
