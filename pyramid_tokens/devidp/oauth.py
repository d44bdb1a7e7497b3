"""The oauthlib server behind the provider, composed like ``oauthlib.openid.Server`` but narrowed.

Offered: the authorization code grant with PKCE ``S256`` only (RFC 6749 §4.1, RFC 7636 §4.2),
OpenID Connect on top of it (Core §3.1), refresh (RFC 6749 §6), client credentials (§4.4), the
device authorization grant (RFC 8628 §3.1-3.5), token exchange (RFC 8693, ``exchange.py``) for clients
registered for it, revocation (RFC 7009) and userinfo (Core §5.3).
Not offered: implicit, hybrid, password, PKCE ``plain``. Access tokens are RFC 9068 JWTs.

oauthlib's device grant neither adds an ID token nor runs token modifiers, and its device
authorization endpoint stores nothing and insists on a ``client_id`` parameter even from clients
authenticating with HTTP Basic (RFC 8628 §3.1 requires it only of clients that do not
authenticate); :class:`OpenIDDeviceCodeGrant` and :class:`DeviceEndpoint` close those gaps.
"""
from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING
from urllib.parse import quote

from oauthlib.common import Request
from oauthlib.oauth2.rfc6749.endpoints import AuthorizationEndpoint, RevocationEndpoint, TokenEndpoint
from oauthlib.oauth2.rfc6749.errors import OAuth2Error, UnauthorizedClientError
from oauthlib.oauth2.rfc6749.grant_types import AuthorizationCodeGrant, ClientCredentialsGrant
from oauthlib.oauth2.rfc6749.grant_types.authorization_code import code_challenge_method_s256
from oauthlib.oauth2.rfc6749.tokens import BearerToken
from oauthlib.oauth2.rfc8628.endpoints import DeviceAuthorizationEndpoint
from oauthlib.oauth2.rfc8628.grant_types import DeviceCodeGrant
from oauthlib.openid.connect.core.endpoints.userinfo import UserInfoEndpoint
from oauthlib.openid.connect.core.grant_types import AuthorizationCodeGrant as OpenIDAuthorizationCodeGrant
from oauthlib.openid.connect.core.grant_types import RefreshTokenGrant as OpenIDRefreshTokenGrant
from oauthlib.openid.connect.core.grant_types.dispatchers import (
    AuthorizationCodeGrantDispatcher,
    AuthorizationTokenGrantDispatcher,
)

from .clientauth import basic_credentials
from .dpop import DPOP_JKT
from .exchange import with_token_exchange
from .models import DEVICE_CODE_GRANT
from .validator import DevRequestValidator

if TYPE_CHECKING:
    from .provider import DevProvider

NO_STORE = {"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenHandler(BearerToken):
    """Bearer tokens whose access token is a signed JWT; refresh tokens only where the grant allows."""

    def __init__(self, validator: DevRequestValidator, provider: DevProvider) -> None:
        super().__init__(
            validator,
            token_generator=provider.access_token,
            expires_in=provider.access_token_lifetime,
            refresh_token_generator=lambda request: secrets.token_urlsafe(32),
        )
        self.provider = provider

    def create_token(self, request, refresh_token=False, **kwargs):
        refresh_token = refresh_token and self.provider.issues_refresh_token(request)
        token = super().create_token(request, refresh_token=refresh_token, **kwargs)
        jkt = request.headers.get(DPOP_JKT)
        if jkt:  # RFC 9449 §5: bound to the proof key; a public client's refresh token too
            token["token_type"] = "DPoP"
            if "refresh_token" in token and not request.client.confidential:
                self.provider.dpop.bind_refresh_token(token["refresh_token"], jkt)
        return token


class OpenIDDeviceCodeGrant(DeviceCodeGrant):
    """RFC 8628 §3.5 token response, with an ID token when ``openid`` was granted."""

    def create_token_response(self, request, token_handler):
        headers = self._get_default_headers()
        try:
            self.validate_token_request(request)
        except OAuth2Error as e:
            headers.update(e.headers)
            return headers, e.json, e.status_code
        token = token_handler.create_token(request, refresh_token=True)
        if "openid" in request.scopes:
            token["id_token"] = self.request_validator.get_id_token(token, token_handler, request)
        self.request_validator.save_token(token, request)
        return headers, json.dumps(token), 200


class DeviceEndpoint(DeviceAuthorizationEndpoint):
    """RFC 8628 §3.1-3.2: validates with oauthlib, then starts a device authorization at the provider."""

    def __init__(self, validator: DevRequestValidator, provider: DevProvider) -> None:
        super().__init__(validator, verification_uri=provider.verification_uri)
        self.provider = provider

    def create_device_authorization_response(self, uri, http_method="POST", body=None, headers=None):
        """``(headers, body, status)``; raises ``OAuth2Error`` for a refused request."""
        request = Request(uri, http_method, body, headers)
        if not request.client_id:  # a client using client_secret_basic names itself in the header
            basic = basic_credentials(request.headers.get("Authorization"))
            request.client_id = basic[0] if basic and basic[0] else None
        self.validate_device_authorization_request(request)
        client = request.client
        if DEVICE_CODE_GRANT not in client.grant_types:
            raise UnauthorizedClientError(request=request)
        resources = self.request_validator.requested_resources(request, client)
        record = self.provider.start_device_authorization(client, request.scopes, resources)
        data = {
            "device_code": record.device_code,
            "user_code": record.user_code,
            "verification_uri": self.provider.verification_uri,
            "verification_uri_complete": f"{self.provider.verification_uri}?user_code={quote(record.user_code)}",
            "expires_in": self.provider.device_lifetime,
            "interval": self.provider.device_interval,
        }
        return dict(NO_STORE), json.dumps(data), 200


class ProviderServer(AuthorizationEndpoint, TokenEndpoint, RevocationEndpoint, UserInfoEndpoint):
    """All of the provider's oauthlib endpoints; ``device_authorization`` is the RFC 8628 one."""

    def __init__(self, provider: DevProvider) -> None:
        validator = DevRequestValidator(provider)
        tokens = TokenHandler(validator, provider)

        def code_grant_options():
            return {
                "_code_challenge_methods": {"S256": code_challenge_method_s256},  # no "plain"
                "post_auth": [validator.authorization_resources],
            }

        oauth_code = AuthorizationCodeGrant(validator, **code_grant_options())
        oidc_code = OpenIDAuthorizationCodeGrant(validator, **code_grant_options())
        AuthorizationEndpoint.__init__(
            self,
            default_response_type="code",
            default_token_type=tokens,
            response_types={"code": AuthorizationCodeGrantDispatcher(default_grant=oauth_code, oidc_grant=oidc_code)},
        )
        TokenEndpoint.__init__(
            self,
            default_grant_type="authorization_code",
            default_token_type=tokens,
            grant_types=with_token_exchange({
                "authorization_code": AuthorizationTokenGrantDispatcher(
                    validator, default_grant=oauth_code, oidc_grant=oidc_code
                ),
                "refresh_token": OpenIDRefreshTokenGrant(validator),
                "client_credentials": ClientCredentialsGrant(validator),
                DEVICE_CODE_GRANT: OpenIDDeviceCodeGrant(validator),
            }, validator),
        )
        RevocationEndpoint.__init__(self, validator)
        UserInfoEndpoint.__init__(self, validator)
        self.request_validator = validator
        self.device_authorization = DeviceEndpoint(validator, provider)
