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

`Pairing` takes events in batches, in order: the BPF engine's poller feeds it while the
program runs (RawEvents.consumer), so `run()` pairs only the last batch after exit. Calls
go into a CallStore as columns of numbers; their values are decoded, and their Call
objects made, when a test first reads them (callstore.py).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from typing import Any

from .callstore import NOT_CALLED, RETURNED, TAIL_CALL, UNWOUND, CallStore
from .dwarf.inlined import InlinedSite
from .machine_code import branch_taken
from .plan import PlannedFunction, ProbePlan, SiteKind, Value
from .rawevents import EVENT, WORDS_AT, RawEvent, RawEvents
from .trace import Call
from .values import Unavailable

# What the loop over events does with a site's events: the two common cases inline.
_ENTRY, _RETURN, _OTHER = 0, 1, 2

Frame = tuple[int, int, int]  # a call still pending on its thread: CFA, function, call number


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


def build_calls(
    plan: ProbePlan, events: Iterable[RawEvent] | RawEvents, *, exited: bool
) -> list[Call]:
    """Every call, in entry order, as Call objects (see `collect`)."""
    store = collect(plan, events, exited=exited)
    return store.make(range(len(store)))


def collect(plan: ProbePlan, events: Iterable[RawEvent] | RawEvents, *, exited: bool) -> CallStore:
    """Every call, in entry order, as columns (callstore.py). `exited`: the process ended by
    itself (not by a signal), so frames still pending at the end were left without a
    return. Events a `Pairing` took while the program ran (RawEvents.consumer) are in."""
    raw = RawEvents.of(events)
    if raw.failure is not None:
        raise raw.failure
    if isinstance(raw.consumer, Pairing):
        pairing = raw.consumer
        raw.flush()
    else:
        pairing = Pairing(plan)
        pairing.feed(raw.records, raw.data)
    pairing.end(exited)
    return pairing.store


