"""pytest-uprobe's benchmarks, against bpftrace and an empty BPF program on the same probe.

    .venv/bin/python benchmarks/run.py        (or `make bench`; root, like the tests)

Builds benchmarks/loop in release (with debug info), then measures, in this one run:
  (a) count-only overhead per call: ours / bpftrace `count()`, ours / an empty BPF program
  (b) full mode (both arguments at entry, the return value): ours / bpftrace printf
  (c) return probes: a leaf with a uretprobe, the same leaf on its ret instructions, and a
      non-leaf on its ret instructions
  (d) per-test cost: 30 traced runs, each beside an untraced `subprocess.run`, with the
      load average
  (e) events: 1,000,000 calls, lost events and decode time / traced run time
  (g) end to end, N=100,000: the wall time of a whole traced run (start-up and decoding
      included) in full mode against bpftrace printf, until `run()` returns and until every
      Call is made; count-only against bpftrace count() and against the untraced run plus N
      times the empty program's cost per hit (issue 15's targets 2 and 3)
  (h) scale: 10,000,000 calls in a fresh process: lost events, resident memory the Trace
      keeps per call, and the peak (issue 15's target 4); `--scale 0` skips it
  (i) the in-process engine beside BPF on the same loop (benchmarks/inprocess_engines.py):
      per call in count-only and full mode, and one short traced run (issue 20)
  (f) resolution: `Tracer().plan` of three probes on a generated crate of about 700,000
      DIEs (benchmarks/big_crate.py), each in a fresh process, cold (empty cache) and warm
      (the on-disk cache the cold run wrote); `--resolution-only` runs just this one
and prints a table with each ratio beside its target. Overhead per call is
(traced loop time - untraced loop time) / N, where the loop times itself (`loop_ns`), so
start-up and set-up costs stay out of it; each figure is the median of REPEAT runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import big_crate  # noqa: E402  (benchmarks/big_crate.py)

from pytest_uprobe import Tracer  # noqa: E402
from pytest_uprobe.bpf import session  # noqa: E402
from pytest_uprobe.bpf.bcc import load_bcc  # noqa: E402
from pytest_uprobe.bpf.prerequisites import check_prerequisites  # noqa: E402
from pytest_uprobe.launch import HeldProcess  # noqa: E402

CRATE = HERE / "loop"
EXE = CRATE / "target" / "release" / "bench_loop"
LEAF, NONLEAF = "bench_loop::step", "bench_loop::outer"


@dataclass
class Row:
    section: str
    what: str
    value: str
    target: str = ""
    ok: bool | None = None


ROWS: list[Row] = []


class Target(NamedTuple):
    """One of issue 15's five targets, as measured in this run."""

    number: int
    what: str
    value: str
    goal: str
    ok: bool


TARGETS: list[Target] = []


def target(number: int, what: str, value: str, goal: str, ok: bool) -> None:
    TARGETS.append(Target(number, what, value, goal, ok))


def row(section: str, what: str, value: str, target: str = "", ok: bool | None = None) -> None:
    ROWS.append(Row(section, what, value, target, ok))
    mark = "" if ok is None else ("  ok" if ok else "  MISSED")
    print(f"  {what}: {value}{'  (target ' + target + ')' if target else ''}{mark}", flush=True)


def build() -> None:
    subprocess.run(
        ["cargo", "build", "--release", "-q", "--manifest-path", str(CRATE / "Cargo.toml")],
        check=True,
    )


def loop_ns(stdout: str) -> int:
    match = re.search(r"^loop_ns (\d+)$", stdout, re.M)
    if match is None:
        raise RuntimeError(f"bench_loop printed no loop_ns:\n{stdout[-2000:]}")
    return int(match.group(1))


def argv(n: int, mode: str = "leaf") -> list[str]:
    return [str(EXE), str(n), mode]


def untraced(n: int, mode: str = "leaf") -> int:
    out = subprocess.run(argv(n, mode), capture_output=True, text=True, check=True).stdout
    return loop_ns(out)


