"""Panics, unwinding, threads, several returns, tail calls, recursion and backtraces under
probes (example_crates/panics). Every expected value comes from the program's own output or
from arithmetic on its inputs, and every traced run is compared with an untraced run of the
same binary: probes must not change what the program prints or how it exits.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from elftools.elf.elffile import ELFFile

from pytest_uprobe.machine_code import branch_taken
from pytest_uprobe.plan import ReturnMode, SiteKind
from pytest_uprobe.trace import Call, Trace
from pytest_uprobe.tracer import Tracer
from pytest_uprobe.values import Unavailable
from tests.conftest import attached_uprobes

CRATE = "example_crates/panics"
PROFILES = ["dev", "release"]
# Panic messages name the thread's id since Rust 1.89: "thread 'main' (4242) panicked at".
THREAD_ID = re.compile(r"thread '([^']*)' \((\d+)\) panicked")
PRINTED = re.compile(r"^(\w+)\((-?\d+)\) = (-?\d+)", re.MULTILINE)
PANICKED = re.compile(r"^(\w+)\((-?\d+)\) panicked", re.MULTILINE)

CargoBin = Callable[..., Path]


def command(exe: Path, mode: str, *args: object) -> list[str]:
    return [str(exe), mode, *map(str, args)]


def quiet_env(**extra: str) -> dict[str, str]:
    """The environment without RUST_BACKTRACE, so panic messages are short and fixed."""
    env = {k: v for k, v in os.environ.items() if k not in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE")}
    env.update(extra)
    return env


def untraced(argv: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, env=env, timeout=60)


def without_thread_ids(stderr: str) -> str:
    return THREAD_ID.sub(r"thread '\1' panicked", stderr)


def assert_same_as_untraced(trace: Trace, plain: subprocess.CompletedProcess[str]) -> None:
    """Same exit status, same stdout, same stderr (thread ids aside: they differ per run)."""
    assert trace.returncode == plain.returncode
    assert trace.stdout == plain.stdout
    assert without_thread_ids(trace.stderr) == without_thread_ids(plain.stderr)


def printed(stdout: str) -> dict[tuple[str, int], int | None]:
    """What the program said each call computed: None for a call that panicked."""
    out: dict[tuple[str, int], int | None] = {}
    for name, arg, value in PRINTED.findall(stdout):
        out[(name, int(arg))] = int(value)
    for name, arg in PANICKED.findall(stdout):
        out[(name, int(arg))] = None
    return out


def outcome(call: Call) -> tuple[Any, ...]:
    return (call.args, call.returned, call.unwound, call.retval)


def expected_outcome(arg: int, value: int | None) -> tuple[Any, ...]:
    if value is None:
        return ((arg,), False, True, None)
    return ((arg,), True, False, value)


def ours(probe: dict[str, Any], exe: Path | None = None) -> bool:
    """A probe this pytest process holds on the panics crate (or on `exe`): another
    session tracing at the same time must not make these tests fail."""
    filename = str(probe.get("filename", ""))  # BCC attaches through /proc/PID/root/...
    where = str(exe.resolve()) if exe is not None else CRATE
    return probe.get("pid") == os.getpid() and (
        filename.endswith(where) if exe is not None else where in filename
    )


@pytest.fixture(autouse=True)
def nothing_left_attached(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "uprobe_trace" not in request.fixturenames:
        return
    left = [p for p in attached_uprobes() if ours(p)]
    assert left == [], f"uprobes still attached after the test: {left}"


# -- (1) a probed function panics inside catch_unwind, and without it ------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_caught_panics_unwind_the_probed_frame(
    uprobe_trace: Tracer, cargo_bin: CargoBin, profile: str
) -> None:
    exe = cargo_bin(CRATE, profile=profile)
    inputs = [4, 3, 6, 5, 8, 7]  # ends with a panic: that frame is closed by the exit
    argv = command(exe, "catch", *inputs)
    env = quiet_env()
    plain = untraced(argv, env)
    trace = uprobe_trace.run(argv, probes=["panics::checked_half"], env=env)
    assert_same_as_untraced(trace, plain)
    assert trace.returncode == 0
    assert trace.stderr.count("panicked at") == 3
    assert "odd input 3" in trace.stderr and "odd input 7" in trace.stderr

    said = printed(trace.stdout)
    assert said == {("checked_half", n): (None if n % 2 else n // 2) for n in inputs}
    half = trace["panics::checked_half"]
    assert half.call_count == len(inputs)
    assert [outcome(c) for c in half.calls] == [
        expected_outcome(n, said[("checked_half", n)]) for n in inputs
    ]
    assert not any(c.tail_call for c in half.calls)
    assert len({c.tid for c in half.calls}) == 1


@pytest.mark.parametrize("profile", PROFILES)
def test_an_uncaught_panic_exits_101_like_the_untraced_run(
    uprobe_trace: Tracer, cargo_bin: CargoBin, profile: str
) -> None:
    exe = cargo_bin(CRATE, profile=profile)
    argv = command(exe, "uncaught", "2", "10", "5", "4")  # 5 panics; 4 is never reached
    env = quiet_env()
    plain = untraced(argv, env)
    trace = uprobe_trace.run(argv, probes=["panics::checked_half"], env=env)
    assert_same_as_untraced(trace, plain)
    assert trace.returncode == 101
    assert "failed to initiate panic" not in trace.stderr
    assert "odd input 5" in trace.stderr
    assert printed(trace.stdout) == {("checked_half", 2): 1, ("checked_half", 10): 5}
    assert [outcome(c) for c in trace["panics::checked_half"].calls] == [
        expected_outcome(2, 1),
        expected_outcome(10, 5),
        expected_outcome(5, None),
    ]


# -- (2) the panic unwinds through two probed frames ------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_a_panic_unwinds_through_two_probed_frames(
    uprobe_trace: Tracer, cargo_bin: CargoBin, profile: str
) -> None:
    exe = cargo_bin(CRATE, profile=profile)
    inputs = [2, -1, 3, -4]
    argv = command(exe, "nested", *inputs)
    env = quiet_env()
    plain = untraced(argv, env)
    trace = uprobe_trace.run(argv, probes=["panics::outer", "panics::inner"], env=env)
    assert_same_as_untraced(trace, plain)
    assert trace.returncode == 0
    assert trace.stderr.count("panicked at") == 2

    said = printed(trace.stdout)
    assert said == {("outer", n): (None if n < 0 else 3 * n + 1) for n in inputs}
    outer, inner = trace["panics::outer"], trace["panics::inner"]
    assert outer.call_count == inner.call_count == len(inputs)
    assert [outcome(c) for c in outer.calls] == [
        expected_outcome(n, said[("outer", n)]) for n in inputs
    ]
    assert [outcome(c) for c in inner.calls] == [
        expected_outcome(n, None if n < 0 else 3 * n) for n in inputs
    ]
    # Each inner call ran inside its own outer call, on the same thread.
    for o, i in zip(outer.calls, inner.calls):
        assert o.tid == i.tid and o.ts_ns < i.ts_ns
        if i.returned:
            assert o.return_ts_ns is not None and i.return_ts_ns is not None
            assert i.return_ts_ns < o.return_ts_ns


@pytest.mark.parametrize("profile", PROFILES)
def test_the_panic_backtrace_through_probed_frames_is_unchanged(
    uprobe_trace: Tracer, cargo_bin: CargoBin, profile: str
) -> None:
    exe = cargo_bin(CRATE, profile=profile)
    argv = command(exe, "nested", "-1")
    env = quiet_env(RUST_BACKTRACE="1")
    plain = untraced(argv, env)
    trace = uprobe_trace.run(argv, probes=["panics::outer", "panics::inner"], env=env)
    assert_same_as_untraced(trace, plain)
    assert re.search(r"panics::inner\n.*\n.*panics::outer", trace.stderr)


# -- (3) a spawned thread panics; join() returns Err ------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_a_panicking_thread_is_recorded_on_its_own_tid(
    uprobe_trace: Tracer, cargo_bin: CargoBin, profile: str
) -> None:
    exe = cargo_bin(CRATE, profile=profile)
    argv = command(exe, "thread", "4", "7")
    env = quiet_env()
    plain = untraced(argv, env)
    trace = uprobe_trace.run(argv, probes=["panics::checked_half"], env=env)
    assert_same_as_untraced(trace, plain)
    assert trace.returncode == 0
    assert "checked_half(4) = 2 on main" in trace.stdout
    assert "thread: checked_half(7) panicked; join returned Err" in trace.stdout

    on_main, on_thread = trace["panics::checked_half"].calls
    assert outcome(on_main) == expected_outcome(4, 2)
    assert outcome(on_thread) == expected_outcome(7, None)
    assert on_thread.tid != on_main.tid
    # Since Rust 1.89 the panic message names the panicking thread's id: the probe saw it.
    assert "thread '<unnamed>'" in trace.stderr
    names = THREAD_ID.findall(trace.stderr)
    if names:
        assert names == [("<unnamed>", str(on_thread.tid))]


# -- (4) several return paths -----------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_every_return_path_reports_its_value(
    uprobe_trace: Tracer, cargo_bin: CargoBin, profile: str
) -> None:
    exe = cargo_bin(CRATE, profile=profile)
    function = uprobe_trace.plan(exe, ["panics::classify"]).functions[0]
    if len(function.shape.returns) < 2:
        pytest.skip(f"the {profile} build of classify has {len(function.shape.returns)} ret")
    assert function.return_mode is ReturnMode.RET_SITES
    # Every path: negative, zero, n % 4 == 0, 1, 2, 3 (small), 3 (large).
    inputs = [-3, 0, 8, 5, 6, 7, 2003, 12, 1]
    argv = command(exe, "returns", *inputs)
    plain = untraced(argv, quiet_env())
    trace = uprobe_trace.run(argv, probes=["panics::classify"], env=quiet_env())
    assert_same_as_untraced(trace, plain)
    said = printed(trace.stdout)
    assert len(said) == len(inputs)
    assert [outcome(c) for c in trace["panics::classify"].calls] == [
        expected_outcome(n, said[("classify", n)]) for n in inputs
    ]


# -- (5) tail calls ---------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("callees_probed", [False, True], ids=["alone", "with-callees"])
def test_a_tail_calling_function_is_recorded_returned(
    uprobe_trace: Tracer, cargo_bin: CargoBin, profile: str, callees_probed: bool
) -> None:
    exe = cargo_bin(CRATE, profile=profile)
    shape = uprobe_trace.plan(exe, ["panics::forward"]).functions[0].shape
    if not shape.tail_calls:
        pytest.skip(f"the {profile} build of forward makes no tail call")
    inputs = [5, 500, 100, 101]  # <= 100 ends in grow(n + 1), > 100 in shrink(n + 1)
    argv = command(exe, "tail", *inputs)
    probes = ["panics::forward"]
    if callees_probed:
        probes += ["panics::grow", "panics::shrink"]
    plain = untraced(argv, quiet_env())
    trace = uprobe_trace.run(argv, probes=probes, env=quiet_env())
    assert_same_as_untraced(trace, plain)
    said = printed(trace.stdout)
    values = [said[("forward", n)] for n in inputs]
    assert values == [(n + 1) * 10 + 7 if n <= 100 else (n + 1) // 10 - 7 for n in inputs]

    forward = trace["panics::forward"]
    assert forward.args_list == [(n,) for n in inputs]
    assert all(c.returned and not c.unwound for c in forward.calls), trace.log()
    # Calls into a callee the plan found a jump to must be tail calls; the others return.
    jumped_to = _tail_targets(uprobe_trace, exe)
    for n, call, value in zip(inputs, forward.calls, values):
        callee = "panics::grow" if n <= 100 else "panics::shrink"
        assert call.tail_call == (callee in jumped_to), trace.log()
        if call.tail_call and not callees_probed:
            assert isinstance(call.retval, Unavailable)
            assert call.retval.reason == f"tail call into {callee}"
        else:
            assert call.retval == value, trace.log()
    if callees_probed:
        grow, shrink = trace["panics::grow"], trace["panics::shrink"]
        assert grow.args_list == [(n + 1,) for n in inputs if n <= 100]
        assert shrink.args_list == [(n + 1,) for n in inputs if n > 100]
        assert grow.retvals == [v for n, v in zip(inputs, values) if n <= 100]
        assert shrink.retvals == [v for n, v in zip(inputs, values) if n > 100]


def cmp_flags(a: int, b: int) -> int:
    """RFLAGS after the 64-bit `cmp a, b` (a - b): CF, ZF, SF and OF."""
    mask = (1 << 64) - 1
    result = (a - b) & mask
    signed = lambda v: v - (1 << 64) if v >> 63 else v  # noqa: E731
    flags = 0
    if (a & mask) < (b & mask):
        flags |= 1 << 0
    if result == 0:
        flags |= 1 << 6
    if result >> 63:
        flags |= 1 << 7
    if signed(a & mask) - signed(b & mask) != signed(result):
        flags |= 1 << 11
    return flags


@pytest.mark.parametrize(
    "a, b", [(5, 100), (100, 100), (500, 100), (-3, 2), (2, -3), (-(2**63), 1)]
)
def test_conditional_tail_calls_read_their_condition_from_rflags(a: int, b: int) -> None:
    """No root needed: the decision events.py makes for a jcc probe, against Python's own
    comparison of the operands (signed jl/jg family, unsigned jb/ja family)."""
    flags = cmp_flags(a, b)
    ua, ub = a % 2**64, b % 2**64
    expected = {
        "je": a == b, "jne": a != b,
        "jl": a < b, "jle": a <= b, "jg": a > b, "jge": a >= b,
        "jb": ua < ub, "jbe": ua <= ub, "ja": ua > ub, "jae": ua >= ub,
    }  # fmt: skip
    assert {c: branch_taken(c, flags) for c in expected} == expected


def _tail_targets(tracer: Tracer, exe: Path) -> set[str]:
    plan = tracer.plan(exe, ["panics::forward"])
    return {
        plan.symbol_name_at(site.target) for site in plan.sites if site.kind is SiteKind.TAIL_CALL
    }


# -- (6) recursion ----------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_each_recursive_call_pairs_with_its_own_return(
    uprobe_trace: Tracer, cargo_bin: CargoBin, profile: str
) -> None:
    exe = cargo_bin(CRATE, profile=profile)
    depth = 9
    argv = command(exe, "recurse", depth)
    plain = untraced(argv, quiet_env())
    trace = uprobe_trace.run(argv, probes=["panics::tri"], env=quiet_env())
    assert_same_as_untraced(trace, plain)
    assert printed(trace.stdout) == {("tri", depth): depth * (depth + 1) // 2}
    calls = trace["panics::tri"].calls
    assert [outcome(c) for c in calls] == [
        expected_outcome(k, k * (k + 1) // 2) for k in range(depth, -1, -1)
    ]
    # Nested properly: the innermost call returns first.
    ends = [c.return_ts_ns for c in calls]
    assert all(e is not None for e in ends)
    assert ends == sorted(ends, key=lambda e: -(e or 0))


@pytest.mark.parametrize("profile", PROFILES)
def test_a_panic_at_the_bottom_unwinds_every_recursive_frame(
    uprobe_trace: Tracer, cargo_bin: CargoBin, profile: str
) -> None:
    exe = cargo_bin(CRATE, profile=profile)
    argv = command(exe, "recurse-panic", "5")
    plain = untraced(argv, quiet_env())
    trace = uprobe_trace.run(argv, probes=["panics::tri_or_panic"], env=quiet_env())
    assert_same_as_untraced(trace, plain)
    assert printed(trace.stdout) == {("tri_or_panic", 5): None}
    assert [outcome(c) for c in trace["panics::tri_or_panic"].calls] == [
        expected_outcome(k, None) for k in range(5, -1, -1)
    ]


# -- (7) a leaf gets a uretprobe, a non-leaf ret-site uprobes ---------------------------------


def file_offset(exe: Path, address: int) -> int:
    with exe.open("rb") as f:
        for segment in ELFFile(f).iter_segments():
            if segment["p_type"] != "PT_LOAD":
                continue
            start = segment["p_vaddr"]
            if start <= address < start + segment["p_filesz"]:
                return int(address - start + segment["p_offset"])
    raise AssertionError(f"{address:#x} is in no loaded segment of {exe}")


@pytest.mark.parametrize("profile", PROFILES)
def test_only_the_leaf_gets_a_uretprobe(
    uprobe_trace: Tracer, cargo_bin: CargoBin, profile: str, tmp_path: Path
) -> None:
    exe = cargo_bin(CRATE, profile=profile)
    probes = ["panics::leaf_mix", "panics::non_leaf"]
    plan = uprobe_trace.plan(exe, probes)
    leaf, non_leaf = plan.functions
    assert leaf.shape.is_leaf and leaf.return_mode is ReturnMode.URETPROBE
    assert not non_leaf.shape.is_leaf and non_leaf.return_mode is ReturnMode.RET_SITES
    want: list[tuple[str, int]] = []
    for site in plan.sites:
        kind = "uretprobe" if site.kind is SiteKind.URETPROBE else "uprobe"
        want.append((kind, file_offset(exe, site.address)))
    assert ("uretprobe", file_offset(exe, leaf.symbol.address)) in want
    assert [k for k, _ in want].count("uretprobe") == 1

    # What the kernel really has attached while the program runs (it waits for `go`).
    go = tmp_path / "go"
    argv = command(exe, "leaf", "9", "2")
    env = quiet_env(PANICS_GO=str(go))
    result: list[Trace] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(uprobe_trace.run(argv, probes=probes, env=env, timeout=60))
        except BaseException as exc:  # handed to the test thread
            failure.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        seen: list[tuple[str, int]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and runner.is_alive():
            seen = sorted((p["fd_type"], p["offset"]) for p in attached_uprobes() if ours(p, exe))
            if len(seen) >= len(want):
                break
            time.sleep(0.05)
    finally:
        go.touch()
        runner.join(90)
    assert not failure, failure
    assert seen == sorted(want)

    trace = result[0]
    plain = untraced(argv, quiet_env())  # no PANICS_GO: it does not wait
    assert_same_as_untraced(trace, plain)
    said = trace.stdout
    assert "leaf_mix(9, 2) = 25" in said and "non_leaf(9) = 33" in said
    mix = trace["panics::leaf_mix"]
    assert mix.args_list == [(9, 2), (9, 5)]
    assert mix.retvals == [(9 ^ (2 << 3)) | 1, (9 ^ (5 << 3)) | 1]
    assert [outcome(c) for c in trace["panics::non_leaf"].calls] == [
        expected_outcome(9, ((9 ^ (5 << 3)) | 1) & 0xFF)
    ]


# -- (8) a backtrace captured inside traced frames is unchanged -------------------------------

FRAME = re.compile(r"^\s*\d+: (.+)$", re.MULTILINE)


@pytest.mark.parametrize("profile", PROFILES)
def test_a_backtrace_inside_traced_frames_is_unchanged(
    uprobe_trace: Tracer, cargo_bin: CargoBin, profile: str
) -> None:
    exe = cargo_bin(CRATE, profile=profile)
    probes = ["panics::bt_capture", "panics::bt_outer"]
    plan = uprobe_trace.plan(exe, probes)
    assert all(f.return_mode is ReturnMode.RET_SITES for f in plan.functions)
    argv = command(exe, "backtrace", "20")
    plain = untraced(argv, quiet_env())
    trace = uprobe_trace.run(argv, probes=probes, env=quiet_env())
    frames = FRAME.findall(trace.stdout)
    assert frames == FRAME.findall(plain.stdout)
    assert frames[:3] == ["panics::bt_capture", "panics::bt_outer", "panics::main"]
    assert_same_as_untraced(trace, plain)
    assert printed(trace.stdout) == {("bt_outer", 20): 42}
    assert [outcome(c) for c in trace["panics::bt_outer"].calls] == [expected_outcome(20, 42)]
    assert [outcome(c) for c in trace["panics::bt_capture"].calls] == [expected_outcome(20, 21)]
