"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2-3): redirect only to registered URIs."""
from __future__ import annotations

import requests

from .flows import code_flow, params


def logout(idp, **query):
    return requests.get(idp.issuer + "/logout", params=query, allow_redirects=False, timeout=5)


def test_logout_redirects_to_a_registered_uri_with_state_using_the_id_token_hint(idp):
    id_token = code_flow(idp)["id_token"]
    response = logout(idp, id_token_hint=id_token, post_logout_redirect_uri="http://localhost/", state="bye")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("http://localhost/?")
    assert params(response.headers["Location"]) == {"state": "bye"}


def test_logout_redirects_to_a_registered_uri_named_with_client_id(idp):
    response = logout(idp, client_id="web", post_logout_redirect_uri="http://localhost/")
    assert response.status_code == 302 and response.headers["Location"] == "http://localhost/"


def test_an_unregistered_post_logout_redirect_uri_gets_the_logged_out_page(idp):
    id_token = code_flow(idp)["id_token"]
    for target in ("http://evil.example/", "http://localhost/callback"):
        response = logout(idp, id_token_hint=id_token, post_logout_redirect_uri=target)
        assert response.status_code == 200 and "Location" not in response.headers
        assert "logged out" in response.text


def test_without_a_client_there_is_no_redirect(idp):
    response = logout(idp, post_logout_redirect_uri="http://localhost/")
    assert response.status_code == 200 and "Location" not in response.headers


def test_a_client_id_that_contradicts_the_id_token_hint_gets_no_redirect(idp):
    id_token = code_flow(idp)["id_token"]
    response = logout(idp, id_token_hint=id_token, client_id="worker", post_logout_redirect_uri="http://localhost/")
    assert response.status_code == 200 and "Location" not in response.headers


def test_a_forged_id_token_hint_gets_no_redirect(idp, make_idp):
    forged = code_flow(make_idp())["id_token"]
    response = logout(idp, id_token_hint=forged, post_logout_redirect_uri="http://localhost/")
    assert response.status_code == 200 and "Location" not in response.headers


def test_plain_logout_shows_the_logged_out_page_and_is_counted(idp):
    response = logout(idp)
    assert response.status_code == 200 and "logged out" in response.text
    assert idp.provider.counters()["end_session"] == 1
