"""The userinfo endpoint (OpenID Connect Core §5.3) and its RFC 6750 §3 challenges."""
from __future__ import annotations

import requests


from .flows import client_credentials, code_flow


def userinfo(idp, access_token=None, method="GET", **kwargs):
    headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
    return requests.request(method, idp.issuer + "/userinfo", headers=headers, timeout=5, **kwargs)


def test_userinfo_returns_the_users_claims_for_a_valid_access_token(idp):
    response = userinfo(idp, code_flow(idp, username="bob")["access_token"])
    assert response.status_code == 200
    assert response.json() == {
        "sub": "bob", "name": "Bob", "preferred_username": "bob", "role": "user", "email": "bob@example.test",
    }


def test_userinfo_releases_claims_by_scope(idp):
    assert userinfo(idp, code_flow(idp, scope="openid")["access_token"]).json() == {"sub": "alice"}
    assert userinfo(idp, code_flow(idp, scope="openid email")["access_token"]).json() == {
        "sub": "alice", "email": "alice@example.test",
    }


def test_userinfo_accepts_post_with_the_token_in_the_body(idp):
    token = code_flow(idp)["access_token"]
    response = requests.post(idp.issuer + "/userinfo", data={"access_token": token}, timeout=5)
    assert response.status_code == 200 and response.json()["sub"] == "alice"


def test_an_invalid_token_is_401_with_an_invalid_token_challenge(idp):
    token = code_flow(idp)["access_token"]
    for bad in ("garbage", token[:-4] + "AAAA"):
        response = userinfo(idp, bad)
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_no_token_is_401_with_a_bare_challenge(idp):
    response = userinfo(idp)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="devidp"'


def test_an_expired_token_is_refused(make_idp, clock):
    idp = make_idp(clock=clock)
    token = code_flow(idp)["access_token"]
    clock.advance(300)
    response = userinfo(idp, token)
    assert response.status_code == 401 and 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_an_id_token_is_not_an_access_token(idp):
    response = userinfo(idp, code_flow(idp)["id_token"])
    assert response.status_code == 401


def test_a_token_of_another_issuer_is_refused(idp, make_idp):
    other = make_idp()
    assert userinfo(idp, code_flow(other)["access_token"]).status_code == 401


def test_a_token_without_openid_scope_is_403_insufficient_scope(idp):
    response = userinfo(idp, client_credentials(idp).json()["access_token"])
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
