"""DPoP proofs (RFC 9449 §4) and their checks, without a server: the framework-free core."""
from __future__ import annotations

import time

import jwt
import pytest

from pyramid_tokens.devidp.proofs import InvalidProof, ReplayCache, verify_proof
from pyramid_tokens.dpop import DPoPKey, DPoPNonces, challenge_error, challenges, htu
from pyramid_tokens.errors import TokenError
from pyramid_tokens.jwk import sha256_b64url
from pyramid_tokens.tokens import AccessToken

URL = "https://api.example.test:443/v1/orders?page=2#top"


def test_a_proof_has_the_dpop_header_and_claims():
    key = DPoPKey.generate()
    proof = key.proof("get", URL, access_token="the-token", nonce="n-1")
    header = jwt.get_unverified_header(proof)
    assert header["typ"] == "dpop+jwt" and header["alg"] == "ES256"
    assert header["jwk"] == key.public_jwk and "d" not in header["jwk"]
    claims = jwt.decode(proof, options={"verify_signature": False})
    assert claims["htm"] == "GET"
    assert claims["htu"] == "https://api.example.test/v1/orders"  # no query, no fragment, no default port
    assert claims["ath"] == sha256_b64url("the-token")
    assert claims["nonce"] == "n-1" and abs(claims["iat"] - time.time()) < 5 and len(claims["jti"]) >= 20
    assert "ath" not in jwt.decode(key.proof("POST", URL), options={"verify_signature": False})


def test_a_key_survives_its_private_jwk_and_never_shows_itself():
    key = DPoPKey.generate()
    again = DPoPKey.from_jwk(key.private_jwk())
    assert again == key and again.thumbprint == key.thumbprint
    assert key.private_jwk()["d"] not in repr(key)
    token = AccessToken("t", token_type="DPoP", dpop_key=key)
    assert key.private_jwk()["d"] not in repr(token)
    restored = AccessToken.from_dict(token.to_dict())
    assert restored.dpop_key == key and restored == token
    assert AccessToken("t").dpop_proof("GET", URL) is None  # Bearer tokens get no proof


def test_verify_accepts_a_good_proof_and_returns_the_key_thumbprint():
    key = DPoPKey.generate()
    jkt, claims = verify_proof(key.proof("GET", URL, access_token="tok"), method="GET",
                               url="https://API.example.test/v1/orders", access_token="tok")
    assert jkt == key.thumbprint and claims["htm"] == "GET"


@pytest.mark.parametrize("change, message", [
    ({"method": "POST"}, "htm"),
    ({"url": "https://api.example.test/v1/other"}, "htu"),
    ({"access_token": "another-token"}, "ath"),
    ({"now": time.time() + 600}, "iat"),
])
def test_verify_refuses_a_proof_for_another_request(change, message):
    proof = DPoPKey.generate().proof("GET", URL, access_token="tok")
    args = {"method": "GET", "url": URL, "access_token": "tok", **change}
    with pytest.raises(InvalidProof, match=message) as refused:
        verify_proof(proof, **args)
    assert refused.value.error == "invalid_dpop_proof"


def test_verify_refuses_forgeries_and_replays():
    key, other = DPoPKey.generate(), DPoPKey.generate()
    proof = key.proof("GET", URL)
    head, body, signature = proof.split(".")
    forged = ".".join([other.proof("GET", URL).split(".")[0], body, signature])  # other key's jwk, key's signature
    with pytest.raises(InvalidProof, match="signature"):
        verify_proof(forged, method="GET", url=URL)
    plain = jwt.encode({"jti": "x", "htm": "GET", "htu": URL, "iat": int(time.time())}, "s" * 32, algorithm="HS256",
                       headers={"typ": "dpop+jwt"})
    with pytest.raises(InvalidProof, match="alg"):
        verify_proof(plain, method="GET", url=URL)
    leaked = jwt.encode({"jti": "x", "htm": "GET", "htu": URL, "iat": int(time.time())}, key._key, algorithm="ES256",
                        headers={"typ": "dpop+jwt", "jwk": key.private_jwk()})
    with pytest.raises(InvalidProof, match="public jwk"):
        verify_proof(leaked, method="GET", url=URL)
    wrong_typ = jwt.encode({"jti": "x", "htm": "GET", "htu": URL, "iat": int(time.time())}, key._key,
                           algorithm="ES256", headers={"typ": "JWT", "jwk": key.public_jwk})
    with pytest.raises(InvalidProof, match="typ"):
        verify_proof(wrong_typ, method="GET", url=URL)
    replay = ReplayCache()
    verify_proof(proof, method="GET", url=URL, replay=replay)
    with pytest.raises(InvalidProof, match="used before"):
        verify_proof(proof, method="GET", url=URL, replay=replay)


