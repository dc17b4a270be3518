"""Per-call cost of both engines on benchmarks/loop, in one run (a ratio, never a time to
assert on): `python tests/inprocess/bench_engines.py [N]`. Root, for the BPF engine."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pytest_uprobe import Tracer
from pytest_uprobe.errors import PrerequisiteError

CRATE = Path(__file__).resolve().parents[2] / "benchmarks" / "loop"
EXE = CRATE / "target" / "release" / "bench_loop"
LEAF = "bench_loop::step"


def loop_ns(stdout: str) -> int:
    match = re.search(r"^loop_ns (\d+)$", stdout, re.M)
    assert match is not None, stdout
    return int(match.group(1))


def per_call(backend: str, record: bool, n: int) -> float:
    base = statistics.median(
        loop_ns(
            subprocess.run(
                [str(EXE), str(n), "leaf"], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(3)
    )
    runs = []
    for _ in range(3):
        for _attempt in range(5):  # the in-process engine's exit-status race (docs)
            try:
                with Tracer(backend=backend, record=record) as tracer:
                    trace = tracer.run([str(EXE), str(n), "leaf"], probes=[LEAF])
                break
            except PrerequisiteError:
                continue
        assert trace.functions[LEAF].call_count >= n, trace.functions[LEAF].call_count
        runs.append(loop_ns(trace.stdout))
    return (statistics.median(runs) - base) / n


def per_test(backend: str, runs: int = 10) -> float:
    """Seconds per traced run of a short program (set-up, run, teardown), median."""
    times = []
    with Tracer(backend=backend) as tracer:
        for _ in range(runs):
            started = time.perf_counter()
            for _attempt in range(5):
                try:
                    tracer.run([str(EXE), "10", "leaf"], probes=[LEAF])
                    break
                except PrerequisiteError:
                    continue
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    subprocess.run(
        ["cargo", "build", "--release", "-q", "--manifest-path", str(CRATE / "Cargo.toml")],
        check=True,
    )
    for record in (False, True):
        bpf = per_call("bpf", record, n)
        inprocess = per_call("inprocess", record, n)
        mode = "full" if record else "count-only"
        print(
            f"{mode}: bpf {bpf:.0f} ns/call, inprocess {inprocess:.0f} ns/call, "
            f"ratio {bpf / max(inprocess, 1):.1f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
