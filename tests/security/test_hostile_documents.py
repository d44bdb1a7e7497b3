"""Discovery documents and key sets of the wrong shape are refused naming the member (OIDC Discovery §3, RFC 7517 §5).

An evil provider on loopback (a WSGI app in the test) serves a document or a key set with one member
of the wrong type; the answer is a ``TokenError`` that names it, never a ``TypeError``, a
``RecursionError`` or a hang. JSON nesting is bounded like size.
"""
from __future__ import annotations

import json

import pytest

from pyramid_tokens.devidp.keys import generate_signing_key
from pyramid_tokens.devidp.server import serve
from pyramid_tokens.discovery import WELL_KNOWN, Discovery
from pyramid_tokens.errors import InvalidResponse, ProviderUnavailable, TokenError
from pyramid_tokens.transport import MAX_DEPTH, Transport

KEY = generate_signing_key()


class EvilProvider:
    """Serves ``document`` (filled in with its own URLs) and ``jwks``, or ``raw`` bytes for either."""

    def __init__(self) -> None:
        self.document: dict = {}
        self.jwks: object = {"keys": [KEY.public_jwk()]}
        self.raw: dict[str, bytes] = {}
        self.server = serve(self.app)
        self.issuer = self.server.url

    def app(self, environ, start_response):
        path = environ["PATH_INFO"]
        name = "discovery" if path == WELL_KNOWN else "jwks"
        if name in self.raw:
            body = self.raw[name]
        elif name == "discovery":
            body = json.dumps({"issuer": self.issuer, "authorization_endpoint": self.issuer + "/authorize",
                               "token_endpoint": self.issuer + "/token", "jwks_uri": self.issuer + "/jwks",
                               **self.document}).encode()
        else:
            body = json.dumps(self.jwks).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


@pytest.fixture
def evil():
    provider = EvilProvider()
    yield provider
    provider.server.stop()


def discovery_of(evil) -> Discovery:
    return Discovery(evil.issuer, Transport(timeout=3))


@pytest.mark.parametrize("member, value, message", [
    ("issuer", 42, "discovery: issuer"),
    ("issuer", ["x"], "discovery: issuer"),
    ("jwks_uri", ["https://idp.example/jwks"], "discovery: jwks_uri must be a string"),
    ("token_endpoint", {"url": "x"}, "discovery: token_endpoint must be a string"),
    ("userinfo_endpoint", 7, "discovery: userinfo_endpoint must be a string"),
    ("id_token_signing_alg_values_supported", "RS256", "must be a list of strings"),
    ("id_token_signing_alg_values_supported", ["RS256", 1], "must be a list of strings"),
    ("response_types_supported", {"code": True}, "discovery: response_types_supported must be a list of strings"),
    ("authorization_response_iss_parameter_supported", "false", "must be true or false"),
    ("mtls_endpoint_aliases", ["https://idp.example/token"], "mtls_endpoint_aliases must be an object of URLs"),
    ("mtls_endpoint_aliases", {"token_endpoint": 5}, "mtls_endpoint_aliases must be an object of URLs"),
])
def test_a_discovery_member_of_the_wrong_type_makes_the_provider_unusable_naming_it(evil, member, value, message):
    evil.document = {member: value}
    with pytest.raises(ProviderUnavailable) as caught:
        discovery_of(evil).metadata()
    assert message in caught.value.error_description


@pytest.mark.parametrize("jwks, message", [
    ({"keys": {"kid": "x"}}, "JWKS: keys must be a list"),
    ({"keys": "abc"}, "JWKS: keys must be a list"),
    ({}, "JWKS: keys must be a list"),
    ({"keys": ["not a key"]}, "JWKS: keys[0] must be an object"),
    ({"keys": [KEY.public_jwk(), 42]}, "JWKS: keys[1] must be an object"),
    ({"keys": [{**KEY.public_jwk(), "kid": ["a", "b"]}]}, "JWKS: keys[0].kid must be a string"),
    ({"keys": [{**KEY.public_jwk(), "use": {"sig": 1}}]}, "JWKS: keys[0].use must be a string"),
    ({"keys": [{**KEY.public_jwk(), "alg": 256}]}, "JWKS: keys[0].alg must be a string"),
])
def test_a_key_set_of_the_wrong_shape_is_refused_naming_the_member(evil, jwks, message):
    evil.jwks = jwks
    with pytest.raises(InvalidResponse, match=message.replace("[", r"\[").replace("]", r"\]")):
        discovery_of(evil).signing_key(KEY.kid, "RS256")


def test_keys_we_cannot_use_are_skipped_and_the_others_still_serve(evil):
    evil.jwks = {"keys": [{"kty": "RSA", "kid": "broken", "n": ["x"], "e": 1}, {"kty": "oct", "k": "c2VjcmV0"},
                          {**KEY.public_jwk(), "use": "enc", "kid": "enc"}, KEY.public_jwk()]}
    discovery = discovery_of(evil)
    assert discovery.signing_key(KEY.kid, "RS256").key_id == KEY.kid
    with pytest.raises(TokenError, match="no signing key"):
        discovery.signing_key("enc", "RS256")


def test_a_kid_that_is_not_a_string_in_a_token_header_is_a_token_error(evil):
    with pytest.raises(TokenError, match="kid is not a string"):
        discovery_of(evil).signing_key(["a"], "RS256")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["discovery", "jwks"])
@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
                                  b'{"keys": ' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}"])
def test_deeply_nested_json_is_an_invalid_response_not_a_recursion_error(evil, name, body):
    evil.raw[name] = body
    with pytest.raises(TokenError, match=f"nested deeper than {MAX_DEPTH} levels"):
        discovery_of(evil).signing_key(KEY.kid, "RS256")


def test_brackets_inside_strings_do_not_count_as_nesting(evil):
    evil.document = {"op_policy_uri": evil.issuer + "/" + "[{" * 200, "service_documentation": '\\"[[[[' * 50}
    assert discovery_of(evil).signing_key(KEY.kid, "RS256").key_id == KEY.kid
