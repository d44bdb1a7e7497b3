"""The back-channel logout route (OpenID Connect Back-Channel Logout 1.0 §2.5, §2.8).

``POST oidc.backchannel_logout_path`` with ``application/x-www-form-urlencoded`` ``logout_token``:
200 when the token was valid (also when no login matched), 400 with a JSON ``error`` otherwise,
``Cache-Control: no-store`` on both. Server to server: no session, no cookie, no CSRF token. The
body is bounded before it is read; the checks are :mod:`pyramid_tokens.backchannel`'s.
"""
from __future__ import annotations

import logging
from urllib.parse import parse_qs

from pyramid.request import Request
from pyramid.response import Response

from ..errors import InvalidLogoutToken, TemporarilyUnavailable
from .registry import MANAGER

log = logging.getLogger(__name__)

#: the largest request body read; a logout token is a few KB at most (backchannel.MAX_TOKEN_LENGTH)
MAX_BODY = 16384


def _answer(status: int, error: str | None = None, description: str | None = None) -> Response:
    response = Response(status=status) if error is None else \
        Response(json_body={"error": error, "error_description": description}, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def backchannel_logout_view(request: Request) -> Response:
    """End the logins a valid logout token names; never a 500 for anything the caller sends."""
    if request.method != "POST":
        response = _answer(405, "invalid_request", "POST a logout_token")
        response.headers["Allow"] = "POST"
        return response
    if (request.content_type or "").lower() != "application/x-www-form-urlencoded":
        log.warning("back-channel logout refused: check content-type failed (not a form post)")
        return _answer(400, "invalid_request", "the body must be application/x-www-form-urlencoded")
    length = request.content_length
    if length is not None and length > MAX_BODY:
        log.warning("back-channel logout refused: check size failed (a %d byte body)", length)
        return _answer(400, "invalid_request", f"the body is larger than {MAX_BODY} bytes")
    body = request.body_file.read(MAX_BODY + 1)  # bounded, whatever Content-Length says; never copied whole
    if len(body) > MAX_BODY:
        log.warning("back-channel logout refused: check size failed (a body over %d bytes)", MAX_BODY)
        return _answer(400, "invalid_request", f"the body is larger than {MAX_BODY} bytes")
    try:
        tokens = parse_qs(body.decode("ascii"), strict_parsing=False).get("logout_token") or []
    except (UnicodeDecodeError, ValueError):
        tokens = []
    if len(tokens) != 1:
        log.warning("back-channel logout refused: check logout_token failed (%d parameters)", len(tokens))
        return _answer(400, "invalid_request", "the body must carry exactly one logout_token")
    manager = request.registry[MANAGER]
    try:
        ended = manager.backchannel_logout(tokens[0])
    except InvalidLogoutToken as exc:
        log.warning("back-channel logout refused: check %s failed (%s)", exc.check, exc.error_description)
        return _answer(400, exc.error, exc.error_description)
    except TemporarilyUnavailable as exc:  # the JWKS or the shared store: the provider may retry
        log.warning("back-channel logout could not be processed: %s", exc)
        response = _answer(503, exc.error, "try again later")
        response.headers["Retry-After"] = "5"
        return response
    log.info("back-channel logout: %d login(s) ended", ended)
    return _answer(200)
