"""The oauthlib ``RequestValidator``: where oauthlib's protocol checks meet the provider's state.

oauthlib does the RFC 6749 request validation (§4.1.1-4.1.3, §4.4.2, §6), PKCE (RFC 7636 §4.4-4.6),
revocation (RFC 7009 §2), device flow (RFC 8628 §3.1, §3.4-3.5) and OpenID Connect (Core §3.1.2,
§5.3, §12); this class answers its questions from :class:`~pyramid_tokens.devidp.state.State`:

* codes are claimed (used) atomically when validated, refresh tokens consumed when validated
  (rotation), device codes used once when authorized;
* PKCE is required and only ``S256`` is offered (oauth.py removes ``plain``);
* redirect URIs match registered ones exactly (RFC 6749 §3.1.2.3);
* RFC 8707 §2: ``resource`` must be an absolute URI without fragment, allowed for the client and,
  when the authorization named resources, one of those; otherwise ``invalid_target``.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import jwt
from oauthlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidScopeError,
    OAuth2Error,
    UnauthorizedClientError,
    UnsupportedResponseTypeError,
)
from oauthlib.oauth2.rfc6749.utils import scope_to_list
from oauthlib.oauth2.rfc8628.request_validator import RequestValidator as DeviceRequestValidator
from oauthlib.openid import RequestValidator as OpenIDRequestValidator
from oauthlib.uri_validate import is_absolute_uri

from .dpop import binding_satisfied
from .models import USER_SCOPES
from .state import AuthorizationCode, Grant, RefreshToken

if TYPE_CHECKING:
    from .provider import DevProvider

log = logging.getLogger("pyramid_tokens.devidp")


class InvalidTargetError(OAuth2Error):
    """RFC 8707 §2: the requested resource is invalid, unknown, or not allowed."""

    error = "invalid_target"


class DevRequestValidator(OpenIDRequestValidator, DeviceRequestValidator):
    """Answers oauthlib from the provider's clients, users and in-memory state."""

    REFRESH_REFUSED = "The refresh token is unknown, already used, revoked or expired."

    def __init__(self, provider: DevProvider) -> None:
        self.provider = provider
        self.state = provider.state

    # -- clients (RFC 6749 §2.3, §3.2.1) ------------------------------------------------------------
    def client_authentication_required(self, request, *args, **kwargs):
        if request.headers.get("Authorization") or request.client_secret is not None:
            return True
        client = self.provider.get_client(request.client_id)
        return client is None or client.confidential

    def authenticate_client(self, request, *args, **kwargs):
        return self.provider.authenticate_client(request)

    def authenticate_client_id(self, client_id, request, *args, **kwargs):
        return self.provider.authenticate_client(request)

    def validate_client_id(self, client_id, request, *args, **kwargs):
        return self.provider.get_client(client_id) is not None

    # -- authorization endpoint (RFC 6749 §4.1.1, RFC 7636 §4.3, OIDC Core §3.1.2.1) -----------------
    def validate_redirect_uri(self, client_id, redirect_uri, request, *args, **kwargs):
        client = self.provider.get_client(client_id)
        return client is not None and redirect_uri in client.redirect_uris

    def get_default_redirect_uri(self, client_id, request, *args, **kwargs):
        """The only registered URI; OpenID Connect authentication requests must always name one."""
        client = self.provider.get_client(client_id)
        if client is None or len(client.redirect_uris) != 1:
            return None
        if request.response_type and "openid" in (scope_to_list(request.scope) or ()):
            return None
        return client.redirect_uris[0]

    def validate_response_type(self, client_id, response_type, client, request, *args, **kwargs):
        if response_type != "code":
            raise UnsupportedResponseTypeError(request=request)
        client = self.provider.get_client(client_id)
        return client is not None and "authorization_code" in client.grant_types

    def is_pkce_required(self, client_id, request):
        return True

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs):
        client = client or self.provider.get_client(client_id)
        if client is None or not set(scopes) <= set(client.scopes):
            return False
        return request.grant_type != "client_credentials" or not USER_SCOPES & set(scopes)

    def get_default_scopes(self, client_id, request, *args, **kwargs):
        """Without a ``scope`` parameter a client gets its API scopes, never user-only ones."""
        client = self.provider.get_client(client_id)
        return [scope for scope in (client.scopes if client else ()) if scope not in USER_SCOPES]

    def authorization_resources(self, request) -> dict[str, Any]:
        """oauthlib ``post_auth`` hook: the RFC 8707 resources of an authorization request."""
        request.devidp_resources = self.requested_resources(request, self.provider.get_client(request.client_id))
        return {"resources": request.devidp_resources}

    def requested_resources(self, request, client) -> tuple[str, ...]:
        """The ``resource`` parameters (RFC 8707 §2), checked for form and against the client."""
        params = list(request.decoded_body or []) + request.uri_query_params
        resources = tuple(dict.fromkeys(value for name, value in params if name == "resource"))
        for resource in resources:
            if not is_absolute_uri(resource):
                raise InvalidTargetError(description="resource must be an absolute URI without fragment",
                                         request=request)  # fmt: skip
            if client is not None and client.resources is not None and resource not in client.resources:
                raise InvalidTargetError(description="resource not allowed for this client", request=request)
        return resources

    def save_authorization_code(self, client_id, code, request, *args, **kwargs):
        now = self.provider.clock()
        grant = Grant(
            client_id=client_id,
            scopes=tuple(request.scopes),
            username=request.user.username,
            auth_time=getattr(request, "auth_time", None) or int(now),
            resources=getattr(request, "devidp_resources", ()),
        )
        record = AuthorizationCode(
            code=code["code"],
            grant=grant,
            redirect_uri=request.redirect_uri,
            redirect_uri_sent=not request.using_default_redirect_uri,
            code_challenge=request.code_challenge,
            code_challenge_method=request.code_challenge_method,
            nonce=request.nonce,
            expires_at=now + self.provider.code_lifetime,
        )
        self.state.add_code(record, now)
        self.provider.dpop.bind_code(code["code"], dict(request.uri_query_params).get("dpop_jkt"))  # RFC 9449 §10

    def validate_silent_login(self, request):
        return False  # no sessions: prompt=none always answers login_required

    def validate_silent_authorization(self, request):
        return False

    def validate_user_match(self, id_token_hint, scopes, claims, request):
        return True

    # -- token endpoint, all grants -------------------------------------------------------------------
    def validate_grant_type(self, client_id, grant_type, client, request, *args, **kwargs):
        """The first hook every grant calls after client authentication: grant type, then resources."""
        if grant_type not in client.grant_types:
            return False
        request.devidp_resources = self.requested_resources(request, client)
        return True

    def _check_resources_within(self, request, grant: Grant) -> None:
        requested = set(getattr(request, "devidp_resources", ()))
        if grant.resources and not requested <= set(grant.resources):
            raise InvalidTargetError(description="resource was not part of the authorization", request=request)

    def _bind_grant(self, request, grant: Grant) -> None:
        request.devidp_grant = grant
        request.user = self.provider.user(grant.username) if grant.username else None

    def save_bearer_token(self, token, request, *args, **kwargs):
        now = self.provider.clock()
        grant = getattr(request, "devidp_grant", None)
        claims = request.devidp_access_claims
        self.state.add_access_token(claims["jti"], grant, claims["exp"], now)
        if "refresh_token" in token:
            lifetime = request.client.refresh_token_lifetime
            expires_at = None if lifetime is None else now + lifetime
            self.state.add_refresh_token(RefreshToken(token["refresh_token"], grant, expires_at), now)
        self.provider.counter.token_issued(request.grant_type, request.client_id)
        log.info("devidp: token issued to client %s (grant %s)", request.client_id, request.grant_type)

    def get_id_token(self, token, token_handler, request):
        return self.provider.id_token(request, token)

    # -- authorization code grant (RFC 6749 §4.1.3, RFC 7636 §4.6) ------------------------------------
    def validate_code(self, client_id, code, client, request, *args, **kwargs):
        record = self.state.peek_code(code)
        if record is not None and record.grant.client_id == client_id and not record.used:
            self._check_resources_within(request, record.grant)
        record = self.state.claim_code(code, client_id, self.provider.clock())
        if record is None:
            log.info("devidp: authorization code refused for client %s (unknown, expired or reused)", client_id)
            raise InvalidGrantError(description="The authorization code is unknown, expired or already used.",
                                    request=request)  # fmt: skip
        request.devidp_code = record
        request.scopes = list(record.grant.scopes)
        self._bind_grant(request, record.grant)
        return True

    def get_code_challenge(self, code, request):
        return request.devidp_code.code_challenge

    def get_code_challenge_method(self, code, request):
        return request.devidp_code.code_challenge_method

    def confirm_redirect_uri(self, client_id, code, redirect_uri, client, request, *args, **kwargs):
        record: AuthorizationCode = request.devidp_code
        if record.redirect_uri_sent and request.using_default_redirect_uri:
            return False  # RFC 6749 §4.1.3: required when the authorization request had it
        return redirect_uri == record.redirect_uri

    def invalidate_authorization_code(self, client_id, code, request, *args, **kwargs):
        pass  # already used up by validate_code

    def get_authorization_code_scopes(self, client_id, code, redirect_uri, request):
        record = self.state.peek_code(code)
        return list(record.grant.scopes) if record else []

    def get_authorization_code_nonce(self, client_id, code, redirect_uri, request):
        record = getattr(request, "devidp_code", None)
        return record.nonce if record else None

    # -- refresh token grant (RFC 6749 §6) -----------------------------------------------------------
    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        now = self.provider.clock()
        record = self.state.peek_refresh_token(refresh_token)
        if record is None or not self.state.refresh_token_usable(record, client.client_id, now):
            log.info("devidp: refresh token refused for client %s (unknown, used, revoked, expired)", client.client_id)
            raise InvalidGrantError(description=self.REFRESH_REFUSED, request=request)
        if not set(scope_to_list(request.scope) or ()) <= set(record.grant.scopes):
            raise InvalidScopeError(description="a refresh may narrow the scope, never widen it", request=request)
        self._check_resources_within(request, record.grant)
        if self.state.consume_refresh_token(refresh_token, client.client_id, now) is None:
            raise InvalidGrantError(description=self.REFRESH_REFUSED, request=request)  # a concurrent use won
        self._bind_grant(request, record.grant)
        return True

    def get_original_scopes(self, refresh_token, request, *args, **kwargs):
        return list(request.devidp_grant.scopes)

    def is_within_original_scope(self, request_scopes, refresh_token, request, *args, **kwargs):
        return False

    def rotate_refresh_token(self, request):
        return True

    def refresh_id_token(self, request):
        return True  # oauthlib adds it only when openid is among the (possibly narrowed) scopes

    # -- device authorization grant (RFC 8628 §3.4, §3.5) ---------------------------------------------
    def validate_device_code(self, client_id, code, request, *args, **kwargs):
        record = self.state.peek_device(code)
        if record is not None and record.grant.client_id == client_id:
            self._check_resources_within(request, record.grant)
        status, record = self.state.poll_device(code, client_id, self.provider.clock())
        if record is not None:
            request.scopes = list(record.grant.scopes)
            self._bind_grant(request, record.grant)
        return status

    # -- revocation (RFC 7009 §2.1) ------------------------------------------------------------------
    def revoke_token(self, token, token_type_hint, request, *args, **kwargs):
        """Revoke a refresh token (and its grant) or an access token; unknown tokens are ignored."""
        client_id = request.client.client_id
        record = self.state.peek_refresh_token(token)
        if record is not None:
            if record.grant.client_id != client_id:
                raise UnauthorizedClientError(description="the token was issued to another client", request=request)
            self.state.revoke_grant(record.grant)
            log.info("devidp: refresh token of client %s revoked", client_id)
            return
        try:
            claims = self.provider.verify(token, typ="at+jwt", verify_exp=False)
        except jwt.InvalidTokenError:
            return  # RFC 7009 §2.2: invalid or unknown tokens need no error
        if claims.get("client_id") != client_id:
            raise UnauthorizedClientError(description="the token was issued to another client", request=request)
        self.state.revoke_access_token(claims.get("jti", ""), claims["exp"])
        log.info("devidp: access token of client %s revoked", client_id)

    # -- userinfo (OIDC Core §5.3, RFC 6750 §2) ------------------------------------------------------
    def validate_bearer_token(self, token, scopes, request):
        if not token:
            return False
        try:
            claims = self.provider.verify(token, typ="at+jwt")
        except jwt.InvalidTokenError as exc:
            log.info("devidp: access token refused at userinfo: %s", exc)
            return False
        if self.state.access_token_revoked(claims.get("jti", "")):
            log.info("devidp: revoked access token refused at userinfo")
            return False
        if not binding_satisfied(claims, request.headers):  # RFC 9449 §7, RFC 8705 §3
            log.info("devidp: bound access token refused at userinfo (no proof of its key or certificate)")
            return False
        request.scopes = scope_to_list(claims.get("scope")) or []
        request.access_token_claims = claims
        return True

    def get_userinfo_claims(self, request):
        sub = request.access_token_claims["sub"]
        return {"sub": sub, **self.provider.user(sub).claims(request.scopes)}
