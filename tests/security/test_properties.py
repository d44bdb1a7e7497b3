"""Property-based tests of the parsers that read what others send (hypothesis; small example counts).

* the callback: ``OidcClient.complete_login`` on arbitrary query parameters and arbitrary token
  responses raises nothing but ``TokenError`` subclasses; so does the callback view (never a 500);
* token responses: ``parse_token_response`` returns a sane ``TokenResponse`` or raises ``TokenError``;
* ID tokens: ``validate_id_token`` on arbitrary headers and claims (really signed) raises only
  ``InvalidIdToken`` and accepts only what meets OIDC Core §3.1.3.7; ``check_id_token_claims`` likewise;
* settings: ``parse_settings`` raises only ``ConfigurationError``;
* redirect targets: ``safe_path`` never returns anything a browser would take off the site.

The parsers run against a stubbed transport here (no sockets: hundreds of examples); the same code
paths are attacked over real HTTP in the other modules of this folder.
"""
from __future__ import annotations

import base64
import json
import math
from urllib.parse import urljoin, urlsplit

import jwt
import pytest
from jwt.algorithms import RSAAlgorithm
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pyramid_tokens.clock import FakeClock
from pyramid_tokens.devidp.keys import generate_signing_key
from pyramid_tokens.discovery import Discovery
from pyramid_tokens.errors import ConfigurationError, InvalidIdToken, TokenError
from pyramid_tokens.idtoken import check_id_token_claims, token_hash, validate_id_token
from pyramid_tokens.oidc import LoginResult, OidcClient, PendingLogin
from pyramid_tokens.options import parse_settings
from pyramid_tokens.responses import MAX_EXPIRES_IN, TokenResponse, parse_token_response
from pyramid_tokens.transport import Reply
from pyramid_tokens.web.redirects import safe_path

FEW = settings(max_examples=60, deadline=None, database=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ISSUER = "https://idp.example"
CLIENT = "web"
NOW = 1_700_000_000.0
KEY = generate_signing_key()

# -- strategies ---------------------------------------------------------------------------------------------
json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=8), inner, max_size=3), max_leaves=8)
tricky_text = st.text(alphabet=st.sampled_from(list("/\\:@.%2fFcC5aAe09 \t\r\n\x00\x7f?#&=") +
                                               ["\u3002", "\uff0f", "\uff3c", "\u00e9", "\u2028", "\ud800"]),
                      max_size=24)


def claims_strategy():
    good = {"iss": ISSUER, "sub": "alice", "aud": CLIENT, "exp": NOW + 300, "iat": NOW, "nonce": "n-1",
            "azp": CLIENT}
    alternatives = {
        "iss": st.sampled_from([ISSUER, ISSUER + "/", "https://evil.example", ""]) | json_scalars,
        "sub": st.sampled_from(["alice", ""]) | json_scalars,
        "aud": st.sampled_from([CLIENT, [CLIENT], [CLIENT, "x"], ["x"], "x", []]) | json_values,
        "exp": st.sampled_from([NOW + 300, NOW - 1000, math.nan, math.inf, -math.inf, True, "9999999999"]) | json_scalars,
        "iat": st.sampled_from([NOW, NOW + 10_000, NOW - 10_000, math.nan]) | json_scalars,
        "nonce": st.sampled_from(["n-1", "n-2", "\u00e9", ""]) | json_scalars,
        "azp": st.sampled_from([CLIENT, "x"]) | json_scalars,
        "at_hash": st.sampled_from(["\u00e9", "abc"]) | json_scalars,
    }

    @st.composite
    def build(draw):
        claims = dict(good)
        for name in draw(st.sets(st.sampled_from(sorted(alternatives)), max_size=4)):
            if draw(st.booleans()):
                claims[name] = draw(alternatives[name])
            else:
                claims.pop(name, None)
        claims.update(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)))
        return claims

    return build()


headers_strategy = st.fixed_dictionaries({}, optional={
    "alg": st.sampled_from(["RS256", "none", "HS256", "ES256", "RS512", ""]) | json_scalars,
    "kid": st.sampled_from([KEY.kid, "other"]) | json_scalars,
    "typ": json_scalars, "crit": json_values, "jku": st.just("https://evil.example/jwks"),
})


