"""The development provider's side: the client settings, ``sid`` in ID tokens, the advertised support,
and a logout token that passes the package's own checks."""
from __future__ import annotations

import jwt
import pytest
import requests

from pyramid_tokens.devidp import DevProvider, provider_options

from .conftest import sign


def test_devidp_settings_register_a_back_channel_logout_uri_and_the_session_requirement():
    options = provider_options({
        "devidp.issuer": "http://127.0.0.1:1/idp",
        "devidp.clients.web.secret": "s",
        "devidp.clients.web.backchannel_logout_uri": "http://127.0.0.1:2/backchannel-logout",
        "devidp.clients.web.backchannel_logout_session_required": "true",
    })
    [client] = options["clients"]
    assert client.backchannel_logout_uri == "http://127.0.0.1:2/backchannel-logout"
    assert client.backchannel_logout_session_required is True
    metadata = DevProvider(**options).metadata()
    assert metadata["backchannel_logout_supported"] is True
    assert metadata["backchannel_logout_session_supported"] is True


def test_a_bad_session_required_value_names_its_setting():
    with pytest.raises(ValueError, match="backchannel_logout_session_required"):
        provider_options({"devidp.issuer": "http://127.0.0.1:1/idp",
                          "devidp.clients.web.backchannel_logout_session_required": "perhaps"})


def test_id_tokens_carry_the_sessions_sid_and_refreshed_ones_keep_it(rp, idp):
    browser = rp.login(rp.browser())
    record = rp.record(browser)
    sid = jwt.decode(record["id_token"], options={"verify_signature": False})["sid"]
    assert record["sid"] == sid and idp.provider.backchannel.sessions_of("alice") == [sid]
    refreshed = requests.post(f"{idp.issuer}/token", auth=("web", "web-secret"), timeout=10,
                              data={"grant_type": "refresh_token", "refresh_token": record["refresh_token"]}).json()
    assert jwt.decode(refreshed["id_token"], options={"verify_signature": False})["sid"] == sid


def test_the_providers_logout_tokens_pass_the_apps_checks(rp, idp):
    token = idp.provider.backchannel.logout_token("web", sub="alice", sid="s-1")
    assert jwt.get_unverified_header(token)["typ"] == "logout+jwt"
    assert rp.post(token).status_code == 200
    assert rp.post(sign(idp, sub="alice")).status_code == 200


def test_end_session_needs_a_user_name(idp):
    assert requests.post(f"{idp.issuer}/dev/end-session", timeout=10).status_code == 400


def test_end_session_is_post_only(idp):
    assert requests.get(f"{idp.issuer}/dev/end-session?sub=alice", timeout=10).status_code in (404, 405)
