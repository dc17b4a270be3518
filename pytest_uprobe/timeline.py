"""One traced run as a Chrome trace-event JSON file (the "JSON Array/Object Format" that
ui.perfetto.dev and chrome://tracing open as is), and the layout it shares with the SVG
picture: where each call starts and ends on its thread.

Out-of-line calls are complete slices ('X' events), inlined hits are thread-scoped instant
events ('i'). A future (futures.FutureCall) is an async track ('b'/'e') from its creation
to its completion or drop, each of its polls a slice on the thread that ran it, joined by
flow arrows ('s'/'t'/'f').

A call with no return (unwound by a panic, or still running when the process ended) has
no end time: its slice ends at the latest moment it can have ended (the next
traced event at its depth or shallower on its thread, its caller's return, or the end of
the trace), and its args say so; an instant event marks where an unwind was noticed.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .trace import Call, Trace
from .values import Unavailable

MAX_VALUE_TEXT = 200  # characters of one rendered argument or return value


@dataclass(frozen=True)
class Span:
    """Where one call sits on its thread's time line, in ns since the run's first call."""

    call: Call
    start_ns: int
    end_ns: int  # the return for a returned call; the latest possible end otherwise
    end_known: bool  # False: the call never returned, `end_ns` is an upper bound

    @property
    def instant(self) -> bool:
        return self.call.inlined


def value_text(value: Any) -> str:
    """A decoded value as readable text: Unavailable as `<unavailable: why>`, everything
    else (Struct, Variant, Truncated, str, numbers) by its repr, cut to MAX_VALUE_TEXT."""
    text = f"<unavailable: {value.reason}>" if isinstance(value, Unavailable) else repr(value)
    if len(text) > MAX_VALUE_TEXT:
        text = text[: MAX_VALUE_TEXT - 3] + "..."
    return text


def call_text(call: Call) -> str:
    """`path(a, b) -> r`, with what happened instead of a return when there was none."""
    if isinstance(call.args, Unavailable):
        return f"{call.path}({value_text(call.args)}){_outcome_suffix(call)}"
    args = ", ".join(value_text(a) for a in call.args)
    return f"{call.path}({args}){_outcome_suffix(call)}"


def _outcome_suffix(call: Call) -> str:
    if call.tail_call:
        return f" -> tail call ({value_text(call.retval)})"
    if call.returned:
        return f" -> {value_text(call.retval)}"
    if call.inlined:
        return f" inlined into {call.inlined_into}" if call.inlined_into else " inlined"
    if call.unwound:
        return " unwound (panic), no return"
    return " did not return"


def outcome(call: Call) -> str:
    """One word for how the call ended: returned, tail-call, inlined, unwound, unfinished."""
    if call.tail_call:
        return "tail-call"
    if call.returned:
        return "returned"
    if call.inlined:
        return "inlined"
    return "unwound" if call.unwound else "unfinished"


def trace_end_ns(trace: Trace) -> int:
    """The last timestamp the run recorded (entry or return), absolute."""
    if not trace.calls:
        return 0
    return max(
        max(c.ts_ns for c in trace.calls),
        max((c.return_ts_ns for c in trace.calls if c.return_ts_ns is not None), default=0),
    )


def spans(trace: Trace) -> list[Span]:
    """Every call of `trace` (in its time order) with its start and end since the first
    call. Calls with no return get the latest end they can have had, so that slices of one
    thread still nest: never past their caller's end, nor past the next out-of-line call
    on their thread at their depth or shallower (which proves their frame gone)."""
    if not trace.calls:
        return []
    start = trace.calls[0].ts_ns
    last = trace_end_ns(trace)
    bound: dict[int, int] = {}  # id(call) -> absolute upper bound of its end
    open_by_thread: dict[int, list[Call]] = {}
    for call in trace.calls:
        if call.inlined or _is_future(call):
            continue  # a future holds no frame on a thread: its polls do
        pending = open_by_thread.setdefault(call.tid, [])
        still = []
        for other in pending:
            if other.depth >= call.depth:
                bound[id(other)] = call.ts_ns
            else:
                still.append(other)
        if call.return_ts_ns is None:
            still.append(call)
        open_by_thread[call.tid] = still
    ends: dict[int, int] = {}
    out = []
    for call in trace.calls:
        if call.inlined:
            out.append(Span(call, call.ts_ns - start, call.ts_ns - start, True))
            continue
        if _is_future(call):
            end, known = _future_end(call, last)
            out.append(Span(call, call.ts_ns - start, end - start, known))
            continue
        if call.return_ts_ns is not None:
            end, known = call.return_ts_ns, True
        else:
            end, known = bound.get(id(call), last), False
            if call.caller is not None and id(call.caller) in ends:
                end = min(end, ends[id(call.caller)])
            end = max(end, call.ts_ns)
        ends[id(call)] = end
        out.append(Span(call, call.ts_ns - start, end - start, known))
    return out


def _is_future(call: Call) -> bool:
    """A futures.FutureCall (that layer sits above this one: known by its attributes)."""
    return hasattr(call, "polls") and hasattr(call, "state_address")


def _future_end(future: Any, last: int) -> tuple[int, bool]:
    """When a future's life on the timeline ends: its completing poll's return, its drop,
    or (neither seen) the end of the trace, an upper bound."""
    ends = [p.return_ts_ns for p in future.polls if p.result == "ready" and p.return_ts_ns]
    if ends:
        return ends[0], True
    if future.drop_ts_ns is not None:
        return max(future.drop_ts_ns, future.ts_ns), True
    polled = [p.return_ts_ns or p.ts_ns for p in future.polls]
    return max([last, future.ts_ns, *polled]), False


def thread_label(trace: Trace, tid: int) -> str:
    if trace.pid is not None and tid == trace.pid:
        return f"main thread (tid {tid})"
    return f"thread {tid}"


def thread_order(trace: Trace) -> list[int]:
    """Threads by their first traced call, the main thread first."""
    tids = list(
        dict.fromkeys(
            tid
            for c in trace.calls
            for tid in (c.tid, *(p.tid for p in getattr(c, "polls", ())))  # a future's polls
        )
    )
    return sorted(tids, key=lambda t: (t != trace.pid, tids.index(t)))


def run_label(trace: Trace) -> str:
    """`args 1 2: exit status 0`, with the executable's file name only."""
    argv = [os.path.basename(trace.argv[0]), *trace.argv[1:]] if trace.argv else []
    status = f"exit status {trace.returncode}"
    if trace.returncode < 0:
        status = f"killed by signal {-trace.returncode}"
    if trace.timed_out:
        status += " (timed out)"
    return f"{shlex.join(argv)}: {status}"


