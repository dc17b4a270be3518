"""Release async fns whose constructor was inlined away and whose body exists only as
inlined copies that can suspend (example_crates/jobsched, `async` mode): futures are
counted at the one place each poll enters the copy (dwarf/coroutine_entry.py), their first
poll told by the state's Unresumed discriminant read there. Every expected value comes
from the program's own `ASYNC <name> args=(..) polls=N threads=T ret=R` lines, printed by
a wrapper that counts the polls and threads itself.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_uprobe.bounds import InexactCount
from pytest_uprobe.futures import FutureCall, FutureOutcomeUnknown
from pytest_uprobe.tracer import Tracer
from pytest_uprobe.values import Unavailable

CRATE = "example_crates/jobsched"
CargoBin = Callable[..., Path]
DONE = re.compile(r"^ASYNC (\w+) args=(\(.*\)) polls=(\d+) threads=(\d+) ret=(\d+)$", re.M)


class Printed:
    """One future as the program printed it when it completed."""

    def __init__(self, match: re.Match[str]) -> None:
        self.name = match[1]
        self.args = ast.literal_eval(match[2])
        self.polls = int(match[3])
        self.threads = int(match[4])
        self.ret = int(match[5])


def printed(stdout: str, name: str) -> list[Printed]:
    return [p for p in map(Printed, DONE.finditer(stdout)) if p.name == name]


@pytest.fixture
def exe(cargo_bin: CargoBin) -> Path:
    return cargo_bin(CRATE, profile="release")


def futures_of(trace, name: str) -> list[FutureCall]:
    calls = trace[name].calls
    assert all(isinstance(c, FutureCall) for c in calls)
    return list(calls)


def test_a_future_polled_on_two_threads_by_an_inlined_body(uprobe_trace: Tracer, exe: Path) -> None:
    """crunch's body runs only inlined into an async block, polled by a two-worker
    executor: one future, its arguments from its state, every poll and both threads."""
    trace = uprobe_trace.run([exe, "async", "3"], probes=["jobsched::crunch"])
    assert trace.returncode == 0, trace.stderr
    (want,) = printed(trace.stdout, "crunch")
    (future,) = futures_of(trace, "jobsched::crunch")
    assert future.args == want.args
    assert len(future.polls) == want.polls
    assert len(set(future.threads)) == want.threads == 2
    assert future.polls_complete
    assert not future.created  # its constructor is not in the binary
    # Futures are seen from their first poll: the count is a bound, and says so.
    ft = trace["jobsched::crunch"]
    assert any("seen from their first poll" in why for why in ft.left_out)
    with pytest.raises(InexactCount):
        assert ft.call_count == 1
    # Each poll but the last said Pending: the next poll found the state suspended. The
    # last one's result and the output are not in any state a probe can read.
    assert [p.result for p in future.polls[:-1]] == ["pending"] * (want.polls - 1)
    assert future.polls[-1].result.startswith("unknown")
    assert isinstance(future.retval, Unavailable)
    with pytest.raises(FutureOutcomeUnknown):
        assert future.completed


def test_an_inlined_executor_loop_around_an_inlined_body(uprobe_trace: Tracer, exe: Path) -> None:
    """block_on::<Counted<pipeline>> holds its poll loop and pipeline's body, both
    inlined: each poll still enters the body's copy at one place."""
    trace = uprobe_trace.run([exe, "async", "2"], probes=["jobsched::pipeline"])
    assert trace.returncode == 0, trace.stderr
    (want,) = printed(trace.stdout, "pipeline")
    (future,) = futures_of(trace, "jobsched::pipeline")
    assert future.args == want.args
    assert len(future.polls) == want.polls
    assert future.polls_complete


def test_the_poll_function_by_name_counts_every_poll(uprobe_trace: Tracer, exe: Path) -> None:
    """The body's copy, probed by its own name as a plain function: one call per poll
    (it was refused before: a probe at the copy's first line saw first polls only)."""
    name = "jobsched::crunch::{async_fn#0}"
    trace = uprobe_trace.run([exe, "async", "3"], probes=[name])
    (want,) = printed(trace.stdout, "crunch")
    assert trace[name].call_count == want.polls


def test_a_copy_that_never_reads_its_state_stays_left_out(uprobe_trace: Tracer, exe: Path) -> None:
    """fetch_input(7, 3) is made and polled in main, its body inlined there with the
    constructor: the copy never loads the state (the compiler knew it, and stores the
    argument 7 only after the copy begins), so neither its arguments nor which poll it
    runs can be read there. That copy is left out, naming why, and the other futures'
    polls are counted at their own copy, which reads its state."""
    trace = uprobe_trace.run([exe, "async", "3"], probes=["jobsched::fetch_input"])
    assert trace.returncode == 0, trace.stderr
    want = printed(trace.stdout, "fetch_input")
    futures = futures_of(trace, "jobsched::fetch_input")
    assert [f.args for f in futures] == [w.args for w in want]
    assert [len(f.polls) for f in futures] == [w.polls for w in want]
    ft = trace["jobsched::fetch_input"]
    assert any("jobsched::main" in why and "resumed where it last suspended" in why
               for why in ft.left_out)  # fmt: skip
    assert not any(f.polls_complete for f in futures)  # polls are a lower bound, said so
    assert all(f.outcome.startswith("unknown") for f in futures)
