"""The provider's few HTML pages: login/consent, device verification, errors, logged out.

Plain f-strings; every interpolated value goes through :func:`html.escape`. Pages are never
cached and never framed (clickjacking, RFC 6749 §10.13).
"""
from __future__ import annotations

from html import escape

from webob import Response

from ..html import page as shared_page

HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    # img-src data: only for the shared page's empty icon (no /favicon.ico request, no console error)
    "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


def page(title: str, body_html: str, status: int = 200) -> Response:
    """A complete page from the package's shared :func:`pyramid_tokens.html.page`; ``body_html`` is escaped."""
    note = "<p class=muted>pyramid_tokens development provider: any user name logs in, no password.</p>"
    response = Response(shared_page(title, body_html + note), status=status, content_type="text/html", charset="utf-8")
    response.headers.update(HEADERS)
    return response


def _hidden(name: str, value: str) -> str:
    return f"<input type=hidden name='{escape(name)}' value='{escape(value)}'>"


def _decision_buttons() -> str:
    return (
        "<p><button type=submit name=devidp_action value=approve>Approve</button> "
        "<button type=submit name=devidp_action value=deny formnovalidate>Deny</button></p>"
    )


def login_page(
    action: str, client_id: str, scopes: list[str], authorization_request: str, username: str = "", note: str = ""
) -> Response:
    """Log in as any user and approve or deny the client's request; the request rides in a hidden field."""
    note_html = f"<p class=error>{escape(note)}</p>" if note else ""
    body = (
        f"{note_html}<p><b>{escape(client_id)}</b> asks for: <code>{escape(' '.join(scopes))}</code></p>"
        f"<form method=post action='{escape(action)}'>"
        f"{_hidden('authorization_request', authorization_request)}"
        f"<p><label>User name <input type=text name=username value='{escape(username)}' autofocus required></label></p>"
        f"{_decision_buttons()}</form>"
    )
    return page("Sign in", body, status=400 if note else 200)


def device_page(action: str, user_code: str = "", note: str = "", status: int = 200) -> Response:
    """RFC 8628 §3.3: the user enters (or confirms) the user code and approves or denies."""
    note_html = f"<p class=error>{escape(note)}</p>" if note else ""
    body = (
        f"{note_html}<form method=post action='{escape(action)}'>"
        f"<p><label>Code shown on your device "
        f"<input type=text name=user_code value='{escape(user_code)}' required></label></p>"
        f"<p><label>User name <input type=text name=username value='' autofocus required></label></p>"
        f"{_decision_buttons()}</form>"
    )
    return page("Connect a device", body, status=status)


def message_page(title: str, message: str, status: int = 200) -> Response:
    return page(title, f"<p>{escape(message)}</p>", status=status)


def error_page(error: str, description: str, status: int = 400) -> Response:
    """A fatal authorization error (RFC 6749 §4.1.2.1): shown to the user, never redirected."""
    return page("Request refused", f"<p><code>{escape(error)}</code></p><p>{escape(description or '')}</p>", status)
