"""Login, callback and logout views, and the login challenge.

Login: authorization code flow with PKCE, ``state`` and ``nonce`` (kept per login in the session so
several tabs may log in at once); ``came_from`` accepted only as a same-site path. Callback: the
checks of :meth:`~pyramid_tokens.oidc.OidcClient.complete_login`, then a NEW session id (no
fixation) holding only a handle to the tokens and the user's claims. Logout: POST with a CSRF
token (a GET shows a confirmation form), revocation, and RP-initiated logout at the provider.
"""
from __future__ import annotations

import logging
import secrets
from html import escape
from typing import Any

from pyramid.csrf import check_csrf_token, get_csrf_token
from pyramid.httpexceptions import HTTPBadRequest, HTTPFound
from pyramid.request import Request
from pyramid.response import Response

from .. import events, metrics
from ..beakerstores import delete_stored_session
from ..errors import LoginRequired, ProviderUnavailable, TemporarilyUnavailable, TokenError
from ..logins import login_facts
from ..html import page
from ..oidc import PendingLogin
from .redirects import safe_path
from .registry import MANAGER
from .request import HANDLE, IDENTITY, user_binding

log = logging.getLogger(__name__)

LOGINS = "pyramid_tokens.logins"
#: logins in progress remembered per session (several tabs)
MAX_PENDING = 5
#: the realm of the 401 challenge given to API and XHR callers
REALM = "pyramid_tokens"


def _manager(request: Request) -> Any:
    return request.registry[MANAGER]


def _login_failed(request: Request, check: str, error: str) -> None:
    """A login that failed ``check``: one ``LoginFailed`` event, one ``pyramid_tokens.logins`` failure."""
    metrics.login("failure", check)
    _manager(request).events.emit(events.LoginFailed(check=check, error=error))


def _no_store(response: Response) -> Response:
    response.cache_control = "no-store"
    return response


def _failure(request: Request, message: str, status: int = 400) -> Response:
    body = (f"<p class='error'>{escape(message)}</p>"
            f"<p><a class='button' href='{escape(request.route_path('pyramid_tokens.login'))}'>Try again</a> "
            f"<a href='{escape(request.application_url)}/'>Home</a></p>")
    return _no_store(Response(page("Login failed", body), status=status, content_type="text/html"))


# -- login ------------------------------------------------------------------------------------------
def login_view(request: Request) -> Response:
    """Start a login: remember state, nonce and PKCE verifier, redirect to the provider."""
    manager = _manager(request)
    came_from = safe_path(request.params.get("came_from"), "/")
    try:
        url, pending = manager.oidc.begin_login(request.route_url("pyramid_tokens.callback"), came_from)
    except TemporarilyUnavailable as exc:
        log.warning("login unavailable: %s", exc)
        return _failure(request, "The login provider is unavailable right now. Please try again shortly.", 503)
    except TokenError as exc:  # e.g. a discovery document that is not one
        log.warning("login impossible: %s", exc)
        return _failure(request, "The login provider answered with something unusable, so the login cannot "
                                 f"start ({exc.error_description or exc.error}).", 502)
    logins = dict(request.session.get(LOGINS) or {})
    logins[pending.state] = pending.to_dict()
    request.session[LOGINS] = dict(sorted(logins.items(), key=lambda kv: kv[1]["created_at"])[-MAX_PENDING:])
    return _no_store(HTTPFound(location=url))