def signed(claims, headers=None) -> str:
    """A real RS256 signature over arbitrary claims (json may emit NaN/Infinity, as a hostile provider could).

    ``jwt.encode`` refuses claims and headers of the wrong type; a hostile provider does not ask it.
    """
    header = {"alg": "RS256", "typ": "JWT", "kid": KEY.kid, **(headers or {})}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = RSAAlgorithm(RSAAlgorithm.SHA256).sign(signing_input.encode(), KEY.private_key)
    return f"{signing_input}.{_b64(signature)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def discovery(clock=None) -> Discovery:
    """A discovery of ISSUER whose document and keys are already loaded (no network)."""
    d = Discovery.from_document(
        ISSUER, {"issuer": ISSUER, "authorization_endpoint": ISSUER + "/authorize",
                 "token_endpoint": ISSUER + "/token", "jwks_uri": ISSUER + "/jwks",
                 "userinfo_endpoint": ISSUER + "/userinfo",
                 "id_token_signing_alg_values_supported": ["RS256"],
                 "authorization_response_iss_parameter_supported": True},
        jwks={"keys": [KEY.public_jwk()]}, clock=clock or (lambda: NOW), ttl=float("inf"))
    return d


# -- ID tokens ------------------------------------------------------------------------------------------------
@FEW
@given(claims=claims_strategy(), headers=headers_strategy)
@example(claims={"iss": ISSUER, "sub": "alice", "aud": CLIENT, "exp": math.nan, "iat": NOW, "nonce": "n-1"}, headers={})
@example(claims={"iss": ISSUER, "sub": "alice", "aud": CLIENT, "exp": NOW + 300, "iat": NOW, "nonce": "\u00e9"},
         headers={})
def test_validate_id_token_raises_only_invalid_id_token_and_accepts_only_valid_tokens(claims, headers):
    token = signed(claims, headers)
    try:
        result = validate_id_token(token, discovery=discovery(), client_id=CLIENT, now=NOW, nonce="n-1",
                                   require_nonce=True, access_token="at-1")
    except InvalidIdToken:
        return
    assert result["iss"] == ISSUER
    audiences = [result["aud"]] if isinstance(result["aud"], str) else result["aud"]
    assert CLIENT in audiences
    assert len(audiences) == 1 or result.get("azp") == CLIENT
    assert math.isfinite(result["exp"]) and result["exp"] + 120 >= NOW
    assert math.isfinite(result["iat"]) and result["iat"] <= NOW + 120
    assert result["nonce"] == "n-1" and isinstance(result["sub"], str) and result["sub"]
    assert "at_hash" not in result or result["at_hash"] == token_hash("at-1", "RS256")


@FEW
@given(header=headers_strategy, payload=st.binary(max_size=40) | st.text(max_size=40))
def test_validate_id_token_on_garbage_and_odd_headers_raises_only_invalid_id_token(header, payload):
    b64 = _b64
    raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    candidates = [payload if isinstance(payload, str) else raw.decode("latin-1"),
                  f"{b64(json.dumps(header).encode())}.{b64(raw)}.{b64(raw)}",
                  f"{b64(json.dumps(header).encode())}.{b64(json.dumps({'iss': ISSUER}).encode())}."]
    for token in candidates:
        with pytest.raises(InvalidIdToken):
            validate_id_token(token, discovery=discovery(), client_id=CLIENT, now=NOW, nonce="n-1",
                              require_nonce=True)


@FEW
@given(claims=claims_strategy(), nonce=st.none() | st.text(max_size=5), require=st.booleans(),
       sub=st.none() | st.text(max_size=5))
def test_check_id_token_claims_raises_only_invalid_id_token(claims, nonce, require, sub):
    # What check_id_token_claims is handed: PyJWT has checked that these exist and that aud is str/list of str.
    claims = {"iss": ISSUER, "sub": "alice", "aud": CLIENT, "exp": NOW, "iat": NOW, **claims}
    if not (isinstance(claims["aud"], str) or (isinstance(claims["aud"], list) and claims["aud"]
                                               and all(isinstance(a, str) for a in claims["aud"]))):
        claims["aud"] = CLIENT
    try:
        check_id_token_claims(claims, client_id=CLIENT, now=NOW, nonce=nonce, require_nonce=require,
                              expected_sub=sub, skew=120, max_age=600)
    except InvalidIdToken:
        return
    assert math.isfinite(claims["exp"]) and math.isfinite(claims["iat"])


# -- token responses ------------------------------------------------------------------------------------------------
token_fields = st.fixed_dictionaries({}, optional={
    "access_token": st.sampled_from(["at-1", "", "   "]) | json_values,
    "token_type": st.sampled_from(["Bearer", "bearer", "DPoP", "MAC", ""]) | json_values,
    "expires_in": st.sampled_from([300, 0, -1, 1, MAX_EXPIRES_IN, MAX_EXPIRES_IN + 1, math.nan, math.inf, "300",
                                   True, 10**400]) | json_scalars,
    "refresh_token": json_values, "id_token": json_values, "scope": json_values,
    "error": json_values, "error_description": json_values,
})
reply_data = token_fields | json_values


