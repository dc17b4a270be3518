"""Futures by name on a std-only executor (example_crates/asyncs): a probe on an async fn,
an async block's enclosing fn or a hand-written `Future::poll` gives one call per future,
with its creation arguments, its polls (each with its thread), and its output, drop or
panic. Every expected value comes from what the program printed: each poll of `fetch`
prints one line with the OS thread id (`start` on the first, `resumed` on the others), and
the outputs are printed by the program too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_uprobe.futures import FutureCall, FutureOutcomeUnknown
from pytest_uprobe.trace import Trace
from pytest_uprobe.tracer import Tracer
from pytest_uprobe.values import Unavailable

CRATE = "example_crates/asyncs"
CargoBin = Callable[..., Path]
FETCH = "asyncs::fetch"
POLL_LINE = re.compile(r"^fetch (start|resumed) id=(\d+)(?: delay=\d+ label=\S+)? tid=(\d+)$", re.M)
DONE = re.compile(r"^fetch done id=(\d+) out=(\d+) tid=(\d+)$", re.M)


@pytest.fixture(params=["release", "dev"])
def exe(cargo_bin: CargoBin, request: pytest.FixtureRequest) -> Path:
    return cargo_bin(CRATE, profile=request.param)


def printed_polls(stdout: str) -> dict[int, list[int]]:
    """The thread of each poll of each fetch future, by id, from the program's lines."""
    polls: dict[int, list[int]] = {}
    for _, ident, tid in POLL_LINE.findall(stdout):
        polls.setdefault(int(ident), []).append(int(tid))
    return polls


def printed_outputs(stdout: str) -> dict[int, int]:
    return {int(i): int(out) for i, out, _ in DONE.findall(stdout)}


def by_id(trace: Trace) -> dict[int, FutureCall]:
    futures: dict[int, FutureCall] = {}
    for call in trace[FETCH].calls:
        assert isinstance(call, FutureCall)
        assert isinstance(call.args, tuple)
        futures[call.args[0]] = call
    return futures


def test_block_on_gives_one_call_per_future_with_its_polls_and_output(
    uprobe_trace: Tracer, exe: Path
) -> None:
    trace = uprobe_trace.run(
        [exe, "block_on"],
        probes=[
            FETCH,
            "asyncs::make_job",
            "<asyncs::Countdown as core::future::future::Future>::poll",
        ],
    )
    assert trace.returncode == 0
    fetch = trace[FETCH]
    # One future (not one call per poll), created with the arguments it was given.
    assert fetch.call_count == 1
    fetch.assert_called_once_with(1, 2, "ab")
    (future,) = fetch.calls
    assert isinstance(future, FutureCall)
    assert future.kwargs == {"id": 1, "delay": 2, "label": "ab"}
    printed = printed_polls(trace.stdout)[1]
    assert len(printed) == 3  # the program's own lines: start, resumed, resumed
    assert [p.tid for p in future.polls] == printed
    assert [p.result for p in future.polls] == ["pending", "pending", "ready"]
    assert future.completed
    assert future.retval == printed_outputs(trace.stdout)[1] == 1 * 100 + 2 + len("ab")
    assert fetch.retvals == [104]
    assert "block_on fetch -> 104" in trace.stdout

    # An async block's enclosing fn: the block's future, with make_job's arguments (`name`
    # is optimized out at the constructor's entry: it comes from the Unresumed state).
    job = trace["asyncs::make_job"]
    job.assert_called_once_with(7, "seven")
    assert job.calls[0].polls and len(job.calls[0].polls) == 2
    assert job.retvals == [7 * 3 + len("seven")]
    assert "block_on job -> 26" in trace.stdout

    # A hand-written Future: its value at the first poll; polls as the program printed.
    countdown = trace["<asyncs::Countdown as core::future::future::Future>::poll"]
    printed_countdown = re.findall(r"^countdown poll start=21 n=\d+ tid=(\d+)$", trace.stdout, re.M)
    (cd,) = countdown.calls
    assert isinstance(cd, FutureCall)
    assert [str(p.tid) for p in cd.polls] == printed_countdown
    assert cd.args == ({"start": 21, "n": 2},)
    assert cd.completed and cd.retval == 42
    # Countdown has no drop glue: a value abandoned unfinished and a new one in its memory
    # would read as one future, and the future says so.
    assert cd.identity_doubt is not None and "no drop glue" in cd.identity_doubt
    # Futures created and never polled cannot be seen for a hand-written Future: a bound.
    assert not countdown.complete
    with pytest.raises(Exception, match="first poll"):
        assert countdown.call_count == 1


