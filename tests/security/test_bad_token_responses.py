"""Malformed answers at every token call: a TokenError that says what was wrong, and nothing lost.

Calls: the code exchange (login), refresh, client credentials, revocation, and the device flow
(device authorization and the device-code token poll). The development provider sends the bad
answer over real HTTP in place of its own (``faults.py``), so the grant is NOT used up at the
provider: after the failure the previous tokens still work and a later good call succeeds.
"""
from __future__ import annotations

import pytest

from pyramid_tokens import TokenError, TokenManager
from pyramid_tokens.errors import InvalidResponse, ProviderUnavailable
from pyramid_tokens.manager import LOCAL_USER

from .support import JSON, assert_login_failed, attempt_login, login, user_record

#: the RP's provider timeout in these tests (seconds): bounds ``never_ending``
TIMEOUT = "0.5"

#: fault -> (error class, what the message says)
BODY_FAULTS = {
    "not_json": (InvalidResponse, "response is not JSON (text/plain)"),
    "html_error_page": (InvalidResponse, "response is not JSON (text/html)"),  # str(exc) adds "(HTTP 403)"
    "empty_body": (InvalidResponse, "expected a JSON object"),
    "missing_access_token": (InvalidResponse, "no access_token in the response"),
    "expires_in_string": (InvalidResponse, "expires_in must be a number, got str"),
    "expires_in_negative": (InvalidResponse, "expires_in -300 is outside 1 s .. 1 year"),
    "expires_in_zero": (InvalidResponse, "expires_in 0 is outside 1 s .. 1 year"),
    "expires_in_huge": (InvalidResponse, "expires_in 10000000000 is outside 1 s .. 1 year"),
    "unknown_token_type": (InvalidResponse, "unsupported token_type 'MAC'"),
    "oversized_body": (InvalidResponse, "response larger than 262144 bytes"),
    "never_ending": (ProviderUnavailable, "response not complete within 0.5 s"),
}
FAULTS = sorted(BODY_FAULTS)


def expect(fault: str, what: str) -> str:
    return f"{what}: {BODY_FAULTS[fault][1]}"


# -- the code exchange -------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", FAULTS)
def test_code_exchange(make_webapp, idp, fault):
    app = make_webapp(**{"tokens.timeout": TIMEOUT})
    login(app, "bob")
    before = user_record(app)
    idp.provider.misbehave(fault, on="authorization_code")
    response = attempt_login(app, "alice")
    assert idp.provider.faults.triggered == 1
    if BODY_FAULTS[fault][0] is ProviderUnavailable:
        assert_login_failed(response, "The login provider is unavailable right now", status=503)
    else:
        assert_login_failed(response, expect(fault, "authorization code exchange"))
    # The failed second login lost nothing: bob is still logged in with the same tokens.
    assert user_record(app) == before
    assert app.get("/token").json["sub"] == "bob"


# -- refresh -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", FAULTS)
def test_refresh(make_webapp, idp, clock, fault):
    app = make_webapp(**{"tokens.timeout": TIMEOUT})
    login(app)
    before = user_record(app)
    clock.advance(400)  # the access token has expired: only a refresh helps
    idp.provider.misbehave(fault, on="refresh_token")
    if BODY_FAULTS[fault][0] is ProviderUnavailable:
        unavailable = app.get("/token", headers=JSON, status=503).json
        assert unavailable == {"error": "temporarily_unavailable",
                               "error_description": expect(fault, "refresh token request")}
    else:
        failure = app.get("/token", status=502).json
        assert failure["error"] == "invalid_response"
        assert failure["error_description"] == expect(fault, "refresh token request")
    assert idp.provider.faults.triggered == 1
    assert user_record(app) == before  # the refresh token is still stored...
    idp.provider.behave()
    renewed = app.get("/token").json  # ...and still good at the provider
    assert renewed["access_token"] != before["access"]["access_token"]
    assert idp.provider.counters()["token"]["refresh_token"] == 1
    assert idp.provider.counters()["token_errors"].get("invalid_grant", 0) == 0


# -- client credentials ----------------------------------------------------------------------------------------
def worker_manager(idp, clock):
    return TokenManager.from_settings({
        "tokens.clients.worker.authority": idp.issuer, "tokens.clients.worker.client_id": "worker",
        "tokens.clients.worker.client_secret": "worker-secret", "tokens.timeout": TIMEOUT}, clock=clock)