def _us(ns: int) -> float:
    return round(ns / 1000, 3)  # trace-event times are microseconds; keep ns precision


def chrome_trace(trace: Trace) -> dict[str, Any]:
    """The trace-event document (JSON Object Format) of one run."""
    pid = trace.pid if trace.pid is not None else 1
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": pid, "args": {"name": run_label(trace)}}
    ]
    for index, tid in enumerate(thread_order(trace)):
        events.append(
            {"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
             "args": {"name": thread_label(trace, tid)}}
        )  # fmt: skip
        events.append(
            {"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid,
             "args": {"sort_index": index}}
        )  # fmt: skip
    main_tid = trace.pid if trace.pid is not None else 0
    if trace.lost_events:
        events.append(
            {
                "name": f"{trace.lost_events} events lost: this timeline is incomplete",
                "cat": "lost",
                "ph": "i",
                "s": "g",
                "ts": 0,
                "pid": pid,
                "tid": main_tid,
                "args": {"lost_events": trace.lost_events},
            }
        )
    if not trace.calls:
        events.append(
            {"name": "no calls traced", "cat": "run", "ph": "i", "s": "g", "ts": 0,
             "pid": pid, "tid": main_tid, "args": {}}
        )  # fmt: skip
    timed: list[dict[str, Any]] = []
    first = trace.calls[0].ts_ns if trace.calls else 0
    for number, span in enumerate(spans(trace)):
        if _is_future(span.call):
            timed.extend(_future_events(span, pid, number, first))
        else:
            timed.extend(_call_events(span, pid))
    # In time order (as viewers that stream the file expect): at equal times, instants (a
    # panic mark sits at the end of the slice it closes) before slices, and an enclosing
    # slice before the ones it contains.
    timed.sort(key=lambda e: (e["ts"], e["ph"] == "X", -e.get("dur", 0)))
    events.extend(timed)
    return {
        "traceEvents": events,
        "displayTimeUnit": "ns",
        "otherData": {
            "producer": "pytest-uprobe",
            "argv": shlex.join(trace.argv),
            "returncode": trace.returncode,
            "timed_out": trace.timed_out,
            "lost_events": trace.lost_events,
            "calls_counted": ", ".join(
                f"{name}: {f.call_count}" for name, f in trace.functions.items()
            ),
            "clock": "microseconds since the first traced call (kernel CLOCK_MONOTONIC)",
        },
    }


