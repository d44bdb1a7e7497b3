"""Pyramid views: the provider's HTTP endpoints, at the paths of ``provider.ENDPOINT_PATHS``.

Each view turns the WebOb request into oauthlib's ``(uri, method, body, headers)``, counts it, and
adds what oauthlib leaves to the server:

* the login page and the decision that completes the authorization request (RFC 6749 §4.1.1-4.1.2),
  with an error page, never a redirect, for a bad client or redirect URI (§4.1.2.1);
* ``iss`` on every authorization response, success or error (RFC 9207 §2);
* an HTTP Basic challenge with ``invalid_client`` (RFC 6749 §5.2);
* RFC 6750 §3 ``WWW-Authenticate`` challenges at userinfo (no error code when no token was sent);
* RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2-3): redirect only to a
  ``post_logout_redirect_uri`` registered for the client named by ``id_token_hint`` or ``client_id``;
  the hint's session ends and its clients get logout tokens (Back-Channel Logout 1.0, ``backchannel.py``),
  as they do for ``/dev/end-session?sub=`` (all of a user's sessions);
* the device verification page (RFC 8628 §3.3) and the dev-only counters and key rotation.
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import jwt
from oauthlib.common import add_params_to_uri, extract_params
from oauthlib.oauth2.rfc6749.errors import FatalClientError, InvalidRequestError, OAuth2Error
from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPFound
from webob import Response

from . import faults, pages
from .clientauth import ENVIRON_CERT, PEER_CERT
from .dpop import DPOP_JKT, DPoPError
from .oauth import NO_STORE, ProviderServer
from .par import LIFETIME, ParRefused
from .provider import DEVICE_VERIFICATION_PATH, DISCOVERY_PATH, ENDPOINT_PATHS, MTLS_ALIASES, PAR_PATH, DevProvider

REGISTRY_KEY = "pyramid_tokens.devidp"
#: the oauthlib endpoints serving the registered provider (built by :func:`add_routes`)
SERVER_KEY = "pyramid_tokens.devidp.oauth"
BASIC_CHALLENGE = 'Basic realm="devidp"'


def provider_of(request) -> DevProvider:
    return request.registry[REGISTRY_KEY]


def server_of(request) -> ProviderServer:
    return request.registry[SERVER_KEY]


def make_wsgi_app(provider: DevProvider, prefix: str = ""):
    """A standalone Pyramid WSGI app serving ``provider`` below ``prefix`` (e.g. ``/idp``)."""
    config = Configurator()
    config.registry[REGISTRY_KEY] = provider
    config.include(add_routes, route_prefix=prefix.rstrip("/") or None)
    return config.make_wsgi_app()


# -- helpers ----------------------------------------------------------------------------------------
def _oauth_request(request, extra: dict[str, str] | None = None) -> tuple[str, str, str | None, dict[str, str]]:
    """oauthlib's view of the request; the TLS client certificate and a checked DPoP key go as pseudo-headers."""
    body = request.body.decode("utf-8", "replace") if request.body else None
    headers = {k: v for k, v in request.headers.items() if k not in (PEER_CERT, DPOP_JKT)}
    if request.environ.get(ENVIRON_CERT):  # set by the TLS server only, never from an HTTP header
        headers[PEER_CERT] = request.environ[ENVIRON_CERT]
    return request.url, request.method, body, {**headers, **(extra or {})}


def _oauth_response(headers: dict[str, str], body: str | None, status: int) -> Response:
    response = Response(status=status, body=(body or "").encode("utf-8"))
    response.headers.update(headers or {})
    if body and "Content-Type" not in (headers or {}):
        response.content_type = "application/json"
    if status == 401:  # RFC 6749 §5.2: challenge with the scheme clients authenticate with
        response.headers["WWW-Authenticate"] = BASIC_CHALLENGE
    return response


def _error(e: OAuth2Error) -> tuple[dict[str, str], str, int]:
    return {**NO_STORE, **e.headers}, e.json, e.status_code


def _json(data: Any, status: int = 200) -> Response:
    response = Response(json.dumps(data), status=status, content_type="application/json", charset="utf-8")
    response.cache_control = "no-store"
    return response


def _redirect(location: str) -> HTTPFound:
    return HTTPFound(location=location, headers={"Cache-Control": "no-store"})


def _with_iss(uri: str, provider: DevProvider, fragment: bool) -> str:
    return add_params_to_uri(uri, [("iss", provider.issuer)], fragment=fragment)


