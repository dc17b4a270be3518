"""Futures in the trace-event JSON: a hand-built future polled on two threads (no root, no
compiler). Every expected time is arithmetic on the nanosecond timestamps given here."""

from __future__ import annotations

from pytest_uprobe.futures import FutureCall, PollRecord
from pytest_uprobe.timeline import chrome_trace
from pytest_uprobe.trace import Call, FunctionTrace, Trace
from tests.trace_event_format import problems

PID = 4000
WORKER = 4001


def future_run(*, completed: bool) -> tuple[Trace, FutureCall]:
    main = Call("demo::main", "demo::main", (), {}, PID, 1_000, returned=True, return_ts_ns=90_000)
    future = FutureCall(
        function="demo::fetch",
        path="demo::fetch",
        args=(7,),
        kwargs={"id": 7},
        tid=PID,
        ts_ns=2_000,
        polls=[
            PollRecord(PID, 10_000, "pending", 12_000),
            PollRecord(WORKER, 20_000, "pending", 21_000),
            PollRecord(PID, 30_000, "ready" if completed else "pending", 33_000),
        ],
        state_address=0x5000,
        created=True,
    )
    if not completed:
        future.dropped, future.drop_tid, future.drop_ts_ns = True, WORKER, 40_000
        future.outcome = "dropped unfinished after 3 polls"
    else:
        future.outcome = "completed after 3 polls"
    calls = [main, future]
    trace = Trace(["/demo"], 0, "", "", calls=calls, pid=PID)
    trace.functions["demo::main"] = FunctionTrace("demo::main", [main])
    trace.functions["demo::fetch"] = FunctionTrace("demo::fetch", [future])
    return trace, future


def events_of(trace: Trace, phase: str) -> list[dict]:
    return [e for e in chrome_trace(trace)["traceEvents"] if e.get("ph") == phase]


def test_each_poll_is_a_slice_on_the_thread_that_ran_it() -> None:
    trace, _ = future_run(completed=True)
    polls = [e for e in events_of(trace, "X") if e["cat"] == "poll"]
    assert [(e["tid"], e["ts"], e["dur"]) for e in polls] == [
        (PID, 9.0, 2.0),  # 10 000 - 1 000 ns since the first call, 2 000 ns long
        (WORKER, 19.0, 1.0),
        (PID, 29.0, 3.0),
    ]
    assert [e["args"]["result"] for e in polls] == ["pending", "pending", "ready"]
    assert not any(e["name"] == "demo::fetch" for e in events_of(trace, "X"))
    assert problems(chrome_trace(trace)) == []


def test_the_future_is_one_async_track_from_creation_to_completion() -> None:
    trace, _ = future_run(completed=True)
    ((begin,), (end,)) = events_of(trace, "b"), events_of(trace, "e")
    assert begin["id"] == end["id"] and begin["cat"] == end["cat"] == "future"
    assert (begin["ts"], end["ts"]) == (1.0, 32.0)  # created at 2 000, ready at 33 000
    assert begin["args"]["outcome"] == "completed after 3 polls"
    assert begin["args"]["state_address"] == "0x5000"


def test_a_dropped_future_ends_at_its_drop_and_flows_join_its_polls() -> None:
    trace, _ = future_run(completed=False)
    (end,) = events_of(trace, "e")
    assert end["ts"] == 39.0  # dropped at 40 000
    flows = [e for e in chrome_trace(trace)["traceEvents"] if e.get("ph") in ("s", "t", "f")]
    assert [(e["ph"], e["tid"]) for e in flows] == [("s", PID), ("t", WORKER), ("f", PID)]
    assert len({e["id"] for e in flows}) == 1
