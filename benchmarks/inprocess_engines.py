"""`make bench` rows (i): both engines and bpftrace side by side in one run, on
benchmarks/loop's leaf `step` (two arguments at entry, the return value): per-call cost in
count-only and full mode (bpftrace: `count()`, and printf of the arguments and the return
value), one traced run of a short program (per-test cost), and a whole run of N calls end
to end (in full mode also inprocess / bpf: the in-process engine pairs its events while the
program runs, as BPF does, so it is no slower). Each repeat runs the untraced loop and every
contender in turn, so that load on the machine falls on all of them alike; compare the
ratios. The target of issue 20 is printed
beside its ratio: the in-process engine at least 10x cheaper per call than the BPF one.
Called by run.py (a hook of one line)."""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pytest_uprobe import Tracer

EXE = Path(__file__).resolve().parent / "loop" / "target" / "release" / "bench_loop"
LEAF = "bench_loop::step"
ENGINES = ("bpf", "inprocess")
CONTENDERS = (*ENGINES, "bpftrace")
RATIO = 10.0  # issue 20: the in-process engine >= 10x cheaper per call than the BPF one


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


def _symbol() -> str:
    """The leaf's mangled name, as bpftrace's uprobe wants it."""
    nm = subprocess.run(["nm", str(EXE)], capture_output=True, text=True, check=True).stdout
    tag = "".join(f"{len(part)}{part}" for part in LEAF.split("::"))
    for line in nm.splitlines():
        fields = line.split()
        if len(fields) == 3 and tag in fields[2] and fields[1] in "tT":
            return fields[2]
    raise RuntimeError(f"no symbol for {LEAF} in {EXE}")


def _bpftrace_script(record: bool) -> str:
    probe = f"{EXE}:{_symbol()}"
    if not record:
        return f"uprobe:{probe} {{ @c = count(); }}"
    return (
        f'uprobe:{probe} {{ printf("%d %d\\n", arg0, arg1); }} '
        f'uretprobe:{probe} {{ printf("%d\\n", retval); }}'
    )


def _bpftrace(n: int, record: bool) -> tuple[int, float, int]:
    """bpftrace doing the same job: the loop's own time, the whole run's, and 0 (bpftrace
    reports lost events on stderr, which is not read here)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        subprocess.run(
            ["bpftrace", "-e", _bpftrace_script(record), "-c", f"{EXE} {n} leaf"],
            stdout=out,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        seconds = time.perf_counter() - started
        out.seek(0)
        return _loop_ns(out.read()), seconds, 0


def _run(contender: str, n: int, record: bool) -> tuple[int, float, int]:
    if contender == "bpftrace":
        return _bpftrace(n, record)
    return _traced(contender, n, record)


def _short_run(contender: str) -> None:
    """One traced run of a short program (1 call), as one test would make it."""
    if contender == "bpftrace":
        _bpftrace(1, record=False)
        return
    with Tracer(backend=contender) as tracer:  # a new Tracer per test, as the fixture
        trace = tracer.run([str(EXE), "1", "leaf"], probes=[LEAF])
    assert trace[LEAF].call_count == 1


def rows(row: Callable[..., None], n: int, repeat: int, runs: int = 10) -> None:
    print(f"(i) both engines and bpftrace side by side, N={n}", flush=True)
    for record in (False, True):
        mode = "full" if record else "count-only"
        bases: list[int] = []
        loops: dict[str, list[int]] = {c: [] for c in CONTENDERS}
        walls: dict[str, list[float]] = {c: [] for c in CONTENDERS}
        lost: dict[str, int] = {c: 0 for c in CONTENDERS}
        for _ in range(repeat):
            bases.append(_untraced(n))
            for contender in CONTENDERS:
                loop, wall, dropped = _run(contender, n, record)
                lost[contender] += dropped
                loops[contender].append(loop)
                walls[contender].append(wall)
        zero = statistics.median(bases)
        us = {c: (statistics.median(loops[c]) - zero) / n / 1000 for c in CONTENDERS}
        for contender in CONTENDERS:  # a full ring drops events (BPF) or waits (inprocess)
            note = f" ({lost[contender]} events lost)" if lost[contender] else ""
            row("i", f"{mode} per call: {contender}", f"{us[contender]:.2f} us{note}")
        ratio = us["bpf"] / max(us["inprocess"], 1e-9)
        target = f">= {RATIO:.0f}x"
        row("i", f"{mode} per call bpf / inprocess", f"{ratio:.1f}x", target, ratio >= RATIO)
        ratio = us["bpftrace"] / max(us["inprocess"], 1e-9)
        row("i", f"{mode} per call bpftrace / inprocess", f"{ratio:.1f}x")
        for contender in CONTENDERS:
            wall = statistics.median(walls[contender])
            row("i", f"{mode} run of N calls end to end: {contender}", f"{wall:.2f} s")
        if record:  # its events are paired while the program runs, as BPF's are
            ratio = statistics.median(walls["inprocess"]) / statistics.median(walls["bpf"])
            row("i", "full run of N calls end to end inprocess / bpf", f"{ratio:.2f}",
                "<= 1", ratio <= 1)  # fmt: skip
    for contender in CONTENDERS:
        _short_run(contender)  # the cold plan (or bpftrace's first start), not counted
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            _short_run(contender)
            times.append(time.perf_counter() - started)
        milliseconds = statistics.median(times) * 1000
        what = f"per test, one traced run of a short program: {contender}"
        row("i", what, f"{milliseconds:.0f} ms")