def _valid_username(username: str) -> bool:
    return 0 < len(username) <= 64 and username.isprintable()


# -- discovery and keys -------------------------------------------------------------------------------
def discovery_view(request):
    provider = provider_of(request)
    provider.counter.hit("discovery")
    return _json(provider.metadata())


def jwks_view(request):
    provider = provider_of(request)
    provider.counter.hit("jwks")
    return _json(provider.jwks())


# -- authorization endpoint -----------------------------------------------------------------------------
def authorize_view(request):
    """Validate the authorization request and show the login page (GET or form POST, OIDC Core §3.1.2.1)."""
    provider = provider_of(request)
    if request.method == "POST" and "devidp_action" in request.POST:
        return _authorization_decision(request, provider)
    provider.counter.hit("authorize")
    query = request.query_string if request.method == "GET" else urlencode(list(request.POST.items()))
    outcome = _validate_authorization(request, provider, query)
    if not isinstance(outcome, tuple):
        return outcome
    scopes, info = outcome
    login_hint = info["request"].login_hint or ""
    return pages.login_page(request.path_url, info["client_id"], scopes, query, username=login_hint)


def _validate_authorization(request, provider: DevProvider, query: str):
    """``(scopes, info)`` from oauthlib, or the response for a refused request."""
    try:
        query = provider.par.resolve(query)  # RFC 9126 §4: a request_uri stands for its pushed request
    except ParRefused as e:
        return pages.error_page(e.error, e.description)
    try:
        return server_of(request).validate_authorization_request(
            f"{request.path_url}?{query}", "GET", headers=dict(request.headers)
        )
    except FatalClientError as e:
        return pages.error_page(e.error, e.description)
    except OAuth2Error as e:
        return _redirect(_with_iss(e.in_uri(e.redirect_uri), provider, e.response_mode == "fragment"))
    except ValueError:  # oauthlib refuses to parse the query
        return pages.error_page("invalid_request", "The authorization request could not be parsed.")


def _authorization_decision(request, provider: DevProvider):
    """The login form was submitted: redirect back with a code, or with ``access_denied``."""
    query = request.POST.get("authorization_request", "")
    outcome = _validate_authorization(request, provider, query)  # the hidden field is not trusted
    if not isinstance(outcome, tuple):
        return outcome
    scopes, info = outcome
    fragment = info["request"].response_mode == "fragment"
    approve = request.POST.get("devidp_action") == "approve"
    username = request.POST.get("username", "").strip()
    if approve and not _valid_username(username):
        return pages.login_page(request.path_url, info["client_id"], scopes, query, note="Enter a user name.")
    try:
        query = provider.par.resolve(query, consume=True)  # a pushed request is used once (RFC 9126 §4)
    except ParRefused as e:  # used meanwhile in another tab
        return pages.error_page(e.error, e.description)
    if not approve:
        params = [("error", "access_denied"), ("error_description", "The user denied the request")]
        params += [("state", info["state"])] if info["state"] else []
        return _redirect(_with_iss(add_params_to_uri(info["redirect_uri"], params, fragment), provider, fragment))
    headers, _, _ = server_of(request).create_authorization_response(
        f"{request.path_url}?{query}",
        "GET",
        headers=dict(request.headers),
        scopes=scopes,
        credentials={"user": provider.user(username), "auth_time": int(provider.clock())},
    )
    return _redirect(_with_iss(headers["Location"], provider, fragment))


def par_view(request):
    """RFC 9126 §2: a pushed authorization request (``par.py``); 201 with its ``request_uri``."""
    provider = provider_of(request)
    problem = _form_problem(request) if request.method == "POST" else InvalidRequestError(description="POST only")
    try:
        if problem is not None:
            raise ParRefused(problem.error, problem.description)
        validate = server_of(request).validate_authorization_request
        uri = provider.par.push(request, _oauth_request(request),
                                lambda query: validate(f"{provider.endpoint('authorization_endpoint')}?{query}", "GET"))
    except ParRefused as e:
        response = _json({"error": e.error, "error_description": e.description}, status=e.status)
    else:
        response = _json({"request_uri": uri, "expires_in": LIFETIME}, status=201)
    response.headers.update(provider.dpop.nonce_header())
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = BASIC_CHALLENGE
    return response


