"""CSRF tokens kept in the session, checked without ever creating a session (a refused POST must not log anyone out).

Pyramid's default policy reads the expected token from ``request.session``, which *creates* a
session for a request that carries no session cookie; its ``Set-Cookie`` on the 400 would then
replace the victim's login cookie (a cross-site POST carries none: SameSite=Lax). Without the
session cookie there is no expected token, so the check fails before the session is touched.
"""
from __future__ import annotations

from pyramid.csrf import LegacySessionCSRFStoragePolicy
from pyramid.request import Request


class SessionCookieCSRFStoragePolicy(LegacySessionCSRFStoragePolicy):
    """Pyramid's session-backed CSRF tokens, refusing at once a request without the session cookie."""

    def __init__(self, cookie_name: str) -> None:
        self.cookie_name = cookie_name

    def check_csrf_token(self, request: Request, supplied_token: str) -> bool:
        if self.cookie_name not in request.cookies:
            return False
        return bool(super().check_csrf_token(request, supplied_token))