class Pairing:
    """Events -> calls, fed in order: all at once, or a batch at a time while the program
    runs (set it as the run's `RawEvents.consumer`); then `end` once the process ended."""

    def __init__(self, plan: ProbePlan) -> None:
        self.plan = plan
        self.store = CallStore(plan)
        self.threads: dict[int, list[Frame]] = {}  # innermost last (lowest CFA)
        self.panicked: set[int] = set()  # calls a panic started inside (deeper on its thread)
        self.exited_in: dict[int, str] = {}  # calls the process began to end inside: how
        self.tails: dict[int, list[tuple[int, int | None, int]]] = {}  # tid -> tail calls
        self.tail_callers_of: dict[int, list[int]] = {}  # callee call -> calls that jumped to it
        self.codes = [
            _code(plan, s.kind, s.function, s.condition, s.return_address_word) for s in plan.sites
        ]
        self.copy_code = _CopyCode(plan)
        # Per thread, the latest call of each probed inlined copy, per frame it ran in (by
        # that frame's CFA): a copy has no frame of its own, so its calls stay here until
        # a deeper frame's entry proves its host frame gone.
        self.copies: dict[int, dict[InlinedSite, list[tuple[int, int]]]] = {}

    def feed(self, records: bytes | bytearray, data: dict[int, bytes]) -> None:
        """Pair these events (RawEvents' layout; `data`: a big event's copied bytes, by its
        number among them). Plain entries and returns write the store's columns right here
        (a method call per event would be a quarter of the loop's cost); the rest go to
        `_other`."""
        plan, store, threads, codes = self.plan, self.store, self.threads, self.codes
        functions = [site.function for site in plan.sites]
        made_for = [store.functions[site.function] for site in plan.sites]
        entry_data, extra = store.entry_data, store.extra
        function_append, row_append = store.function.append, store.row.append
        ts_append, return_ts_append = store.ts.append, store.return_ts.append
        tid_append, caller_append = store.tid.append, store.caller.append
        flags_append = store.flags.append
        flags, return_ts, rows = store.flags, store.return_ts, store.row
        for number, rec in enumerate(EVENT.iter_unpack(records)):
            site = rec[3]
            code = codes[site]
            if code == _ENTRY:
                tid = rec[2]
                frames = threads.get(tid)
                if frames is None:
                    frames = threads[tid] = []
                if frames and frames[-1][0] <= rec[1]:
                    self._drop_frames(frames, rec[1])
                call = len(flags)
                f = made_for[site]
                function_append(functions[site])
                row_append(f.calls)
                f.calls += 1
                ts_append(rec[0])
                return_ts_append(0)
                tid_append(tid)
                caller_append(frames[-1][2] if frames else NOT_CALLED)
                flags_append(0)
                if f.entry_width:
                    f.entry_words.extend(rec[WORDS_AT : WORDS_AT + f.entry_width])
                if f.return_width:
                    f.return_words.extend(f.blank)
                if rec[4] or (data and number in data):
                    entry_data[call] = (data.get(number, b""), rec[4])
                if self.tails:
                    self._after_entry(tid, rec[1], functions[site], call)
                frames.append((rec[1], functions[site], call))
            elif code == _RETURN:
                frames = threads.get(rec[2])
                if not frames:
                    continue  # no entry seen for this frame: nothing to pair with
                top = frames[-1]
                if top[0] == rec[1] and top[1] == functions[site]:
                    frames.pop()
                    call = top[2]
                else:
                    frame = self._pop_frame(frames, rec[1], functions[site])
                    if frame is None:
                        continue
                    call = frame[2]
                flags[call] |= RETURNED
                return_ts[call] = rec[0]
                f = made_for[site]
                width = f.return_width
                if width == 1:
                    f.return_words[rows[call]] = rec[WORDS_AT]
                elif width:
                    start = rows[call] * width
                    f.return_words[start : start + width] = array(
                        "Q", rec[WORDS_AT : WORDS_AT + width]
                    )
                if rec[4] or (data and number in data):
                    store.return_data[call] = (data.get(number, b""), rec[4])
                if extra and call in extra:
                    extra[call].pop("retval", None)
                if self.tail_callers_of:
                    self._after_return(call)
            else:
                self._other(rec, data.get(number, b""))

    def _other(self, rec: tuple[int, ...], copied: bytes) -> None:
        """Any event but a plain entry or return: markers, tail calls, inlined copies,
        source lines and USDT probes."""
        plan, store = self.plan, self.store
        ts, cfa, tid, site_number, failed = rec[:5]
        site = plan.sites[site_number]
        function = plan.function(site.function)
        frames = self.threads.setdefault(tid, [])
        event = RawEvent(ts, cfa, tid, site_number, rec[5:], copied, failed)
        caller = frames[-1][2] if frames else NOT_CALLED
        if site.kind in (SiteKind.LINE, SiteKind.USDT):
            # A point in the code, not a call: no frame, no return (see points.py).
            call = store.add(site.function, rec, caller)
            args, kwargs = _arguments(function, event)
            store.set(call, args=args, kwargs=kwargs)
            if site.kind is SiteKind.LINE:
                store.set(call, locals=kwargs if isinstance(kwargs, Unavailable) else dict(kwargs))
            store.set(call, at=function.point.describe() if function.point is not None else None)
            return
        if site.kind is SiteKind.INLINED:
            # No frame of its own: nothing to pair, and no return to wait for.
            copy = function.inlined
            for _ in range(site.calls):  # entries that share this probe point
                call = store.add(site.function, rec, caller)
                args, kwargs = _arguments(function, event)
                store.set(
                    call,
                    args=args,
                    kwargs=kwargs,
                    retval=_decode(function.returns, event) if function.returns else None,
                    inlined=True,
                    inlined_into=copy.describe() if copy is not None else None,
                )
            if copy is not None and self.copy_code.spans:
                mine = self.copies.setdefault(tid, {})
                ran = [c for c in mine.get(copy, ()) if c[0] > cfa]
                mine[copy] = [*ran, (cfa, call)]
            return
        if site.kind is SiteKind.ENTRY:
            if function.marker is not None:
                self._mark(frames, function.marker, cfa)
                if not function.probes:
                    return
            if frames and frames[-1][0] <= cfa:
                self._drop_frames(frames, cfa)
            caller = frames[-1][2] if frames else NOT_CALLED
            call = store.add(site.function, rec, caller)
            if site.return_address_word is not None:
                returns_to, ip = event.words[site.return_address_word :][:2]
                loaded_at = ip - site.address  # where the file's code is mapped
                if loaded_at % 4096 and function.shape is not None:  # in-process: hooked at
                    loaded_at = ip - function.shape.start  # the first instruction instead
                if loaded_at % 4096 == 0:  # else not the probed instruction's address
                    self._set_inlined_caller(call, tid, returns_to - loaded_at, cfa)
            if failed or event.data:
                store.entry_data[call] = (event.data, failed)
            if self.tails:
                self._after_entry(tid, cfa, site.function, call)
            if function.marker in ("exit", "abort"):  # the user probes exit itself
                self.exited_in[call] = "aborted" if function.marker == "abort" else "exited"
            frames.append((cfa, site.function, call))
            return
        if site.condition is not None and not branch_taken(site.condition, rec[5]):
            return  # a conditional tail call that did not jump: the function goes on
        frame = self._pop_frame(frames, cfa, site.function)
        if frame is None:
            return  # no entry seen for this frame: nothing to pair with
        call = frame[2]
        if site.kind is SiteKind.TAIL_CALL:
            store.flags[call] |= RETURNED | TAIL_CALL
            store.return_ts[call] = ts
            assert site.target is not None
            callee = plan.symbol_name_at(site.target)
            store.set(call, retval=Unavailable(f"tail call into {callee}"))
            self.tails.setdefault(tid, []).append((cfa, site.target, call))
            return
        store.returned(call, rec, event.data)
        if self.tail_callers_of:
            self._after_return(call)

    def _set_inlined_caller(self, call: int, tid: int, return_address: int, cfa: int) -> None:
        """A call made from the code of a probed inlined copy: that copy's latest call in the
        calling frame (the innermost pending one above the callee's) is the nearest caller
        (the store works out depth from the caller)."""
        copy = self.copy_code.holding(return_address - 1)  # the call, before the return
        if copy is None:
            return
        above = [c for c in self.copies.get(tid, {}).get(copy, ()) if c[0] > cfa]
        if above:
            self.store.caller[call] = min(above, key=lambda c: c[0])[1]

    def _after_entry(self, tid: int, cfa: int, function: int, call: int) -> None:
        """A call entered where a tail call on its thread jumped: it returns for that caller
        too. Tail calls from frames at or below it are over."""
        tails = self.tails.get(tid)
        if not tails:
            return
        address = self.plan.function(function).symbol.address
        for at, target, caller in tails:
            if at == cfa and target == address:
                self.tail_callers_of.setdefault(call, []).append(caller)
        kept = [t for t in tails if t[0] > cfa]
        if kept:
            self.tails[tid] = kept
        else:
            del self.tails[tid]

    def _after_return(self, call: int) -> None:
        callers = self.tail_callers_of.pop(call, ())
        if callers:
            value = self.store.retval(call)
            for caller in callers:
                self.store.set(caller, retval=value)

    def _mark(self, frames: list[Frame], marker: str, cfa: int) -> None:
        """A marker's entry at `cfa`: every pending frame above it (higher CFA) holds it."""
        for frame_cfa, _, call in frames:
            if frame_cfa > cfa:
                if marker == "panic":
                    self.panicked.add(call)
                else:
                    self.exited_in[call] = "aborted" if marker == "abort" else "exited"

    def _drop_frames(self, frames: list[Frame], cfa: int) -> None:
        """A new frame at `cfa` replaces every pending frame at or below that height (the
        innermost ones: pending frames are kept in decreasing CFA order)."""
        while frames and frames[-1][0] <= cfa:
            self._gone(frames.pop()[2])

    def _pop_frame(self, frames: list[Frame], cfa: int, function: int) -> Frame | None:
        for i in range(len(frames) - 1, -1, -1):
            frame = frames[i]
            if frame[0] == cfa and frame[1] == function:
                for inner in frames[i + 1 :]:
                    self._gone(inner[2])
                del frames[i:]
                return frame
        return None

    def _gone(self, call: int) -> None:
        """A frame proven gone without a return: unwound if a panic started inside it."""
        if call in self.panicked:
            self.store.flags[call] |= UNWOUND
        else:
            self.store.set(call, ended=LEFT_UNSEEN, retval=Unavailable(LEFT_UNSEEN))

    def end(self, exited: bool) -> None:
        """How each frame still pending when the process ended, ended."""
        for frames in self.threads.values():
            for _, _, call in frames:
                how = self.exited_in.get(call)
                if how:
                    self.store.set(call, ended=f"the process {how} in it")
                elif not exited:
                    self.store.set(call, ended="the process was killed while it ran")
                elif call in self.panicked:
                    # a panic started in it, and the process went on to exit
                    self.store.flags[call] |= UNWOUND
                else:
                    self.store.set(call, ended="the process ended while it ran")


def _code(
    plan: ProbePlan,
    kind: SiteKind,
    function: int,
    condition: str | None,
    return_address_word: int | None,
) -> int:
    if (
        kind is SiteKind.ENTRY
        and plan.function(function).marker is None
        and return_address_word is None  # a caller to find among inlined copies
    ):
        return _ENTRY
    if kind in (SiteKind.RETURN, SiteKind.URETPROBE) and condition is None:
        return _RETURN
    return _OTHER


LEFT_UNSEEN = "its frame ended without a return the probes saw (a tail call through a register?)"


def _decode(value: Value, event: RawEvent) -> Any:
    return value.decode(event.words, event.data, event.failed)


def _arguments(
    function: PlannedFunction, event: RawEvent
) -> tuple[tuple[Any, ...] | Unavailable, dict[str, Any] | Unavailable]:
    values = [_decode(v, event) for v in function.params]
    unknown = function.unknown_arguments  # never () for "the parameters are unknown"
    if unknown is not None:
        return unknown, unknown
    return tuple(values), {v.name: value for v, value in zip(function.params, values)}


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