# -- token, revocation, device authorization (client-authenticated endpoints) ---------------------------
def _form_problem(request) -> OAuth2Error | None:
    """RFC 6749 §3.2, RFC 7009 §2.1: parameters come form-encoded; oauthlib trips over anything else."""
    if request.method != "POST" or not request.body:
        return None
    form = request.content_type == "application/x-www-form-urlencoded"
    if not form or extract_params(request.body.decode("utf-8", "replace")) is None:
        return InvalidRequestError(description="The body must be application/x-www-form-urlencoded.")
    return None


def token_view(request):
    provider = provider_of(request)
    try:
        problem = _form_problem(request)
        if problem is not None:
            raise problem
        jkt = provider.dpop.check_token_request(request)  # RFC 9449 §5, §8, §10
        extra = {DPOP_JKT: jkt} if jkt else {}
        headers, body, status = server_of(request).create_token_response(*_oauth_request(request, extra))
    except OAuth2Error as e:
        headers, body, status = _error(e)
    headers = {**provider.dpop.nonce_header(), **headers}
    if status != 200:
        provider.counter.token_error(json.loads(body).get("error", "unknown") if body else "unknown")
    return _oauth_response(headers, body, status)


def revoke_view(request):
    provider = provider_of(request)
    provider.counter.hit("revocation")
    try:
        problem = _form_problem(request)
        if problem is not None:
            raise problem
        headers, body, status = server_of(request).create_revocation_response(*_oauth_request(request))
    except OAuth2Error as e:
        headers, body, status = _error(e)
    return _oauth_response(headers, body, status)


def device_authorization_view(request):
    provider = provider_of(request)
    provider.counter.hit("device_authorization")
    try:
        endpoint = server_of(request).device_authorization
        headers, body, status = endpoint.create_device_authorization_response(*_oauth_request(request))
    except OAuth2Error as e:
        headers, body, status = _error(e)
    return _oauth_response(headers, body, status)


# -- userinfo ----------------------------------------------------------------------------------------------
def userinfo_view(request):
    provider = provider_of(request)
    provider.counter.hit("userinfo")
    try:
        extra = provider.dpop.resource_headers(request)  # RFC 9449 §7: a DPoP token and its proof
        headers, body, status = server_of(request).create_userinfo_response(*_oauth_request(request, extra))
    except DPoPError as e:
        response = _json({"error": e.error, "error_description": e.description}, status=e.status_code)
        response.headers.update(e.headers)
        return response
    except OAuth2Error as e:
        challenge = 'Bearer realm="devidp"'
        if _presented_bearer_token(request):  # RFC 6750 §3.1: no error code when no token was sent
            challenge += f', error="{e.error}", error_description="{e.description}"'
        response = _json({"error": e.error, "error_description": e.description}, status=e.status_code)
        response.headers["WWW-Authenticate"] = challenge
        return response
    return _oauth_response({**headers, "Cache-Control": "no-store"}, body, status)


def _presented_bearer_token(request) -> bool:
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    return (scheme.lower() == "bearer" and bool(token.strip())) or bool(request.params.get("access_token"))


# -- RP-initiated logout -----------------------------------------------------------------------------------
def logout_view(request):
    provider = provider_of(request)
    provider.counter.hit("end_session")
    params = request.params
    target, state = params.get("post_logout_redirect_uri"), params.get("state")
    client_id, problem = params.get("client_id"), ""
    audiences: list[str] = []
    if params.get("id_token_hint"):
        try:  # an expired ID token is still a good hint (RP-Initiated Logout §2)
            claims = provider.verify(params["id_token_hint"], verify_exp=False)
        except jwt.InvalidTokenError:
            problem = "The id_token_hint was not issued by this provider."
        else:
            aud = claims.get("aud")
            audiences = [aud] if isinstance(aud, str) else list(aud or [])
            if isinstance(claims.get("sid"), str):  # the provider session ends: its clients are told (bcl)
                provider.backchannel.end_session(claims["sid"])
    if client_id and audiences and client_id not in audiences:
        problem = "The client_id does not match the id_token_hint."
    client = provider.get_client(client_id or (audiences[0] if len(audiences) == 1 else None))
    if target and not problem and client is not None and target in client.post_logout_redirect_uris:
        return _redirect(add_params_to_uri(target, [("state", state)] if state else []))
    if target and not problem:
        problem = "The post_logout_redirect_uri is not registered for this client, so you stay here."
    return pages.message_page("You are logged out", f"You have been logged out. {problem}".strip())


