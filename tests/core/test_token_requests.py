"""Token requests as oauthlib builds them: RFC 7636 PKCE and the RFC 6749 grant forms."""
from __future__ import annotations

import re

from pyramid_tokens.oidc import pkce_challenge, pkce_verifier
from pyramid_tokens.tokenclient import grant_form


def test_pkce_s256_matches_the_rfc_7636_example():
    assert pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_code_verifiers_are_fresh_64_character_unreserved_strings():
    verifiers = {pkce_verifier() for _ in range(20)}
    assert len(verifiers) == 20
    assert all(re.fullmatch(r"[A-Za-z0-9\-._~]{64}", verifier) for verifier in verifiers)


def test_grant_forms_keep_every_value_exactly_and_leave_out_none():
    form = grant_form("authorization_code", code="a+b&c=d é", redirect_uri="https://app/cb?x=1",
                      code_verifier="v" * 43, resource=None)
    assert form == {"grant_type": "authorization_code", "code": "a+b&c=d é", "redirect_uri": "https://app/cb?x=1",
                    "code_verifier": "v" * 43}
    assert grant_form("refresh_token", refresh_token="r") == {"grant_type": "refresh_token", "refresh_token": "r"}