def test_a_future_dropped_unfinished_and_one_dropped_unpolled(
    uprobe_trace: Tracer, exe: Path
) -> None:
    trace = uprobe_trace.run([exe, "select"], probes=[FETCH])
    assert trace.returncode == 0
    assert "select: first won with 302, dropping the second" in trace.stdout
    assert "dropped fetch 5 unpolled" in trace.stdout
    fetch = trace[FETCH]
    assert fetch.call_count == 3
    fetch.assert_has_calls([(5, 0, "zzz"), (3, 1, "x"), (4, 5, "yy")])
    futures = by_id(trace)
    printed = printed_polls(trace.stdout)
    assert futures[3].completed and futures[3].retval == printed_outputs(trace.stdout)[3] == 302
    assert [p.tid for p in futures[3].polls] == printed[3]
    # fetch(4, ..): polled once (its start line), then dropped by the select.
    assert [p.tid for p in futures[4].polls] == printed[4]
    assert len(printed[4]) == 1
    # In release its drop runs in drop glue inlined into drop_in_place<Select<..>>, with no
    # parameter in DWARF: the copy's first instruction loads the state's discriminant, and
    # its base register is the address dropped (futures._read_inlined_dropped_address).
    assert futures[4].dropped and not futures[4].completed
    assert futures[4].outcome == "dropped unfinished after 1 poll"
    assert isinstance(futures[4].retval, Unavailable)
    # fetch(5, ..): never polled (no line of its own), dropped.
    assert 5 not in printed
    assert futures[5].polls == []
    assert futures[5].dropped and futures[5].outcome == "dropped without being polled"


def test_a_future_never_finished_nor_dropped_says_so(uprobe_trace: Tracer, exe: Path) -> None:
    trace = uprobe_trace.run([exe, "leak"], probes=[FETCH])
    assert "leaked fetch 6" in trace.stdout
    (future,) = trace[FETCH].calls
    assert isinstance(future, FutureCall)
    assert future.args == (6, 4, "leak")
    assert [p.tid for p in future.polls] == printed_polls(trace.stdout)[6]
    assert not future.completed and not future.dropped
    assert future.outcome == "unfinished after 1 poll when the program ended, never dropped"
    assert isinstance(future.retval, Unavailable)


def test_futures_moving_between_worker_threads_stay_one_call_each(
    uprobe_trace: Tracer, exe: Path
) -> None:
    for _ in range(5):  # which worker takes a wake-up is the scheduler's choice
        trace = uprobe_trace.run([exe, "pool"], probes=[FETCH, "asyncs::explode"])
        printed = printed_polls(trace.stdout)
        if any(len(set(tids)) > 1 for tids in printed.values()):
            break
    else:
        pytest.fail(f"no future moved between threads in 5 runs: {printed}")
    fetch = trace[FETCH]
    assert fetch.call_count == 4
    outputs = printed_outputs(trace.stdout)
    futures = by_id(trace)
    assert sorted(futures) == [10, 11, 12, 13]
    for ident, future in futures.items():
        assert future.args == (ident, 3, "pool")
        assert [p.tid for p in future.polls] == printed[ident]  # thread of each poll
        assert future.threads == list(dict.fromkeys(printed[ident]))
        assert [p.result for p in future.polls] == ["pending"] * 3 + ["ready"]
        assert future.retval == outputs[ident] == ident * 100 + 3 + len("pool")
        assert f"pool fetch {ident} -> {outputs[ident]}" in trace.stdout
    assert any(len(f.threads) > 1 for f in futures.values())
    # A panic inside a task: its second poll unwound (the worker caught it).
    panicked = re.search(r"^explode panics code=9 tid=(\d+)$", trace.stdout, re.M)
    assert panicked is not None and "task panicked" in trace.stdout
    (boom,) = trace["asyncs::explode"].calls
    assert isinstance(boom, FutureCall)
    assert boom.args == (9,)
    assert [p.result for p in boom.polls] == ["pending", "panicked"]
    assert boom.polls[-1].tid == int(panicked[1])
    assert boom.unwound and not boom.completed
    assert boom.outcome == "panicked in its poll #2"
    assert isinstance(boom.retval, Unavailable)
    trace["asyncs::explode"].assert_called_once_with(9)