@pytest.mark.parametrize("fault", FAULTS)
def test_client_credentials(idp, clock, fault):
    tm = worker_manager(idp, clock)
    cached = tm.get_client_access_token("worker")
    idp.provider.misbehave(fault, on="client_credentials")
    with pytest.raises(BODY_FAULTS[fault][0]) as info:
        tm.get_client_access_token("worker", force_renewal=True)
    assert info.value.error_description == expect(fault, "client credentials request")
    if fault == "html_error_page":
        assert str(info.value) == f"invalid_response: {expect(fault, 'client credentials request')} (HTTP 403)"
    assert idp.provider.faults.triggered == 1
    assert tm.get_client_access_token("worker") == cached  # the cached token was not dropped
    idp.provider.behave()
    assert tm.get_client_access_token("worker", force_renewal=True) != cached
    tm.close()


# -- revocation (RFC 7009) -----------------------------------------------------------------------------------------
REVOCATION_FAULTS = {
    "html_error_page": "token revocation: response is not JSON (text/html)",
    "oversized_body": "token revocation: response larger than 262144 bytes",
    "never_ending": "token revocation: response not complete within 0.5 s",
    "server_error": "token revocation: ",  # + host: answered with a server error
    "connection_reset": "token revocation: could not reach",
    # Stricter than RFC 7009 §2.2 (which ignores the body of a 200): a 200 that is not JSON is refused.
    "not_json": "token revocation: response is not JSON (text/plain)",
}


@pytest.mark.parametrize("fault", sorted(REVOCATION_FAULTS))
def test_revocation(make_webapp, idp, fault):
    app = make_webapp(**{"tokens.timeout": TIMEOUT})
    login(app)
    before = user_record(app)
    idp.provider.misbehave(fault, on="revoke")
    failure = app.get("/revoke", status=502).json
    assert failure["error_description"].startswith(REVOCATION_FAULTS[fault])
    assert idp.provider.faults.triggered == 1
    # By design the refresh token is forgotten locally first: the user asked for it to be gone.
    assert user_record(app)["refresh_token"] is None
    assert user_record(app)["access"] == before["access"]
    assert app.get("/token").json["access_token"] == before["access"]["access_token"]


def test_revocation_with_an_empty_200_is_a_success(app, idp):
    login(app)
    idp.provider.misbehave("empty_body", on="revoke")
    assert app.get("/revoke").json == {"revoked": True}


def test_logout_completes_when_revocation_gets_garbage(app, idp):
    login(app)
    idp.provider.misbehave("html_error_page", on="revoke")
    response = app.get("/logout").forms[0].submit()
    assert response.status_int == 302 and response.location.startswith(idp.issuer + "/logout?")
    assert idp.provider.faults.triggered == 1
    app.get("/token", headers=JSON, status=401)


# -- device flow (RFC 8628) -------------------------------------------------------------------------------------------
def device_manager(idp, clock):
    return TokenManager.from_settings({
        "oidc.authority": idp.issuer, "oidc.client_id": "web", "oidc.client_secret": "web-secret",
        "oidc.scope": "openid profile offline_access api", "tokens.timeout": TIMEOUT}, clock=clock)


def approving(clock):
    """``display`` and ``sleep`` for device_login: the user approves at once; waits advance the clock."""
    from tests.support.provider import approve_device

    return {"display": lambda authorization: approve_device(authorization.verification_uri_complete, "alice"),
            "sleep": clock.advance}


def device_logged_in(idp, clock):
    tm = device_manager(idp, clock)
    tm.device_login(**approving(clock))
    return tm, dict(tm.user_tokens.record(LOCAL_USER))


@pytest.mark.parametrize("fault", FAULTS)
def test_device_authorization_request(idp, clock, fault):
    tm, before = device_logged_in(idp, clock)
    idp.provider.misbehave(fault, on="device_authorization")
    with pytest.raises(TokenError) as info:
        tm.device_login(**approving(clock))
    assert idp.provider.faults.triggered == 1
    if fault == "never_ending":
        assert info.value.error_description == "device authorization request: response not complete within 0.5 s"
    elif fault in ("not_json", "html_error_page", "oversized_body"):
        assert info.value.error_description == expect(fault, "device authorization request")
    elif fault == "empty_body":
        assert info.value.error_description == "device authorization response: expected a JSON object"
    else:  # token-shaped JSON: not a device authorization response
        assert info.value.error_description == "device authorization response: device_code is missing"
    assert tm.user_tokens.record(LOCAL_USER) == before  # the earlier device login is untouched
    tm.close()


