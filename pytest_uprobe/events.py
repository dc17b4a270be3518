"""Raw events -> Calls: decode values, and pair entries with returns per thread by frame.

A return belongs to the pending entry of the same function on the same thread whose
canonical frame address (CFA) it shares: nested and recursive calls have lower CFAs, so
they never mix. An entry at the same or a higher CFA than a pending one proves that frame
is gone without a return the probes saw: it was unwound by a panic when one started inside
it, else it was left some other way (a tail call through a register, which no probe can
tell from a jump table, say), and the call says so rather than claim a panic.

A frame still pending when the process ended is "unwound" only when a panic started
inside it (the entry of `rust_panic`, watched for that, below its CFA) and the process did
not exit inside it; when the process exited in it (the entry of `std::process::exit` or
`abort` below its CFA), it "did not return: the process exited in it"; otherwise it "did
not return" with the way the process ended.

One event is one call, whatever the number of probe names that name its function: the
Call answers to each of them (Call.probes), and each name's count includes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .bpf.session import RawEvent
from .code import branch_taken
from .dwarf.inlined import InlinedSite
from .plan import PlannedFunction, ProbePlan, SiteKind, Value
from .trace import Call
from .values import Unavailable


@dataclass
class _Frame:
    cfa: int
    function: int
    call: Call
    panicked: bool = False  # a panic started inside this frame (deeper on its thread)
    exited_in: str | None = None  # the process began to end inside this frame: how


@dataclass
class _Thread:
    frames: list[_Frame] = field(default_factory=list)  # innermost last (lowest CFA)
    tail_callers: list[tuple[int, int | None, Call]] = field(default_factory=list)
    # The latest call of each probed inlined copy, per frame it ran in (by that frame's CFA):
    # a copy has no frame of its own, so its calls stay here until a deeper frame's
    # entry proves its host frame gone.
    copies: dict[InlinedSite, list[tuple[int, Call]]] = field(default_factory=dict)


class _CopyCode:
    """The code of the plan's probed inlined copies, to tell which copy (the innermost)
    holds a call instruction."""

    def __init__(self, plan: ProbePlan) -> None:
        spans: dict[tuple[int, int], InlinedSite] = {}
        for function in plan.functions:
            copy = function.inlined
            if copy is not None:
                for span in copy.ranges:
                    # Nested copies: the smaller span is the inner copy.
                    if span not in spans or _size(copy) < _size(spans[span]):
                        spans[span] = copy
        self.spans = sorted(spans.items())

    def holding(self, address: int) -> InlinedSite | None:
        found: InlinedSite | None = None
        for (low, high), copy in self.spans:
            if low > address:
                break
            if address < high and (found is None or _size(copy) < _size(found)):
                found = copy
        return found


def _size(copy: InlinedSite) -> int:
    return sum(high - low for low, high in copy.ranges)


def build_calls(plan: ProbePlan, events: Iterable[RawEvent], *, exited: bool) -> list[Call]:
    """Every call, in entry order. `exited`: the process ended by itself (not by a signal),
    so frames still pending at the end were left without a return."""
    calls: list[Call] = []
    threads: dict[int, _Thread] = {}
    copy_code = _CopyCode(plan)
    tail_callers_of: dict[int, list[Call]] = {}  # id(callee call) -> calls that jumped to it
    for event in events:
        site = plan.sites[event.site]
        function = plan.function(site.function)
        thread = threads.setdefault(event.tid, _Thread())
        if site.kind in (SiteKind.LINE, SiteKind.USDT):
            # A point in the code, not a call: no frame, no return (see points.py).
            call = _call(function, event)
            _set_caller(call, thread)
            if site.kind is SiteKind.LINE:
                call.locals = (
                    call.kwargs if isinstance(call.kwargs, Unavailable) else dict(call.kwargs)
                )
            call.at = function.point.describe() if function.point is not None else None
            calls.append(call)
            continue
        if site.kind is SiteKind.INLINED:
            # No frame of its own: nothing to pair, and no return to wait for.
            copy = function.inlined
            for _ in range(site.calls):  # entries that share this probe point
                call = _call(function, event)
                _set_caller(call, thread)
                call.retval = _decode(function.returns, event) if function.returns else None
                call.inlined = True
                call.inlined_into = copy.describe() if copy is not None else None
                calls.append(call)
            if copy is not None and copy_code.spans:
                ran = [c for c in thread.copies.get(copy, ()) if c[0] > event.cfa]
                thread.copies[copy] = [*ran, (event.cfa, call)]
            continue
        if site.kind is SiteKind.ENTRY and function.marker is not None:
            _mark(thread, function.marker, event.cfa)
            if not function.probes:
                continue
        if site.kind is SiteKind.ENTRY:
            _drop_frames(thread, event.cfa)
            call = _call(function, event)
            _set_caller(call, thread)
            if site.return_address_word is not None:
                returns_to, ip = event.words[site.return_address_word :][:2]
                loaded_at = ip - site.address  # where the file's code is mapped
                if loaded_at % 4096 == 0:  # else not the probed instruction's address
                    _set_inlined_caller(call, thread, copy_code, returns_to - loaded_at, event.cfa)
            for cfa, target, caller in thread.tail_callers:
                if cfa == event.cfa and target == function.symbol.address:
                    tail_callers_of.setdefault(id(call), []).append(caller)
            thread.tail_callers = [t for t in thread.tail_callers if t[0] > event.cfa]
            entered = _Frame(event.cfa, site.function, call)
            if function.marker in ("exit", "abort"):  # the user probes exit itself
                entered.exited_in = "aborted" if function.marker == "abort" else "exited"
            thread.frames.append(entered)
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
            _ended(frame, exited)
    return calls


def _mark(thread: _Thread, marker: str, cfa: int) -> None:
    """A marker's entry at `cfa`: every pending frame above it (higher CFA) holds it."""
    for frame in thread.frames:
        if frame.cfa > cfa:
            if marker == "panic":
                frame.panicked = True
            else:
                frame.exited_in = "aborted" if marker == "abort" else "exited"


