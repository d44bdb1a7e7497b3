"""One base64url (RFC 7515 §2, Appendix C): unpadded on the way out, padding-tolerant on the way in."""
from __future__ import annotations

import hashlib

import pytest

from pyramid_tokens.idtoken import token_hash
from pyramid_tokens.jwk import b64url, b64url_decode, sha256_b64url


@pytest.mark.parametrize("data", [b"", b"\x00", b"\xfb\xff", b"any carnal pleas", bytes(range(256))])
def test_base64url_round_trips_without_padding(data):
    text = b64url(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64url_decode(text) == data


def test_base64url_decode_refuses_what_is_not_base64url():
    for text in ("\u00e9t\u00e9", "a", "ab!c", "ab c"):
        with pytest.raises(ValueError):
            b64url_decode(text)


def test_the_rfc_7636_appendix_b_pkce_challenge():
    assert sha256_b64url("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_at_hash_is_the_left_half_of_the_hash_in_base64url():
    digest = hashlib.sha256(b"an-access-token").digest()
    assert token_hash("an-access-token", "RS256") == b64url(digest[:16])
