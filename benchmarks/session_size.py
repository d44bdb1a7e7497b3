"""Section 5: what a login costs in session space, server-side and in a cookie-backed session.

The development provider's tokens are RFC 9068 JWTs signed RS256 (about 0.9 KB each), close to what
real providers issue. A cookie-backed Beaker session carries them in the cookie; browsers keep at most
4096 bytes of a cookie, so pyramid_tokens refuses a token set that would not fit (``session_too_large``)
instead of letting the browser silently drop the session. The last row provokes that refusal with a
user whose long display name swells the ID token and the claims kept in the session.
"""
from __future__ import annotations

import json
import logging
import secrets
from typing import Any

import webtest

from pyramid_tokens.devidp import DevUser
from pyramid_tokens.errors import TokenError
from pyramid_tokens.tokens import dumps
from pyramid_tokens.beakerstores import COOKIE_LIMIT
from pyramid_tokens.web.request import HANDLE

from apps import tokens_app, tokens_settings
from fixtures import provider, webtest_login
from harness import Row


def _set_cookie(response: Any) -> str:
    cookies = [value.strip() for name, value in response.headerlist
               if name == "Set-Cookie" and value.strip().startswith("sid=")]
    return cookies[-1] if cookies else ""


def run(issuer: str) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    notes: list[str] = []

    # server-side (memory) sessions: the session holds a handle and the login's claims; tokens sit beside it
    app = tokens_app(tokens_settings(issuer))
    browser = webtest.TestApp(app)
    webtest_login(browser)
    manager = app.registry["pyramid_tokens.manager"]
    record = next(v for k, (_, v) in manager.user_tokens.store._data.items() if not k.startswith("rotated:"))
    session = {k: v for k, v in _session_of(app, browser).items()}
    access, id_token, refresh = record["access"]["access_token"], record["id_token"], record["refresh_token"] or ""
    notes.append(f"5: dev provider tokens — access {len(access)} B, ID {len(id_token)} B, refresh {len(refresh)} B")
    rows.append(Row("5a", f"server-side: Beaker session payload (JSON) after login / token record beside it "
                          f"(access {len(access)} B, ID {len(id_token)} B JWTs)",
                    f"{len(json.dumps(session))} B / {len(dumps(record))} B", "—", None, "report", None))

    # cookie-backed sessions: everything in the cookie
    cookie_app = webtest.TestApp(tokens_app(tokens_settings(issuer, "cookie")))
    cookie = _set_cookie(webtest_login(cookie_app))
    size = len(cookie.split(";", 1)[0])
    rows.append(Row("5b", "cookie-backed session after login: Set-Cookie name+value (header with attributes "
                          f"{len(cookie)} B)", f"{size} B", f"browser limit {COOKIE_LIMIT} B", size / COOKIE_LIMIT,
                    "≤ 1.00 of the limit", size <= COOKIE_LIMIT))

    # a token set that cannot fit: refused with a clear error, nothing half-written
    refusal_log = logging.getLogger("pyramid_tokens.web.request")
    level, refusal_log.level = refusal_log.level, logging.CRITICAL  # the refusal's error log is expected here
    with provider(users=[DevUser("bob", name="Bob " + secrets.token_urlsafe(700))]) as big:
        refused_app = webtest.TestApp(tokens_app(tokens_settings(big.issuer, "cookie")))
        try:
            webtest_login(refused_app, "bob")
            outcome, ok = "accepted (no refusal!)", False
        except TokenError as exc:
            outcome, ok = f"refused: {exc.error}", exc.error == "session_too_large"
            notes.append(f"5c: {exc.error_description}")
        finally:
            refusal_log.setLevel(level)
    rows.append(Row("5c", "cookie-backed login whose tokens (ID token with a ~0.9 KB name claim) exceed 4 KB",
                    outcome, "Beaker alone: 500 above 4064 B, silent drop just below", None,
                    "clear refusal", ok))
    return rows, notes


def _session_of(app: Any, browser: webtest.TestApp) -> dict[str, Any]:
    from pyramid.request import Request, apply_request_extensions

    request = Request.blank("/", headers={"Cookie": f"sid={browser.cookies['sid']}"})
    request.registry = app.registry
    apply_request_extensions(request)
    assert request.session[HANDLE]
    return dict(request.session._session())
