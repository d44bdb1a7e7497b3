"""A Pyramid 2 security policy: identity from the OpenID Connect login, roles as principals.

Registered by ``config.include('pyramid_tokens')``; an application that calls
``config.set_security_policy`` itself keeps its own (the includer's action wins).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from pyramid.authorization import ACLHelper, Authenticated, Everyone
from pyramid.request import Request

from ..options import OidcOptions
from .registry import MANAGER
from .request import IDENTITY, user_binding


@dataclass(frozen=True)
class Identity:
    """The logged-in user: ``sub``, display name, roles and all claims."""

    sub: str
    name: str
    roles: tuple[str, ...] = ()
    claims: Mapping[str, Any] = field(default_factory=dict)

    @property
    def principals(self) -> list[str]:
        return [Authenticated, self.sub, *(f"role:{role}" for role in self.roles)]


class OidcSecurityPolicy:
    """``request.identity`` and ``request.authenticated_userid`` from the session's login claims.

    A session is trusted only while its login's token record exists (one store read per request,
    shared with ``request.get_user_access_token()``) and, for cookie sessions, was not ended.
    """

    def __init__(self, options: OidcOptions) -> None:
        self.name_claim = options.name_claim
        self.role_claim = options.role_claim
        self.acl = ACLHelper()

    def identity(self, request: Request) -> Identity | None:
        if request.registry.get(MANAGER) is None:
            return None
        try:
            data = request.session[IDENTITY]  # not .get: Beaker's session proxy serves it by a slow __getattr__
        except KeyError:
            return None
        if not data:
            return None
        if not user_binding(request).login_alive():
            return None  # logged out (a copy of the old cookie), or the login's tokens are gone
        claims = data.get("claims") or {}
        roles = claims.get(self.role_claim) or ()
        roles = (roles,) if isinstance(roles, str) else tuple(str(r) for r in roles)
        name = claims.get(self.name_claim) or data["sub"]
        return Identity(sub=data["sub"], name=str(name), roles=roles, claims=claims)

    def authenticated_userid(self, request: Request) -> str | None:
        identity = request.identity
        return identity.sub if identity is not None else None

    def permits(self, request: Request, context: Any, permission: str) -> Any:
        identity = request.identity
        principals = [Everyone, *(identity.principals if identity is not None else [])]
        return self.acl.permits(context, principals, permission)

    def remember(self, request: Request, userid: str, **kw: Any) -> list[tuple[str, str]]:
        return []

    def forget(self, request: Request, **kw: Any) -> list[tuple[str, str]]:
        return []
