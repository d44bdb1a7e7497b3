"""Every logout token check of Back-Channel Logout 1.0 §2.6 refuses with a 400, names itself in a log line,
and logs nobody out; the route never answers 500 to anything a caller sends.
"""
from __future__ import annotations

import random
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pyramid_tokens.devidp.backchannel import LOGOUT_EVENT

from .conftest import claims_for, sign

NOW = lambda: int(time.time())  # noqa: E731 - the provider's clock is the real one


def forged(idp, **claims):
    """Signed by another key under the provider's kid."""
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims_for(idp, sub="alice", **claims), other, algorithm="RS256",
                      headers={"kid": idp.provider.keys.current.kid, "typ": "logout+jwt"})


def not_an_object_payload(idp):
    key = idp.provider.keys.current
    return jwt.api_jws.encode(b"[1, 2]", key.private_key, algorithm="RS256", headers={"kid": key.kid})


CASES = {
    # name: (token maker, the check that refuses it)
    "iss of another issuer": (lambda idp: sign(idp, sub="alice", iss="https://evil.example"), "iss"),
    "aud of another client": (lambda idp: sign(idp, sub="alice", aud="other"), "aud"),
    "two audiences, no azp": (lambda idp: sign(idp, sub="alice", aud=["web", "other"]), "azp"),
    "azp of another client": (lambda idp: sign(idp, sub="alice", azp="other"), "azp"),
    "no iat": (lambda idp: sign(idp, sub="alice", iat=None), "iat"),
    "iat not a number": (lambda idp: sign(idp, sub="alice", iat="now"), "iat"),
    "iat in the future": (lambda idp: sign(idp, sub="alice", iat=NOW() + 3600), "iat"),
    "exp in the past": (lambda idp: sign(idp, sub="alice", iat=NOW() - 900, exp=NOW() - 600), "exp"),
    "no exp and iat too old": (lambda idp: sign(idp, sub="alice", exp=None, iat=NOW() - 900), "iat"),
    "no jti": (lambda idp: sign(idp, sub="alice", jti=None), "jti"),
    "jti not a string": (lambda idp: sign(idp, sub="alice", jti=42), "jti"),
    "no events": (lambda idp: sign(idp, sub="alice", events=None), "events"),
    "events member not an object": (lambda idp: sign(idp, sub="alice", events={LOGOUT_EVENT: "yes"}), "events"),
    "events without the logout member": (lambda idp: sign(idp, sub="alice", events={"urn:other": {}}), "events"),
    "events not an object": (lambda idp: sign(idp, sub="alice", events=[LOGOUT_EVENT]), "events"),
    "neither sub nor sid": (lambda idp: sign(idp), "sub"),
    "sub not a string": (lambda idp: sign(idp, sub=["alice"]), "sub"),
    "sid empty": (lambda idp: sign(idp, sub="alice", sid=""), "sid"),
    "a nonce (an ID token)": (lambda idp: sign(idp, sub="alice", nonce="n-1"), "nonce"),
    "typ of an access token": (lambda idp: sign(idp, {"typ": "at+jwt"}, sub="alice"), "typ"),
    "alg none": (lambda idp: jwt.encode(claims_for(idp, sub="alice"), None, algorithm="none"), "alg"),
    "alg HS256": (lambda idp: jwt.encode(claims_for(idp, sub="alice"), "secret", algorithm="HS256"), "alg"),
    "forged signature": (forged, "signature"),
    "unknown kid": (lambda idp: sign(idp, {"kid": "no-such-key"}, sub="alice"), "signature"),
    "payload not a JSON object": (not_an_object_payload, "jws"),
    "not a JWT": (lambda idp: "not-a-jwt", "jws"),
    "header not a JSON object": (lambda idp: "WzFd.e30.c2ln", "jws"),
    "too long": (lambda idp: "a" * 9000, "size"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_logout_token_failing_a_check_is_refused_names_the_check_and_logs_nobody_out(rp, idp, caplog, case):
    make, check = CASES[case]
    browser = rp.login(rp.browser())
    answer = rp.post(make(idp))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_request"
    assert answer.headers["Cache-Control"] == "no-store"
    assert f"check {check} failed" in caplog.text
    assert rp.whoami(browser) == "alice"
    assert rp.record(browser) is not None


@pytest.mark.parametrize("headers", [{"typ": "JWT"}, {"typ": None}, {"typ": "application/logout+jwt"}])
def test_a_provider_sending_typ_jwt_or_no_typ_is_accepted(rp, idp, headers):
    browser = rp.login(rp.browser())
    assert rp.post(sign(idp, headers, sub="alice")).status_code == 200
    assert rp.whoami(browser) is None


def test_a_logout_token_without_exp_is_accepted_while_fresh(rp, idp):
    browser = rp.login(rp.browser())
    assert rp.post(sign(idp, sub="alice", exp=None)).status_code == 200
    assert rp.whoami(browser) is None


def test_a_replayed_jti_is_refused(rp, idp, caplog):
    token = sign(idp, sub="carol")
    assert rp.post(token).status_code == 200
    browser = rp.login(rp.browser(), "carol")
    again = rp.post(token)
    assert again.status_code == 400 and again.json()["error"] == "invalid_request"
    assert "check jti failed" in caplog.text
    assert rp.whoami(browser) == "carol"


def test_a_token_signed_with_a_key_the_provider_rotated_to_is_found_with_one_jwks_refetch(make_rp, idp, clock):
    rp = make_rp(clock=clock)
    browser = rp.login(rp.browser())
    clock.advance(rp.manager.oidc.discovery.jwks_refetch_interval + 1)  # JWKS refetches are rate limited
    idp.provider.rotate_keys()
    before = idp.provider.counters()["jwks"]
    assert rp.post(sign(idp, sub="alice")).status_code == 200
    assert idp.provider.counters()["jwks"] == before + 1
    assert rp.whoami(browser) is None


# -- malformed requests --------------------------------------------------------------------------------------
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
MALFORMED = {
    "empty body": dict(data=b"", headers=FORM),
    "no logout_token": dict(data={"other": "x"}),
    "two logout_tokens": dict(data=[("logout_token", "a.b.c"), ("logout_token", "a.b.c")]),
    "JSON body": dict(json={"logout_token": "a.b.c"}),
    "no content type": dict(data=b"logout_token=a.b.c", headers={"Content-Type": ""}),
    "1 MB body": dict(data=b"logout_token=" + b"a" * (1024 * 1024), headers=FORM),
    "not UTF-8": dict(data=b"logout_token=\xff\xfe\x00", headers=FORM),
    "multipart": dict(files={"logout_token": ("t", b"a.b.c")}),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_request_is_a_400_never_a_500(rp, case):
    browser = rp.login(rp.browser())
    answer = rp.post(**MALFORMED[case])
    assert answer.status_code == 400, answer.text[:200]
    assert answer.json()["error"] == "invalid_request"
    assert rp.whoami(browser) == "alice"


def test_only_post_is_answered(rp):
    import requests

    answer = requests.get(rp.logout_uri, timeout=10)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"


def test_random_bodies_and_tokens_are_all_refused_with_a_400(rp, idp):
    """Fuzz: random bytes, and JWT-shaped strings of random parts, as the whole body or as the token."""
    browser = rp.login(rp.browser())
    rng = random.Random(14)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=.%+&"
    valid = sign(idp, sub="alice").split(".")
    for i in range(120):
        kind = i % 3
        if kind == 0:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        elif kind == 1:
            body = ("logout_token=" + "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 600)))).encode()
        else:  # a real header or payload spliced with random parts
            parts = [rng.choice([p, "".join(rng.choice(alphabet[:64]) for _ in range(len(p)))]) for p in valid]
            body = ("logout_token=" + ".".join(parts)).encode()
            if parts == valid:
                continue
        answer = rp.post(data=body, headers=FORM)
        assert answer.status_code == 400, (body[:80], answer.status_code, answer.text[:200])
    assert rp.whoami(browser) == "alice"


def test_no_logout_token_appears_in_any_log_line_even_at_debug(rp, idp, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    browser = rp.login(rp.browser())
    sid = rp.record(browser)["sid"]
    tokens = [forged(idp, sid=sid), sign(idp, sub="alice", sid=sid, nonce="n"), sign(idp, sub="alice", sid=sid)]
    for token in tokens:
        rp.post(token)
    assert rp.whoami(browser) is None  # the last one was valid
    for secret in [*tokens, *(t.split(".")[1] for t in tokens), *(t.split(".")[2] for t in tokens)]:
        assert secret not in caplog.text
    # (the sid itself is in the UserLoggedOut event's log line: events.py's choice, not a token)


def test_an_app_that_requires_csrf_tokens_everywhere_still_accepts_logout_tokens(make_rp, idp):
    rp = make_rp(extra=lambda config: config.set_default_csrf_options(require_csrf=True))
    browser = rp.login(rp.browser())
    assert rp.post(sign(idp, sub="alice")).status_code == 200
    assert rp.whoami(browser) is None


def test_a_token_whose_key_cannot_be_fetched_while_the_provider_is_down_is_a_503_to_retry(make_rp, idp, clock):
    rp = make_rp(clock=clock)
    browser = rp.login(rp.browser())
    idp.provider.rotate_keys()
    token = sign(idp, sub="alice")  # signed with a key the app has not seen
    clock.advance(rp.manager.oidc.discovery.jwks_refetch_interval + 1)
    idp.stop()
    answer = rp.post(token)
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert answer.headers["Cache-Control"] == "no-store"
    assert rp.record(browser) is not None  # nobody logged out