def callback_view(request: Request) -> Response:
    """Finish a login; on any failure show why, and keep no login in the session."""
    manager = _manager(request)
    logins = dict(request.session.get(LOGINS) or {})
    state = request.GET.get("state")
    data = logins.pop(state, None) if isinstance(state, str) else None
    if data is None:
        if logins != request.session.get(LOGINS):
            request.session[LOGINS] = logins
        _login_failed(request, "state", "login_failed")
        return _failure(request, "This login response does not belong to a login started in this browser "
                                 "(state missing or unknown).")
    request.session[LOGINS] = logins
    try:
        result = manager.oidc.complete_login(request.GET, PendingLogin.from_dict(data))
    except TemporarilyUnavailable as exc:
        log.warning("login failed: %s", exc)
        _login_failed(request, "provider_unavailable", exc.error)
        return _failure(request, "The login provider is unavailable right now. Please try again shortly.", 503)
    except TokenError as exc:
        log.warning("login failed: %s", exc)
        _login_failed(request, exc.check, exc.error)
        return _failure(request, f"The login could not be completed: {exc.error_description or exc.error}")
    # A new session id at login: whatever id an attacker planted before is worthless now.
    old_handle = request.session.get(HANDLE)
    logins_left = request.session.get(LOGINS)
    delete_stored_session(request.session)
    request.session.invalidate()
    binding = user_binding(request)
    if old_handle:
        manager.end_login(old_handle, store=binding.store, client_side=binding.in_cookie)
    handle = secrets.token_urlsafe(32)
    request.session[HANDLE] = handle
    request.session[IDENTITY] = {"sub": result.sub, "claims": _json_claims(result.claims)}
    if logins_left:
        request.session[LOGINS] = logins_left
    try:
        manager.user_tokens.save_login(handle, result.tokens, result.sub, store=binding.store,
                                       extra=login_facts(result.claims, manager.clock()))
    except TokenError as exc:  # e.g. a token set too big for a cookie session: no half-made login
        request.session.pop(HANDLE, None)
        request.session.pop(IDENTITY, None)
        log.warning("login failed: %s", exc)
        _login_failed(request, "session", exc.error)
        return _failure(request, f"The login could not be completed: {exc.error_description or exc.error}")
    metrics.login("success")
    sid = result.claims.get("sid")
    manager.events.emit(events.UserLoggedIn(sub=result.sub, sid=sid if isinstance(sid, str) else None,
                                            claims=_json_claims(result.claims)))  # no nonce, no token hashes
    return _no_store(HTTPFound(location=safe_path(data.get("came_from"), "/")))


def _json_claims(claims: Any) -> dict[str, Any]:
    """The claims worth keeping in the session (JSON-serialisable, no token-related values)."""
    skip = {"at_hash", "c_hash", "nonce", "sid"}
    return {k: v for k, v in claims.items() if k not in skip}


# -- logout -----------------------------------------------------------------------------------------
def logout_view(request: Request) -> Response:
    """GET: a confirmation form. POST (CSRF-checked): revoke, end the session, log out at the provider."""
    if request.method != "POST":
        token = escape(get_csrf_token(request))
        body = (f"<p>Log out of this application?</p><form method='post' action='{escape(request.path)}'>"
                f"<input type='hidden' name='csrf_token' value='{token}'><button>Log out</button></form>")
        return _no_store(Response(page("Log out", body), content_type="text/html"))
    if not check_csrf_token(request, raises=False):
        raise HTTPBadRequest("Logout needs the form's CSRF token.")
    manager = _manager(request)
    options = manager.options
    binding = user_binding(request)
    handle = binding.handle
    id_token = sid = None
    sub = (request.session.get(IDENTITY) or {}).get("sub")
    if handle and manager.user_tokens is not None:
        record = binding.record() or {}
        id_token, sid, sub = record.get("id_token"), record.get("sid"), record.get("sub") or sub
        if options.revoke_on_logout:
            try:
                binding.manager.revoke_user_refresh_token(handle=handle, store=binding.store)
            except TokenError as exc:
                log.warning("logout: the refresh token could not be revoked at the provider (%s)", exc)
        manager.end_login(handle, store=binding.store, client_side=binding.in_cookie)
    binding.forget_tokens()
    delete_stored_session(request.session)  # every saved copy of the old cookie is anonymous now
    request.session.invalidate()
    target = options.oidc.post_logout_redirect
    absolute = request.application_url + target if target.startswith("/") else target
    url = None
    if handle:
        try:
            url = manager.oidc.end_session_url(id_token_hint=id_token, post_logout_redirect_uri=absolute,
                                               state=secrets.token_urlsafe(16))
        except TokenError as exc:
            log.warning("logout: provider logout skipped (%s)", exc)
        manager.logged_out(sub, events.LOGOUT_RP_INITIATED if url else events.LOGOUT_LOCAL, sid=sid)
    return _no_store(HTTPFound(location=url or absolute))


