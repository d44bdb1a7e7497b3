"""Rich display of tokens for Jupyter and the demo: expiry, scopes, unverified claims; never the token."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tokens import AccessToken

_SECRET_CLAIMS = {"at_hash", "c_hash", "nonce"}


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


def _fmt_time(value: Any) -> str:
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
                         f"<td style='text-align:left'>{escape(_fmt_time(v))}</td></tr>" for k, v in shown.items())
    claims_html = (f"<details><summary>JWT claims (decoded, <b>not verified</b>)</summary><table>{claim_rows}"
                   f"</table></details>") if shown else "<p><i>opaque token (not a JWT)</i></p>"
    return (f"<div class='pyramid-tokens-access-token'><b>AccessToken</b> <span style='color:#888'>(value hidden)"
            f"</span><table>{body}</table>{claims_html}</div>")