def _call_args(call: Call) -> dict[str, Any]:
    arguments: dict[str, Any]
    if isinstance(call.args, Unavailable) or isinstance(call.kwargs, Unavailable):
        arguments = {"arguments": value_text(call.args)}  # the parameter list is unknown
    elif call.kwargs and len(call.kwargs) == len(call.args):
        arguments = {name: value_text(v) for name, v in call.kwargs.items()}
    else:
        arguments = {str(i): value_text(v) for i, v in enumerate(call.args)}
    args: dict[str, Any] = {
        "call": call_text(call),
        "outcome": outcome(call),
        "probe": call.function,
        "depth": call.depth,
    }
    if arguments:
        args["args"] = arguments
    if call.returned and not call.tail_call:
        args["returned"] = value_text(call.retval)
    if call.caller is not None:
        args["caller"] = call.caller.path
    if call.inlined_into:
        args["inlined_into"] = call.inlined_into
    return args


def _future_events(span: Span, pid: int, number: int, start_ns: int) -> list[dict[str, Any]]:
    """A future as an async track (its life, from creation or first poll to completion or
    drop: 'b'/'e' events with its own id), each poll as a slice on the thread that ran it,
    and flow arrows from poll to poll, so a future that moves between threads reads as one.
    """
    future: Any = span.call
    ident = f"future-{number}"
    args = _call_args(future)
    args["outcome"] = future.outcome
    args["polls"] = len(future.polls)
    if future.state_address is not None:
        args["state_address"] = hex(future.state_address)
    if not span.end_known:
        args["end"] = "unknown: neither completion nor drop was seen; the track ends with the trace"
    base = {"name": future.function, "cat": "future", "pid": pid, "tid": future.tid, "id": ident}
    events: list[dict[str, Any]] = [
        {**base, "ph": "b", "ts": _us(span.start_ns), "args": args},
        {**base, "ph": "e", "ts": _us(span.end_ns), "args": {}},
    ]
    for n, poll in enumerate(future.polls, 1):
        begin = poll.ts_ns - start_ns
        end = (poll.return_ts_ns if poll.return_ts_ns is not None else poll.ts_ns) - start_ns
        slice_args = {"future": call_text(future), "poll": n, "result": poll.result}
        if poll.return_ts_ns is None:
            slice_args["end"] = "unknown: the poll's return was not seen (an instant)"
        events.append(
            {"name": f"poll {future.function}", "cat": "poll", "ph": "X", "pid": pid,
             "tid": poll.tid, "ts": _us(begin), "dur": _us(max(0, end - begin)),
             "args": slice_args}
        )  # fmt: skip
        if len(future.polls) > 1:  # arrows from each poll to the next, across threads
            phase = "s" if n == 1 else ("f" if n == len(future.polls) else "t")
            flow = {"name": future.function, "cat": "future", "ph": phase, "id": ident,
                    "pid": pid, "tid": poll.tid, "ts": _us(begin)}  # fmt: skip
            if phase == "f":
                flow["bp"] = "e"  # bind to the slice that encloses it, the poll
            events.append(flow)
    return events


def _call_events(span: Span, pid: int) -> list[dict[str, Any]]:
    call = span.call
    base = {"name": call.path, "pid": pid, "tid": call.tid, "ts": _us(span.start_ns)}
    args = _call_args(call)
    if call.inlined:
        return [{**base, "cat": "inlined", "ph": "i", "s": "t", "args": args}]
    if not span.end_known:
        why = "unwound by a panic" if call.unwound else "still running when the trace ended"
        args["end"] = f"unknown: {why}; the slice ends at the latest time the call can have ended"
    event = {
        **base,
        "cat": outcome(call),
        "ph": "X",
        "dur": _us(span.end_ns - span.start_ns),
        "args": args,
    }
    if not call.unwound:
        return [event]
    marker = {
        "name": f"panic unwound {call.path}",
        "cat": "unwound",
        "ph": "i",
        "s": "t",
        "pid": pid,
        "tid": call.tid,
        "ts": _us(span.end_ns),
        "args": {"call": call_text(call), "when": "at or before this time"},
    }
    return [event, marker]


def save_timeline(trace: Trace, path: str | os.PathLike[str]) -> Path:
    """Write `trace`'s trace-event JSON to `path` (its directory is made if missing)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="utf-8") as out:
        json.dump(chrome_trace(trace), out, separators=(",", ":"))
    return target


def counts_text(traces: Sequence[Trace]) -> str:
    """`args::hello: 2, args::main: 1` (per run, separated by `; ` when several)."""
    return "; ".join(
        ", ".join(f"{name}: {f.call_count}" for name, f in t.functions.items()) for t in traces
    )