# -- the challenge ----------------------------------------------------------------------------------
def wants_json(request: Request) -> bool:
    """API and XHR callers get a 401; browsers (which name ``text/html`` explicitly) get a redirect."""
    if request.headers.get("X-Requested-With", "").lower() == "xmlhttprequest" or "Authorization" in request.headers:
        return True
    parsed = getattr(request.accept, "parsed", None) or []
    quality = {media.lower(): q for media, q, *_ in parsed}
    return quality.get("text/html", 0) <= 0 or quality.get("application/json", 0) > quality["text/html"]


def end_login(request: Request) -> None:
    """A login whose tokens are gone or refused is over: ``request.identity`` must not outlive it."""
    session = request.session if _has_session(request) else {}
    handle = session.get(HANDLE)
    if handle is None and IDENTITY not in session:
        return
    manager = _manager(request)
    if handle and manager.user_tokens is not None:
        binding = user_binding(request)
        manager.end_login(handle, store=binding.store, client_side=binding.in_cookie)
    user_binding(request).forget_tokens()
    session.pop(HANDLE, None)
    session.pop(IDENTITY, None)


def _has_session(request: Request) -> bool:
    from pyramid.interfaces import ISessionFactory

    return request.registry.queryUtility(ISessionFactory) is not None


def challenge(request: Request, exc: LoginRequired) -> Response:
    """End what is left of the login, then redirect to login with ``came_from`` or answer 401."""
    end_login(request)
    try:
        login = request.route_path("pyramid_tokens.login")
    except KeyError:
        login = None
    if login is None or wants_json(request):
        response = Response(json_body={"error": exc.error, "error_description": exc.error_description,
                                       "login_url": login}, status=401)
        response.headers["WWW-Authenticate"] = f'OpenIDConnect realm="{REALM}", error="{exc.error}"' + \
            (f', login_url="{login}"' if login else "")
        return _no_store(response)
    came_from = safe_path(request.path_qs if request.method == "GET" else "/", "/")
    return _no_store(HTTPFound(location=request.route_path("pyramid_tokens.login", _query={"came_from": came_from})))


def login_required_view(exc: LoginRequired, request: Request) -> Response:
    """Exception view, so an application's catch-all exception view cannot turn this into a 500."""
    return challenge(request, exc)


def temporarily_unavailable_view(exc: TemporarilyUnavailable, request: Request) -> Response:
    """The provider or the token store is unavailable and no usable token is left: a 503, not a 500."""
    log.warning("%s %s: %s", request.method, request.path, exc)
    if wants_json(request):
        response = Response(json_body={"error": exc.error, "error_description": exc.error_description}, status=503)
    else:
        what = "login provider" if isinstance(exc, ProviderUnavailable) else "token store"
        response = Response(page("Temporarily unavailable", f"<p>The {what} is unavailable right now. "
                                 "Please try again in a moment.</p>"), status=503, content_type="text/html")
    response.headers["Retry-After"] = "5"
    return _no_store(response)


def token_error_view(exc: TokenError, request: Request) -> Response:
    """Any other :class:`TokenError` a view let through: the provider answered wrongly, a 502, never a 500."""
    log.warning("%s %s: %s", request.method, request.path, exc)
    if wants_json(request):
        response = Response(json_body={"error": exc.error, "error_description": exc.error_description}, status=502)
    else:
        response = Response(page("Bad answer from the login provider", "<p>The login provider answered with "
                                 "something unusable. Please try again later.</p>"), status=502,
                            content_type="text/html")
    return _no_store(response)