@FEW
@given(status=st.sampled_from([200, 200, 200, 201, 204, 302, 400, 401, 403, 500]), data=reply_data)
def test_parse_token_response_returns_a_sane_response_or_raises_token_error(status, data):
    try:
        response = parse_token_response(Reply(status, {}, data), what="test", now=NOW, requested_scope="api")
    except TokenError as exc:
        assert isinstance(exc.error, str) and exc.error
        assert "at-1" not in str(exc)  # never echoes a token value
        return
    assert status == 200 and isinstance(response, TokenResponse)
    token = response.access_token
    assert isinstance(token.access_token, str) and token.access_token.strip()
    assert token.token_type in ("Bearer", "DPoP")
    if token.expires_at is not None:
        assert 0 < token.expires_at.timestamp() - NOW <= MAX_EXPIRES_IN
    for value in (response.refresh_token, response.id_token, token.scope):
        assert value is None or isinstance(value, str)
    assert "at-1" not in repr(response)


# -- the callback ------------------------------------------------------------------------------------------------------
class StubTransport:
    """Answers the code exchange with whatever the example says; userinfo likewise."""

    def __init__(self, token_reply: Reply, userinfo: object) -> None:
        self.token_reply = token_reply
        self.userinfo = userinfo

    def request(self, method, url, **kwargs):
        return Reply(200, {}, self.userinfo) if url.endswith("/userinfo") else self.token_reply

    def post_form(self, url, data, **kwargs):
        return self.request("POST", url)

    def get_json(self, url, **kwargs):
        if not isinstance(self.userinfo, dict):
            raise TokenError("userinfo: expected a JSON object", error="invalid_response")
        return self.userinfo


def oidc_client(transport) -> OidcClient:
    from pyramid_tokens.options import ClientCredentials, OidcOptions

    options = OidcOptions(authority=ISSUER, credentials=ClientCredentials(CLIENT, "web-secret"),
                          scope="openid profile")
    return OidcClient(options, transport=transport, clock=FakeClock(NOW), discovery=discovery())


PENDING = PendingLogin(state="state-1", nonce="n-1", code_verifier="v" * 43, redirect_uri="https://app/cb",
                       came_from="/", created_at=NOW)
param_names = st.sampled_from(["state", "code", "iss", "error", "error_description", "session_state", "x"])
param_values = st.sampled_from(["state-1", ISSUER, "code-1", "access_denied", ""]) | st.text(max_size=12)


@st.composite
def token_replies(draw):
    claims = draw(claims_strategy())
    id_token = draw(st.sampled_from([signed(claims), "not.a.jwt", None]))
    data = draw(token_fields)
    if id_token is not None and draw(st.integers(0, 3)):  # mostly a well-formed response around it
        data = {"access_token": "at-1", "token_type": "Bearer", "expires_in": 300, **data, "id_token": id_token}
    return Reply(draw(st.sampled_from([200, 200, 400, 500])), {}, data)


@st.composite
def callback_params(draw):
    """A good authorization response, with a few parameters dropped, replaced or added."""
    params = {"state": "state-1", "iss": ISSUER, "code": "code-1"}
    for name in draw(st.sets(param_names, max_size=3)):
        if draw(st.booleans()):
            params[name] = draw(param_values)
        else:
            params.pop(name, None)
    return params


@FEW
@given(params=callback_params(), reply=token_replies(),
       userinfo=st.sampled_from([{"sub": "alice"}, {"sub": "bob"}, {}, None]))
@example(params={"state": "\u00e9", "code": "c"}, reply=Reply(200, {}, None), userinfo=None)
@example(params={"state": "state-1", "iss": ISSUER, "code": "c"},
         reply=Reply(200, {}, {"access_token": "at-1", "token_type": "Bearer", "expires_in": 300,
                               "id_token": signed({"iss": ISSUER, "sub": "alice", "aud": CLIENT, "exp": NOW + 300,
                                                   "iat": NOW, "nonce": "n-1"})}), userinfo={"sub": "alice"})
def test_complete_login_raises_only_token_errors(params, reply, userinfo):
    client = oidc_client(StubTransport(reply, userinfo))
    try:
        result = client.complete_login(params, PENDING)
    except TokenError:
        return
    # Accepted: the state, the RFC 9207 iss and the ID token were all right, and userinfo agreed.
    assert isinstance(result, LoginResult)
    assert params.get("state") == "state-1" and params.get("iss") == ISSUER and not params.get("error")
    assert result.sub == "alice" and result.claims["nonce"] == "n-1"


