"""Back-channel logout with Redis: a logout token one process receives ends the user's sessions in every process.

The scale-out rig of :mod:`.storm` (four worker processes, sessions and tokens in one Redis) and a fifth
process of the same app that the provider's logout token reaches. The index sets (``(iss, sid)`` and
``(iss, sub)`` to handles) and the ``jti`` replay cache live in that Redis.
"""
from __future__ import annotations

import dataclasses
import secrets
import time

import pytest
import requests

from pyramid_tokens.devidp.backchannel import LOGOUT_EVENT
from tests.support.provider import browser_login
from pyramid_tokens.redis import RedisStore
from pyramid_tokens.stores import MemoryStore

from .storm import PREFIX, Worker, farm

JSON = {"Accept": "application/json"}


@pytest.fixture(scope="module")
def rig(redis_server):
    url = redis_server.url(3)  # database 3: this module's own
    redis = redis_server.client(3)
    redis.flushdb()
    with farm(url, redis) as rig:
        receiver = Worker.spawn(rig.settings, 4)
        try:
            receiver.wait_ready()
            web = rig.idp.provider.get_client("web")
            rig.idp.provider.add_client(dataclasses.replace(
                web, backchannel_logout_uri=receiver.url + "/backchannel-logout"))
            rig.receiver = receiver
            yield rig
        finally:
            receiver.stop()


def login(rig, username):
    """Like ``Farm.login``, for a user who may already be logged in elsewhere: the new login's handle."""
    before = set(rig.user_records())
    browser = requests.Session()
    start = browser.get(rig.workers[0].url + "/login", allow_redirects=False, timeout=10)
    done = browser.get(browser_login(start.headers["Location"], username), allow_redirects=False, timeout=10)
    assert done.status_code == 302, done.text
    [handle] = set(rig.user_records()) - before
    return {"Cookie": f"sid={browser.cookies['sid']}"}, handle


def statuses(rig, headers):
    return [requests.get(w.url + "/token", headers={**headers, **JSON}, timeout=10).status_code
            for w in rig.workers]


def logout_token(rig, **claims):
    return logout_token_for(rig.idp, **claims)


def test_a_logout_token_received_by_one_process_ends_the_sessions_served_by_four_others(rig):
    (first, first_handle), (second, second_handle) = login(rig, "alice"), login(rig, "alice")
    bob, _ = login(rig, "bob")
    for headers in (first, second, bob):
        assert statuses(rig, headers) == [200] * 4
    answer = requests.post(f"{rig.idp.issuer}/dev/end-session", data={"sub": "alice"}, timeout=10).json()
    assert [d["status"] for d in answer["deliveries"]] == [200]  # delivered to the fifth process
    for headers in (first, second):
        assert statuses(rig, headers) == [401] * 4
    assert rig.redis.get(PREFIX + "{" + first_handle + "}") is None
    assert rig.redis.get(PREFIX + "{" + second_handle + "}") is None
    assert statuses(rig, bob) == [200] * 4


def test_a_logout_token_replayed_to_another_process_is_refused_there(rig):
    token = logout_token(rig, sub="nobody-here")
    assert requests.post(rig.receiver.url + "/backchannel-logout", data={"logout_token": token},
                         timeout=10).status_code == 200
    again = requests.post(rig.workers[3].url + "/backchannel-logout", data={"logout_token": token}, timeout=10)
    assert again.status_code == 400 and again.json()["error"] == "invalid_request"


def test_the_index_sets_expire_with_the_sessions_and_each_lives_in_its_own_slot(rig):
    headers, handle = login(rig, "carol")
    record = rig.record(handle)
    keys = [key for key in rig.redis.scan_iter(PREFIX + "index:*")
            if handle.encode() in rig.redis.smembers(key)]
    assert len(keys) == 2  # by (iss, sid) and by (iss, sub)
    for key in keys:
        assert 3500_000 < rig.redis.pttl(key) <= 3600_000  # session.timeout = 3600
        assert key.decode().startswith(PREFIX + "index:{")  # a hash tag of its own, not the login's
    assert record["sid"] and record["iss"] == rig.idp.issuer


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_add_if_absent_is_true_once_then_false_until_it_expires(store, redis_url):
    store = MemoryStore() if store == "memory" else RedisStore(redis_url)
    assert store.add("k", {"at": 1}, ttl=0.3) is True
    assert store.add("k", {"at": 2}, ttl=0.3) is False
    assert store.get("k") == {"at": 1}
    time.sleep(0.4)
    assert store.add("k", {"at": 3}, ttl=0.3) is True


@pytest.mark.xdist_group("redis-cluster")
def test_ending_sessions_on_a_cluster_touches_no_two_slots_in_one_command(redis_cluster, idp, clock):
    import webtest

    from tests.support.web import base_settings, build_app
    from tests.support.web import login as browser_login_to

    url = redis_cluster.url()
    redis_cluster.flushall()
    wsgi = build_app(base_settings(idp, **{"session.type": "redis_json", "session.url": url,
                                           "session.timeout": "3600", "tokens.store": url, "tokens.cache": url}),
                     clock)
    first, second = webtest.TestApp(wsgi), webtest.TestApp(wsgi)
    browser_login_to(first), browser_login_to(second)
    manager = wsgi.registry["pyramid_tokens.manager"]
    assert manager.backchannel_logout(logout_token_for(idp, sub="alice")) == 2  # any CROSSSLOT would raise
    for browser in (first, second):
        assert browser.get("/token", headers=JSON, status=401).json["error"] == "login_required"


def logout_token_for(idp, **claims):
    now = int(time.time())
    return idp.provider.sign({"iss": idp.issuer, "aud": "web", "iat": now, "exp": now + 60,
                              "jti": secrets.token_urlsafe(12), "events": {LOGOUT_EVENT: {}}, **claims},
                             {"typ": "logout+jwt"})