def test_a_missing_nonce_is_use_dpop_nonce():
    proof = DPoPKey.generate().proof("GET", URL)
    with pytest.raises(InvalidProof) as refused:
        verify_proof(proof, method="GET", url=URL, nonce_ok=lambda nonce: nonce == "n-2")
    assert refused.value.error == "use_dpop_nonce"


def test_nonces_are_remembered_per_origin():
    nonces = DPoPNonces()
    assert nonces.remember("https://a.example/x?y", {"DPoP-Nonce": "n1"}) is True
    assert nonces.remember("https://a.example:443/other", {"DPoP-Nonce": "n1"}) is False  # same origin, same nonce
    assert nonces.get("https://A.example/z") == "n1"
    assert nonces.get("https://b.example/x") is None
    assert nonces.remember("https://a.example/", {}) is False and nonces.get("https://a.example/") == "n1"


def test_challenge_errors_are_read_from_www_authenticate():
    assert challenge_error('DPoP error="use_dpop_nonce", error_description="nonce"') == "use_dpop_nonce"
    assert challenge_error('Bearer realm="x", DPoP algs="ES256", error="invalid_token"') == "invalid_token"
    assert challenge_error('Bearer error="invalid_token"') is None


def test_challenges_are_parsed_as_rfc_9110_defines_them():
    # a quoted string may hold commas and "=": they are not parameters
    assert challenge_error('DPoP error_description="retry, error=use_dpop_nonce", error="invalid_token"') \
        == "invalid_token"
    # several challenges in one header; each scheme's error is its own
    header = 'Bearer realm="api", error="insufficient_scope", DPoP algs="ES256 PS256", error="use_dpop_nonce"'
    assert challenges(header) == [("bearer", {"realm": "api", "error": "insufficient_scope"}),
                                  ("dpop", {"algs": "ES256 PS256", "error": "use_dpop_nonce"})]
    assert challenge_error(header) == "use_dpop_nonce"
    assert challenge_error(header, "bearer") == "insufficient_scope"
    assert challenge_error('DPoP realm="a, DPoP error=use_dpop_nonce"') is None
    assert challenges('Basic, DPoP error=invalid_token') == [("basic", {}), ("dpop", {"error": "invalid_token"})]
    assert challenges("x" * 9000) == [] and challenge_error(None) is None


def test_nonces_that_are_not_nqchar_are_never_remembered():
    nonces = DPoPNonces()
    for bad in ("a b", 'a"b', "a\\b", "n\u00e9", "a\x00", "", "x" * 1025):
        assert nonces.remember("https://a.example/", {"DPoP-Nonce": bad}) is False
    assert nonces.get("https://a.example/") is None
    assert nonces.remember("https://a.example/", {"DPoP-Nonce": "!#[]~" + "x" * 1019}) is True


def test_a_stored_dpop_key_that_is_not_a_key_is_a_token_error():
    with pytest.raises(TokenError, match="not a usable private JWK"):
        DPoPKey.from_jwk({"kty": "EC", "crv": "P-256", "x": "AA"})
    assert htu("HTTP://Example.TEST:80") == "http://example.test/"


@pytest.mark.parametrize("url", ["http://h:99999/x", "http://h:abc/x", "http://[::1/x"])
def test_a_malformed_url_gets_no_proof_and_a_token_error_not_a_value_error(url):
    with pytest.raises(TokenError, match="cannot make a DPoP proof for a malformed URL") as info:
        DPoPKey.generate().proof("GET", url)
    assert type(info.value) is TokenError

