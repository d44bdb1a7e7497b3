"""OpenID Connect login for a confidential web client (OIDC Core §3.1: code flow; RFC 7636 PKCE S256).

Framework-free: :meth:`OidcClient.begin_login` returns the authorization URL and a
:class:`PendingLogin` that the caller keeps (in the session); :meth:`OidcClient.complete_login`
checks the authorization response against it (``state``, ``error``, RFC 9207 ``iss``), exchanges
the code, validates the ID token and fetches userinfo. Also RP-initiated logout (OIDC RP-Initiated
Logout 1.0 §2) and userinfo (OIDC Core §5.3).

Pushed Authorization Requests (RFC 9126): with ``oidc.par = auto`` (when discovery advertises
``pushed_authorization_request_endpoint``) or ``require``, the request's parameters are POSTed to
that endpoint with the client's own authentication and a DPoP proof (§2.1, RFC 9449 §10.1), and the
browser goes to the authorization endpoint with only ``client_id`` and the ``request_uri`` (§4).
"""
from __future__ import annotations

import logging
import re
import secrets
from dataclasses import asdict, dataclass
from typing import Any, Mapping
from urllib.parse import urlencode

from oauthlib.oauth2 import WebApplicationClient

from .dpop import DPoPKey
from .errors import InvalidResponse, LoginFailed, TokenError
from .idtoken import same_text, validate_id_token
from .options import OidcOptions
from .responses import TokenResponse, error_from_reply
from .tokenclient import TokenClient, grant_form
from .tokens import AccessToken

log = logging.getLogger(__name__)

#: how long a login may take between the redirect to the provider and the callback
LOGIN_TIMEOUT = 600.0
#: RFC 9126 §2.2: a ``request_uri`` we pass on to the browser (printable ASCII, no spaces, bounded)
REQUEST_URI = re.compile(r"[\x21-\x7e]{1,2000}")


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 §4.2 S256: base64url(SHA-256(verifier)) without padding (oauthlib's)."""
    return WebApplicationClient(None).create_code_challenge(verifier, "S256")


def pkce_verifier() -> str:
    """RFC 7636 §4.1: a fresh 64-character code verifier from the unreserved characters (oauthlib's)."""
    return WebApplicationClient(None).create_code_verifier(64)


@dataclass(frozen=True, repr=False)
class PendingLogin:
    """What a login needs to remember between the redirect and the callback (JSON-serialisable)."""

    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    came_from: str
    created_at: float
    #: the login's DPoP key as a private JWK (RFC 9449 §10: its thumbprint went out as ``dpop_jkt``)
    dpop_key: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PendingLogin":
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})

    def __repr__(self) -> str:
        return f"PendingLogin(came_from={self.came_from!r}, created_at={self.created_at!r})"


@dataclass(frozen=True, repr=False)
class LoginResult:
    """A completed login: the user's claims (ID token merged with userinfo) and the tokens."""

    claims: Mapping[str, Any]
    tokens: TokenResponse

    @property
    def sub(self) -> str:
        return self.claims["sub"]

    def __repr__(self) -> str:
        return f"LoginResult(sub={self.sub!r})"