@pytest.mark.parametrize("fault", FAULTS)
def test_device_token_poll(idp, clock, fault):
    tm, before = device_logged_in(idp, clock)
    idp.provider.misbehave(fault, on="device_code", times=1)
    if BODY_FAULTS[fault][0] is ProviderUnavailable:
        # RFC 8628 §3.5: a failed poll is retried with back-off; the next poll gets the tokens.
        waits = []
        tm.device_login(display=approving(clock)["display"], sleep=lambda s: (waits.append(s), clock.advance(s)))
        assert waits == [10.0]  # the interval (5 s) doubled once
        assert tm.user_tokens.record(LOCAL_USER)["refresh_token"] != before["refresh_token"]
    else:
        with pytest.raises(InvalidResponse) as info:
            tm.device_login(**approving(clock))
        assert info.value.error_description == expect(fault, "device access token request")
        assert tm.user_tokens.record(LOCAL_USER) == before
    assert idp.provider.faults.triggered == 1
    tm.close()


def test_device_login_without_an_id_token_fails_and_keeps_the_previous_login(idp, clock):
    tm, before = device_logged_in(idp, clock)
    idp.provider.misbehave("token_without_id_token", on="device_code")
    with pytest.raises(InvalidResponse, match="returned no id_token"):
        tm.device_login(**approving(clock))
    assert tm.user_tokens.record(LOCAL_USER) == before
    tm.close()


@pytest.mark.parametrize("fault", ["id_token_bad_signature", "id_token_wrong_aud", "id_token_alg_none"])
def test_device_login_with_a_bad_id_token_fails(idp, clock, fault):
    tm = device_manager(idp, clock)
    idp.provider.misbehave(fault, on="device_code")
    with pytest.raises(TokenError) as info:
        tm.device_login(**approving(clock))
    assert info.value.error == "invalid_id_token"
    assert tm.user_tokens.record(LOCAL_USER) is None
    tm.close()


# -- a garbage answer while the current token is still valid ----------------------------------------------------------
@pytest.mark.parametrize("fault", ["not_json", "html_error_page", "missing_access_token", "expires_in_zero"])
def test_garbage_refresh_with_a_still_valid_token_keeps_it_and_says_why(make_webapp, idp, clock, caplog, fault):
    app = make_webapp()
    login(app)
    before = user_record(app)
    clock.advance(250)  # inside the refresh margin, 50 s before expiry
    idp.provider.misbehave(fault, on="refresh_token")
    assert app.get("/token").json["access_token"] == before["access"]["access_token"]
    assert idp.provider.faults.triggered == 1
    assert expect(fault, "refresh token request") in caplog.text  # the warning says what was wrong
    assert user_record(app) == before


@pytest.mark.parametrize("fault", ["not_json", "unknown_token_type"])
def test_garbage_client_credentials_with_a_still_valid_cached_token_keeps_it(idp, clock, caplog, fault):
    tm = worker_manager(idp, clock)
    cached = tm.get_client_access_token("worker")
    clock.advance(270)  # within the 60 s cache buffer, still valid
    idp.provider.misbehave(fault, on="client_credentials")
    assert tm.get_client_access_token("worker") == cached
    assert expect(fault, "client credentials request") in caplog.text
    tm.close()


# -- a refusal without an OAuth body (issue 20 item 11) -------------------------------------------------------------
@pytest.mark.parametrize("fault, status", [("empty_body", 400), ("html_error_page", 401), ("html_error_page", 400)])
def test_a_refresh_refused_with_a_non_oauth_body_ends_the_login_with_a_challenge(make_webapp, idp, clock, fault,
                                                                                  status):
    app = make_webapp()
    login(app)
    clock.advance(400)  # the access token has expired: only a refresh helps
    idp.provider.misbehave(fault, on="refresh_token", status=status)
    challenged = app.get("/token", headers=JSON, status=401)  # a challenge, not a 500 or a 502
    assert challenged.json["error"] == "login_required"
    assert idp.provider.faults.triggered == 1
    idp.provider.behave()
    assert app.get("/token", headers=JSON, status=401).json["error"] == "login_required"
    assert idp.provider.counters()["token"].get("refresh_token", 0) == 0  # the dead refresh token was not re-sent
