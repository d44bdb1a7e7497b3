"""The token-exchange grant at the development provider (RFC 8693 §2.1-2.2, §4.1 ``act``).

A client registered with the grant (``grant_types`` includes :data:`TOKEN_EXCHANGE_GRANT`) sends
a ``subject_token`` (an access token this provider issued to that client, or for it as its ``aud``,
checked like at userinfo: signature, ``iss``, expiry, not revoked, and used as bound: a DPoP-bound
subject token needs a proof of its key) and gets an access token for one of its allowed targets: an ``audience`` from the client's
``audiences`` list, or a ``resource`` from its ``resources`` (RFC 8707). The new token keeps the
subject's ``sub`` and the subject's grant (revoking the login's grant revokes it too); with an
``actor_token`` it carries ``act`` naming the actor (delegation, §4.1), nesting a previous ``act``.

RFC 8693 §2.2.2 answers ``invalid_request`` for every unacceptable subject token. Like Entra ID's
on-behalf-of flow, this provider answers ``invalid_grant`` for a subject token that is well formed
but dead (expired, revoked, unknown key), so a client can tell "refresh and retry" from a bad request.
"""
from __future__ import annotations

import json
import logging
from typing import Any

import jwt
from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc6749.grant_types.base import GrantTypeBase
from oauthlib.oauth2.rfc6749.utils import scope_to_list

from .dpop import binding_satisfied
from .models import TOKEN_EXCHANGE_GRANT, USER_SCOPES
from .validator import InvalidTargetError

log = logging.getLogger("pyramid_tokens.devidp")

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
#: what this provider validates (its own access tokens) and issues (its access tokens, which are JWTs)
ACCEPTED_TYPES = (ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE)
#: parameters that may appear once only (RFC 8693 §2.1; ``audience`` and ``resource`` may repeat)
SINGLE_PARAMS = ("grant_type", "scope", "subject_token", "subject_token_type", "actor_token", "actor_token_type",
                 "requested_token_type")


class TokenExchangeGrant(GrantTypeBase):
    """``grant_type=urn:ietf:params:oauth:grant-type:token-exchange`` for oauthlib's token endpoint."""

    def create_token_response(self, request, token_handler):
        headers = self._get_default_headers()
        try:
            issued_type = self.validate_token_request(request)
        except errors.OAuth2Error as e:
            headers.update(e.headers)
            return headers, e.json, e.status_code
        token = token_handler.create_token(request, refresh_token=False)  # §2.2.1: no refresh token here
        token["issued_token_type"] = issued_type
        self.request_validator.save_token(token, request)
        return headers, json.dumps(token), 200

    def validate_token_request(self, request) -> str:
        """Authenticate the client and check the exchange; returns the ``issued_token_type``."""
        params: dict[str, list[str]] = {}
        for name, value in request.decoded_body or ():
            params.setdefault(name, []).append(value)
        for name in SINGLE_PARAMS:
            if len(params.get(name, ())) > 1:
                raise errors.InvalidRequestError(description=f"Duplicate {name} parameter.", request=request)
        one = {name: values[0] for name, values in params.items()}
        if not self.request_validator.authenticate_client(request):
            raise errors.InvalidClientError(request=request)
        self.validate_grant_type(request)  # the client is registered for the grant; RFC 8707 resources checked
        provider = self.request_validator.provider
        requested = one.get("requested_token_type") or ACCESS_TOKEN_TYPE
        if requested not in ACCEPTED_TYPES:
            raise errors.InvalidRequestError(description="requested_token_type is not one this provider issues",
                                             request=request)
        subject = self._token_claims(request, one, "subject")
        if subject is None:
            raise errors.InvalidRequestError(description="subject_token and subject_token_type are required",
                                             request=request)
        actor = self._token_claims(request, one, "actor")
        audiences = tuple(dict.fromkeys(params.get("audience", ())))
        client = request.client
        for audience in audiences:
            if audience not in client.audiences:
                raise InvalidTargetError(description="audience not allowed for this client", request=request)
        resources = getattr(request, "devidp_resources", ())
        targets = audiences + tuple(resources)
        if not targets:
            raise InvalidTargetError(description="name the target: an audience or a resource", request=request)
        scopes = scope_to_list(one.get("scope")) or [
            s for s in scope_to_list(subject.get("scope")) or () if s in client.scopes and s not in USER_SCOPES]
        if not set(scopes) <= set(client.scopes) or "offline_access" in scopes:
            raise errors.InvalidScopeError(request=request)
        request.scopes = scopes
        grant = provider.state.access_token_grant(subject.get("jti", ""))
        request.devidp_grant = grant
        request.user = provider.user(subject["sub"]) if grant is not None and grant.username else None
        extra: dict[str, Any] = {"aud": targets[0] if len(targets) == 1 else list(targets), "sub": subject["sub"]}
        if actor is not None:
            act: dict[str, Any] = {"sub": actor["sub"]}
            if isinstance(subject.get("act"), dict):
                act["act"] = subject["act"]  # §4.1: the chain of delegation, most recent actor outermost
            extra["act"] = act
        elif isinstance(subject.get("act"), dict):
            extra["act"] = subject["act"]
        request.devidp_claims = extra
        log.info("devidp: token exchange by client %s for %s (audience %s%s)", client.client_id, subject["sub"],
                 extra["aud"], f", actor {actor['sub']}" if actor else "")
        return requested

    def _token_claims(self, request, params: dict[str, str], role: str) -> dict[str, Any] | None:
        """The claims of the ``subject``/``actor`` token, validated as this provider's access token."""
        token, kind = params.get(f"{role}_token"), params.get(f"{role}_token_type")
        if not token and not kind:
            return None
        if not token or not kind:
            raise errors.InvalidRequestError(description=f"{role}_token and {role}_token_type go together",
                                             request=request)
        if kind not in ACCEPTED_TYPES:
            raise errors.InvalidRequestError(description=f"{role}_token_type is not supported", request=request)
        provider = self.request_validator.provider
        try:
            claims = provider.verify(token, typ="at+jwt")
        except jwt.InvalidTokenError as exc:
            log.info("devidp: token exchange: %s token refused: %s", role, exc)
            raise errors.InvalidGrantError(description=f"the {role} token is not acceptable", request=request) \
                from None
        if provider.state.access_token_revoked(claims.get("jti", "")):
            log.info("devidp: token exchange: revoked %s token refused", role)
            raise errors.InvalidGrantError(description=f"the {role} token is not acceptable", request=request)
        audiences = claims.get("aud") if isinstance(claims.get("aud"), list) else [claims.get("aud")]
        if role == "subject" and request.client.client_id not in (claims.get("client_id"), *audiences):
            log.info("devidp: token exchange: a subject token of another client refused")
            raise errors.InvalidGrantError(description="the subject token was issued neither to nor for this client",
                                           request=request)
        if role == "subject" and not binding_satisfied(claims, request.headers):  # RFC 9449 §7: used as bound
            raise errors.InvalidGrantError(description="the subject token is bound to a key this request did not "
                                           "prove", request=request)
        return claims


def with_token_exchange(grant_types: dict[str, Any], validator: Any) -> dict[str, Any]:
    """oauthlib's grant table with the token-exchange grant added (``oauth.ProviderServer``)."""
    return {**grant_types, TOKEN_EXCHANGE_GRANT: TokenExchangeGrant(validator)}
