"""RedisStore: JSON records with expiry, the generation compare-and-set, the cross-process lock, failures."""
from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from pyramid_tokens import TokenError
from pyramid_tokens.redis import RedisStore
from pyramid_tokens.errors import LockTimeout, StoreUnavailable

from .conftest import free_port


def test_records_are_json_text_in_redis_under_the_prefix(redis_url, redis_server):
    store = RedisStore(redis_url)
    store.set("handle-1", {"sub": "alice", "generation": 1, "access": {"access_token": "a"}})
    with redis_server.client() as raw:
        text = raw.get("pyramid_tokens:{handle-1}")
    assert json.loads(text) == {"sub": "alice", "generation": 1, "access": {"access_token": "a"}}
    assert store.get("handle-1")["sub"] == "alice"
    store.delete("handle-1")
    assert store.get("handle-1") is None
    store.delete("handle-1")  # no error when absent


def test_records_expire_after_the_ttl_given(redis_url, redis_server):
    store = RedisStore(redis_url)
    store.set("session-bound", {"generation": 1}, ttl=3600)
    store.set("short", {"v": 1}, ttl=0.15)
    store.set("forever", {"v": 1})
    with redis_server.client() as raw:
        assert 3590_000 < raw.pttl("pyramid_tokens:{session-bound}") <= 3600_000
        assert raw.pttl("pyramid_tokens:{forever}") == -1
    time.sleep(0.25)
    assert store.get("short") is None


def test_an_older_generation_never_overwrites_a_newer_one(redis_url, caplog):
    store = RedisStore(redis_url)
    assert store.set("h", {"generation": 3, "refresh_token": "newest"}, ttl=60)
    with caplog.at_level(logging.WARNING):
        assert store.set("h", {"generation": 2, "refresh_token": "older"}, ttl=60) is False
        assert store.set("h", {"generation": 3, "refresh_token": "same generation, other result"}, ttl=60) is False
    assert store.get("h")["refresh_token"] == "newest"
    assert "holds a newer one" in caplog.text
    assert store.set("h", {"generation": 4, "refresh_token": "next"}, ttl=60)
    assert store.get("h")["refresh_token"] == "next"
    assert store.set("h", {"generation": 1, "refresh_token": "a new login"}, ttl=60)  # a login always lands
    assert store.get("h")["refresh_token"] == "a new login"
    # records without a generation (cached client tokens) are plain writes
    store.set("client:x", {"access_token": "1"})
    store.set("client:x", {"access_token": "2"})
    assert store.get("client:x") == {"access_token": "2"}


def test_url_carries_prefix_lock_lease_and_redis_py_options(redis_server):
    store = RedisStore(redis_server.url(0, prefix="app1:", lock_lease=2.5, socket_timeout=0.7))
    assert (store.prefix, store.lock_lease) == ("app1:", 2.5)
    assert store.client.connection_pool.connection_kwargs["socket_timeout"] == 0.7
    store.set("k", {"v": 1})
    with redis_server.client() as raw:
        assert raw.exists("app1:{k}")
    assert "password" not in repr(RedisStore("redis://:s3cret@127.0.0.1:1/0"))
    assert "s3cret" not in repr(RedisStore("redis://:s3cret@127.0.0.1:1/0"))


def test_lock_excludes_another_process_until_released(redis_url):
    mine, theirs = RedisStore(redis_url), RedisStore(redis_url)  # two stores: only Redis coordinates them
    with mine.lock("h", 1):
        with pytest.raises(LockTimeout):
            with theirs.lock("h", 0.2):
                pass
    started = time.monotonic()
    with theirs.lock("h", 1):
        assert time.monotonic() - started < 0.5


def test_lock_wait_is_bounded_and_a_lock_timeout_is_a_token_error(redis_url):
    holder, waiter = RedisStore(redis_url), RedisStore(redis_url)
    with holder.lock("h", 1):
        started = time.monotonic()
        with pytest.raises(TokenError) as caught:
            with waiter.lock("h", 0.3):
                pass
        assert 0.28 < time.monotonic() - started < 1.0
    assert isinstance(caught.value, LockTimeout) and caught.value.error == "temporarily_unavailable"


def test_watchdog_renews_the_lease_for_as_long_as_the_holder_lives(redis_url, redis_server):
    holder, other = RedisStore(redis_url + "?lock_lease=0.5"), RedisStore(redis_url)
    with holder.lock("slow-refresh", 5):
        time.sleep(1.2)  # more than two leases
        with redis_server.client() as raw:
            assert raw.pttl("pyramid_tokens:lock:{slow-refresh}") > 0
        with pytest.raises(LockTimeout):
            with other.lock("slow-refresh", 0.1):
                pass
    with redis_server.client() as raw:
        assert not raw.exists("pyramid_tokens:lock:{slow-refresh}")


def test_a_lock_nobody_renews_expires_after_its_lease(redis_url, redis_server):
    with redis_server.client() as raw:
        raw.set("pyramid_tokens:lock:{h}", "a-holder-that-died", px=300)
    started = time.monotonic()
    with RedisStore(redis_url).lock("h", 5):
        waited = time.monotonic() - started
    assert 0.2 < waited < 1.0


def test_release_never_deletes_a_lock_another_holder_took_over(redis_url, redis_server, caplog):
    paused, other = RedisStore(redis_url), RedisStore(redis_url)
    with caplog.at_level(logging.WARNING):
        with paused.lock("h", 1):
            with redis_server.client() as raw:
                raw.delete("pyramid_tokens:lock:{h}")  # the lease ran out while the holder was paused
            taken = other.lock("h", 1)
            taken.__enter__()
        with redis_server.client() as raw:
            assert raw.exists("pyramid_tokens:lock:{h}")  # the other holder's lock is still there
        taken.__exit__(None, None, None)
    assert "left it alone" in caplog.text


def test_lock_is_reentrant_within_a_thread(redis_url):
    store = RedisStore(redis_url)
    with store.lock("h", 1):
        with store.lock("h", 0.2):
            pass
        other_thread = []
        thread = threading.Thread(target=lambda: other_thread.append(_try_lock(store, "h")))
        thread.start()
        thread.join()
    assert other_thread == ["timeout"]


def _try_lock(store, key):
    try:
        with store.lock(key, 0.1):
            return "locked"
    except LockTimeout:
        return "timeout"


def test_unreachable_redis_is_a_quick_clear_token_error():
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    for call in (lambda: store.get("h"), lambda: store.set("h", {"generation": 1}), lambda: store.delete("h"),
                 lambda: store.lock("h", 5).__enter__()):
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as caught:
            call()
        assert time.monotonic() - started < 1.0
        assert isinstance(caught.value, TokenError) and caught.value.error == "temporarily_unavailable"
        assert "Redis 127.0.0.1" in str(caught.value)


def test_a_hung_redis_is_bounded_by_the_socket_timeout(start_redis):
    server = start_redis()
    store = RedisStore(server.url(0, socket_timeout=0.3))
    store.set("h", {"generation": 1})
    server.freeze()
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.get("h")
        assert time.monotonic() - started < 1.5  # one try and one retry, 0.3 s each
    finally:
        server.thaw()


def test_redis_going_away_mid_flight_is_a_store_unavailable_error(start_redis):
    server = start_redis()
    store = RedisStore(server.url())
    store.set("h", {"generation": 1})
    server.stop()
    with pytest.raises(StoreUnavailable):
        store.get("h")
