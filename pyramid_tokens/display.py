"""Jupyter display of a whole :class:`~pyramid_tokens.manager.TokenManager` (its ``_repr_html_``).

Shows the authority, the client-credentials clients and their cached tokens, the device-login user
and the named HTTP clients; never a token value or a secret. An :class:`~pyramid_tokens.tokens.AccessToken`
displays itself and the device-login prompt is :mod:`pyramid_tokens.prompt`; the HTML pieces are
:mod:`pyramid_tokens.html`.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .html import countdown, grid, table
from .tokens import AccessToken
from .usertokens import LOCAL_USER

if TYPE_CHECKING:
    from .manager import TokenManager


def public_url(url: str | None) -> str:
    """``url`` without any ``user:password@`` part, for display."""
    if not url:
        return "—"
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _expiry(expires_at: float | None, now: float) -> str:
    if expires_at is None:
        return "no expiry given"
    when = datetime.fromtimestamp(expires_at, tz=timezone.utc).strftime("%H:%M:%S UTC")
    left = expires_at - now
    return f"{when} (in {countdown(left)})" if left > 0 else f"{when} ({countdown(left)})"


# -- TokenManager ---------------------------------------------------------------------------------------
def _safely(read: Any) -> Any:
    """A display must never fail: a store that cannot be read shows as such."""
    try:
        return read()
    except Exception as exc:  # noqa: BLE001 - display only
        return f"unavailable ({type(exc).__name__})"


def _client_rows(manager: "TokenManager", now: float) -> list[tuple[Any, ...]]:
    rows = []
    for name, opts in manager.options.clients.items():
        where = opts.token_endpoint or opts.authority

        def cached(name: str | None = name) -> str:
            scope, resource = manager.client_tokens.defaults.get(name, (None, None))
            data = manager.client_tokens.cache.get(manager.client_tokens.cache_key(name, scope, resource, None))
            if not data:
                return "none cached"
            token = AccessToken.from_dict(data)
            stamp = token.expires_at.timestamp() if token.expires_at else None
            return "cached, expires " + _expiry(stamp, now)

        rows.append((name or "(oidc client)", opts.credentials.client_id, public_url(where), opts.scope or "—",
                     _safely(cached)))
    return rows


def _user_rows(manager: "TokenManager", now: float) -> list[tuple[str, Any]]:
    users = manager.user_tokens
    if users is None:
        return [("user login", "not configured (no oidc.* settings)")]
    record = _safely(lambda: users.record(LOCAL_USER))
    if isinstance(record, str):
        return [("user", record)]
    if not record:
        return [("user", "not logged in (call device_login())")]
    access = record.get("access") or {}
    return [
        ("user", record.get("sub") or "—"),
        ("access token expires", _expiry(access.get("expires_at"), now)),
        ("scopes", access.get("scope") or "—"),
        ("refresh token", "held" if record.get("refresh_token") else "none (not issued or revoked)"),
        ("refreshes so far", record.get("refreshes", 0)),
    ]


def token_manager_html(manager: "TokenManager") -> str:
    """A TokenManager at a glance: authority, clients and cached tokens, the user, named HTTP clients."""
    now = manager.clock()
    oidc = manager.options.oidc
    head = table([
        ("authority", public_url(oidc.authority) if oidc else "— (no OIDC login configured)"),
        ("OIDC client", oidc.credentials.client_id if oidc else "—"),
        ("login scope", oidc.scope if oidc else "—"),
    ])
    clients = _client_rows(manager, now)
    clients_html = grid(("client", "client id", "token endpoint / authority", "scope", "token"), clients) \
        if clients else "<p><i>no client-credentials clients</i></p>"
    http = [(o.name, public_url(o.base_url), o.token, " ".join(f"{d:g}" for d in o.retry) or "—", f"{o.timeout:g} s")
            for o in manager.options.http.values()]
    http_html = grid(("HTTP client", "base URL", "token", "retry", "timeout"), http) \
        if http else "<p><i>no named HTTP clients</i></p>"
    return (f"<div class='pyramid-tokens-manager'><b>TokenManager</b> <span style='color:#888'>(token values and "
            f"secrets hidden)</span>{head}<b>Client credentials</b>{clients_html}"
            f"<b>User</b>{table(_user_rows(manager, now))}<b>Named HTTP clients</b>{http_html}</div>")
