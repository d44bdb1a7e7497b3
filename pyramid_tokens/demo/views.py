"""The demo's pages: who you are, your token counting down, calls to the API with user and client tokens."""
from __future__ import annotations

import json
import time
from html import escape
from typing import Any

import requests
from pyramid.config import Configurator
from pyramid.csrf import get_csrf_token
from pyramid.httpexceptions import HTTPFound
from pyramid.request import Request
from pyramid.response import Response

from ..errors import LoginRequired, TokenError
from ..events import Event
from ..html import countdown, format_claim, grid, page, table
from .recent import RECENT, RecentEvents, recent_events
from ..web.registry import MANAGER
from ..web.request import user_binding

COUNTDOWN_JS = """<script>
for (const el of document.querySelectorAll('[data-expires]')) {
  const end = Number(el.dataset.expires) * 1000;
  const tick = () => { const s = Math.round((end - Date.now()) / 1000);
    el.textContent = s > 0 ? `${Math.floor(s / 60)} min ${s % 60} s` : `expired ${-s} s ago`; };
  tick(); setInterval(tick, 1000);
}
</script>"""


def includeme(config: Configurator) -> None:
    config.add_route("demo.home", "/")
    config.add_route("demo.call_api", "/call-api")
    config.add_route("demo.client_api", "/client-api")
    config.add_route("demo.downstream", "/downstream")
    config.add_route("demo.refresh", "/refresh")
    config.add_route("demo.revoke", "/revoke")
    config.add_route("demo.health", "/health")
    config.registry[RECENT] = recent = RecentEvents()
    config.add_subscriber(recent.remember, Event)  # the package's events reach Pyramid subscribers
    config.add_route("demo.end_provider_sessions", "/end-provider-sessions")
    config.scan(".views")


def _form(request: Request, route: str, label: str) -> str:
    return (f"<form method='post' action='{escape(request.route_path(route))}'>"
            f"<input type='hidden' name='csrf_token' value='{escape(get_csrf_token(request))}'>"
            f"<button>{escape(label)}</button></form>")


def _html(title: str, body: str) -> Response:
    response = Response(page(title, body + COUNTDOWN_JS), content_type="text/html")
    response.cache_control = "no-store"
    return response


def _nav(request: Request) -> str:
    links = [("Home", "demo.home"), ("Call the API as you", "demo.call_api"),
             ("Call the API as the app (client credentials)", "demo.client_api"),
             ("Downstream: on behalf of you (token exchange)", "demo.downstream")]
    return "<p>" + " · ".join(f"<a href='{escape(request.route_path(r))}'>{escape(t)}</a>" for t, r in links) + "</p>"


def token_rows(token: Any, record: dict[str, Any] | None = None) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [
        ("token type", token.token_type),
        ("scope", token.scope or "—"),
        ("expires at", f"{token.expires_at:%H:%M:%S} UTC" if token.expires_at else "no expiry"),
    ]
    if record is not None:
        rows.append(("refreshes so far", record.get("refreshes", 0)))
        rows.append(("refresh token", "held" if record.get("refresh_token") else "none (revoked or not issued)"))
    return rows


def expiry_badge(token: Any) -> str:
    if not token.expires_at:
        return ""
    return (f"<p>Access token expires in <b data-expires='{token.expires_at.timestamp():.0f}'>"
            f"{escape(countdown(token.expires_in()))}</b>; it is refreshed shortly before.</p>")


from pyramid.view import view_config  # noqa: E402


@view_config(route_name="demo.health", renderer="string")
def health(request: Request) -> str:
    return "ok"


@view_config(route_name="demo.home")
def home(request: Request) -> Response:
    identity = request.identity
    if identity is None:
        login = request.route_path("pyramid_tokens.login")
        body = (f"<p>You are not logged in. The development provider accepts any user name "
                f"(try <code>alice</code>, or <code>admin</code> for the admin role).</p>"
                f"<p><a class='button' href='{escape(login)}'>Log in</a></p>{_nav(request)}")
        return _html("pyramid_tokens demo", body)
    message = ""
    try:
        token = request.get_user_access_token()
    except LoginRequired:
        raise  # a subclass of TokenError: let it reach the package's login challenge
    except TokenError as exc:
        return _html("pyramid_tokens demo", f"<p class='error'>{escape(str(exc))}</p>{_nav(request)}")
    record = user_binding(request).record()
    claims = [(k, format_claim(v)) for k, v in sorted(identity.claims.items())]
    body = (f"<p>Logged in as <b>{escape(identity.name)}</b> (sub <code>{escape(identity.sub)}</code>, roles "
            f"{escape(', '.join(identity.roles) or 'none')}).</p>{message}{expiry_badge(token)}{_nav(request)}"
            f"<h2>Your access token</h2>{table(token_rows(token, record))}"
            f"<p>{_form(request, 'demo.refresh', 'Refresh now')}"
            f"{_form(request, 'demo.revoke', 'Revoke refresh token')}"
            f"{_form(request, 'pyramid_tokens.logout', 'Log out')}</p>{_provider_logout(request, identity.sub)}"
            f"<h2>Your claims</h2>{table(claims)}"
            f"<h2>Recent events</h2>{_recent(request, identity.sub)}")
    return _html("pyramid_tokens demo", body)


def _recent(request: Request, sub: str) -> str:
    rows = [(time.strftime("%H:%M:%S", time.gmtime(at)) + " UTC", line)
            for at, line in recent_events(request.registry).of(sub)]
    return grid(("when", "event"), rows) if rows else "<p>None yet in this process.</p>"


