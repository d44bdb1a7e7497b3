"""The assertions the security suite shares; the app under attack is ``tests/support/web.py``'s.

That app lets a ``TokenError`` of ``/token`` through to the package's own views (login challenge, 503,
502) and answers one of ``/client-token`` or ``/revoke`` itself with HTTP 502 and its text, so tests can
read what was wrong.
"""
from __future__ import annotations

import html
from urllib.parse import parse_qs, urlsplit

from tests.support.web import attempt_login, base_settings, build_app, callback_path, login, provider_redirect

__all__ = ["HTML", "JSON", "assert_logged_out", "assert_login_failed", "attempt_login", "build_app",
           "callback_path", "login", "page_text", "provider_redirect", "query_of", "settings_for", "user_record"]

JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html"}
#: the relying party's settings against a provider: the same as every other web-level suite's
settings_for = base_settings


def query_of(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query)


# -- assertions ------------------------------------------------------------------------------------------
def page_text(response) -> str:
    return html.unescape(response.text)


def assert_login_failed(response, message: str, status: int = 400) -> None:
    """The callback ended in the package's failure page, saying ``message``."""
    assert response.status_int == status, response.text[:500]
    assert "<title>Login failed</title>" in response.text
    assert message in page_text(response), page_text(response)[-800:]
    assert response.headers.get("Cache-Control") == "no-store"


def assert_logged_out(app) -> None:
    """No logged-in session: no identity, and a request that needs the user's token is challenged."""
    assert app.get("/whoami").json == {"userid": None}
    challenged = app.get("/token", headers=JSON, status=401)
    assert challenged.json["error"] == "login_required"
    assert app.get("/token", headers=HTML, status=302).location.startswith("http://localhost/login")


def user_record(app):
    """The one stored user token set of this app (rotation records aside)."""
    manager = app.app.registry["pyramid_tokens.manager"]
    store = manager.user_tokens.store
    records = [value for key, value in store.items() if not key.startswith("rotated:")]
    assert len(records) == 1, records
    return records[0]
