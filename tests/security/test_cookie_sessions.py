"""Cookie sessions never expose tokens, and a forged or broken cookie is no session (issue 20 item 6).

With ``session.type = cookie`` the refresh token, the access token and the DPoP key travel in the
cookie: the package refuses to start unless Beaker encrypts it, and whatever an attacker puts in
the cookie is at worst "not logged in", never a 500.
"""
from __future__ import annotations

import base64
import binascii

import pytest
import webtest
from pyramid.exceptions import ConfigurationError as PyramidConfigurationError

from .support import JSON, assert_logged_out, build_app, login, settings_for

COOKIE = {"session.type": "cookie", "session.validate_key": "v" * 32, "session.encrypt_key": "e" * 32,
          "session.save_accessed_time": "false"}


def cookie_app(idp, clock, **overrides):
    return webtest.TestApp(build_app(settings_for(idp, **{**COOKIE, **overrides}), clock))


def test_cookie_sessions_holding_tokens_refuse_to_start_without_an_encryption_key(idp, clock):
    with pytest.raises(PyramidConfigurationError) as refused:
        build_app(settings_for(idp, **{**COOKIE, "session.encrypt_key": None}), clock)
    message = str(refused.value)
    assert "session.encrypt_key" in message  # names the fix
    assert "refresh token" in message and "readable" in message  # and says why


def test_cookie_sessions_with_tokens_kept_server_side_need_no_encryption_key(idp, clock):
    pytest.importorskip("redis")
    settings = settings_for(idp, **{**COOKIE, "session.encrypt_key": None, "tokens.store": "redis://127.0.0.1:1/0"})
    build_app(settings, clock)  # starts: the cookie holds only the handle


def _decodings(value):
    """The cookie value and every base64 reading of it an eavesdropper would try."""
    yield value
    for chunk in [value] + [value[i:] for i in range(1, 80)]:
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                yield decode(chunk + "=" * (-len(chunk) % 4)).decode("latin-1")
            except (binascii.Error, ValueError):
                pass


def test_the_cookie_reveals_no_token_to_whoever_sees_it(idp, clock):
    app = cookie_app(idp, clock)
    login(app)
    token = app.get("/token").json["access_token"]
    cookie = app.cookies["sid"]
    for text in _decodings(cookie):
        assert token not in text
        assert '"refresh_token"' not in text and "dpop_key" not in text and "pyramid_tokens.record" not in text


def _tampered(value):
    return value[:-5] + ("A" if value[-5] != "A" else "B") + value[-4:]


@pytest.mark.parametrize("attack", ["tampered", "truncated", "garbage_base64", "empty", "other_key"])
def test_a_forged_or_broken_session_cookie_is_no_session_never_a_500(idp, clock, attack):
    app = cookie_app(idp, clock)
    login(app)
    good = app.cookies["sid"]
    if attack == "other_key":  # a valid cookie of another deployment (other keys), with its own login
        other = cookie_app(idp, clock, **{"session.validate_key": "w" * 32, "session.encrypt_key": "f" * 32})
        login(other)
        value = other.cookies["sid"]
    else:
        value = {"tampered": _tampered(good), "truncated": good[: len(good) // 2],
                 "garbage_base64": "!!not*base64%%" + "A" * 60, "empty": '""'}[attack]
    attacker = webtest.TestApp(app.app)
    attacker.set_cookie("sid", value)
    assert attacker.get("/public").text == "public"
    assert_logged_out(attacker)
    assert attacker.get("/token", headers=JSON, status=401).json["error"] == "login_required"