def test_a_future_whose_completion_cannot_be_seen_refuses_to_answer() -> None:
    future = FutureCall(function="f", path="f", args=(), kwargs={}, tid=1, ts_ns=0)
    future._completed = None
    future._unknown_why = "a poll's result is unknown"
    with pytest.raises(FutureOutcomeUnknown, match="a poll's result is unknown"):
        assert future.completed


def test_a_fn_that_only_makes_async_blocks_inside_is_a_plain_function(
    uprobe_trace: Tracer, exe: Path
) -> None:
    # asyncs::main builds async blocks for the pool but returns none: one call, not futures.
    trace = uprobe_trace.run([exe, "block_on"], probes=["asyncs::main", FETCH])
    main = trace["asyncs::main"]
    assert main.call_count == 1
    assert not isinstance(main.calls[0], FutureCall)
    assert main.calls[0].returned
    assert isinstance(trace[FETCH].calls[0], FutureCall)


def test_a_poll_inlined_into_a_loop_gives_no_silent_answer(uprobe_trace: Tracer, exe: Path) -> None:
    # local_sum is polled only by a block_on inlined into main: its poll is inlined into
    # block_on's loop, where one probe would count the loop's iterations, not the polls.
    trace = uprobe_trace.run([exe, "inlined"], probes=["asyncs::local_sum"])
    assert "block_on local_sum -> 5" in trace.stdout
    calls = trace["asyncs::local_sum"]
    calls.assert_called_once_with(2, 3)
    (future,) = calls.calls
    assert isinstance(future, FutureCall)
    if future.polls_complete:  # a compiler that kept the poll out of line: exact answers
        assert future.completed and future.retval == 5 and len(future.polls) == 2
        return
    with pytest.raises(FutureOutcomeUnknown, match="a loop inside the copy"):
        assert future.completed
    assert isinstance(future.retval, Unavailable)
    assert future.retval != 5


def test_an_inlined_copy_whose_executions_cannot_be_told_apart_is_named_not_dropped(
    uprobe_trace: Tracer, cargo_bin: CargoBin
) -> None:
    exe = cargo_bin(CRATE, profile="release")
    # The same copy probed by its own name: refused before the run, naming why (it used to
    # be dropped silently: "no function of that name", or a low count beside other copies).
    from pytest_uprobe.plan import UnprobeableSite

    with pytest.raises(UnprobeableSite, match="a loop inside the copy"):
        uprobe_trace.plan(exe, ["asyncs::local_sum::{async_fn#0}"])


GONE = re.compile(r"^gone done id=(\d+) rounds=(\d+) out=(\d+) tid=(\d+)$", re.M)


def test_an_async_fn_left_only_as_inlined_suspending_bodies_is_counted_where_polls_enter(
    uprobe_trace: Tracer, exe: Path
) -> None:
    # asyncs::gone has no #[inline(never)]: a release build inlines its constructor away and
    # keeps its poll body only as a copy inlined into gone_part, with block_on's loop around
    # it; LLVM duplicated the resume switch there (one for the first poll, one for the
    # others). Each poll enters the copy at one of the two, which load the state to jump on
    # it: the future is counted from its first poll, with its arguments from its state.
    if "release" in exe.parts:
        trace = uprobe_trace.run([exe, "gone"], probes=["asyncs::gone"])
        ((ident, rounds, out, tid),) = GONE.findall(trace.stdout)
        (future,) = trace["asyncs::gone"].calls
        assert isinstance(future, FutureCall)
        assert future.args == (int(ident), int(rounds))
        assert len(future.polls) == int(rounds) + 1
        assert future.threads == [int(tid)]
        assert future.polls_complete and not future.created
        # The last poll is inlined: it has no return, so its output is not known.
        assert [p.result for p in future.polls[:-1]] == ["pending"] * int(rounds)
        with pytest.raises(FutureOutcomeUnknown):
            assert future.completed
        return
    # The dev build keeps both out of line: one future, exact, as the program printed.
    trace = uprobe_trace.run([exe, "gone"], probes=["asyncs::gone"])
    ((ident, rounds, out, tid),) = GONE.findall(trace.stdout)
    gone = trace["asyncs::gone"]
    gone.assert_called_once_with(int(ident), int(rounds))
    (future,) = gone.calls
    assert isinstance(future, FutureCall)
    assert future.completed and future.retval == int(out)
    assert len(future.polls) == int(rounds) + 1  # suspended once per round
    assert future.threads == [int(tid)]


