"""Hostile token endpoints and APIs: values that would go into a header are checked, never sent, never quoted.

Every attack is made by an evil server on a loopback socket that writes raw bytes (``evil.py``):
token values with CR/LF, NUL, controls or non-ASCII; ``DPoP-Nonce`` headers that are folded, hold
NUL, escape sequences or non-ASCII; token types that switch on refresh; error bodies that are not
OAuth. Each is an ``InvalidResponse`` (or the refusal it stands for) naming the field, with the
endpoint and status as context, and no token value in the message.
"""
from __future__ import annotations

import jwt
import pytest

from pyramid_tokens.dpop import DPoPKey
from pyramid_tokens.errors import (InvalidClient, InvalidResponse, InvalidScope, LoginRequired, ProviderUnavailable,
                                   TokenError, UnauthorizedClient)
from pyramid_tokens.httpclient import NamedClient
from pyramid_tokens.options import ClientCredentials
from pyramid_tokens.stores import MemoryStore
from pyramid_tokens.tokenclient import TokenClient
from pyramid_tokens.tokens import AccessToken
from pyramid_tokens.transport import Transport
from pyramid_tokens.usertokens import UserTokens

from .evil import EvilServer, raw_response

GOOD = {"access_token": "good-token", "token_type": "Bearer", "expires_in": 300}
#: values that must never reach a header: CR/LF injection, NUL, DEL, a tab, non-ASCII, an escape sequence
HOSTILE_VALUES = ["tok\r\nX-Evil: 1", "tok\x00en", "tok\x7f", "tok\ten", "t\u00f6ken", "tok\x1b[31m"]


