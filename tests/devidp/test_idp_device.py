"""Device authorization grant (RFC 8628 §3.1-3.5)."""
from __future__ import annotations

import re
import time

import requests

from pyramid_tokens.devidp import DevClient
from tests.support.provider import approve_device

from .flows import DEVICE_GRANT, WORKER, claims, post, refresh, token_request


def start(idp, scope="openid profile offline_access api", auth=("web", "web-secret"), **extra):
    return post(idp, "/device_authorization", {"scope": scope, **extra}, auth=auth)


def poll(idp, device_code, auth=("web", "web-secret")):
    return token_request(idp, {"grant_type": DEVICE_GRANT, "device_code": device_code}, auth=auth)


def test_device_authorization_returns_codes_and_where_to_go(make_idp):
    idp = make_idp(device_interval=3, device_lifetime=120)
    response = start(idp)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", body["user_code"])
    assert len(body["device_code"]) >= 32
    assert body["verification_uri"] == idp.issuer + "/device"
    assert body["verification_uri_complete"] == f"{idp.issuer}/device?user_code={body['user_code']}"
    assert body["expires_in"] == 120 and body["interval"] == 3


def test_polling_is_pending_until_the_user_approves_then_tokens_come_once(make_idp):
    idp = make_idp(device_interval=0)
    body = start(idp).json()
    pending = poll(idp, body["device_code"])
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"
    approve_device(body["verification_uri_complete"], "dave")
    tokens = poll(idp, body["device_code"])
    assert tokens.status_code == 200
    issued = tokens.json()
    assert claims(issued["access_token"])["sub"] == "dave"
    assert claims(issued["id_token"])["sub"] == "dave" and claims(issued["id_token"])["aud"] == "web"
    assert refresh(idp, issued["refresh_token"]).status_code == 200
    used = poll(idp, body["device_code"])
    assert used.status_code == 400 and used.json()["error"] == "invalid_grant"


def test_polling_sooner_than_the_interval_is_slow_down(make_idp, clock):
    idp = make_idp(clock=clock, device_interval=5)
    device_code = start(idp).json()["device_code"]
    assert poll(idp, device_code).json()["error"] == "authorization_pending"
    clock.advance(4)
    assert poll(idp, device_code).json()["error"] == "slow_down"
    clock.advance(5)
    assert poll(idp, device_code).json()["error"] == "authorization_pending"


def test_a_denied_device_gets_access_denied(make_idp):
    idp = make_idp(device_interval=0)
    body = start(idp).json()
    page = approve_device(body["verification_uri_complete"], approve=False)
    assert "denied" in page.text
    response = poll(idp, body["device_code"])
    assert response.status_code == 400 and response.json()["error"] == "access_denied"


def test_an_expired_device_code_is_expired_token_and_cannot_be_approved(make_idp, clock):
    idp = make_idp(clock=clock, device_lifetime=2, device_interval=0)
    body = start(idp).json()
    clock.advance(2)
    assert poll(idp, body["device_code"]).json()["error"] == "expired_token"
    page = requests.post(idp.issuer + "/device", timeout=5,
                         data={"user_code": body["user_code"], "username": "alice", "devidp_action": "approve"})
    assert page.status_code == 400 and "expired" in page.text


def test_device_codes_expire_on_the_real_clock_too(make_idp):
    idp = make_idp(device_lifetime=1, device_interval=0)
    device_code = start(idp).json()["device_code"]
    time.sleep(1.05)
    assert poll(idp, device_code).json()["error"] == "expired_token"


def test_auto_approve_approves_every_device_as_the_configured_user(make_idp, caplog):
    with caplog.at_level("WARNING", logger="pyramid_tokens.devidp"):
        idp = make_idp(device_auto_approve="notebook", device_interval=0)
    assert any("device_auto_approve is ON" in r.getMessage() for r in caplog.records)
    tokens = poll(idp, start(idp).json()["device_code"])
    assert tokens.status_code == 200 and claims(tokens.json()["access_token"])["sub"] == "notebook"


def test_the_user_code_is_accepted_in_any_case_and_without_the_dash(make_idp):
    idp = make_idp(device_interval=0)
    body = start(idp).json()
    typed = body["user_code"].replace("-", " ").lower()
    page = requests.post(idp.issuer + "/device", timeout=5,
                         data={"user_code": typed, "username": "erin", "devidp_action": "approve"})
    assert page.status_code == 200
    assert poll(idp, body["device_code"]).status_code == 200


def test_an_unknown_user_code_is_refused_on_the_page(idp):
    page = requests.post(idp.issuer + "/device", timeout=5,
                         data={"user_code": "BBBB-BBBB", "username": "alice", "devidp_action": "approve"})
    assert page.status_code == 400 and "Unknown code" in page.text


def test_a_decided_code_cannot_be_decided_again(make_idp):
    idp = make_idp(device_interval=0)
    body = start(idp).json()
    approve_device(body["verification_uri_complete"], approve=False)
    page = requests.post(idp.issuer + "/device", timeout=5,
                         data={"user_code": body["user_code"], "username": "alice", "devidp_action": "approve"})
    assert page.status_code == 400
    assert poll(idp, body["device_code"]).json()["error"] == "access_denied"


def test_device_authorization_authenticates_the_client(idp):
    assert start(idp, auth=("web", "wrong")).status_code == 401
    posted = post(idp, "/device_authorization", {"client_id": "web", "client_secret": "web-secret"}, auth=None)
    assert posted.status_code == 200


def test_device_codes_are_bound_to_their_client(make_idp):
    idp = make_idp(device_interval=0, device_auto_approve="alice")
    device_code = start(idp, scope="api").json()["device_code"]
    idp.provider.add_client(DevClient("tv", "tv-secret", scopes="api"))
    assert poll(idp, device_code, auth=("tv", "tv-secret")).json()["error"] == "invalid_grant"
    assert poll(idp, device_code).status_code == 200


def test_clients_without_the_device_grant_are_unauthorized(idp):
    response = start(idp, scope="api", auth=WORKER)
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"


def test_without_offline_access_there_is_no_refresh_token(make_idp):
    idp = make_idp(device_interval=0, device_auto_approve="alice")
    tokens = poll(idp, start(idp, scope="api").json()["device_code"]).json()
    assert "refresh_token" not in tokens and "id_token" not in tokens and tokens["scope"] == "api"


def test_device_page_prefills_the_user_code(idp):
    body = start(idp).json()
    page = requests.get(body["verification_uri_complete"], timeout=5)
    assert page.status_code == 200 and body["user_code"] in page.text
