"""Raw events -> Calls: decode values, and pair entries with returns per thread by frame.

A return belongs to the pending entry of the same function on the same thread whose
canonical frame address (CFA) it shares: nested and recursive calls have lower CFAs, so
they never mix. An entry at the same or a higher CFA than a pending one proves that frame
is gone without returning: it was unwound by a panic (or left by a longjmp-like exit).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .bpf.session import RawEvent
from .code import branch_taken
from .plan import PlannedFunction, ProbePlan, SiteKind, Value
from .trace import Call
from .values import Unavailable


@dataclass
class _Frame:
    cfa: int
    function: int
    call: Call


@dataclass
class _Thread:
    frames: list[_Frame] = field(default_factory=list)  # innermost last (lowest CFA)
    tail_callers: list[tuple[int, int | None, Call]] = field(default_factory=list)


def build_calls(plan: ProbePlan, events: Iterable[RawEvent], *, exited: bool) -> list[Call]:
    """Every call, in entry order. `exited`: the process ended by itself (not by a signal),
    so frames still pending at the end were left without a return."""
    calls: list[Call] = []
    threads: dict[int, _Thread] = {}
    tail_callers_of: dict[int, list[Call]] = {}  # id(callee call) -> calls that jumped to it
    for event in events:
        site = plan.sites[event.site]
        function = plan.functions[site.function]
        thread = threads.setdefault(event.tid, _Thread())
        if site.kind is SiteKind.INLINED:
            # No frame of its own: nothing to pair, and no return to wait for.
            copy = function.inlined
            call = _call(function, event)
            _set_caller(call, thread)
            call.retval = _decode(function.returns, event) if function.returns else None
            call.inlined = True
            call.inlined_into = copy.describe() if copy is not None else None
            calls.append(call)
            continue
        if site.kind is SiteKind.ENTRY:
            _drop_frames(thread, event.cfa)
            call = _call(function, event)
            _set_caller(call, thread)
            for cfa, target, caller in thread.tail_callers:
                if cfa == event.cfa and target == function.symbol.address:
                    tail_callers_of.setdefault(id(call), []).append(caller)
            thread.tail_callers = [t for t in thread.tail_callers if t[0] > event.cfa]
            thread.frames.append(_Frame(event.cfa, site.function, call))
            calls.append(call)
            continue
        if site.condition is not None and not branch_taken(site.condition, event.words[0]):
            continue  # a conditional tail call that did not jump: the function goes on
        frame = _pop_frame(thread, event.cfa, site.function)
        if frame is None:
            continue  # no entry seen for this frame: nothing to pair with
        call = frame.call
        call.returned = True
        call.return_ts_ns = event.ts
        if site.kind is SiteKind.TAIL_CALL:
            call.tail_call = True
            callee = plan.symbol_name_at(site.target)
            call.retval = Unavailable(f"tail call into {callee}")
            thread.tail_callers.append((event.cfa, site.target, call))
            continue
        value = _decode(function.returns, event) if function.returns is not None else None
        call.retval = value
        for caller in tail_callers_of.pop(id(call), ()):
            caller.retval = value
    for thread in threads.values():
        for frame in thread.frames:
            frame.call.unwound = exited
    return calls


def _decode(value: Value, event: RawEvent) -> Any:
    return value.decode(event.words, event.data, event.failed)


def _call(function: PlannedFunction, event: RawEvent) -> Call:
    values = [_decode(v, event) for v in function.params]
    unknown = function.unknown_arguments  # never () for "the parameters are unknown"
    return Call(
        function=function.probe,
        path=function.symbol.path,
        args=tuple(values) if unknown is None else unknown,
        kwargs={v.name: value for v, value in zip(function.params, values)}
        if unknown is None
        else unknown,
        tid=event.tid,
        ts_ns=event.ts,
    )


def _set_caller(call: Call, thread: _Thread) -> None:
    """The nearest traced caller: the innermost frame still pending on the call's thread."""
    call.caller = thread.frames[-1].call if thread.frames else None
    call.depth = len(thread.frames)


def _drop_frames(thread: _Thread, cfa: int) -> None:
    """A new frame at `cfa` replaces every pending frame at or below that height."""
    keep: list[_Frame] = []
    for frame in thread.frames:
        if frame.cfa <= cfa:
            frame.call.unwound = True
        else:
            keep.append(frame)
    thread.frames = keep


def _pop_frame(thread: _Thread, cfa: int, function: int) -> _Frame | None:
    for i in range(len(thread.frames) - 1, -1, -1):
        frame = thread.frames[i]
        if frame.cfa == cfa and frame.function == function:
            for inner in thread.frames[i + 1 :]:
                inner.call.unwound = True
            del thread.frames[i:]
            return frame
    return None


def entry_counts(plan: ProbePlan, site_counts: Sequence[int]) -> dict[str, int]:
    """Calls per probe name, from the kernel's per-site counters of entry sites."""
    totals = dict.fromkeys(plan.probes, 0)
    for site, count in zip(plan.sites, site_counts):
        if site.kind.starts_a_call:
            totals[plan.functions[site.function].probe] += count
    return totals
