"""Futures by name on tokio's multi-thread runtime (example_crates/asyncs_tokio, built
offline against Debian's librust-tokio-dev). Expected values come from the program's own
lines: each poll of `fetch` prints its OS thread id. Where tokio's code inlines a future's
poll or its drop glue, the probes cannot see the state's address or the poll's result: those
futures must say so (Unavailable, FutureOutcomeUnknown), never claim an outcome.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_uprobe.futures import FutureCall, FutureOutcomeUnknown
from pytest_uprobe.trace import Trace
from pytest_uprobe.tracer import Tracer
from pytest_uprobe.values import Unavailable

CRATE = "example_crates/asyncs_tokio"
REGISTRY = Path("/usr/share/cargo/registry")
CargoBin = Callable[..., Path]
FETCH = "asyncs_tokio::fetch"
POLL_LINE = re.compile(
    r"^fetch (?:start|resumed) id=(\d+)(?: hops=\d+ label=\S+)? tid=(\d+)$", re.M
)
DONE = re.compile(r"^fetch done id=(\d+) out=(\d+) tid=\d+$", re.M)

pytestmark = pytest.mark.skipif(
    not any(REGISTRY.glob("tokio-1.*")) or shutil.which("cargo") is None,
    reason="needs Debian's librust-tokio-dev (apt-get install -y librust-tokio-dev) and cargo",
)


@pytest.fixture
def exe(cargo_bin: CargoBin) -> Path:
    return cargo_bin(CRATE, profile="release")


def quiet() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}


def futures_of(trace: Trace, name: str) -> dict[int, FutureCall]:
    found: dict[int, FutureCall] = {}
    for call in trace[name].calls:
        assert isinstance(call, FutureCall) and isinstance(call.args, tuple)
        found[call.args[0]] = call
    return found


def test_spawned_futures_polled_on_several_worker_threads(uprobe_trace: Tracer, exe: Path) -> None:
    for _ in range(5):  # which worker runs a task is tokio's choice
        trace = uprobe_trace.run([exe, "multi"], probes=[FETCH], env=quiet())
        printed: dict[int, list[int]] = {}
        for ident, tid in POLL_LINE.findall(trace.stdout):
            printed.setdefault(int(ident), []).append(int(tid))
        if any(len(set(t)) > 1 for t in printed.values()):
            break
    else:
        pytest.fail(f"no task moved between tokio's workers in 5 runs: {printed}")
    assert trace.returncode == 0
    fetch = trace[FETCH]
    assert fetch.call_count == 6
    outputs = {int(i): int(o) for i, o in DONE.findall(trace.stdout)}
    futures = futures_of(trace, FETCH)
    assert sorted(futures) == [1, 2, 3, 4, 5, 6]
    for ident, future in futures.items():
        assert future.args == (ident, 6, "mt")
        assert [p.tid for p in future.polls] == printed[ident]  # 7 polls, each on its thread
        assert future.completed
        assert future.retval == outputs[ident] == ident * 100 + 6 + 2
        assert f"spawned fetch {ident} -> {outputs[ident]}" in trace.stdout
    assert any(len(f.threads) > 1 for f in futures.values())


def test_join_polls_inlined_where_the_state_is_unknown_say_so(
    uprobe_trace: Tracer, exe: Path
) -> None:
    trace = uprobe_trace.run([exe, "join"], probes=[FETCH], env=quiet())
    assert "join -> 2002 2104" in trace.stdout
    fetch = trace[FETCH]
    assert fetch.call_count == 2  # the constructor calls: exact
    fetch.assert_has_calls([(20, 1, "a"), (21, 2, "bb")])
    for future in fetch.calls:
        assert isinstance(future, FutureCall)
        if future.polls_complete and future.completed:
            continue  # this build kept the poll out of line: its answers are exact
        with pytest.raises(FutureOutcomeUnknown):
            assert future.completed
        assert isinstance(future.retval, Unavailable)
        assert future.retval != 2002 and future.retval != 2104


def test_select_and_abort_cancel_futures_without_a_wrong_answer(
    uprobe_trace: Tracer, exe: Path
) -> None:
    trace = uprobe_trace.run([exe, "select"], probes=[FETCH, "asyncs_tokio::slow"], env=quiet())
    assert "select: fetch won with 3002" in trace.stdout
    assert "abort -> cancelled=true" in trace.stdout
    assert "slow done" not in trace.stdout  # both slow futures were cancelled
    slow = futures_of(trace, "asyncs_tokio::slow")
    assert sorted(slow) == [31, 32]
    assert slow[31].args == (31, "cancelled") and slow[32].args == (32, "aborted")
    for future in slow.values():
        # Polled once (its start line), never completed: dropped, or unknown and saying why.
        # Polls inside tokio's select! run in an inlined copy no probe can count: then the
        # polls seen are a lower bound, and say so.
        assert len(future.polls) == 1 or (not future.polls_complete and not future.polls)
        started = re.search(rf"^slow start id={future.args[0]} \S+ tid=(\d+)$", trace.stdout, re.M)
        assert started is not None
        assert [p.tid for p in future.polls] in ([int(started[1])], [])
        assert isinstance(future.retval, Unavailable)
        with contextlib.suppress(FutureOutcomeUnknown):
            assert not future.completed
        assert "unknown" in future.outcome or future.dropped, future.outcome
    (won,) = trace[FETCH].calls
    assert won.args == (30, 1, "s")
    assert won.retval == 3002 or isinstance(won.retval, Unavailable)


def test_a_panic_inside_a_task(uprobe_trace: Tracer, exe: Path) -> None:
    trace = uprobe_trace.run([exe, "panic"], probes=["asyncs_tokio::boom"], env=quiet())
    assert "boom task -> panic=true" in trace.stdout
    printed = re.search(r"^boom panics code=7 label=task tid=(\d+)$", trace.stdout, re.M)
    assert printed is not None
    (boom,) = trace["asyncs_tokio::boom"].calls
    assert isinstance(boom, FutureCall)
    assert boom.args == (7, "task")
    assert [p.result for p in boom.polls] == ["pending", "panicked"]
    assert boom.polls[-1].tid == int(printed[1])
    assert boom.unwound and not boom.completed
    assert isinstance(boom.retval, Unavailable)
