"""Durable rotation: a rotated token set is never lost to a Redis that fails mid-refresh.

The provider answers the refresh; Redis stops answering before the new token set is written (the
test freezes it with SIGSTOP at the moment the provider issues the tokens). The new set is kept in
the process, served to its callers without a second refresh, and written to Redis once it answers,
where the next process reads it.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import webtest

from pyramid_tokens.redis import RedisStore
from tests.support.web import base_settings, build_app, login


def refreshes(idp):
    return idp.provider.counters()["token"]["refresh_token"]


def read_in_another_process(url: str, handle: str) -> dict:
    code = ("import json, sys\nfrom pyramid_tokens.redis import RedisStore\n"
            "print(json.dumps(RedisStore(sys.argv[1]).get(sys.argv[2])))\n")
    return json.loads(subprocess.run([sys.executable, "-c", code, url, handle], check=True, capture_output=True,
                                     text=True, timeout=30).stdout)


def test_redis_down_mid_refresh_keeps_the_new_token_set_and_writes_it_back_for_the_next_process(
        idp, clock, start_redis, caplog):
    server = start_redis()
    url = server.url(0, socket_timeout=0.3)
    app = webtest.TestApp(build_app(base_settings(idp, **{"tokens.store": url}), clock))
    login(app)
    store = RedisStore(url)
    with server.client() as raw:
        [name] = [key for key in raw.scan_iter("pyramid_tokens:{*}")]
        handle = name.decode()[len("pyramid_tokens:") + 1:-1]
    before = store.get(handle)
    counter = idp.provider.counter
    issued = counter.token_issued

    def redis_dies_after_the_provider_answers(grant_type, client_id):
        if grant_type == "refresh_token":
            server.freeze()
        issued(grant_type, client_id)

    counter.token_issued = redis_dies_after_the_provider_answers
    try:
        clock.advance(250)
        refreshed = app.get("/token").json["access_token"]  # refreshed, although Redis died meanwhile
        assert refreshes(idp) == 1
        assert app.get("/token").json["access_token"] == refreshed  # kept in this process: no second refresh
        assert refreshes(idp) == 1
        assert "kept in this process" in caplog.text and refreshed not in caplog.text
    finally:
        server.thaw()
    counter.token_issued = issued
    deadline = time.monotonic() + 5  # written back as soon as Redis answers again
    while time.monotonic() < deadline and store.get(handle)["generation"] == before["generation"]:
        time.sleep(0.05)
    seen = read_in_another_process(url, handle)
    assert seen["generation"] == before["generation"] + 1 and seen["access"]["access_token"] == refreshed
    assert idp.provider.state.peek_refresh_token(seen["refresh_token"]) is not None  # the live refresh token
    with server.client() as raw:  # ...and its rotation record, for a process still holding the old one
        assert len(list(raw.scan_iter("pyramid_tokens:rotated:{" + handle + "}:*"))) == 1


def test_a_pending_token_set_never_replaces_a_newer_one_another_process_wrote(start_redis):
    server = start_redis()
    url = server.url(0, socket_timeout=0.3)
    mine, theirs = RedisStore(url), RedisStore(url, client=RedisStore(url).url.connect())
    mine.set("h", {"generation": 1, "refresh_token": "r1"}, ttl=60)
    server.freeze()
    try:
        assert mine.set("h", {"generation": 2, "refresh_token": "r2"}, ttl=60)  # kept in the process
        assert mine.get("h")["refresh_token"] == "r2"
    finally:
        server.thaw()
    theirs.set("h", {"generation": 3, "refresh_token": "r3"}, ttl=60)  # a newer rotation elsewhere
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and mine.pending.records:
        time.sleep(0.05)
    assert not mine.pending.records
    assert mine.get("h")["refresh_token"] == theirs.get("h")["refresh_token"] == "r3"