def _call(session: requests.Session, path: str) -> tuple[str, str]:
    try:
        response = session.get(path)
    except requests.RequestException as exc:
        return "error", f"{type(exc).__name__}: the API could not be reached"
    try:
        shown = json.dumps(response.json(), indent=2)
    except ValueError:
        shown = response.text[:500]
    return f"HTTP {response.status_code}" + (" after a token renewal" if response.history else ""), shown


@view_config(route_name="demo.call_api")
def call_api(request: Request) -> Response:
    token = request.get_user_access_token()  # LoginRequired → redirect to login, by the package
    status, shown = _call(request.http_client("user_api"), "whoami")
    body = (f"{_nav(request)}<p>GET <code>/api/whoami</code> with your access token: <b>{escape(status)}</b></p>"
            f"{expiry_badge(token)}<pre>{escape(shown)}</pre>")
    return _html("The API, called as you", body)


@view_config(route_name="demo.client_api")
def client_api(request: Request) -> Response:
    manager = request.registry[MANAGER]
    client = manager.options.http["client_api"].client_name
    before = _client_token_requests(request)
    calls = [_call(request.http_client("client_api"), "whoami") for _ in range(3)]
    token = request.get_client_access_token(client)
    after = _client_token_requests(request)
    cache = ""
    if before is not None and after is not None:
        cache = (f"<p>Token requests counted by the development provider during these 3 API calls: "
                 f"<b>{after - before}</b> (0 when the cached token was still good).</p>")
    body = (f"{_nav(request)}<p>Three calls to <code>/api/whoami</code> with the <code>{escape(str(client))}</code> "
            f"client-credentials token: {escape(', '.join(c[0] for c in calls))}</p>{cache}{expiry_badge(token)}"
            f"{table(token_rows(token))}<pre>{escape(calls[-1][1])}</pre>")
    return _html("The API, called as the application", body)


def _audience(claims: dict[str, Any] | None) -> str:
    audience = (claims or {}).get("aud")
    return ", ".join(map(str, audience)) if isinstance(audience, list) else str(audience or "—")


@view_config(route_name="demo.downstream")
def downstream(request: Request) -> Response:
    """The orders API called for you with an exchanged token (RFC 8693): both tokens' audiences, never values."""
    options = request.registry[MANAGER].options
    if "orders" not in options.exchange or "orders_api" not in options.http:
        return _html("Downstream", f"{_nav(request)}<p>Not configured: tokens.exchange.orders and "
                                   f"tokens.http.orders_api (token = exchange:orders).</p>")
    user_token = request.get_user_access_token()  # LoginRequired → redirect to login, by the package
    exchanged = request.get_exchanged_token("orders")
    status, shown = _call(request.http_client("orders_api"), "whoami")
    user_claims, exchanged_claims = user_token.claims() or {}, exchanged.claims() or {}
    rows = [
        ("your token: audience", _audience(user_claims)),
        ("your token: subject", user_claims.get("sub", "—")),
        ("exchanged token: audience", _audience(exchanged_claims)),
        ("exchanged token: subject", exchanged_claims.get("sub", "—")),
        ("exchanged token: actor (act)", format_claim(exchanged_claims["act"]) if "act" in exchanged_claims else "—"),
        ("exchanged token: issued_token_type", exchanged.issued_token_type or "—"),
        ("exchanged token: expires at",
         f"{exchanged.expires_at:%H:%M:%S} UTC" if exchanged.expires_at else "no expiry"),
    ]
    body = (f"{_nav(request)}<p>GET <code>/orders-api/whoami</code> with a token exchanged for yours "
            f"(cached with your login, renewed before it expires): <b>{escape(status)}</b></p>{table(rows)}"
            f"<pre>{escape(shown)}</pre>")
    return _html("Downstream, on behalf of you", body)


def _client_token_requests(request: Request) -> int | None:
    provider = request.registry.get("pyramid_tokens.devidp")
    if provider is None:
        return None
    return provider.counters()["token"].get("client_credentials", 0)


def _provider_logout(request: Request, sub: str) -> str:
    """With the development provider mounted: the admin button that ends the user's sessions there."""
    if request.registry.get("pyramid_tokens.devidp") is None:
        return ""
    return ("<h2>Back-channel logout</h2><p>Log in in a second browser too, then end your sessions at the "
            "provider: it POSTs a logout token to this app, and both browsers are logged out.</p>"
            + _form(request, "demo.end_provider_sessions", f"End {sub}'s sessions at the provider"))


@view_config(route_name="demo.end_provider_sessions", request_method="POST", require_csrf=True)
def end_provider_sessions(request: Request) -> Response:
    """Play the provider's administrator: end every session of the logged-in user (devidp ``end_user``)."""
    provider = request.registry.get("pyramid_tokens.devidp")
    if provider is not None and request.identity is not None:
        provider.backchannel.end_user(request.identity.sub)  # the logout token comes back to /backchannel-logout
    return HTTPFound(request.route_path("demo.home"))


@view_config(route_name="demo.refresh", request_method="POST", require_csrf=True)
def refresh(request: Request) -> Response:
    request.get_user_access_token(force_renewal=True)
    return HTTPFound(request.route_path("demo.home"))


@view_config(route_name="demo.revoke", request_method="POST", require_csrf=True)
def revoke(request: Request) -> Response:
    request.revoke_user_refresh_token()
    return HTTPFound(request.route_path("demo.home"))