def ours(n: int, probe: str, mode: str = "leaf", **options: bool) -> int:
    with Tracer(timeout=None, **options) as tracer:
        trace = tracer.run(argv(n, mode), probes=[probe])
    calls = trace[probe]
    assert calls.call_count == n, (calls.call_count, n)
    if options.get("record", True):
        assert len(calls.calls) == n and trace.lost_events == 0, (len(calls.calls), n)
        assert calls.calls[-1].args == (n - 1, 7), calls.calls[-1]
        expected = ((n - 1) * 31) ^ 7
        assert calls.calls[-1].retval == expected + (mode == "outer"), calls.calls[-1]
    return loop_ns(trace.stdout)


def symbol(name: str) -> str:
    nm = subprocess.run(["nm", str(EXE)], capture_output=True, text=True, check=True).stdout
    tag = "".join(f"{len(p)}{p}" for p in name.split("::"))
    for line in nm.splitlines():
        if tag in line and line.split()[1] in "tT":
            return line.split()[2]
    raise RuntimeError(f"no symbol for {name} in {EXE}")


def bpftrace(n: int, script: str) -> int:
    with tempfile.TemporaryFile("w+") as out:
        subprocess.run(
            ["bpftrace", "-e", script, "-c", " ".join(argv(n))],
            stdout=out,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        out.seek(0)
        text = out.read()
    return loop_ns(text)


def bpftrace_count(n: int) -> int:
    return bpftrace(n, f"uprobe:{EXE}:{symbol(LEAF)} {{ @c = count(); }}")


def bpftrace_full(n: int) -> int:
    sym = symbol(LEAF)
    return bpftrace(
        n,
        f'uprobe:{EXE}:{sym} {{ printf("%d %d\\n", arg0, arg1); }} '
        f'uretprobe:{EXE}:{sym} {{ printf("%d\\n", retval); }}',
    )


def floor(n: int) -> int:
    """An empty BPF program on the same entry probe, attached for the one process the way
    ours is (a uprobe_multi link where the kernel has them, else a perf uprobe)."""
    check_prerequisites()  # sets BCC_KERNEL_SOURCE as a Session would
    bcc = load_bcc()
    address = Tracer().plan(EXE, [LEAF]).sites[0].address
    bpf = bcc.BPF(text=b"int empty(struct pt_regs *ctx) { return 0; }")
    held = HeldProcess(EXE, argv(n), env=None, cwd=None, stdin_data=False)
    links: list[int] = []
    try:
        try:
            fd = bpf.load_func(b"empty", bcc.BPF.KPROBE, None, session.BPF_TRACE_UPROBE_MULTI).fd
            _, offset = bpf._check_path_symbol(str(EXE).encode(), b"", address, -1, 0)
            links.append(
                session._link_uprobe_multi(fd, str(EXE).encode(), [offset], [0], held.pid, False)
            )
        except Exception:
            bpf = bcc.BPF(text=b"int empty(struct pt_regs *ctx) { return 0; }")
            bpf.attach_uprobe(name=str(EXE).encode(), addr=address, fn_name=b"empty", pid=held.pid)
        held.release()
        finished = held.wait(None, None)
    finally:
        held.reap()
        for fd in links:
            os.close(fd)
        for name, fd in list(bpf.uprobe_fds.items()):
            bcc.lib.bpf_close_perf_event_fd(fd)
            bpf._del_uprobe_fd(name)
        bpf.cleanup()
    return loop_ns(finished.stdout)


def per_call_us(
    runs: dict[str, Callable[[], int]], base: Callable[[], int], n: int, repeat: int
) -> dict[str, float]:
    """Median overhead per call in microseconds of each configuration, runs interleaved."""
    times: dict[str, list[int]] = {name: [] for name in runs}
    bases: list[int] = []
    for _ in range(repeat):
        bases.append(base())
        for name, run in runs.items():
            times[name].append(run())
    zero = statistics.median(bases)
    return {name: (statistics.median(t) - zero) / n / 1000 for name, t in times.items()}


def count_only(n: int, repeat: int) -> None:
    print(f"(a) count-only, N={n}", flush=True)
    us = per_call_us(
        {
            "floor": lambda: floor(n),
            "ours": lambda: ours(n, LEAF, record=False),
            "bpftrace": lambda: bpftrace_count(n),
        },
        lambda: untraced(n),
        n,
        repeat,
    )
    row("a", "count-only overhead per call: ours", f"{us['ours']:.2f} us")
    row("a", "count-only overhead per call: bpftrace count()", f"{us['bpftrace']:.2f} us")
    row("a", "count-only overhead per call: empty BPF program", f"{us['floor']:.2f} us")
    ratio = us["ours"] / us["bpftrace"]
    row("a", "count-only ours / bpftrace", f"{ratio:.2f}", "<= 1.0", ratio <= 1.0)
    ratio = us["ours"] / us["floor"]
    row("a", "count-only ours / empty program", f"{ratio:.2f}", "<= 1.15", ratio <= 1.15)
    target(5, "count-only overhead per hit / the empty program's", f"{ratio:.2f}", "<= 1.05",
           ratio <= 1.05)  # fmt: skip


def full_mode(n: int, repeat: int) -> None:
    print(f"(b) full mode (2 args at entry + retval), N={n}", flush=True)
    us = per_call_us(
        {"ours": lambda: ours(n, LEAF), "bpftrace": lambda: bpftrace_full(n)},
        lambda: untraced(n),
        n,
        repeat,
    )
    row("b", "full overhead per call: ours", f"{us['ours']:.2f} us")
    row("b", "full overhead per call: bpftrace printf", f"{us['bpftrace']:.2f} us")
    ratio = us["ours"] / us["bpftrace"]
    row("b", "full ours / bpftrace", f"{ratio:.2f}", "<= 1.0", ratio <= 1.0)


def return_probes(n: int, repeat: int) -> None:
    print(f"(c) return probes, N={n}", flush=True)
    leaf = per_call_us(
        {
            "uretprobe": lambda: ours(n, LEAF),
            "ret sites": lambda: ours(n, LEAF, ret_sites_only=True),
        },
        lambda: untraced(n),
        n,
        repeat,
    )
    nonleaf = per_call_us(
        {"ret sites": lambda: ours(n, NONLEAF, "outer")}, lambda: untraced(n, "outer"), n, repeat
    )
    base = leaf["uretprobe"]
    row("c", "leaf, entry + uretprobe", f"{base:.2f} us/call")
    row(
        "c",
        "leaf forced to ret sites",
        f"{leaf['ret sites']:.2f} us/call ({leaf['ret sites'] / base:.2f}x)",
    )
    row(
        "c",
        "non-leaf, entry + ret sites",
        f"{nonleaf['ret sites']:.2f} us/call ({nonleaf['ret sites'] / base:.2f}x)",
    )


def load_average() -> str:
    """The 1-minute load average (other processes competing for the CPUs)."""
    return Path("/proc/loadavg").read_text().split()[0]


def per_test(runs: int) -> None:
    """Traced and untraced runs interleaved, so both see the same load: the added cost is
    the median of each pair's difference (the first traced run, cold, apart)."""
    print(f"(d) per-test cost, {runs} runs", flush=True)
    session.release_programs()
    load_before = load_average()
    traced: list[float] = []
    plain: list[float] = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        with Tracer() as tracer:  # a new Tracer per test, as the fixture makes
            trace = tracer.run(argv(1), probes=[LEAF])
        traced.append(time.perf_counter() - started)
        assert trace[LEAF].call_count == 1
        started = time.perf_counter()
        subprocess.run(argv(1), capture_output=True, check=True)
        plain.append(time.perf_counter() - started)
    added = [(t - p) * 1000 for t, p in zip(traced[1:], plain[1:])]
    median = statistics.median(added)
    quartiles = statistics.quantiles(added, n=4)
    load = f"load average {load_before} before, {load_average()} after, {os.cpu_count()} CPUs"
    row("d", "first traced run (resolve + compile + run)", f"{traced[0] * 1000:.0f} ms")
    row("d", "untraced subprocess.run (median)", f"{statistics.median(plain[1:]) * 1000:.1f} ms")
    row(
        "d",
        f"added per traced run, runs 2..{runs + 1}, each beside an untraced run: median "
        f"(quartiles); {load}",
        f"{median:.1f} ms ({quartiles[0]:.1f}-{quartiles[2]:.1f})",
        "<= 15 ms",
        median <= 15,
    )
    target(1, f"per-test cost: added per traced run (median; {load})", f"{median:.1f} ms",
           "<= 15 ms", median <= 15)  # fmt: skip


def events(n: int) -> None:
    print(f"(e) events, N={n}", flush=True)
    waited: list[float] = []
    original = HeldProcess.wait

    def wait(self: HeldProcess, *args: object, **kwargs: object) -> object:
        started = time.perf_counter()
        result = original(self, *args, **kwargs)  # type: ignore[arg-type]
        waited.extend([started, time.perf_counter()])
        return result

    HeldProcess.wait = wait  # type: ignore[assignment,method-assign]
    try:
        with Tracer(timeout=None) as tracer:
            trace = tracer.run(argv(n), probes=[LEAF])
            returned = time.perf_counter()
    finally:
        HeldProcess.wait = original  # type: ignore[method-assign]
    calls = trace[LEAF]
    run_s = waited[1] - waited[0]
    decode_s = returned - waited[1]
    started = time.perf_counter()
    complete = len(calls.calls) == n and all(c.returned for c in calls.calls)
    made_s = time.perf_counter() - started
    row("e", "calls delivered", f"{len(calls.calls)} of {n}, all returned: {complete}")
    row("e", "lost events", str(trace.lost_events), "0", trace.lost_events == 0 and complete)
    row("e", "traced run (release to exit)", f"{run_s:.2f} s")
    row("e", "collect + decode after exit (until run() returns)", f"{decode_s:.2f} s")
    ratio = decode_s / run_s
    row("e", "decode / traced run", f"{ratio:.2f}", "<= 1.5", ratio <= 1.5)
    per_event = decode_s / (2 * n) * 1e6  # an entry and a return event per call
    row("e", "after exit, per event", f"{per_event:.2f} us", "<= 1 us", per_event <= 1)
    per_call = made_s / n * 1e6
    row("e", "making every Call on first use (iterating all), per call", f"{per_call:.2f} us")
    started = time.perf_counter()
    read = [(c.args, c.kwargs, c.retval) for c in calls.calls]
    read_us = (time.perf_counter() - started) / n * 1e6
    assert read[-1] == ((n - 1, 7), {"a": n - 1, "b": 7}, ((n - 1) * 31) ^ 7), read[-1]
    row("e", "then reading args, kwargs and retval of every Call, per call", f"{read_us:.2f} us")
    per_event = (decode_s + made_s) / (2 * n) * 1e6
    row("e", "after exit + every Call made, per event", f"{per_event:.2f} us", "<= 1 us",
        per_event <= 1)  # fmt: skip


def wall(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def bpftrace_wall(n: int, script: str) -> None:
    with tempfile.TemporaryFile("w+") as out:
        subprocess.run(["bpftrace", "-e", script, "-c", " ".join(argv(n))], stdout=out,
                       stderr=subprocess.DEVNULL, check=False)  # fmt: skip


def ours_wall(n: int, record: bool) -> tuple[float, float]:
    """Seconds until `run()` returns, then until every Call is made and checked."""
    started = time.perf_counter()
    with Tracer(record=record, timeout=None) as tracer:
        trace = tracer.run(argv(n), probes=[LEAF])
    returned = time.perf_counter()
    calls = trace[LEAF]
    assert calls.call_count == n and trace.lost_events == 0
    if record:
        assert all(c.returned for c in calls.calls) and len(calls.calls) == n
        assert calls.calls[-1].args == (n - 1, 7)
        assert calls.retvals[-1] == ((n - 1) * 31) ^ 7
    return returned - started, time.perf_counter() - started


def end_to_end(n: int, repeat: int) -> None:
    """(g) Wall time of a whole traced run, start-up and decoding included, against
    bpftrace doing the same job and against the program alone (issue 15's targets 2, 3)."""
    print(f"(g) end to end, N={n}", flush=True)
    count_script = f"uprobe:{EXE}:{symbol(LEAF)} {{ @c = count(); }}"
    sym = symbol(LEAF)
    full_script = (
        f'uprobe:{EXE}:{sym} {{ printf("%d %d\\n", arg0, arg1); }} '
        f'uretprobe:{EXE}:{sym} {{ printf("%d\\n", retval); }}'
    )
    ours_wall(1000, True)  # a warm program, as every test after the first has
    times: dict[str, list[float]] = {k: [] for k in (
        "untraced", "bpftrace full", "ours returned", "ours made", "bpftrace count",
        "ours count", "floor", "base")}  # fmt: skip
    for _ in range(repeat):
        times["untraced"].append(wall(lambda: untraced(n)))
        times["bpftrace full"].append(wall(lambda: bpftrace_wall(n, full_script)))
        returned, made = ours_wall(n, True)
        times["ours returned"].append(returned)
        times["ours made"].append(made)
        times["bpftrace count"].append(wall(lambda: bpftrace_wall(n, count_script)))
        times["ours count"].append(ours_wall(n, False)[0])
        times["floor"].append(floor(n) / 1e9)  # loop time with an empty program
        times["base"].append(untraced(n) / 1e9)  # loop time alone
    m = {k: statistics.median(v) for k, v in times.items()}
    row("g", "untraced run (subprocess.run)", f"{m['untraced'] * 1000:.0f} ms")
    row("g", "full: bpftrace printf, whole run", f"{m['bpftrace full'] * 1000:.0f} ms")
    row("g", "full: ours until run() returns", f"{m['ours returned'] * 1000:.0f} ms")
    row("g", "full: ours until every Call is made", f"{m['ours made'] * 1000:.0f} ms")
    ratio = m["ours returned"] / m["bpftrace full"]
    row("g", "full, run() returned / bpftrace", f"{ratio:.2f}", "<= 0.5", ratio <= 0.5)
    target(2, f"full mode, N={n}: until run() returns / bpftrace", f"{ratio:.2f}", "<= 0.5",
           ratio <= 0.5)  # fmt: skip
    ratio = m["ours made"] / m["bpftrace full"]
    row("g", "full, every Call made / bpftrace", f"{ratio:.2f}", "<= 0.5", ratio <= 0.5)
    target(2, f"full mode, N={n}: until every Call is made / bpftrace", f"{ratio:.2f}",
           "<= 0.5", ratio <= 0.5)  # fmt: skip
    per_hit = (m["floor"] - m["base"]) / n
    bound = m["untraced"] + n * per_hit * 1.05 + 0.015
    row("g", "count-only: empty BPF program, per hit", f"{per_hit * 1e6:.2f} us")
    row("g", "count-only: bpftrace count(), whole run", f"{m['bpftrace count'] * 1000:.0f} ms")
    row("g", "count-only: ours, whole run", f"{m['ours count'] * 1000:.0f} ms")
    row("g", "count-only: untraced + N x empty-program hit x 1.05 + 15 ms",
        f"{bound * 1000:.0f} ms")  # fmt: skip
    ratio = m["ours count"] / bound
    row("g", "count-only ours / that bound", f"{ratio:.2f}", "<= 1.0", ratio <= 1.0)
    target(3, f"count-only, N={n}: whole run / (untraced + N x empty-program hit x 1.05 + "
           "15 ms)", f"{ratio:.3f}", "<= 1.0", ratio <= 1.0)  # fmt: skip
    ratio = m["ours count"] / m["bpftrace count"]
    row("g", "count-only ours / bpftrace", f"{ratio:.2f}", "< 1.0", ratio < 1.0)


SCALE_SCRIPT = """
import gc, json, sys, time
from pathlib import Path
from pytest_uprobe import Tracer
exe, probe, n = sys.argv[1], sys.argv[2], int(sys.argv[3])

def rss():
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096

with Tracer() as tracer:
    tracer.run([exe, "10", "leaf"], probes=[probe])  # imports, compile: not the run's cost
gc.collect()
before = rss()
Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from here
started = time.perf_counter()
with Tracer(timeout=None) as tracer:
    trace = tracer.run([exe, str(n), "leaf"], probes=[probe])
seconds = time.perf_counter() - started
gc.collect()
kept = rss() - before
status = Path("/proc/self/status").read_text()
peak = int(status.split("VmHWM:")[1].split()[0]) * 1024
calls = trace[probe]
last = calls.calls[-1]
print(json.dumps({
    "seconds": seconds, "lost": trace.lost_events, "count": int(calls.call_count),
    "recorded": len(calls.calls), "kept": kept, "peak": peak - before,
    "last": [list(last.args), last.retval],
}))
"""


def scale(n: int) -> None:
    """(h) One run of n calls in a fresh process: lost events, and what the Trace keeps
    (resident memory after the run, with the Trace alive) and the peak, per call."""
    print(f"(h) scale, N={n}", flush=True)
    out = subprocess.run(
        [sys.executable, "-c", SCALE_SCRIPT, str(EXE), LEAF, str(n)],
        capture_output=True, text=True, check=True, cwd=HERE.parent,
    ).stdout  # fmt: skip
    got = json.loads(out.splitlines()[-1])
    right = got["last"] == [[n - 1, 7], ((n - 1) * 31) ^ 7] and got["recorded"] == n
    row("h", "calls counted / recorded, last call right", f"{got['count']} / {got['recorded']}, "
        f"{right}")  # fmt: skip
    row("h", "lost events", str(got["lost"]), "0", got["lost"] == 0 and right)
    row("h", "whole run", f"{got['seconds']:.1f} s")
    kept = got["kept"] / n
    row("h", "kept per recorded call (resident memory, Trace alive)", f"{kept:.0f} bytes",
        "<= 64", kept <= 64)  # fmt: skip
    peak = got["peak"] / n
    row("h", "peak per recorded call (max resident memory during the run)", f"{peak:.0f} bytes",
        "<= 64", peak <= 64)  # fmt: skip
    target(4, f"scale, N={n}: lost events; kept and peak bytes per recorded call",
           f"{got['lost']}; {kept:.0f}, {peak:.0f}", "0; <= 64, <= 64",
           got["lost"] == 0 and right and kept <= 64 and peak <= 64)  # fmt: skip


RESOLVE_SCRIPT = """
import json, sys, time
from pytest_uprobe import Tracer
exe, probe = sys.argv[1], sys.argv[2]
started = time.perf_counter()
plan = Tracer().plan(exe, [probe])
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "functions": len(plan.functions), "sites": len(plan.sites)}))
"""


def resolve_once(exe: Path, probe: str, cache_home: Path) -> dict[str, float]:
    """`Tracer().plan(exe, [probe])` timed in a fresh process whose cache is `cache_home`."""
    env = dict(os.environ, XDG_CACHE_HOME=str(cache_home))
    env.pop("PYTEST_UPROBE_NO_DISK_CACHE", None)
    out = subprocess.run(
        [sys.executable, "-c", RESOLVE_SCRIPT, str(exe), probe],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=HERE.parent,
    ).stdout
    return json.loads(out.splitlines()[-1])


def count_dies(exe: Path) -> int | None:
    if shutil.which("llvm-dwarfdump") is None:
        return None
    dump = subprocess.Popen(["llvm-dwarfdump", "--debug-info", str(exe)], stdout=subprocess.PIPE)
    assert dump.stdout is not None
    pattern = re.compile(rb"^0x[0-9a-f]+: +(DW_TAG|NULL)")
    count = sum(1 for line in dump.stdout if pattern.match(line))
    dump.wait()
    return count


def resolution(repeat: int) -> None:
    """(f) symbols and DWARF for a probe on a ~700,000-DIE binary, cold and warm."""
    print("(f) resolution on a large generated crate", flush=True)
    exe = big_crate.build()
    dies = count_dies(exe)
    size = exe.stat().st_size / 1e6
    row("f", "binary", f"{size:.1f} MB, {dies if dies is not None else '?'} DIEs")
    probes = [
        ("exact path", big_crate.EXACT),
        ("generic, one instance per module", big_crate.GENERIC),
        ("inlined copies", big_crate.INLINED),
    ]
    for label, probe in probes:
        cold: list[float] = []
        warm: list[float] = []
        shape = ""
        for _ in range(repeat):
            with tempfile.TemporaryDirectory(prefix="uprobe-bench-cache-") as home:
                first = resolve_once(exe, probe, Path(home))  # cold: an empty cache
                second = resolve_once(exe, probe, Path(home))  # warm: the cache it wrote
            cold.append(first["seconds"])
            warm.append(second["seconds"])
            shape = f"{first['functions']} functions, {first['sites']} sites"
        cold_s, warm_ms = statistics.median(cold), statistics.median(warm) * 1000
        row("f", f"{label} `{probe}` ({shape}): cold", f"{cold_s:.2f} s", "<= 2 s", cold_s <= 2)
        row("f", f"{label} `{probe}`: warm", f"{warm_ms:.0f} ms", "<= 100 ms", warm_ms <= 100)


def table(with_machine: bool = True) -> None:
    print()
    where = machine() if with_machine else f"{os.cpu_count()} CPUs, Linux {platform.release()}"
    print(f"pytest-uprobe benchmarks, {time.strftime('%Y-%m-%d')}, {where}")
    print()
    print("| | measure | value | target | met |")
    print("|---|---|---|---|---|")
    for r in ROWS:
        met = "" if r.ok is None else ("yes" if r.ok else "NO")
        print(f"| {r.section} | {r.what} | {r.value} | {r.target} | {met} |")
    if TARGETS:
        print()
        print(f"Issue 15's targets (load average {load_average()} at the end)")
        print()
        print("| target | measure | value | goal | met |")
        print("|---|---|---|---|---|")
        for t in sorted(TARGETS, key=lambda t: t.number):
            print(f"| {t.number} | {t.what} | {t.value} | {t.goal} | {'yes' if t.ok else 'NO'} |")


def machine() -> str:
    cpus = os.cpu_count()
    bcc = getattr(load_bcc(), "__version__", "?")
    return f"{cpus} CPUs, Linux {platform.release()}, BCC {bcc}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200_000, help="N of (a), (b), (c)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per median")
    parser.add_argument("--events", type=int, default=1_000_000, help="N of (e)")
    parser.add_argument("--tests", type=int, default=30, help="runs of (d)")
    parser.add_argument("--end-to-end", type=int, default=100_000, help="N of (g)")
    parser.add_argument("--scale", type=int, default=10_000_000, help="N of (h); 0: skip")
    parser.add_argument(
        "--only", default="", help="run only these sections, e.g. `dg` (letters as above)"
    )
    parser.add_argument(
        "--resolution-only", action="store_true", help="only (f): no root, bpftrace or BCC"
    )
    options = parser.parse_args()
    if options.resolution_only:
        resolution(options.repeat)
        table(with_machine=False)
        return 0 if all(r.ok is not False for r in ROWS) else 1
    if os.geteuid() != 0:
        print("the benchmarks trace: run them as root (sudo make bench)", file=sys.stderr)
        return 1
    for tool in ("cargo", "bpftrace", "nm"):
        if shutil.which(tool) is None:
            print(f"the benchmarks need {tool}", file=sys.stderr)
            return 1
    started = time.perf_counter()
    print(f"load average {load_average()} at the start, {os.cpu_count()} CPUs", flush=True)
    build()
    sections: list[tuple[str, Callable[[], None]]] = [
        ("d", lambda: per_test(options.tests)),  # first: its first run is the cold one
        ("a", lambda: count_only(options.calls, options.repeat)),
        ("b", lambda: full_mode(options.calls, options.repeat)),
        ("c", lambda: return_probes(options.calls, options.repeat)),
        ("e", lambda: events(options.events)),
        ("g", lambda: end_to_end(options.end_to_end, options.repeat)),
        # (i) issue 20: the in-process engine beside BPF
        ("i", lambda: __import__("inprocess_engines").rows(row, options.calls, options.repeat)),
        ("h", lambda: scale(options.scale) if options.scale else None),
        ("f", lambda: resolution(options.repeat)),
    ]
    for letter, section in sections:
        if not options.only or letter in options.only:
            section()
    table()
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0 if all(r.ok is not False for r in ROWS) else 1


if __name__ == "__main__":
    sys.exit(main())
