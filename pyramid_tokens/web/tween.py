"""The tween: an escaped :class:`~pyramid_tokens.LoginRequired` becomes a login challenge, never a 500.

It touches nothing else (no session, no discovery), so requests that never use tokens pass
straight through. Refreshed tokens are written by the token store itself when they change.
"""
from __future__ import annotations

from typing import Any, Callable

from pyramid.request import Request
from pyramid.response import Response

from ..errors import LoginRequired


def tween_factory(handler: Callable[[Request], Response], registry: Any) -> Callable[[Request], Response]:
    from .views import challenge

    def pyramid_tokens_tween(request: Request) -> Response:
        try:
            return handler(request)
        except LoginRequired as exc:
            return challenge(request, exc)

    return pyramid_tokens_tween
