"""The development provider's token-exchange grant (RFC 8693 §2.1-2.2), spoken to over raw HTTP."""
from __future__ import annotations

import pytest
import requests

from pyramid_tokens.devidp.models import TOKEN_EXCHANGE_GRANT
from pyramid_tokens.dpop import DPoPKey

from tests.support.provider import WEB_REDIRECT_URI

from ..devidp.flows import WEB, WORKER, claims, client_credentials, code_flow, login, post, token_request, verify

ACCESS = "urn:ietf:params:oauth:token-type:access_token"


def exchange(idp, subject: str, auth=WEB, headers=None, **extra):
    data = {"grant_type": TOKEN_EXCHANGE_GRANT, "subject_token": subject, "subject_token_type": ACCESS, **extra}
    return token_request(idp, data, auth=auth, headers=headers)


def user_token(idp) -> str:
    return code_flow(idp)["access_token"]


def test_an_exchange_answers_an_access_token_for_the_audience_with_the_users_sub(idp):
    answer = exchange(idp, user_token(idp), audience="orders")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["issued_token_type"] == ACCESS and body["token_type"] == "Bearer" and "refresh_token" not in body
    verified = verify(idp, body["access_token"], "orders")  # signed, iss, aud, exp as a resource server checks
    assert verified["sub"] == "alice" and verified["client_id"] == "web" and verified["scope"] == "api"
    assert TOKEN_EXCHANGE_GRANT in idp.provider.metadata()["grant_types_supported"]


def test_an_audience_outside_the_clients_allow_list_is_invalid_target(idp):
    answer = exchange(idp, user_token(idp), audience="hr")
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_target"


def test_an_exchange_without_a_target_is_invalid_target(idp):
    answer = exchange(idp, user_token(idp))
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_target"


def test_a_client_not_registered_for_the_grant_is_refused(make_idp):
    from tests.support.provider import standard_clients

    idp = make_idp(clients=standard_clients())
    answer = exchange(idp, user_token(idp), audience="orders")
    assert answer.status_code in (400, 401) and answer.json()["error"] == "unauthorized_client"


@pytest.mark.parametrize("subject", ["not-a-jwt", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9."])
def test_a_subject_token_the_provider_did_not_issue_is_invalid_grant(idp, subject):
    answer = exchange(idp, subject, audience="orders")
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_a_revoked_subject_token_is_invalid_grant(idp):
    subject = user_token(idp)
    assert post(idp, "/revoke", {"token": subject}).status_code == 200
    assert exchange(idp, subject, audience="orders").json()["error"] == "invalid_grant"


def test_a_dpop_bound_subject_token_needs_a_proof_of_its_key(idp):
    key = DPoPKey.generate()
    url = idp.issuer + "/token"
    code, verifier = login(idp)
    bound = token_request(idp, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                "redirect_uri": WEB_REDIRECT_URI}, headers={"DPoP": key.proof("POST", url)}).json()
    bound = bound["access_token"]
    assert claims(bound)["cnf"] == {"jkt": key.thumbprint}
    assert exchange(idp, bound, audience="orders").json()["error"] == "invalid_grant"
    other = DPoPKey.generate()
    assert exchange(idp, bound, audience="orders", headers={"DPoP": other.proof("POST", url)}).json()["error"] \
        == "invalid_grant"
    answer = exchange(idp, bound, audience="orders", headers={"DPoP": key.proof("POST", url)})
    assert answer.status_code == 200 and answer.json()["token_type"] == "DPoP"
    assert claims(answer.json()["access_token"])["cnf"] == {"jkt": key.thumbprint}


def test_an_actor_token_puts_act_in_the_token_and_a_second_delegation_nests_it(idp):
    worker = client_credentials(idp).json()["access_token"]
    first = exchange(idp, user_token(idp), audience="orders", actor_token=worker, actor_token_type=ACCESS)
    assert first.status_code == 200, first.text
    assert claims(first.json()["access_token"])["act"] == {"sub": "worker"}
    web = client_credentials(idp, auth=WEB).json()["access_token"]
    second = exchange(idp, first.json()["access_token"], audience="billing", actor_token=web, actor_token_type=ACCESS)
    nested = claims(second.json()["access_token"])
    assert nested["sub"] == "alice" and nested["act"] == {"sub": "web", "act": {"sub": "worker"}}


def test_an_actor_token_without_its_type_is_invalid_request(idp):
    worker = client_credentials(idp).json()["access_token"]
    answer = exchange(idp, user_token(idp), audience="orders", actor_token=worker)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"


def test_a_scope_the_client_may_not_have_is_invalid_scope(idp):
    answer = exchange(idp, user_token(idp), audience="orders", scope="admin")
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_scope"


def test_a_repeated_subject_token_is_invalid_request(idp):
    subject = user_token(idp)
    data = [("grant_type", TOKEN_EXCHANGE_GRANT), ("subject_token", subject), ("subject_token", subject),
            ("subject_token_type", ACCESS), ("audience", "orders")]
    answer = requests.post(idp.issuer + "/token", data=data, auth=WEB, timeout=5)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"


def test_a_subject_token_of_another_client_is_invalid_grant(idp):
    worker = client_credentials(idp).json()["access_token"]  # issued to worker, for the audience api
    answer = exchange(idp, worker, auth=WEB, audience="orders")
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_a_client_subject_is_exchanged_for_another_audience(idp):
    worker = client_credentials(idp).json()["access_token"]
    answer = exchange(idp, worker, auth=WORKER, audience="orders")
    assert answer.status_code == 200, answer.text
    assert claims(answer.json()["access_token"])["sub"] == "worker"
