"""Named HTTP clients through TokenManager against the development provider and the demo API."""
from __future__ import annotations

import time


from pyramid_tokens import TokenManager
from pyramid_tokens.demo.api import make_api_app
from pyramid_tokens.devidp import DevClient
from pyramid_tokens.devidp.server import serve
from tests.support.provider import worker_settings


def manager(idp, api, clock=None, **extra):
    return TokenManager.from_settings(worker_settings(idp, **{
        "tokens.http.api.base_url": api.url + "/api/", "tokens.http.api.token": "client:worker", **extra,
    }), **({"clock": clock} if clock else {}))


def test_named_client_attaches_the_client_token(idp, api):
    tm = manager(idp, api)
    reply = tm.http_client("api").get("whoami")
    assert reply.status_code == 200
    assert reply.json()["sub"] == "worker"
    assert tm.http_client("api").get("whoami").status_code == 200
    assert idp.provider.counters()["token"]["client_credentials"] == 1


def test_named_client_without_token_gets_the_apis_challenge(idp, api):
    tm = manager(idp, api, **{"tokens.http.api.token": "none"})
    reply = tm.http_client("api").get("whoami")
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")


def test_401_renews_the_token_once_and_replays(make_idp, clock):
    """Our clock says the cached token is fine, the API says it expired: renew once, replay once."""
    idp = make_idp(clients=[DevClient("worker", "worker-secret", grant_types=("client_credentials",),
                                      scopes=("api",), access_token_lifetime=2)])
    running = serve(make_api_app(idp.issuer, audience="api"))

    def wait_past_expiry(token):  # by the API's (real) clock: the JWT's own exp, not our frozen one
        time.sleep(max(0.0, token.claims()["exp"] - time.time()) + 1.1)

    try:
        tm = manager(idp, running, clock=clock)
        first = tm.http_client("api").get("whoami")
        assert first.status_code == 200 and not first.history
        wait_past_expiry(tm.get_client_access_token("worker"))  # the API's clock passes exp; ours stands still
        reply = tm.http_client("api").get("whoami")
        assert reply.status_code == 200
        assert [r.status_code for r in reply.history] == [401]
        assert idp.provider.counters()["token"]["client_credentials"] == 2
        wait_past_expiry(tm.get_client_access_token("worker"))
        second = tm.http_client("api").get("whoami")  # renewed again: one renewal per 401, never a loop
        assert second.status_code == 200 and [r.status_code for r in second.history] == [401]
    finally:
        running.stop()
