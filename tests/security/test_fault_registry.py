"""The adversarial provider itself: one named fault at a time, counted, scoped, and every fault used."""
from __future__ import annotations

import pathlib

import pytest
import requests

from pyramid_tokens.devidp.faults import FAULTS

from .support import attempt_login, login


def test_unknown_fault_or_target_is_refused(idp):
    with pytest.raises(ValueError, match="unknown fault 'id_token_sparkles'"):
        idp.provider.misbehave("id_token_sparkles")
    with pytest.raises(ValueError, match="unknown targets"):
        idp.provider.misbehave("not_json", on="tokn")
    assert idp.provider.faults.name is None


def test_one_fault_at_a_time_and_behave_ends_it(app, idp):
    idp.provider.misbehave("id_token_alg_none")
    idp.provider.misbehave("id_token_wrong_nonce")  # replaces the first
    assert idp.provider.faults.name == "id_token_wrong_nonce"
    assert "nonce" in attempt_login(app).text
    idp.provider.behave()
    login(app)
    assert idp.provider.faults.triggered == 1


def test_times_limits_a_fault_and_on_narrows_it(idp):
    idp.provider.misbehave("server_error", on="jwks", times=1)
    assert requests.get(idp.issuer + "/.well-known/openid-configuration", timeout=5).status_code == 200
    assert requests.get(idp.issuer + "/jwks", timeout=5).status_code == 503
    assert requests.get(idp.issuer + "/jwks", timeout=5).status_code == 200
    assert idp.provider.faults.triggered == 1 and idp.provider.faults.name is None


def test_authorization_response_faults_count_only_the_redirect(app, idp):
    idp.provider.misbehave("authorization_response_wrong_iss", times=1)
    attempt_login(app)  # the login page (GET) is not counted; the redirect (POST) is
    assert idp.provider.faults.triggered == 1


def test_make_idp_can_start_a_misbehaving_provider(make_idp):
    idp = make_idp(fault="server_error", fault_on="discovery")
    assert requests.get(idp.issuer + "/.well-known/openid-configuration", timeout=5).status_code == 503


def test_every_fault_is_documented_and_used_by_the_security_suite():
    suite = "".join(path.read_text() for path in pathlib.Path(__file__).parent.glob("test_*.py")
                    if path.name != pathlib.Path(__file__).name)
    for name, fault in FAULTS.items():
        assert fault.doc, name
        assert f'"{name}"' in suite, f"fault {name} is not exercised by tests/security"