# -- device verification (RFC 8628 §3.3) ----------------------------------------------------------------------
def device_view(request):
    return pages.device_page(request.path_url, user_code=request.GET.get("user_code", ""))


def device_decision_view(request):
    provider = provider_of(request)
    user_code = request.POST.get("user_code", "")
    username = request.POST.get("username", "").strip()
    approve = request.POST.get("devidp_action") == "approve"
    if approve and not _valid_username(username):
        return pages.device_page(request.path_url, user_code, note="Enter a user name.", status=400)
    outcome = provider.decide_device(user_code, username, approve)
    if outcome == "approved":
        return pages.message_page("Device connected", "You may return to your device.")
    if outcome == "denied":
        return pages.message_page("Device not connected", "You denied the request; the device gets no access.")
    if outcome == "decided":
        return pages.message_page("Already answered", "This code has already been used.", status=400)
    note = "That code has expired." if outcome == "expired" else "Unknown code; check the code on your device."
    return pages.device_page(request.path_url, user_code, note=note, status=400)


# -- dev-only ---------------------------------------------------------------------------------------------------
def end_session_view(request):
    """``POST /dev/end-session?sub=NAME``: end every session of the user, as an administrator would (bcl).

    POST only, as ``/dev/rotate-keys`` (it changes state); no authentication: a development provider.
    """
    sub = request.params.get("sub", "")
    if not _valid_username(sub):
        return _json({"error": "invalid_request", "error_description": "name a user: ?sub=NAME"}, 400)
    return _json({"sub": sub, "deliveries": provider_of(request).backchannel.end_user(sub)})


def counters_view(request):
    return _json(provider_of(request).counters())


def counters_reset_view(request):
    provider = provider_of(request)
    provider.reset_counters()
    return _json(provider.counters())


def rotate_keys_view(request):
    keep_old = request.params.get("keep_old", "true").lower() not in ("0", "false", "no", "off")
    kid = provider_of(request).rotate_keys(keep_old=keep_old)
    return _json({"kid": kid, "keep_old": keep_old})


def add_routes(config) -> None:
    """Route every endpoint of the registered provider below the current ``route_prefix`` (the issuer's path)."""
    config.registry[SERVER_KEY] = ProviderServer(config.registry[REGISTRY_KEY])

    def route(name: str, path: str, *views: tuple[Any, str | tuple[str, ...] | None]) -> None:
        config.add_route(f"devidp.{name}", path)
        for view, methods in views:  # faults.guard: tests may make the provider misbehave (faults.py)
            config.add_view(faults.guard(name, view, provider_of), route_name=f"devidp.{name}", request_method=methods)

    paths = ENDPOINT_PATHS
    route("discovery", DISCOVERY_PATH, (discovery_view, "GET"))
    route("jwks", paths["jwks_uri"], (jwks_view, "GET"))
    route("authorize", paths["authorization_endpoint"], (authorize_view, ("GET", "POST")))
    route("token", paths["token_endpoint"], (token_view, None))  # oauthlib answers a wrong method
    route("revoke", paths["revocation_endpoint"], (revoke_view, None))
    route("userinfo", paths["userinfo_endpoint"], (userinfo_view, ("GET", "POST")))
    route("logout", paths["end_session_endpoint"], (logout_view, ("GET", "POST")))
    route("device_authorization", paths["device_authorization_endpoint"],
          (device_authorization_view, "POST"))
    route("par", PAR_PATH, (par_view, None))
    for name, alias in MTLS_ALIASES.items():  # RFC 8705 §5: the same views at the mTLS aliases
        view = {"token_endpoint": token_view, "revocation_endpoint": revoke_view, "userinfo_endpoint": userinfo_view,
                "pushed_authorization_request_endpoint": par_view,
                "device_authorization_endpoint": device_authorization_view}[name]
        route(f"mtls.{name}", alias, (view, None))
    route("device", DEVICE_VERIFICATION_PATH, (device_view, "GET"), (device_decision_view, "POST"))
    route("counters", "/dev/counters", (counters_view, "GET"))
    route("dev_end_session", "/dev/end-session", (end_session_view, "POST"))
    route("counters_reset", "/dev/counters/reset", (counters_reset_view, "POST"))
    route("rotate_keys", "/dev/rotate-keys", (rotate_keys_view, "POST"))