@pytest.fixture(scope="module")
def callback_app():
    import webtest

    from pyramid_tokens.devidp import start_provider
    from tests.support.provider import standard_clients

    from .support import build_app, settings_for

    idp = start_provider(clients=standard_clients())
    yield webtest.TestApp(build_app(settings_for(idp)))
    idp.stop()


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(params=st.lists(st.tuples(param_names, param_values), max_size=6), started=st.booleans())
def test_callback_view_never_fails_with_a_500(callback_app, params, started):
    callback_app.reset()
    if started:
        state = dict(p.split("=", 1) for p in urlsplit(callback_app.get("/login").location).query.split("&"))["state"]
        params = [(k, state if k == "state" else v) for k, v in params]
    response = callback_app.get("/callback", params=params, expect_errors=True)
    assert response.status_int in (302, 400, 503)
    assert callback_app.get("/whoami").json == {"userid": None}


# -- settings --------------------------------------------------------------------------------------------------------------
setting_keys = st.sampled_from([
    "oidc.authority", "oidc.client_id", "oidc.client_secret", "oidc.scope", "oidc.userinfo", "oidc.login_path",
    "oidc.callback_path", "oidc.logout_path", "oidc.post_logout_redirect", "oidc.name_claim", "tokens.timeout",
    "tokens.refresh_before_expiration", "tokens.revoke_on_logout", "tokens.cache_lifetime_buffer",
    "tokens.client_credential_style", "tokens.client.scope", "tokens.client.resource", "tokens.store",
    "tokens.cache", "tokens.clients.b.token_endpoint", "tokens.clients.b.authority", "tokens.clients.b.client_id",
    "tokens.clients.b.client_secret", "tokens.clients.b.resource", "tokens.clients.b.nonsense", "tokens.clients.x",
    "tokens.http.api.base_url", "tokens.http.api.token", "tokens.http.api.retry", "tokens.http.api.timeout",
    "tokens.http.api.replay_unsafe_methods", "tokens.http..x", "oidc.",
])
setting_values = st.sampled_from([
    "https://idp.example", "http://127.0.0.1:9/idp", "http://evil.example", "http://[::1", "https://[", "//x",
    "/path", "web", "true", "maybe", "10", "-1", "0", "nan", "inf", "1e999", "1 2 x", "client:b", "client:",
    "user", "none", "redis://", "openid api", "api", "basic", "post", "", " ",
]) | st.text(max_size=16)


@FEW
@given(values=st.dictionaries(setting_keys, setting_values, max_size=8))
@example(values={"oidc.authority": "https://[", "oidc.client_id": "web"})
@example(values={"tokens.clients.b.token_endpoint": "http://[::1", "tokens.clients.b.client_id": "b"})
def test_parse_settings_raises_only_configuration_error(values):
    try:
        parse_settings(values)
    except ConfigurationError as exc:
        assert exc.key  # names the setting


# -- redirect targets ----------------------------------------------------------------------------------------------------------
def browser_resolves(base: str, location: str) -> str:
    """The host a browser goes to: it drops tabs and newlines and reads ``\\`` as ``/`` (WHATWG URL)."""
    cleaned = "".join(ch for ch in location if ch not in "\t\n\r").replace("\\", "/").strip("\x00 ")
    try:
        return urlsplit(urljoin(base, cleaned)).netloc
    except ValueError:
        return "(unparseable)"


@settings(max_examples=300, deadline=None, database=None)
@given(target=tricky_text | st.text(max_size=30) | st.builds(lambda a, b: a + b, st.sampled_from(
    ["/", "//", "/\\", "\\", "%2f", "/%2f", "https:", "/%252f", "\t/", "/\t/"]), tricky_text))
def test_safe_path_never_returns_an_off_site_target(target):
    result = safe_path(target, "/home")
    assert result in (target, "/home")
    if result == target:
        assert result.isascii() and result.startswith("/")
        for decoded in (result, __import__("urllib.parse").parse.unquote(result)):
            assert browser_resolves("https://app.example/", decoded) == "app.example"


