"""Run the benchmarks and print one table: ``python benchmarks/run.py``.

Each row names what was measured, our figure, the baseline's figure from the same run, the ratio with
its 95 % interval (a served row's widened by its A/A pair of identical apps) and the target. Figures are
medians over rounds in carry-over balanced orders (see ``harness.py``); the ratios are the result,
absolute times only orient. Everything runs on loopback: a development provider in this
process, the measured apps in waitress subprocesses. About two to three minutes on 2 cores.

Options: ``--quick`` (fewer rounds, for a smoke test), ``--only 1,3`` (some sections),
``--storm`` (append the table of ``benchmarks/refresh_storm.py``, when present), ``--profile 2a``
(the top 20 functions of one row's ``ours`` contender, by pyinstrument if installed, else cProfile:
the profile that explains a missed target).
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from fixtures import provider, quiet  # noqa: E402
from harness import Row, machine, table  # noqa: E402

SECTIONS = {
    "1": "hot path: get_user_access_token()",
    "2": "app throughput under waitress",
    "3": "named HTTP client overhead",
    "4": "client credentials: stampede and cached calls",
    "5": "session size",
}
STORM = os.path.join(HERE, "refresh_storm.py")


def run_sections(only: set[str], quick: bool) -> tuple[list[Row], list[str]]:
    import clientcreds
    import garbage
    import hotpath
    import session_size
    import throughput

    rows: list[Row] = []
    notes: list[str] = []
    with provider() as idp:
        counters = idp.provider.counters
        for key, run in (
                ("1", lambda: hotpath.run(idp.issuer, quick=quick)),
                ("2", lambda: _joined(throughput.run_section2(idp.issuer, counters, quick=quick),
                                      garbage.rows(idp.issuer))),
                ("3", lambda: throughput.run_section3(idp.issuer, quick=quick)),
                ("4", lambda: clientcreds.run(idp.issuer, counters, quick=quick)),
                ("5", lambda: session_size.run(idp.issuer))):
            if key not in only:
                continue
            started = time.perf_counter()
            print(f"[{key}] {SECTIONS[key]} ...", file=sys.stderr, flush=True)
            found, extra = run()
            rows += found
            notes += extra
            print(f"[{key}] done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return rows, notes


def _joined(*sections: tuple[list[Row], list[str]]) -> tuple[list[Row], list[str]]:
    return [row for rows, _ in sections for row in rows], [note for _, notes in sections for note in notes]


def storm(quick: bool) -> str:
    """The refresh-storm table, produced by ``refresh_storm.py`` in its own process."""
    if not os.path.exists(STORM):
        return "refresh storm: benchmarks/refresh_storm.py is not there yet; nothing to run."
    command = [sys.executable, STORM] + (["--windows", "2"] if quick else [])
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 and quick:  # its options are its own: fall back to its defaults
        done = subprocess.run([sys.executable, STORM], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return f"refresh storm: refresh_storm.py failed (exit {done.returncode}):\n{done.stderr[-2000:]}"
    return done.stdout.rstrip()


#: rows that ``--profile`` knows, by section module
PROFILED = {"hotpath": ("1a", "1b", "1c", "1d", "1e"), "throughput": ("2a", "2b", "2c", "2f", "2g", "3a", "3b"),
            "clientcreds": ("4b",)}


def profile(key: str, seconds: float = 3.0) -> str:
    """Call row ``key``'s ``ours`` contender for about ``seconds`` under a profiler; its top 20 functions."""
    module = next((name for name, keys in PROFILED.items() if key in keys), None)
    if module is None:
        known = ", ".join(k for keys in PROFILED.values() for k in keys)
        raise SystemExit(f"--profile: no row {key!r} to profile (rows: {known})")
    section = __import__(module)
    with provider() as idp, contextlib.ExitStack() as stack:
        call = section.profiled(key, idp.issuer, stack)
        started, calls = time.perf_counter(), 0
        while time.perf_counter() - started < 0.3 or calls < 10:  # warm up, and size the chunks
            call()
            calls += 1
        chunk = max(1, calls // 10)

        def calls_for(profiled_seconds: float) -> int:
            """Chunks of calls until ``profiled_seconds`` have passed (profilers slow small calls down)."""
            done, begun = 0, time.perf_counter()
            while time.perf_counter() - begun < profiled_seconds:
                for _ in range(chunk):
                    call()
                done += chunk
            return done

        try:
            from pyinstrument import Profiler
        except ImportError:
            profiler = cProfile.Profile()
            loops = profiler.runcall(calls_for, seconds)
            out = io.StringIO()
            for order in ("tottime", "cumulative"):
                out.write(f"-- top 20 by {order} --\n")
                pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(20)
            report = "\n".join(line for line in out.getvalue().splitlines() if line.strip())
        else:
            instrument = Profiler(interval=0.0001)
            with instrument:
                loops = calls_for(seconds)
            report = instrument.output_text(show_all=False)
    return f"Profile of row {key} (ours), {loops:,} calls:\n{report}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a smoke test, not a measurement")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections, e.g. 1,3")
    parser.add_argument("--storm", action="store_true", help="append benchmarks/refresh_storm.py's table")
    parser.add_argument("--profile", metavar="ROW", help="profile one row's ours contender (e.g. 1a) instead")
    args = parser.parse_args(argv)
    quiet()
    if args.profile:
        print(profile(args.profile))
        return 0
    started = time.perf_counter()
    rows, notes = run_sections(set(args.only.split(",")), args.quick)
    info = machine()
    print(f"\nMachine: {info['nproc']} CPUs (nproc), {info['cpu']}, Python {info['python']}, {info['platform']}"
          f"{' — QUICK run, not a measurement' if args.quick else ''}\n")
    print(table(rows))
    if notes:
        print("\nNotes:")
        print("\n".join(f"- {note}" for note in notes))
    if args.storm:
        print("\n" + storm(args.quick))
    missed = [row.key for row in rows if row.ok is False and not row.verdict_text]
    open_ = [row.key for row in rows if row.verdict_text and row.verdict_text.startswith("open")]
    print(f"\n{len(rows)} rows in {time.perf_counter() - started:.0f} s; targets missed: {', '.join(missed) or 'none'}"
          f"{'; open (within noise): ' + ', '.join(open_) if open_ else ''}")
    if missed or open_:
        print("The profile behind a missed or open row: python benchmarks/run.py --profile ROW")
    return 0


if __name__ == "__main__":
    sys.exit(main())
