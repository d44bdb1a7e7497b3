"""request.get_user_access_token(): refresh when due, rotation, failures, concurrency, revocation."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import webtest

from pyramid_tokens.devidp import DevClient
from pyramid_tokens.devidp.server import serve

from tests.support.web import base_settings, build_app, counting_reads, login

JSON = {"Accept": "application/json"}


def stored_record(app):
    """The one login's token record (records are keyed by the session's handle; rotation records aside)."""
    store = app.app.registry["pyramid_tokens.manager"].user_tokens.store
    records = [value for key, (_, value) in store._data.items() if not key.startswith("rotated:")]
    assert len(records) == 1
    return records[0]


def refreshes(idp):
    return idp.provider.counters()["token"]["refresh_token"]


def test_valid_token_is_returned_from_the_session_without_provider_calls(app, idp):
    login(app)
    first = app.get("/token").json
    before = idp.provider.counters()
    for _ in range(5):
        assert app.get("/token").json["access_token"] == first["access_token"]
    assert idp.provider.counters() == before


def test_token_is_refreshed_within_the_margin_and_not_earlier(app, idp, clock):
    login(app)
    first = app.get("/token").json
    clock.advance(300 - 60 - 5)  # 65 s left: outside the 60 s margin
    assert app.get("/token").json["access_token"] == first["access_token"]
    assert refreshes(idp) == 0
    clock.advance(10)  # 55 s left: inside
    second = app.get("/token").json
    assert second["access_token"] != first["access_token"]
    assert refreshes(idp) == 1
    assert app.get("/token").json["access_token"] == second["access_token"]
    assert refreshes(idp) == 1


def test_margin_is_capped_for_short_lived_tokens(make_idp, clock):
    idp = make_idp(clients=[DevClient("web", "web-secret", redirect_uris=["http://localhost/callback"],
                                      post_logout_redirect_uris=["http://localhost/"], access_token_lifetime=40)])
    app = webtest.TestApp(build_app(base_settings(idp), clock))
    login(app)
    first = app.get("/token").json
    clock.advance(5)  # 35 s left of 40, margin 60 s would say "refresh on every call"
    assert app.get("/token").json["access_token"] == first["access_token"]
    clock.advance(16)  # 19 s left: past half the lifetime
    assert app.get("/token").json["access_token"] != first["access_token"]
    assert refreshes(idp) == 1


def test_rotated_refresh_token_is_stored_and_used_next(app, idp, clock):
    login(app)
    original = stored_record(app)["refresh_token"]
    clock.advance(250)
    app.get("/token")
    rotated = stored_record(app)["refresh_token"]
    assert rotated and rotated != original
    clock.advance(250)
    app.get("/token")
    assert refreshes(idp) == 2
    assert idp.provider.counters()["token_errors"].get("invalid_grant", 0) == 0


def test_force_renewal_refreshes_a_valid_token(app, idp):
    login(app)
    first = app.get("/token").json["access_token"]
    assert app.get("/token", params={"force": "1"}).json["access_token"] != first
    assert refreshes(idp) == 1


def test_refused_refresh_token_clears_tokens_and_challenges(app, idp, clock):
    login(app)
    refresh_token = stored_record(app)["refresh_token"]
    revoked = requests.post(idp.provider.issuer + "/revoke", data={"token": refresh_token},
                            auth=("web", "web-secret"), timeout=5)
    assert revoked.status_code == 200
    clock.advance(250)
    response = app.get("/token", headers={"Accept": "text/html"}, status=302)
    assert "/login?came_from=%2Ftoken" in response.location
    app.get("/token", headers=JSON, status=401)  # tokens were cleared: no second refresh attempt
    assert idp.provider.counters()["token_errors"]["invalid_grant"] == 1


def test_refused_refresh_token_ends_the_login_identity_too(make_webapp, idp, clock):
    def extra(config):
        config.add_route("who", "/who")
        config.add_view(lambda request: {"sub": request.authenticated_userid}, route_name="who", renderer="json")

    app = make_webapp(extra=extra)
    login(app)
    assert app.get("/who").json == {"sub": "alice"}
    requests.post(idp.provider.issuer + "/revoke", data={"token": stored_record(app)["refresh_token"]},
                  auth=("web", "web-secret"), timeout=5).raise_for_status()
    clock.advance(250)
    app.get("/token", headers=JSON, status=401)
    assert app.get("/who").json == {"sub": None}


def test_provider_down_with_a_still_valid_token_returns_it(app, idp, clock):
    login(app)
    first = app.get("/token").json["access_token"]
    idp.stop()
    clock.advance(250)  # inside the margin, 50 s before expiry
    assert app.get("/token").json["access_token"] == first


def test_provider_down_with_an_expired_token_is_a_503(app, idp, clock):
    login(app)
    idp.stop()
    clock.advance(400)
    response = app.get("/token", status=503)
    assert "unavailable" in response.text.lower()


def test_resource_tokens_are_kept_apart(app, idp):
    login(app)
    plain = app.get("/token").json["access_token"]
    billing = app.get("/token", params={"resource": "https://billing.example/"}).json["access_token"]
    assert billing != plain
    import jwt

    assert jwt.decode(billing, options={"verify_signature": False})["aud"] == "https://billing.example/"
    assert app.get("/token", params={"resource": "https://billing.example/"}).json["access_token"] == billing
    assert app.get("/token").json["access_token"] == plain
    assert refreshes(idp) == 1


def test_revocation_is_seen_by_the_provider(app, idp):
    login(app)
    refresh_token = stored_record(app)["refresh_token"]
    assert app.get("/revoke").json == {"revoked": True}
    assert app.get("/revoke").json == {"revoked": False}  # idempotent
    assert idp.provider.counters()["revocation"] == 1
    refused = requests.post(idp.provider.issuer + "/token", auth=("web", "web-secret"), timeout=5,
                            data={"grant_type": "refresh_token", "refresh_token": refresh_token})
    assert refused.json()["error"] == "invalid_grant"
    assert app.get("/token").status_int == 200  # the access token stays usable until it expires
    # ...but it can no longer be renewed: a forced renewal (what a 401 from an API asks) needs a new login
    assert app.get("/token", params={"force": "1"}, headers=JSON, status=401).json["error"] == "login_required"


# -- concurrency ---------------------------------------------------------------------------------------
@pytest.fixture
def served(idp, clock):
    """The app under a real multi-threaded WSGI server, plus a logged-in cookie."""
    app = build_app(base_settings(idp), clock)
    test_app = webtest.TestApp(app)
    login(test_app)
    cookie = f"sid={test_app.cookies['sid']}"
    server = serve(app, threads=16)
    yield server, cookie
    server.stop()


def test_sixteen_threads_on_one_session_cause_exactly_one_refresh(served, idp, clock):
    server, cookie = served
    first = requests.get(server.url + "/token", headers={"Cookie": cookie}, timeout=10).json()["access_token"]
    clock.advance(250)
    barrier = threading.Barrier(16)

    def call(_):
        barrier.wait()
        return requests.get(server.url + "/token", headers={"Cookie": cookie}, timeout=30).json()["access_token"]

    with ThreadPoolExecutor(16) as pool:
        tokens = set(pool.map(call, range(16)))
    assert len(tokens) == 1 and first not in tokens
    assert refreshes(idp) == 1
    assert idp.provider.counters()["token_errors"].get("invalid_grant", 0) == 0


def test_overlapping_read_only_request_does_not_undo_a_rotation(idp, clock):
    started, release = threading.Event(), threading.Event()

    def extra(config):
        def slow(request):
            token = request.get_user_access_token()  # reads the session and the (still valid) token
            request.session["touched"] = True  # and writes its session snapshot back at the end
            started.set()
            release.wait(10)
            return {"access_token": token.access_token}

        config.add_route("slow", "/slow")
        config.add_view(slow, route_name="slow", renderer="json")

    app = build_app(base_settings(idp), clock, extra)
    browser = webtest.TestApp(app)
    login(browser)
    cookie = f"sid={browser.cookies['sid']}"
    server = serve(app, threads=4)
    try:
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(requests.get, server.url + "/slow", headers={"Cookie": cookie}, timeout=30)
            assert started.wait(10)
            clock.advance(250)
            rotated = requests.get(server.url + "/token", headers={"Cookie": cookie}, timeout=10).json()
            release.set()
            assert slow.result().status_code == 200
        after = requests.get(server.url + "/token", headers={"Cookie": cookie}, timeout=10).json()
        assert after["access_token"] == rotated["access_token"]
        clock.advance(250)  # the next refresh must use the rotated refresh token, not the stale one
        requests.get(server.url + "/token", headers={"Cookie": cookie}, timeout=10).raise_for_status()
    finally:
        server.stop()
    assert refreshes(idp) == 2
    assert idp.provider.counters()["token_errors"].get("invalid_grant", 0) == 0


def test_stale_cookie_after_a_rotation_still_gets_a_valid_token(idp, clock):
    """Cookie-backed sessions: the browser may send the pre-rotation cookie again (parallel requests)."""
    app = webtest.TestApp(build_app(base_settings(idp, **{"session.type": "cookie", "session.validate_key": "k" * 32,
                                                          "session.encrypt_key": "e" * 32,
                                                          "session.save_accessed_time": "false"}), clock))
    login(app)
    stale = app.cookies["sid"]
    clock.advance(250)
    fresh = app.get("/token").json["access_token"]
    app.set_cookie("sid", stale)
    again = app.get("/token").json["access_token"]
    assert again == fresh
    assert refreshes(idp) == 1
    assert idp.provider.counters()["token_errors"].get("invalid_grant", 0) == 0


def test_a_request_reads_the_token_record_once_and_still_renews_when_due(make_webapp, idp, clock):
    seen = {}

    def extra(config):
        def many(request):
            with counting_reads(request.registry["pyramid_tokens.manager"].user_tokens.store) as reads:
                first = [request.get_user_access_token().access_token for _ in range(5)]
                seen["reads_before_due"] = len(reads)
                clock.advance(250)  # the token becomes due in the middle of the request
                later = request.get_user_access_token().access_token
            seen.update(first=set(first), later=later)
            return {}

        config.add_route("many", "/many")
        config.add_view(many, route_name="many", renderer="json")

    app = make_webapp(extra=extra)
    login(app)
    app.get("/many")
    assert len(seen["first"]) == 1
    assert seen["later"] not in seen["first"]
    assert refreshes(idp) == 1
    assert seen["reads_before_due"] == 1  # five calls, one read of the stored record
