"""Two processes sharing a Redis token store: one exchange for the login between them, kept in its record.

Uses the Redis fixtures of ``tests/redis/conftest.py`` (a real ``redis-server`` per pytest process).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

from pyramid_tokens import TokenManager
from pyramid_tokens.usertokens import LOCAL_USER

from ..redis.conftest import redis_server, redis_url  # noqa: F401 - fixtures
from .conftest import exchanges, settings_for

PROCESS = os.path.join(os.path.dirname(__file__), "exchange_process.py")


def test_two_processes_sharing_redis_make_one_exchange_for_the_login(idp, redis_url):  # noqa: F811
    settings = settings_for(idp, **{"tokens.store": redis_url})
    manager = TokenManager.from_settings(settings)
    manager.device_login(display=lambda authorization: None, sleep=lambda seconds: None)  # alice, stored in Redis
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    processes = [subprocess.Popen([sys.executable, PROCESS, json.dumps(settings), "8"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    try:
        for process in processes:
            assert process.stdout.readline().strip() == "READY"
        for process in processes:
            process.stdin.write("go\n")
            process.stdin.flush()
        digests = [json.loads(process.communicate(timeout=60)[0]) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert [len(got) for got in digests] == [8, 8]
    assert len({digest for got in digests for digest in got}) == 1
    assert exchanges(idp) == 1
    stored = manager.user_tokens.record(LOCAL_USER)["exchanged"]["orders"]["access_token"]
    assert hashlib.sha256(stored.encode()).hexdigest() == digests[0][0]
    manager.end_login()
    assert manager.user_tokens.record(LOCAL_USER) is None  # logout takes it from every process's store