def test_a_glob_picks_up_async_fns_as_futures(uprobe_trace: Tracer, exe: Path) -> None:
    """`asyncs::*` matches fetch (and its poll body and drop glue): under the glob, each
    fetch future is one call in place of its constructor call, its polls and drops are
    no calls of their own, and `trace["asyncs::fetch"]` holds the same futures."""
    trace = uprobe_trace.run([exe, "select"], probes=["asyncs::*"])
    assert trace.returncode == 0
    under_glob = [c for c in trace["asyncs::*"].calls if isinstance(c, FutureCall)]
    assert sorted(c.args[0] for c in under_glob) == [3, 4, 5]
    polls_or_drops = ("asyncs::fetch::{async_fn#0}", "drop_in_place<asyncs::fetch::")
    for calls in (trace["asyncs::*"].calls, trace.calls):
        assert not any(x in c.path for c in calls for x in polls_or_drops)
    futures = by_id(trace)
    assert {id(f) for f in futures.values()} == {id(c) for c in under_glob}
    printed = printed_polls(trace.stdout)
    assert [p.tid for p in futures[3].polls] == printed[3]
    assert futures[3].completed and futures[3].retval == printed_outputs(trace.stdout)[3]
    assert futures[4].outcome == "dropped unfinished after 1 poll"
    assert futures[5].outcome == "dropped without being polled"
    # trace.calls shows each future once, in place of its constructor call.
    assert sum(1 for c in trace.calls if isinstance(c, FutureCall)) == 3


def test_polls_in_the_timeline_and_in_trace_json(
    uprobe_trace: Tracer, exe: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each poll is a slice on the thread that ran it (as the program printed), each future
    one async track joined by flow arrows; `trace --json` lists the same polls."""
    import json

    from pytest_uprobe.cli import main
    from pytest_uprobe.timeline import chrome_trace
    from tests.trace_event_format import problems

    trace = uprobe_trace.run([exe, "pool"], probes=[FETCH])
    printed = printed_polls(trace.stdout)
    doc = chrome_trace(trace)
    assert problems(doc) == []
    events = doc["traceEvents"]
    for ident in by_id(trace):
        (track,) = [e for e in events if e["ph"] == "b" and e["args"]["call"].startswith(
            f"asyncs::fetch({ident},")]  # fmt: skip
        polls = [e for e in events if e["ph"] == "X" and e["cat"] == "poll"
                 and e["args"]["future"] == track["args"]["call"]]  # fmt: skip
        assert [e["tid"] for e in polls] == printed[ident]
        assert [e["args"]["result"] for e in polls] == ["pending"] * 3 + ["ready"]
        flows = [e for e in events if e["ph"] in "stf" and e.get("id") == track["id"]]
        assert [e["tid"] for e in flows] == printed[ident]
    assert main(["trace", "-p", FETCH, "--json", "--", str(exe), "pool"]) == 0
    out = json.loads(capsys.readouterr().out)
    futures = [c for c in out["calls"] if "future" in c]
    printed = printed_polls(out["stdout"])
    assert sorted(c["args"][0] for c in futures) == sorted(printed) == [10, 11, 12, 13]
    for c in futures:
        assert [p["tid"] for p in c["future"]["polls"]] == printed[c["args"][0]]
        assert c["future"]["completed"] is True
        assert c["future"]["outcome"] == "completed after 4 polls"
