"""Small HTTP helpers for the provider's tests: token requests and a complete code flow, over real sockets."""
from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import jwt
import requests

from tests.support.provider import WEB_REDIRECT_URI, authorize_url, browser_login, pkce_pair

WEB = ("web", "web-secret")
WORKER = ("worker", "worker-secret")
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
FULL_SCOPE = "openid profile email offline_access api"


def params(url: str) -> dict[str, str]:
    """The query parameters of a URL."""
    return dict(parse_qsl(urlsplit(url).query))


def post(idp, path: str, data: dict, auth=WEB, **kwargs) -> requests.Response:
    return requests.post(idp.issuer + path, data=data, auth=auth, timeout=5, allow_redirects=False, **kwargs)


def token_request(idp, data: dict, auth=WEB, **kwargs) -> requests.Response:
    return post(idp, "/token", data, auth=auth, **kwargs)


def login(idp, *, username="alice", scope=FULL_SCOPE, **extra) -> tuple[str, str]:
    """Log in at the provider like a browser: ``(code, code_verifier)``."""
    verifier, challenge = pkce_pair()
    location = browser_login(authorize_url(idp.issuer, scope=scope, code_challenge=challenge, **extra), username)
    return params(location)["code"], verifier


def exchange(idp, code: str, verifier: str, auth=WEB, **extra) -> requests.Response:
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": WEB_REDIRECT_URI, **extra}
    return token_request(idp, data, auth=auth)


def code_flow(idp, *, username="alice", scope=FULL_SCOPE, **extra) -> dict:
    """Log in and exchange the code; the token response."""
    code, verifier = login(idp, username=username, scope=scope)
    response = exchange(idp, code, verifier, **extra)
    assert response.status_code == 200, response.text
    return response.json()


def refresh(idp, refresh_token: str, auth=WEB, **extra) -> requests.Response:
    return token_request(idp, {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}, auth=auth)


def client_credentials(idp, auth=WORKER, **extra) -> requests.Response:
    return token_request(idp, {"grant_type": "client_credentials", **extra}, auth=auth)


def verify(idp, token: str, audience: str) -> dict:
    """Verify a token like a relying party would: signature via the published JWKS, iss, aud, exp."""
    jwks_uri = requests.get(idp.issuer + "/.well-known/openid-configuration", timeout=5).json()["jwks_uri"]
    key = jwt.PyJWKClient(jwks_uri, cache_jwk_set=False).get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=["RS256"], audience=audience, issuer=idp.issuer)


def claims(token: str) -> dict:
    """Claims without verification, for looking at tokens already verified elsewhere."""
    return jwt.decode(token, options={"verify_signature": False})
