"""A logout token ends the user's logins whatever holds them: memory, Beaker file containers, a cookie session
(through the deny list), and for plain Python (``TokenManager.end_sessions``) the notebook ``FileStore``.
"""
from __future__ import annotations

import pytest

from pyramid_tokens import TokenManager
from pyramid_tokens.beakerstores import BeakerStore
from pyramid_tokens.errors import LoginRequired
from pyramid_tokens.events import LOGOUT_APPLICATION, UserLoggedOut
from pyramid_tokens.filestore import FileStore
from pyramid_tokens.stores import MemoryStore
from tests.support.provider import approve_device
from tests.support.web import session_settings

from .conftest import HTML, JSON, sign


@pytest.mark.parametrize("kind", ["memory", "file", "cookie"])
@pytest.mark.parametrize("by", ["sub", "sid"])
def test_a_logout_token_ends_the_login_in_every_kind_of_session(make_rp, idp, tmp_path, kind, by):
    rp = make_rp(**session_settings(kind, tmp_path))
    ended, kept = rp.login(rp.browser()), rp.login(rp.browser())
    if by == "sid":
        first_session = idp.provider.backchannel.sessions_of("alice")[0]
        token = sign(idp, sub="alice", sid=first_session)
    else:
        token = sign(idp, sub="alice")
    assert rp.post(token).status_code == 200
    assert rp.whoami(ended) is None
    assert ended.get("/token", headers=JSON, status=401).json["error"] == "login_required"
    assert ended.get("/token", headers=HTML, status=302).location.startswith("http://localhost/login")
    assert rp.whoami(kept) == (None if by == "sub" else "alice")


def test_a_cookie_login_made_after_the_logout_token_is_not_refused(make_rp, idp, tmp_path):
    rp = make_rp(**session_settings("cookie", tmp_path))
    rp.login(rp.browser())
    assert rp.post(sign(idp, sub="alice")).status_code == 200
    later = rp.login(rp.browser())  # the deny list holds a cut-off, not the user
    assert later.get("/token", headers=JSON).json["sub"] == "alice"


def device_login(manager, idp):
    manager.device_login(display=lambda authorization: approve_device(authorization.verification_uri_complete),
                         sleep=lambda seconds: None)


def stores(tmp_path, kind):
    if kind == "memory":
        return MemoryStore()
    if kind == "beaker-file":
        return BeakerStore("file", data_dir=str(tmp_path / "data"), lock_dir=str(tmp_path / "lock"))
    return FileStore(tmp_path / "tokens.json")


@pytest.mark.parametrize("kind", ["memory", "beaker-file", "filestore"])
def test_end_sessions_ends_a_plain_python_login_by_sub_or_sid_and_counts_it(idp, tmp_path, kind):
    settings = {"oidc.authority": idp.issuer, "oidc.client_id": "web", "oidc.client_secret": "web-secret",
                "oidc.scope": "openid profile offline_access api"}
    manager = TokenManager.from_settings(settings, user_store=stores(tmp_path, kind))
    heard = []
    manager.events.subscribe(UserLoggedOut, heard.append)
    device_login(manager, idp)
    manager.get_user_access_token()
    record = manager.user_tokens.record("local-user")
    assert manager.end_sessions(sub="bob") == 0
    assert manager.end_sessions(sid="another-session") == 0
    assert manager.get_user_access_token()  # still logged in
    assert manager.end_sessions(sub="alice", sid=record["sid"]) == 1
    with pytest.raises(LoginRequired):
        manager.get_user_access_token()
    assert [(e.sub, e.sid, e.how) for e in heard] == [("alice", record["sid"], LOGOUT_APPLICATION)]
    device_login(manager, idp)
    assert manager.end_sessions(sub="alice") == 1
    assert manager.end_sessions(sub="alice") == 0  # nothing left to end
