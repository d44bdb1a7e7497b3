"""Measuring on a shared, noisy machine: interleaved rounds, medians of paired ratios, one table.

Every comparison runs its contenders in the same process, round after round, so that drift (another
job waking up, CPU frequency) hits all of them alike. The orders of the rounds form a Williams
design (a carry-over balanced Latin square, Williams 1949): each contender runs first equally often
and directly after each other contender equally often, so neither a warm cache left by a neighbour
nor being first in a round favours one of them. A round's figures are compared with each other (a
*paired* ratio); the table shows the median over the rounds with a 95 % bootstrap interval. Served
rows also run an A/A pair (two identical apps): how far its ratio strays from 1 is noise no paired
ratio can see (two processes, two heaps), and it widens each served row's interval (:func:`widen`).
Absolute figures are shown for orientation only; the ratios are the result.
"""
from __future__ import annotations

import gc
import math
import os
import platform
import random
import statistics
import sys
import timeit
from dataclasses import dataclass
from typing import Any, Callable, Sequence


@dataclass
class Row:
    """One line of the table: what was measured, our figure, the baseline's, their ratio, the target."""

    key: str
    what: str
    ours: str
    baseline: str
    ratio: float | None
    target: str
    ok: bool | None
    #: shown instead of ``ratio`` when a row compares with more than one baseline
    ratio_text: str | None = None
    #: shown instead of met/MISSED, e.g. when noise leaves the verdict open
    verdict_text: str | None = None

    @property
    def verdict(self) -> str:
        if self.verdict_text:
            return self.verdict_text
        return "—" if self.ok is None else ("met" if self.ok else "MISSED")


def per_call(contenders: dict[str, Callable[[], Any]], *, number: int, rounds: int,
             collect: bool = False) -> dict[str, list[float]]:
    """Seconds per call of each contender, once per round, in the orders of :func:`balanced_orders`.

    ``timeit`` switches the garbage collector off while it times, for every contender alike; with
    ``collect`` it stays on, as in a server: whole requests leave reference cycles (Pyramid binds
    request methods to the request), and without collection that garbage piles up and slows
    everything after it instead of being collected.
    """
    names = list(contenders)
    setup = "import gc; gc.enable()" if collect else "pass"
    timers = {name: timeit.Timer(fn, setup=setup) for name, fn in contenders.items()}
    for timer in timers.values():  # warm up: first calls fill caches, import lazily, parse once
        timer.timeit(max(1, number // 10))
    samples: dict[str, list[float]] = {name: [] for name in names}
    for order in balanced_orders(names, rounds):
        for name in order:
            samples[name].append(timers[name].timeit(number) / number)
    return samples


def interleaved(runs: dict[str, Callable[[], float]], *, rounds: int) -> dict[str, list[float]]:
    """Call each ``run`` (returning one figure, e.g. requests per second) once per round, in balanced orders."""
    names = list(runs)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for order in balanced_orders(names, rounds):
        for name in order:
            gc.collect()
            samples[name].append(runs[name]())
    return samples


def williams(n: int) -> list[list[int]]:
    """A Williams design for ``n`` treatments: ``n`` orders (``2n`` when ``n`` is odd) in which each treatment
    is first equally often and follows each other treatment equally often (first-order carry-over balance)."""
    first, low, high = [0], 1, n - 1
    while len(first) < n:  # 0, 1, n-1, 2, n-2, ...
        first.append(low)
        low += 1
        if len(first) < n:
            first.append(high)
            high -= 1
    square = [[(t + shift) % n for t in first] for shift in range(n)]
    return square if n % 2 == 0 else square + [order[::-1] for order in square]


def balanced_orders(names: Sequence[str], rounds: int) -> list[list[str]]:
    """At least ``rounds`` orders of ``names``: whole Williams designs, each repetition in a shuffled (seeded) order
    of its rows so no period in the machine's noise lines up with one contender."""
    design = williams(len(names))
    rng = random.Random(19)
    orders: list[list[str]] = []
    while len(orders) < rounds:
        block = design[:]
        rng.shuffle(block)
        orders += [[names[t] for t in row] for row in block]
    return orders


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def paired_ratio(ours: Sequence[float], baseline: Sequence[float]) -> float:
    """The median over rounds of ``ours[i] / baseline[i]``."""
    return statistics.median(a / b for a, b in zip(ours, baseline))


def ratio_interval(ours: Sequence[float], baseline: Sequence[float], resamples: int = 2000) -> tuple[float, float]:
    """A 95 % bootstrap interval of :func:`paired_ratio` (the rounds resampled with replacement)."""
    ratios = [a / b for a, b in zip(ours, baseline)]
    rng = random.Random(9)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def widen(ratio: float, low: float, high: float, aa_low: float, aa_high: float) -> tuple[float, float]:
    """``[low, high]`` widened by the A/A spread: the A/A interval's farthest bound from 1 (on a log scale)
    is added in quadrature to each side, as independent errors add (two identical apps differ by that much)."""
    aa = max(abs(math.log(aa_low)), abs(math.log(aa_high)))
    down = math.hypot(math.log(ratio / low), aa)
    up = math.hypot(math.log(high / ratio), aa)
    return ratio * math.exp(-down), ratio * math.exp(up)


def judged(ratio: float, low: float, high: float, target: float, *, at_least: bool) -> tuple[bool, str | None]:
    """``(met, verdict_text)`` for a ratio that must be ``≥ target`` (``at_least``) or ``≤ target``: "open: within
    noise" when the ratio misses but its interval reaches the target, "met, within noise" when it meets the target
    but its interval reaches past it (plain met/MISSED only when the whole interval agrees)."""
    met = ratio >= target if at_least else ratio <= target
    straddles = low <= target <= high
    return met, (("met, within noise" if met else "open: within noise") if straddles else None)


def ci(ratio: float, low: float, high: float, label: str = "95% CI") -> str:
    return f"{ratio:.2f} ({label} {low:.2f}–{high:.2f})"


def spread(values: Sequence[float]) -> float:
    """Relative spread of the middle half (interquartile range / median), to show how noisy a figure was."""
    if len(values) < 4:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4)
    return (q3 - q1) / statistics.median(values)


def ns(seconds: float) -> str:
    return f"{seconds * 1e9:,.0f} ns" if abs(seconds) < 1e-5 else f"{seconds * 1e6:,.1f} µs"


def machine() -> dict[str, str]:
    """nproc, CPU model and Python version, for the table's heading."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count() or 0
    return {"nproc": str(nproc), "cpu": model, "python": sys.version.split()[0],
            "platform": f"{platform.system()} {platform.release()}"}


def table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table (readable as plain text too)."""
    header = ["#", "measured", "ours", "baseline (same run)", "ratio", "target", "result"]
    lines = [header, ["---"] * len(header)]
    for row in rows:
        ratio = row.ratio_text or ("" if row.ratio is None else f"{row.ratio:.2f}")
        lines.append([row.key, row.what, row.ours, row.baseline, ratio, row.target, row.verdict])
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)