def _ended(frame: _Frame, exited: bool) -> None:
    """How a frame still pending when the process ended, ended."""
    call = frame.call
    if frame.exited_in:
        call.ended = f"the process {frame.exited_in} in it"
    elif not exited:
        call.ended = "the process was killed while it ran"
    elif frame.panicked:
        call.unwound = True  # a panic started in it, and the process went on to exit
    else:
        call.ended = "the process ended while it ran"


def _decode(value: Value, event: RawEvent) -> Any:
    return value.decode(event.words, event.data, event.failed)


def _call(function: PlannedFunction, event: RawEvent) -> Call:
    values = [_decode(v, event) for v in function.params]
    unknown = function.unknown_arguments  # never () for "the parameters are unknown"
    return Call(
        function=function.probe,
        path=function.symbol.path,
        probes=function.probes,
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


def _set_inlined_caller(
    call: Call, thread: _Thread, code: _CopyCode, return_address: int, cfa: int
) -> None:
    """A call made from the code of a probed inlined copy: that copy's latest call in the
    calling frame (the innermost pending one above the callee's) is the nearest caller."""
    copy = code.holding(return_address - 1)  # the call instruction, before the return
    if copy is None:
        return
    above = [c for c in thread.copies.get(copy, ()) if c[0] > cfa]
    if above:
        call.caller = min(above, key=lambda c: c[0])[1]
        call.depth = len(thread.frames) + 1


def _drop_frames(thread: _Thread, cfa: int) -> None:
    """A new frame at `cfa` replaces every pending frame at or below that height."""
    keep: list[_Frame] = []
    for frame in thread.frames:
        if frame.cfa <= cfa:
            _gone(frame)
        else:
            keep.append(frame)
    thread.frames = keep


LEFT_UNSEEN = "its frame ended without a return the probes saw (a tail call through a register?)"


def _gone(frame: _Frame) -> None:
    """A frame proven gone without a return: unwound if a panic started inside it."""
    if frame.panicked:
        frame.call.unwound = True
    else:
        frame.call.ended = LEFT_UNSEEN
        frame.call.retval = Unavailable(LEFT_UNSEEN)


def _pop_frame(thread: _Thread, cfa: int, function: int) -> _Frame | None:
    for i in range(len(thread.frames) - 1, -1, -1):
        frame = thread.frames[i]
        if frame.cfa == cfa and frame.function == function:
            for inner in thread.frames[i + 1 :]:
                _gone(inner)
            del thread.frames[i:]
            return frame
    return None


def entry_counts(plan: ProbePlan, site_counts: Sequence[int]) -> dict[str, int]:
    """Calls per probe name, from the kernel's per-site counters of entry sites."""
    totals = dict.fromkeys(plan.probes, 0)
    for site, count in zip(plan.sites, site_counts):
        if site.kind.starts_a_call:
            for probe in plan.function(site.function).probes:
                totals[probe] += count * site.calls
    return totals


def vectorized_hits(plan: ProbePlan, site_counts: Sequence[int]) -> dict[str, list[str]]:
    """Why, per probe name, its count may be more: probes of inlined copies that sit in
    vectorized code (one hit there may do the work of several calls) and were hit. Decided
    after the run: a vectorized loop that did not run leaves the count exact."""
    found: dict[str, list[str]] = {}
    for site, count in zip(plan.sites, site_counts):
        copy = plan.function(site.function).inlined if site.kind is SiteKind.INLINED else None
        if not count or copy is None or not copy.vectorized:
            continue
        text = _vector_text(copy, site.address)
        if text is None:
            continue
        reason = (
            f"the copy inlined into {copy.describe()} at {site.address:#x}: {count} of its "
            f"executions began in vectorized code ({text}), each of which may do the work of "
            "several calls (a loop the optimizer vectorized); a dev build, or the function "
            "marked #[inline(never)], counts every call"
        )
        for probe in plan.function(site.function).probes:
            found.setdefault(probe, []).append(reason)
    return found


def _vector_text(copy: InlinedSite, probed: int) -> str | None:
    """The vector instruction of the entry a probe at `probed` stands for: the entry itself,
    or the nearest before it with no other entry in between (a probe moves forward, past an
    instruction the kernel refuses)."""
    before = [e for e in copy.entries if e <= probed]
    if not before:
        return None
    entry = max(before)
    return next((text for address, text in copy.vectorized if address == entry), None)