@pytest.fixture
def evil():
    servers = []

    def start(answer):
        servers.append(EvilServer(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def token_client(server, *, dpop=False, query=""):
    credentials = ClientCredentials("c", "s", dpop=dpop)
    return TokenClient(credentials, transport=Transport(timeout=3), token_endpoint=f"{server.url}/token{query}")


def assert_not_quoted(exc, *values):
    for value in values:
        for text in (str(exc), repr(exc), exc.error_description or ""):
            assert value not in text


# -- item 4: token values are checked before they go into a header ----------------------------------------
@pytest.mark.parametrize("value", HOSTILE_VALUES + ["tok en", "x" * 9000])
def test_an_access_token_that_is_not_a_b64token_is_refused_and_not_quoted(evil, value):
    server = evil(lambda request: raw_response(200, {**GOOD, "access_token": value}))
    client = token_client(server, query="?tenant=t1")
    with pytest.raises(InvalidResponse) as info:
        client.client_credentials()
    assert "access_token has characters or a length a token may not have" in info.value.error_description
    assert info.value.endpoint == f"{server.url}/token" and info.value.status_code == 200
    assert_not_quoted(info.value, value)


@pytest.mark.parametrize("field", ["refresh_token", "id_token", "scope"])
@pytest.mark.parametrize("value", HOSTILE_VALUES[:5])
def test_refresh_and_id_tokens_and_scope_must_be_printable_ascii(evil, field, value):
    server = evil(lambda request: raw_response(200, {**GOOD, field: value}))
    with pytest.raises(InvalidResponse) as info:
        token_client(server).client_credentials()
    assert f"{field} has characters or a length a token may not have" in info.value.error_description
    assert_not_quoted(info.value, value)


def test_a_token_type_with_a_line_break_is_unsupported_and_not_echoed(evil):
    server = evil(lambda request: raw_response(200, {**GOOD, "token_type": "Bearer\r\nX-Evil: 1"}))
    with pytest.raises(InvalidResponse) as info:
        token_client(server).client_credentials()
    assert info.value.error_description == "client credentials request: unsupported token_type 'str'"
    assert "X-Evil" not in str(info.value)


#: folded onto the next line (requests reads ``a X-Evil: 1``), NUL, an escape sequence, non-ASCII, a quote
HOSTILE_NONCES = [b"a\r\n X-Evil: 1", b"a\x00b", b"a\x1b[31m", b"n\xc3\xa9", b'a"b']


@pytest.mark.parametrize("nonce", HOSTILE_NONCES)
def test_a_malformed_dpop_nonce_from_the_token_endpoint_is_refused_and_never_sent(evil, nonce):
    server = evil(lambda request: raw_response(400, {"error": "use_dpop_nonce"},
                                               headers=b"DPoP-Nonce: " + nonce + b"\r\n"))
    client = token_client(server, dpop=True)
    with pytest.raises(InvalidResponse) as info:
        client.client_credentials()
    assert "the DPoP-Nonce header is not an RFC 9449 nonce" in info.value.error_description
    assert len(server.requests) == 1  # no retry carrying the nonce
    assert client.dpop_nonces.get(server.url) is None
    assert_not_quoted(info.value, nonce.decode("latin-1"))


def dpop_session(server):
    key = DPoPKey.generate()
    token = AccessToken("api-token", token_type="DPoP", dpop_key=key)
    renewals = []

    def source(force):
        renewals.append(force)
        return token

    return NamedClient("api", server.url).session(source), renewals


def proof_claims(request):
    return jwt.decode(request["headers"]["dpop"], options={"verify_signature": False})


@pytest.mark.parametrize("nonce", HOSTILE_NONCES)
def test_an_api_handing_out_a_malformed_dpop_nonce_never_gets_it_back(evil, nonce):
    server = evil(lambda request: raw_response(
        401, b"", headers=b'WWW-Authenticate: DPoP error="use_dpop_nonce"\r\nDPoP-Nonce: ' + nonce + b"\r\n"))
    session, _ = dpop_session(server)
    assert session.get("orders").status_code == 401  # the challenge comes back unanswered...
    assert len(server.requests) == 1  # ...without a replay
    session.get("orders")
    assert "nonce" not in proof_claims(server.requests[1])  # and later proofs do not carry it


def test_a_dpop_token_is_never_sent_without_a_proof(evil):
    server = evil(lambda request: raw_response(200, b"ok"))
    session = NamedClient("api", server.url).session(lambda force: AccessToken("t", token_type="DPoP"))
    with pytest.raises(TokenError, match="a DPoP token cannot be sent without its key's proof"):
        session.get("orders")
    assert server.requests == []


# -- item 10: challenges parsed as HTTP defines them ---------------------------------------------------------
def test_a_quoted_comma_in_a_dpop_challenge_is_not_a_nonce_request(evil):
    challenge = b'WWW-Authenticate: DPoP error_description="retry, error=use_dpop_nonce", error="invalid_token"\r\n'
    server = evil(lambda request: raw_response(401, b"", headers=challenge + b"DPoP-Nonce: n-1\r\n"))
    session, renewals = dpop_session(server)
    assert session.get("orders").status_code == 401
    # invalid_token: one renewal and one replay (RFC 6750 §3), not a nonce retry without renewal
    assert renewals == [False, True] and len(server.requests) == 2


# -- item 3 / issue 12: error replies mapped to their class, with status and endpoint ------------------------
@pytest.mark.parametrize("error, cls", [("invalid_client", InvalidClient), ("invalid_scope", InvalidScope),
                                        ("unauthorized_client", UnauthorizedClient), ("invalid_grant", LoginRequired),
                                        ("access_denied", TokenError)])
def test_oauth_errors_raise_their_own_class_with_status_and_endpoint(evil, error, cls):
    server = evil(lambda request: raw_response(401 if error == "invalid_client" else 400,
                                               {"error": error, "error_description": "no"}))
    with pytest.raises(TokenError) as info:
        token_client(server, query="?secret=q").client_credentials()
    assert type(info.value) is cls and info.value.error == error
    assert info.value.status_code == (401 if error == "invalid_client" else 400)
    assert info.value.endpoint == f"{server.url}/token"  # the query may carry values: never named


def test_a_hostile_error_description_is_not_shown(evil):
    server = evil(lambda request: raw_response(400, {"error": "invalid_scope", "error_description": "a\r\nb\x00"}))
    with pytest.raises(InvalidScope) as info:
        token_client(server).client_credentials()
    assert info.value.error_description == "client credentials request"


# -- items 5 and 7: refresh answers -----------------------------------------------------------------------------
def user_tokens(server, clock, *, dpop=False, token_type="Bearer"):
    client = token_client(server, dpop=dpop)
    tokens = UserTokens(client, MemoryStore(clock), clock=clock)
    key = DPoPKey.generate() if dpop else None
    access = AccessToken("old-token", token_type=token_type, dpop_key=key if token_type == "DPoP" else None)
    record = {"sub": "alice", "access": {**access.to_dict(), "expires_at": clock() + 300, "obtained_at": clock()},
              "refresh_token": "old-refresh", "id_token": None, "resources": {}, "generation": 1, "refreshes": 0,
              **({"dpop_key": key.private_jwk()} if key else {})}
    tokens.store.set("h", record)
    return tokens, record


REFUSALS = {
    "400 empty": raw_response(400, b""),
    "401 html": raw_response(401, b"<html><body>Unauthorized</body></html>", content_type=b"text/html"),
    "400 not oauth": raw_response(400, {"foo": 1}),
    "400 error not a string": raw_response(400, {"error": ["invalid_grant"]}),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_refresh_refused_without_an_oauth_body_ends_the_login(evil, clock, case):
    server = evil(lambda request: REFUSALS[case])
    tokens, _ = user_tokens(server, clock)
    clock.advance(400)
    with pytest.raises(LoginRequired):
        tokens.get_access_token("h")
    assert tokens.store.get("h") is None
    with pytest.raises(LoginRequired, match="no user is logged in"):
        tokens.get_access_token("h")
    assert len(server.requests) == 1  # the dead refresh token is not re-sent on every request


@pytest.mark.parametrize("answer, cls", [(raw_response(503, b"busy", content_type=b"text/plain"), ProviderUnavailable),
                                         (raw_response(403, b"<h1>WAF</h1>", content_type=b"text/html"),
                                          InvalidResponse)])
def test_an_outage_or_a_proxy_page_on_refresh_keeps_the_login(evil, clock, answer, cls):
    server = evil(lambda request: answer)
    tokens, record = user_tokens(server, clock)
    clock.advance(400)
    with pytest.raises(cls):
        tokens.get_access_token("h")
    assert tokens.store.get("h") == record


@pytest.mark.parametrize("dpop, before, after", [(False, "Bearer", "DPoP"), (True, "DPoP", "Bearer")])
def test_a_refresh_that_switches_the_token_type_is_malformed_and_the_current_token_is_kept(
        evil, clock, dpop, before, after):
    server = evil(lambda request: raw_response(200, {**GOOD, "token_type": after, "refresh_token": "new-refresh"}))
    tokens, record = user_tokens(server, clock, dpop=dpop, token_type=before)
    clock.advance(280)  # due for renewal, still valid
    kept = tokens.get_access_token("h")
    assert kept.access_token == "old-token" and kept.token_type == before
    assert tokens.store.get("h") == record  # the rotated refresh token of a malformed answer is not adopted
    clock.advance(30)  # expired: nothing valid to fall back on
    with pytest.raises(InvalidResponse, match="token_type"):
        tokens.get_access_token("h")


def test_a_dpop_token_answered_to_a_client_without_dpop_is_malformed(evil):
    server = evil(lambda request: raw_response(200, {**GOOD, "token_type": "DPoP"}))
    with pytest.raises(InvalidResponse, match="token_type DPoP answered to a request without a DPoP proof"):
        token_client(server).client_credentials()


@pytest.mark.parametrize("answer", [raw_response(200, b"<html>", content_type=b"text/html"),
                                    raw_response(502, b"bad gateway", content_type=b"text/plain")])
def test_transport_failures_name_the_endpoint_without_its_query(evil, answer):
    server = evil(lambda request: answer)
    with pytest.raises(TokenError) as info:
        token_client(server, query="?client_secret=leak").client_credentials()
    assert info.value.endpoint == f"{server.url}/token"
    assert "leak" not in str(info.value)


def test_a_refused_refresh_says_where_and_how_it_was_refused(evil, clock):
    server = evil(lambda request: raw_response(400, {"error": "invalid_grant"}))
    tokens, _ = user_tokens(server, clock)
    with pytest.raises(LoginRequired) as info:
        tokens.get_access_token("h", force_renewal=True)
    assert (info.value.error, info.value.status_code, info.value.endpoint) == ("invalid_grant", 400,
                                                                                f"{server.url}/token")
