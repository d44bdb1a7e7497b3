"""Rich display for Jupyter and the demo: tokens, the device-login prompt, a whole TokenManager.

Shows expiry, scopes, clients and (unverified) claims; never a token value, a device code or a secret.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from .device import DeviceAuthorization
    from .manager import TokenManager
    from .tokens import AccessToken

_SECRET_CLAIMS = {"at_hash", "c_hash", "nonce", "sid"}


def countdown(seconds: float | None) -> str:
    """``"4 min 10 s"``, ``"expired 3 s ago"`` or ``"no expiry given"``."""
    if seconds is None:
        return "no expiry given"
    if seconds <= 0:
        return f"expired {int(-seconds)} s ago"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def format_claim(value: Any) -> str:
    """A claim value for display: timestamps as UTC times, other non-strings as JSON."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 10**8:
        return datetime.fromtimestamp(value, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return json.dumps(value) if not isinstance(value, str) else value


def access_token_html(token: "AccessToken") -> str:
    """An HTML table describing ``token`` (claims decoded WITHOUT verification, and marked so)."""
    claims = token.claims() or {}
    audience = claims.get("aud")
    rows = [
        ("type", token.token_type),
        ("issuer", claims.get("iss") or token.issuer or "—"),
        ("subject", claims.get("sub") or "—"),
        ("audience", ", ".join(audience) if isinstance(audience, list) else audience or "—"),
        ("scopes", token.scope or claims.get("scope") or "—"),
        ("resource", token.resource or "—"),
        ("expires", f"{token.expires_at:%Y-%m-%d %H:%M:%S} UTC (in {countdown(token.expires_in())})"
         if token.expires_at else "no expiry given"),
    ]
    body = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td style='text-align:left'>{escape(str(v))}"
                   f"</td></tr>" for k, v in rows)
    shown = {k: v for k, v in claims.items() if k not in _SECRET_CLAIMS}
    claim_rows = "".join(f"<tr><td style='text-align:left'><code>{escape(k)}</code></td>"
                         f"<td style='text-align:left'>{escape(format_claim(v))}</td></tr>" for k, v in shown.items())
    claims_html = (f"<details><summary>JWT claims (decoded, <b>not verified</b>)</summary><table>{claim_rows}"
                   f"</table></details>") if shown else "<p><i>opaque token (not a JWT)</i></p>"
    return (f"<div class='pyramid-tokens-access-token'><b>AccessToken</b> <span style='color:#888'>(value hidden)"
            f"</span><table>{body}</table>{claims_html}</div>")


# -- shared helpers -------------------------------------------------------------------------------------
_CELL = "style='text-align:left'"


def _rows(rows: list[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th {_CELL}>{escape(k)}</th><td {_CELL}>{escape(str(v))}</td></tr>" for k, v in rows)


def _grid(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    head = "".join(f"<th {_CELL}>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td {_CELL}>{escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def public_url(url: str | None) -> str:
    """``url`` without any ``user:password@`` part, for display."""
    if not url:
        return "—"
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _link(url: str, text: str | None = None) -> str:
    """A clickable link for http(s) URLs only (a provider could send ``javascript:``); else plain text."""
    label = escape(text if text is not None else url)
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return f"<code>{label}</code>"
    return f"<a href=\"{escape(url, quote=True)}\" target=\"_blank\" rel=\"noopener noreferrer\">{label}</a>"


def _expiry(expires_at: float | None, now: float) -> str:
    if expires_at is None:
        return "no expiry given"
    when = datetime.fromtimestamp(expires_at, tz=timezone.utc).strftime("%H:%M:%S UTC")
    left = expires_at - now
    return f"{when} (in {countdown(left)})" if left > 0 else f"{when} ({countdown(left)})"


# -- device login (RFC 8628 §3.3) ---------------------------------------------------------------------
def device_prompt_html(authorization: "DeviceAuthorization") -> str:
    """The Jupyter prompt: a clickable verification link and the user code; never the device code."""
    minutes = max(1, round(authorization.expires_in / 60))
    code = f"<code style='font-size:1.25em;letter-spacing:.08em'>{escape(authorization.user_code)}</code>"
    if authorization.verification_uri_complete:
        second = (f"<p>Or open {_link(authorization.verification_uri)} and enter the code {code}.</p>")
    else:
        second = f"<p>Enter the code {code} when asked.</p>"
    return (f"<div class='pyramid-tokens-device-login'><p><b>Sign in:</b> open "
            f"{_link(authorization.link)} in a browser and approve the request.</p>{second}"
            f"<p style='color:#888'>The code expires in about {minutes} min. Waiting for approval&hellip;</p></div>")


def device_outcome_html(ok: bool, message: str) -> str:
    """What replaces the prompt once the device login has ended."""
    color = "#11692b" if ok else "#a01818"
    return f"<div class='pyramid-tokens-device-login'><p style='color:{color}'>{escape(message)}</p></div>"


# -- TokenManager ---------------------------------------------------------------------------------------
def _safely(read: Any) -> Any:
    """A display must never fail: a store that cannot be read shows as such."""
    try:
        return read()
    except Exception as exc:  # noqa: BLE001 - display only
        return f"unavailable ({type(exc).__name__})"


def _client_rows(manager: "TokenManager", now: float) -> list[tuple[Any, ...]]:
    from .tokens import AccessToken

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
    from .usertokens import LOCAL_USER

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
    head = _rows([
        ("authority", public_url(oidc.authority) if oidc else "— (no OIDC login configured)"),
        ("OIDC client", oidc.credentials.client_id if oidc else "—"),
        ("login scope", oidc.scope if oidc else "—"),
    ])
    clients = _client_rows(manager, now)
    clients_html = _grid(("client", "client id", "token endpoint / authority", "scope", "token"), clients) \
        if clients else "<p><i>no client-credentials clients</i></p>"
    http = [(o.name, public_url(o.base_url), o.token, " ".join(f"{d:g}" for d in o.retry) or "—", f"{o.timeout:g} s")
            for o in manager.options.http.values()]
    http_html = _grid(("HTTP client", "base URL", "token", "retry", "timeout"), http) \
        if http else "<p><i>no named HTTP clients</i></p>"
    return (f"<div class='pyramid-tokens-manager'><b>TokenManager</b> <span style='color:#888'>(token values and "
            f"secrets hidden)</span><table>{head}</table><b>Client credentials</b>{clients_html}"
            f"<b>User</b><table>{_rows(_user_rows(manager, now))}</table><b>Named HTTP clients</b>{http_html}</div>")