def test_the_oracles_above_do_accept_a_good_login():
    """The properties are not vacuous: a correct response passes every check they guard."""
    good = {"iss": ISSUER, "sub": "alice", "aud": CLIENT, "exp": NOW + 300, "iat": NOW, "nonce": "n-1",
            "at_hash": token_hash("at-1", "RS256")}
    assert validate_id_token(signed(good), discovery=discovery(), client_id=CLIENT, now=NOW, nonce="n-1",
                             require_nonce=True, access_token="at-1")["sub"] == "alice"
    reply = Reply(200, {}, {"access_token": "at-1", "token_type": "Bearer", "expires_in": 300,
                            "id_token": signed(good)})
    result = oidc_client(StubTransport(reply, {"sub": "alice", "name": "Alice"})).complete_login(
        {"state": "state-1", "iss": ISSUER, "code": "code-1"}, PENDING)
    assert result.claims["name"] == "Alice"
    assert safe_path("/orders?id=1#top") == "/orders?id=1#top"


# -- discovery documents and key sets of any shape ---------------------------------------------------------------
class DocumentTransport:
    """Answers the discovery URL with ``document`` and any other URL with ``jwks`` (as ``get_json`` would)."""

    def __init__(self, document, jwks) -> None:
        self.document, self.jwks = document, jwks

    def get_json(self, url, *, what, **kwargs):
        data = self.document if url.endswith("/.well-known/openid-configuration") else self.jwks
        if not isinstance(data, dict):
            from pyramid_tokens.errors import InvalidResponse
            raise InvalidResponse(f"{what}: expected a JSON object")
        return data


url_values = st.sampled_from([ISSUER + "/x", "http://127.0.0.1:9/x", "http://evil.example/x", "/x", "javascript:x",
                              "https://[::1", ""]) | tricky_text | json_values
DOCUMENT_MEMBERS = ["issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint",
                    "revocation_endpoint", "end_session_endpoint", "device_authorization_endpoint",
                    "mtls_endpoint_aliases", "id_token_signing_alg_values_supported",
                    "authorization_response_iss_parameter_supported"]
GOOD_DOCUMENT = {"issuer": ISSUER, "authorization_endpoint": ISSUER + "/a", "token_endpoint": ISSUER + "/t",
                 "jwks_uri": ISSUER + "/jwks"}
documents = st.builds(lambda changes: {**GOOD_DOCUMENT, **changes}, st.fixed_dictionaries(
    {}, optional={"issuer": st.sampled_from([ISSUER, ISSUER + "/"]) | json_values,
              "token_endpoint": url_values, "jwks_uri": url_values, "userinfo_endpoint": url_values,
              "revocation_endpoint": url_values, "end_session_endpoint": url_values,
              "mtls_endpoint_aliases": st.dictionaries(st.sampled_from(["token_endpoint", "x"]), url_values,
                                                       max_size=2) | json_values,
              "id_token_signing_alg_values_supported": st.just(["RS256"]) | json_values,
              "authorization_response_iss_parameter_supported": st.booleans() | json_values},
)) | json_values
key_members = st.fixed_dictionaries({}, optional={
    "kid": st.just(KEY.kid) | json_values, "use": st.sampled_from(["sig", "enc"]) | json_values,
    "alg": st.sampled_from(["RS256", "HS256", "none"]) | json_values, "kty": st.sampled_from(["RSA", "EC", "oct"]) |
    json_values, "n": json_values, "e": json_values, "crv": json_values, "x": json_values, "k": json_values,
})
key_sets = st.fixed_dictionaries({}, optional={"keys": st.lists(
    st.builds(lambda base, changes: {**base, **changes}, st.sampled_from([KEY.public_jwk(), {}]), key_members)
    | json_values, max_size=3) | json_values}) | json_values


@FEW
@given(document=documents, jwks=key_sets, kid=st.sampled_from([KEY.kid, None, "other"]) | json_scalars)
def test_discovery_and_jwks_of_any_shape_raise_only_token_errors(document, jwks, kid):
    discovery = Discovery(ISSUER, transport=DocumentTransport(document, jwks), clock=lambda: NOW)  # type: ignore[arg-type]
    try:
        discovery.metadata()
    except TokenError:
        return
    for name in DOCUMENT_MEMBERS[1:8]:
        for mtls in (False, True):
            try:
                url = discovery.endpoint(name, mtls=mtls)
            except TokenError:
                continue
            parts = urlsplit(url) if url is not None else None
            assert parts is None or parts.scheme == "https" or parts.hostname in ("127.0.0.1", "localhost", "::1")
            assert url is None or not any(ch.isspace() or not ch.isprintable() for ch in url)
    try:
        key = discovery.signing_key(kid, "RS256")
    except TokenError:
        return
    assert isinstance(key, jwt.PyJWK)