class OidcClient(TokenClient):
    """The web application's OpenID Connect client."""

    def __init__(self, options: OidcOptions, **kwargs: Any) -> None:
        super().__init__(options.credentials, **kwargs)
        self.options = options

    # -- login --------------------------------------------------------------------------------------
    def begin_login(self, redirect_uri: str, came_from: str = "/", **extra: str) -> tuple[str, PendingLogin]:
        """The authorization request URL (OIDC Core §3.1.2.1) and what to keep until the callback.

        A DPoP client makes the login's key now and binds the code to it with ``dpop_jkt`` (RFC 9449 §10).
        """
        dpop = self.new_login_dpop_key()
        pending = PendingLogin(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=pkce_verifier(),
            redirect_uri=redirect_uri,
            came_from=came_from,
            created_at=self.clock(),
            dpop_key=dpop.private_jwk() if dpop is not None else None,
        )
        assert self.discovery is not None
        endpoint = self.discovery.endpoint("authorization_endpoint", required=True)
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": self.options.scope,
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": pkce_challenge(pending.code_verifier),
            "code_challenge_method": "S256",
            **({"dpop_jkt": dpop.thumbprint} if dpop is not None else {}),
            **extra,
        }
        par_endpoint = self._par_endpoint()
        if par_endpoint is not None:
            params = {"client_id": self.client_id, "request_uri": self._push(par_endpoint, params, dpop)}
        # urlencode, not oauthlib's prepare_grant_uri: that refuses http:// even on loopback (the development provider)
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params), pending

    def _par_endpoint(self) -> str | None:
        """The pushed authorization request endpoint to use, or ``None`` (``oidc.par``, RFC 9126 §5)."""
        assert self.discovery is not None
        mode = "require" if self.options.profile == "fapi2" and self.options.par == "auto" else self.options.par
        if mode == "off":
            return None
        url = self.discovery.endpoint("pushed_authorization_request_endpoint", mtls=self.credentials.cert is not None)
        if url is None and (mode == "require" or
                            self.discovery.metadata().get("require_pushed_authorization_requests")):
            why = "oidc.par = require" if mode == "require" else "the provider requires pushed authorization requests"
            raise LoginFailed(f"{why}, but the provider advertises no pushed_authorization_request_endpoint "
                              "(RFC 9126)", error="invalid_request")
        return url

    def _push(self, url: str, params: Mapping[str, str], dpop: DPoPKey | None) -> str:
        """RFC 9126 §2: push the authorization request; the ``request_uri`` that stands for it."""
        what = "pushed authorization request"
        reply = self.post_form(url, params, what=what, dpop=dpop)
        if reply.status not in (200, 201):
            error = error_from_reply(reply, what, url=url)
            if reply.status not in (400, 401) or isinstance(error, InvalidResponse):
                raise error
            raise LoginFailed(f"{error.error_description or what} (refused: {error.error})", error=error.error,
                              status_code=reply.status, endpoint=error.endpoint)
        data = reply.data if isinstance(reply.data, dict) else {}
        request_uri, expires_in = data.get("request_uri"), data.get("expires_in")
        if not isinstance(request_uri, str) or not REQUEST_URI.fullmatch(request_uri):
            raise InvalidResponse(f"{what}: request_uri must be a printable string", status_code=reply.status)
        if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
            raise InvalidResponse(f"{what}: expires_in must be a positive integer", status_code=reply.status)
        return request_uri

    def complete_login(self, params: Mapping[str, str], pending: PendingLogin) -> LoginResult:
        """Check the authorization response, exchange the code and validate what comes back."""
        state = params.get("state")
        if not state or not same_text(str(state), pending.state):
            raise LoginFailed("the login response's state does not match this browser's login request", check="state")
        if self.clock() - pending.created_at > LOGIN_TIMEOUT:
            raise LoginFailed("the login took too long; please try again", check="expired")
        assert self.discovery is not None
        metadata = self.discovery.metadata()
        iss = params.get("iss")
        if (iss is not None or metadata.get("authorization_response_iss_parameter_supported") or
                self.options.profile == "fapi2") and iss != metadata["issuer"]:  # FAPI 2.0 §5.3.2.2: always
            raise LoginFailed("the login response's iss parameter is not the provider's issuer (RFC 9207)", check="iss")
        if params.get("error"):
            error = str(params["error"])[:100]
            description = str(params.get("error_description") or "")[:300] or None
            raise LoginFailed(f"the provider refused the login: {description or error}", error=error, check="provider")
        code = params.get("code")
        if not code:
            raise LoginFailed("the login response has no authorization code", check="code")
        tokens = self.request_token(
            grant_form("authorization_code", code=code, redirect_uri=pending.redirect_uri,
                       code_verifier=pending.code_verifier),
            what="authorization code exchange",
            scope=None,
            dpop=DPoPKey.from_jwk(pending.dpop_key) if pending.dpop_key else self.new_login_dpop_key(),
        )
        if tokens.access_token.scope is None:
            tokens = _with_scope(tokens, self.options.scope)
        if not tokens.id_token:
            raise InvalidResponse("authorization code exchange: the provider returned no id_token", check="id_token")
        claims = validate_id_token(tokens.id_token, discovery=self.discovery, client_id=self.client_id,
                                   now=self.clock(), nonce=pending.nonce, require_nonce=True,
                                   access_token=tokens.access_token.access_token)
        merged = dict(claims)
        if self.options.userinfo and self.discovery.endpoint("userinfo_endpoint"):
            info = self.userinfo(tokens.access_token)
            if not isinstance(info.get("sub"), str):  # OIDC Core §5.3.2: sub is required, a string
                raise InvalidResponse("userinfo: sub must be a string", check="userinfo")
            if info.get("sub") != claims["sub"]:
                raise LoginFailed("userinfo names another user than the ID token (sub mismatch)", check="userinfo")
            merged.update(info)
        log.info("user %s logged in (client %s)", claims["sub"], self.client_id)
        return LoginResult(claims=merged, tokens=tokens)

    def validate_refreshed_id_token(self, tokens: TokenResponse, sub: str | None) -> dict[str, Any] | None:
        """OIDC Core §12.2: a refreshed ID token must name the same user; returns its claims."""
        if not tokens.id_token:
            return None
        assert self.discovery is not None
        return validate_id_token(tokens.id_token, discovery=self.discovery, client_id=self.client_id,
                                 now=self.clock(), access_token=tokens.access_token.access_token,
                                 expected_sub=sub, max_age=float("inf"))

    # -- userinfo and logout ---------------------------------------------------------------------------
    def userinfo(self, authorization: str | AccessToken) -> dict[str, Any]:
        """The userinfo claims for an access token, or an ``Authorization`` header value.

        A DPoP-bound :class:`AccessToken` is sent with a proof (RFC 9449 §7).
        """
        assert self.discovery is not None
        url = self.discovery.endpoint("userinfo_endpoint", mtls=self.credentials.cert is not None)
        if not url:
            raise TokenError("the provider has no userinfo endpoint", error="invalid_request")
        if isinstance(authorization, AccessToken):
            return self.get_json(url, what="userinfo", token=authorization)
        return self.get_json(url, what="userinfo", authorization=authorization)

    def end_session_url(self, *, id_token_hint: str | None, post_logout_redirect_uri: str,
                        state: str | None = None) -> str | None:
        """The provider's logout URL, or ``None`` when it has no end-session endpoint."""
        assert self.discovery is not None
        try:
            url = self.discovery.endpoint("end_session_endpoint")
        except TokenError:
            return None
        if not url:
            return None
        query = {"post_logout_redirect_uri": post_logout_redirect_uri, "client_id": self.client_id}
        if id_token_hint:
            query["id_token_hint"] = id_token_hint
        if state:
            query["state"] = state
        return url + ("&" if "?" in url else "?") + urlencode(query)


def _with_scope(tokens: TokenResponse, scope: str) -> TokenResponse:
    return TokenResponse(tokens.access_token.with_(scope=scope), tokens.refresh_token, tokens.id_token, tokens.raw)
