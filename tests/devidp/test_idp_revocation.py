"""Token revocation (RFC 7009 §2)."""
from __future__ import annotations

import requests

from pyramid_tokens.devidp import DevClient
from tests.support.provider import WEB_REDIRECT_URI

from .flows import WORKER, client_credentials, code_flow, post, refresh


def revoke(idp, token, auth=("web", "web-secret"), **extra):
    return post(idp, "/revoke", {"token": token, **extra}, auth=auth)


def userinfo(idp, access_token):
    return requests.get(idp.issuer + "/userinfo", headers={"Authorization": f"Bearer {access_token}"}, timeout=5)


def test_a_revoked_refresh_token_no_longer_refreshes(idp):
    tokens = code_flow(idp)
    response = revoke(idp, tokens["refresh_token"], token_type_hint="refresh_token")
    assert response.status_code == 200
    refused = refresh(idp, tokens["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


def test_revoking_a_refresh_token_revokes_the_access_tokens_of_its_grant(idp):
    tokens = code_flow(idp)
    assert userinfo(idp, tokens["access_token"]).status_code == 200
    revoke(idp, tokens["refresh_token"])
    assert userinfo(idp, tokens["access_token"]).status_code == 401


def test_a_revoked_access_token_is_refused_at_userinfo_but_the_refresh_token_lives_on(idp):
    tokens = code_flow(idp)
    assert revoke(idp, tokens["access_token"], token_type_hint="access_token").status_code == 200
    assert userinfo(idp, tokens["access_token"]).status_code == 401
    assert refresh(idp, tokens["refresh_token"]).status_code == 200


def test_unknown_tokens_are_answered_with_200(idp):
    assert revoke(idp, "no-such-token").status_code == 200
    assert revoke(idp, "no-such-token", token_type_hint="refresh_token").status_code == 200


def test_revocation_requires_client_authentication(idp):
    tokens = code_flow(idp)
    response = revoke(idp, tokens["refresh_token"], auth=("web", "wrong"))
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert refresh(idp, tokens["refresh_token"]).status_code == 200  # nothing was revoked


def test_client_secret_post_works_for_revocation(idp):
    tokens = code_flow(idp)
    response = revoke(idp, tokens["refresh_token"], auth=None, client_id="web", client_secret="web-secret")
    assert response.status_code == 200
    assert refresh(idp, tokens["refresh_token"]).status_code == 400


def test_a_client_cannot_revoke_another_clients_token(idp):
    idp.provider.add_client(DevClient("other", "other-secret", redirect_uris=[WEB_REDIRECT_URI]))
    tokens = code_flow(idp)
    response = revoke(idp, tokens["refresh_token"], auth=("other", "other-secret"))
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
    assert refresh(idp, tokens["refresh_token"]).status_code == 200
    worker_token = client_credentials(idp).json()["access_token"]
    assert revoke(idp, worker_token).status_code == 400
    assert revoke(idp, worker_token, auth=WORKER).status_code == 200


def test_revocation_requests_are_counted(idp):
    revoke(idp, "x")
    revoke(idp, "y", auth=("web", "wrong"))
    assert idp.provider.counters()["revocation"] == 2
