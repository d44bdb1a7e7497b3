"""Section 4: client-credentials tokens — a cold-cache stampede, and the cost of a cached call.

32 threads start together (a barrier) on a fresh :class:`~pyramid_tokens.TokenManager` whose cache is
empty and each asks for the ``worker`` client's token many times; the development provider counts
the token requests it answered. Then a cached call is timed against a dict lookup of the same token
with the same expiry check.
"""
from __future__ import annotations

import threading
import time
import tracemalloc
from typing import Any, Callable

from pyramid_tokens import TokenManager
from pyramid_tokens.tokens import AccessToken

from apps import STATIC_KEY, static_token
from harness import Row, ci, judged, median, ns, paired_ratio, per_call, ratio_interval

THREADS = 32
#: issue 19: a cached client token within 2x a dict lookup with the same expiry check
TARGET_CACHED = 2.0


def worker_settings(issuer: str) -> dict[str, str]:
    return {
        "tokens.clients.worker.authority": issuer,
        "tokens.clients.worker.client_id": "worker",
        "tokens.clients.worker.client_secret": "worker-secret",
        "tokens.clients.worker.scope": "api",
    }


def _issued(counters: dict[str, Any]) -> int:
    return int(counters["by_client"].get("worker", {}).get("client_credentials", 0))


def run(issuer: str, counters: Callable[[], dict[str, Any]], *, quick: bool = False) -> tuple[list[Row], list[str]]:
    calls = 50 if quick else 300
    manager = TokenManager.from_settings(worker_settings(issuer))
    before = counters()
    barrier = threading.Barrier(THREADS)
    seen: set[str] = set()
    failures: list[BaseException] = []

    def hammer() -> None:
        try:
            barrier.wait()
            for _ in range(calls):
                seen.add(manager.get_client_access_token("worker").access_token)
        except BaseException as exc:  # reported in the row
            failures.append(exc)

    tracemalloc.start()
    threads = [threading.Thread(target=hammer) for _ in range(THREADS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    after = counters()
    issued = _issued(after) - _issued(before)
    errors = sum(after["token_errors"].values()) - sum(before["token_errors"].values())
    ok = issued == 1 and errors == 0 and len(seen) == 1 and not failures
    rows = [Row("4a", f"{THREADS} threads × {calls} get_client_access_token() from a cold cache: token requests "
                      "answered by the provider",
                f"{issued} request{'s' if issued != 1 else ''}, {errors} errors, {len(seen)} distinct token",
                "—", None, "= 1 request", ok)]
    notes = [f"4a: {THREADS * calls:,} calls in {elapsed:.2f} s; peak traced memory {peak / 1024:.0f} KiB"
             + (f"; failures: {failures[0]!r}" if failures else "")]

    number, rounds = (2000, 4) if quick else (20000, 16)
    samples = per_call(cached_contenders(manager), number=number, rounds=rounds)
    ratio = paired_ratio(samples["ours"], samples["dict"])
    low, high = ratio_interval(samples["ours"], samples["dict"])
    met, open_ = judged(ratio, low, high, TARGET_CACHED, at_least=False)
    rows.append(Row("4b", "a cached client-credentials token, per call: get_client_access_token('worker') vs a "
                          "dict lookup with the same expiry check", ns(median(samples["ours"])),
                    f"dict {ns(median(samples['dict']))}", ratio, f"≤ {TARGET_CACHED:g}", met,
                    ratio_text=ci(ratio, low, high), verdict_text=open_))
    notes += [f"4b breakdown — {line}" for line in _breakdown(manager, number // 4)]
    manager.close()
    return rows, notes


def cached_contenders(manager: TokenManager) -> dict[str, Callable[[], str]]:
    """A cached client token through the manager, and the same token from a dict with the same expiry check."""
    token = manager.get_client_access_token("worker")
    cache = {STATIC_KEY: {"access_token": token.access_token, "expires_at": token.expires_at.timestamp()}}
    return {"ours": lambda: manager.get_client_access_token("worker").access_token,
            "dict": lambda: static_token(cache)}


def _breakdown(manager: TokenManager, number: int) -> list[str]:
    """The steps of a cached call, on the internals as they are now (left out, and said so, if they moved)."""
    try:
        tokens = manager.client_tokens
        key = tokens.cache_key("worker", "api", None, None)
        stored = tokens.cache.get(key)
        steps = {
            "ClientTokens.cache_key() (JSON + SHA-256 per call)": lambda: tokens.cache_key("worker", "api", None, None),
            "cache.get(key)": lambda: tokens.cache.get(key),
            "AccessToken.from_dict() (per call)": lambda: AccessToken.from_dict(stored),
        }
        for step in steps.values():
            step()
    except Exception as exc:  # noqa: BLE001 - internals other work may have moved: said, not timed
        return [f"left out (internals moved: {type(exc).__name__})"]
    return [f"{name}: {ns(median(values))}" for name, values in per_call(steps, number=number, rounds=5).items()]


def profiled(key: str, issuer: str, stack: Any) -> Callable[[], Any] | None:
    """The ``ours`` contender of row ``key`` of this section, for ``run.py --profile``."""
    if key != "4b":
        return None
    manager = TokenManager.from_settings(worker_settings(issuer))
    stack.callback(manager.close)
    return cached_contenders(manager)["ours"]
