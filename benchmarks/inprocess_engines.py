"""`make bench` rows (i): both engines side by side in one run, on benchmarks/loop's leaf
`step` (two arguments at entry, the return value): per-call cost in count-only and full
mode, one traced run of a short program, and a whole run of N calls end to end. Each
repeat runs the untraced loop and both engines in turn, so that load on the machine falls
on all of them alike; compare the ratios. Called by run.py (a hook of one line)."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from pytest_uprobe import Tracer

EXE = Path(__file__).resolve().parent / "loop" / "target" / "release" / "bench_loop"
LEAF = "bench_loop::step"
ENGINES = ("bpf", "inprocess")
FULL_RATIO = 10.0  # issue 20: the in-process engine >= 10x cheaper per call in full mode


def _loop_ns(stdout: str) -> int:
    for line in stdout.splitlines():
        if line.startswith("loop_ns "):
            return int(line.split()[1])
    raise RuntimeError(f"bench_loop printed no loop_ns:\n{stdout[-2000:]}")


def _untraced(n: int) -> int:
    out = subprocess.run([str(EXE), str(n), "leaf"], capture_output=True, text=True, check=True)
    return _loop_ns(out.stdout)


def _traced(backend: str, n: int, record: bool) -> tuple[int, float, int]:
    """The loop's own time, the whole run's (set-up, run, decode, teardown), events lost."""
    started = time.perf_counter()
    with Tracer(backend=backend, record=record) as tracer:
        trace = tracer.run([str(EXE), str(n), "leaf"], probes=[LEAF])
    seconds = time.perf_counter() - started
    calls = trace[LEAF]
    assert calls.call_count == n, (backend, calls.call_count, n)
    if record and not trace.lost_events:
        assert len(calls.calls) == n, (backend, len(calls.calls))
        assert calls.calls[-1].args == (n - 1, 7) and calls.calls[-1].retval == ((n - 1) * 31) ^ 7
    return _loop_ns(trace.stdout), seconds, trace.lost_events


def rows(row: Callable[..., None], n: int, repeat: int, runs: int = 10) -> None:
    print(f"(i) both engines side by side, N={n}", flush=True)
    for record in (False, True):
        mode = "full" if record else "count-only"
        bases: list[int] = []
        loops: dict[str, list[int]] = {e: [] for e in ENGINES}
        walls: dict[str, list[float]] = {e: [] for e in ENGINES}
        lost: dict[str, int] = {e: 0 for e in ENGINES}
        for _ in range(repeat):
            bases.append(_untraced(n))
            for engine in ENGINES:
                loop, wall, dropped = _traced(engine, n, record)
                lost[engine] += dropped
                loops[engine].append(loop)
                walls[engine].append(wall)
        zero = statistics.median(bases)
        us = {e: (statistics.median(loops[e]) - zero) / n / 1000 for e in ENGINES}
        ratio = us["bpf"] / max(us["inprocess"], 1e-9)
        for engine in ENGINES:  # a full ring drops events (BPF) or waits (inprocess)
            note = f" ({lost[engine]} events lost)" if lost[engine] else ""
            row("i", f"{mode} per call: {engine}", f"{us[engine]:.2f} us{note}")
        if record:
            ok = ratio >= FULL_RATIO
            row("i", f"{mode} bpf / inprocess", f"{ratio:.1f}x", f">= {FULL_RATIO:.0f}x", ok)
        else:
            row("i", f"{mode} bpf / inprocess", f"{ratio:.1f}x")
        for engine in ENGINES:
            wall = statistics.median(walls[engine])
            row("i", f"{mode} run of N calls end to end: {engine}", f"{wall:.2f} s")
    for engine in ENGINES:
        times = []
        with Tracer(backend=engine) as tracer:
            tracer.run([str(EXE), "1", "leaf"], probes=[LEAF])  # the cold plan, not counted
        for _ in range(runs):
            started = time.perf_counter()
            with Tracer(backend=engine) as tracer:  # a new Tracer per test, as the fixture
                trace = tracer.run([str(EXE), "1", "leaf"], probes=[LEAF])
            times.append(time.perf_counter() - started)
            assert trace[LEAF].call_count == 1
        milliseconds = statistics.median(times) * 1000
        row("i", f"one traced run of a short program: {engine}", f"{milliseconds:.0f} ms")
