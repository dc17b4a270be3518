"""A run's calls as columns of numbers, made into `Call` objects on first access.

events.py pairs a run's events into calls and writes each call here as a few integers: its
function, entry time, thread, nearest traced caller, outcome flags and return time,
and the event words its arguments and return value are decoded from (per function, only
as many words as its values read). A `Call`, with its values decoded, is made the first
time something asks for it, and kept, so the same call is always the same object (a
call's `caller` is the very object the caller's list holds).

What few calls need (an unusual ending, a tail call, a source line's locals, a big event's
copied bytes) is kept beside the columns, by call number.

Two integer arguments and an integer return value cost about 60 bytes per call here,
against some 2,500 for the `Call` objects themselves.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import operator
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .dwarf.locations import Indirect
from .lazylist import LazyList
from .plan import PlannedFunction, ProbePlan, Value
from .trace import Call

RETURNED, UNWOUND, TAIL_CALL = 1, 2, 4
NOT_CALLED = -1  # the caller column of a call with no traced caller
NO_DATA = (b"", 0)  # an event that copied nothing: its data and failed mask

# The value one Value decodes from a run of words that starts at `start` (a call's words in
# its function's column), the event's copied bytes, and its mask of failed copies.
Decoder = Callable[[Sequence[int], int, bytes, int], Any]


@contextlib.contextmanager
def paused_collector() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def words_read(value: Value | None) -> int:
    """How many of an event's words `value` is decoded from (counted from word 0)."""
    if value is None:
        return 0
    location = value.location
    if isinstance(location, tuple):
        return value.first_piece + len(location)
    if isinstance(location, Indirect):
        return value.first_piece + 1
    return 0


def decoder(value: Value, width: int) -> Decoder:
    """`value.decode` of a call's `width` words; for an integer held whole in one word, the
    same answer without building its bytes."""
    location, kind = value.location, value.type.kind
    if (
        isinstance(location, tuple)
        and len(location) == 1
        and location[0].value is None
        and kind in ("int", "address")
        and 0 < value.type.size <= location[0].size
        and value.type.size <= 8
    ):
        at, bits = value.first_piece, 8 * value.type.size
        mask = (1 << bits) - 1
        if value.type.signed:
            sign = 1 << (bits - 1)
            return lambda words, start, data, failed: ((words[start + at] & mask) ^ sign) - sign
        if bits == 64:
            return lambda words, start, data, failed: words[start + at]
        return lambda words, start, data, failed: words[start + at] & mask
    decode = value.decode
    return lambda words, start, data, failed: decode(words[start : start + width], data, failed)


def _whole_word(value: Value, at: int) -> bool:
    location, kind = value.location, value.type.kind
    return (
        isinstance(location, tuple)
        and len(location) == 1
        and location[0].value is None
        and location[0].size == 8
        and value.first_piece == at
        and kind in ("int", "address")
        and value.type.size == 8
        and not value.type.signed
    )


def _call_maker() -> Callable[..., Call] | None:
    """Call objects made by filling their __dict__ at once (a dataclass __init__ with keyword
    arguments takes twice as long), starting from the defaults of a real Call, so a field
    added to Call later keeps its default; None where Call has no __dict__ (slots)."""
    sample = Call("", "", (), {}, 0, 0)
    if not hasattr(sample, "__dict__"):
        return None
    defaults = dict(vars(sample))
    new = object.__new__

    def make(**fields: Any) -> Call:
        call = new(Call)
        call.__dict__ = {**defaults, "locals": {}, **fields}
        return call

    return make


class _Function:
    """What making a call of one planned function needs, worked out once."""

    def __init__(self, function: PlannedFunction) -> None:
        self.planned = function
        self.probe = function.probe
        self.path = function.symbol.path
        self.probes = function.probes
        self.unknown = function.unknown_arguments
        self.names = [value.name for value in function.params]
        self.entry_width = max(map(words_read, function.params), default=0)
        self.return_width = words_read(function.returns)
        self.params = [decoder(value, self.entry_width) for value in function.params]
        self.returns = (
            decoder(function.returns, self.return_width) if function.returns is not None else None
        )
        # Every argument an unsigned 64-bit integer in word i (u64, usize, a pointer's
        # address): the arguments are the words themselves.
        self.plain_args = all(_whole_word(v, i) for i, v in enumerate(function.params))
        self.plain_return = function.returns is not None and _whole_word(function.returns, 0)
        self.entry_words = array("Q")  # entry_width words per call, in the order of calls
        self.return_words = array("Q")  # return_width words per call (zeros until it returns)
        self.blank = array("Q", bytes(8 * self.return_width))
        self.calls = 0


class CallStore:
    def __init__(self, plan: ProbePlan) -> None:
        self.plan = plan
        self.functions = [_Function(plan.function(i)) for i in range(_function_count(plan))]
        # A call's depth is its caller's plus one (the caller is the innermost pending
        # frame, the one below it the caller's caller): no column for it.
        self.function = array("H" if len(self.functions) <= 0xFFFF else "I")
        self.row = array("I")  # the call's number among its function's calls
        self.ts = array("q")
        self.return_ts = array("q")
        self.tid = array("I")
        self.caller = array("i")
        self.flags = array("B")
        self.entry_data: dict[int, tuple[bytes, int]] = {}  # a big entry event: data, failed
        self.return_data: dict[int, tuple[bytes, int]] = {}
        self.extra: dict[int, dict[str, Any]] = {}  # Call fields set outright, by call
        self._made: dict[int, Call] = {}

    def __len__(self) -> int:
        return len(self.ts)

    def add(self, function: int, rec: tuple[int, ...], caller: int) -> int:
        """A call entered by the event `rec` (as RawEvents.unpacked gives it)."""
        number = len(self.ts)
        f = self.functions[function]
        self.function.append(function)
        self.row.append(f.calls)
        f.calls += 1
        self.ts.append(rec[0])
        self.return_ts.append(0)
        self.tid.append(rec[2])
        self.caller.append(caller)
        self.flags.append(0)
        if f.entry_width:
            f.entry_words.extend(rec[5 : 5 + f.entry_width])
        if f.return_width:
            f.return_words.extend(f.blank)
        return number

    def returned(self, number: int, rec: tuple[int, ...], data: bytes) -> None:
        """The call `number` returned, by the event `rec`."""
        self.flags[number] |= RETURNED
        self.return_ts[number] = rec[0]
        f = self.functions[self.function[number]]
        width = f.return_width
        if width:
            start = self.row[number] * width
            f.return_words[start : start + width] = array("Q", rec[5 : 5 + width])
        if data or rec[4]:
            self.return_data[number] = (data, rec[4])
        extra = self.extra.get(number)
        if extra is not None:
            extra.pop("retval", None)

    def set(self, number: int, **fields: Any) -> None:
        self.extra.setdefault(number, {}).update(fields)

    def retval(self, number: int) -> Any:
        """The return value of a call that returned, decoded."""
        extra = self.extra.get(number)
        if extra is not None and "retval" in extra:
            return extra["retval"]
        if not self.flags[number] & RETURNED:
            return None
        f = self.functions[self.function[number]]
        if f.returns is None:
            return None
        data, failed = self.return_data.get(number, NO_DATA) if self.return_data else NO_DATA
        return f.returns(f.return_words, self.row[number] * f.return_width, data, failed)

    def call(self, number: int) -> Call:
        made = self._made.get(number)
        if made is not None:
            return made
        chain = []  # this call and its callers not made yet, innermost first
        at = number
        while at != NOT_CALLED and at not in self._made:
            chain.append(at)
            at = self.caller[at]
        for at in reversed(chain):
            self._made[at] = self._make(at)
        return self._made[number]

    def _make(self, number: int) -> Call:
        f = self.functions[self.function[number]]
        flags = self.flags[number]
        caller = self.caller[number]
        extra = self.extra.get(number) if self.extra else None
        if extra is not None and "args" in extra:
            args, kwargs = extra["args"], extra["kwargs"]
        else:
            data, failed = self.entry_data.get(number, NO_DATA) if self.entry_data else NO_DATA
            start = self.row[number] * f.entry_width
            words = f.entry_words
            values = [decode(words, start, data, failed) for decode in f.params]
            if f.unknown is None:
                args, kwargs = tuple(values), dict(zip(f.names, values))
            else:
                args = kwargs = f.unknown
        returned = flags & RETURNED
        call = Call(
            function=f.probe,
            path=f.path,
            args=args,
            kwargs=kwargs,
            tid=self.tid[number],
            ts_ns=self.ts[number],
            retval=self.retval(number) if returned or extra is not None else None,
            returned=bool(returned),
            unwound=bool(flags & UNWOUND),
            probes=f.probes,
            tail_call=bool(flags & TAIL_CALL),
            return_ts_ns=self.return_ts[number] if returned else None,
            caller=self._made[caller] if caller != NOT_CALLED else None,
            depth=self._made[caller].depth + 1 if caller != NOT_CALLED else 0,
        )
        if extra is not None:
            for name, value in extra.items():
                if name not in ("args", "kwargs", "retval"):
                    setattr(call, name, value)
        return call

    def calls(self, probe: str | None = None) -> list[Call]:
        """The calls (of `probe`, or all), in entry-time order, made as they are used."""
        order = self._order()
        if probe is not None:
            answers = [probe in f.probes for f in self.functions]
            if not all(answers[f] for f in set(self.function)):
                function = self.function
                order = array("I", (i for i in order if answers[function[i]]))
        return LazyList(len(order), lambda i: self.call(order[i]), lambda: self.make(order))

    def make(self, numbers: Iterable[int]) -> list[Call]:
        """The calls `numbers`, made in bulk: `_make` with its lookups done once, and the
        cyclic garbage collector paused (it would walk the growing heap again and again,
        most of the time taken, for objects that form no cycle)."""
        with paused_collector():
            return self._make_many(numbers)

    def _make_many(self, numbers: Iterable[int]) -> list[Call]:
        made, extra, entry_data = self._made, self.extra, self.entry_data
        function, row, flags, tid, ts = self.function, self.row, self.flags, self.tid, self.ts
        return_ts, caller = self.return_ts, self.caller
        functions, return_data = self.functions, self.return_data
        make_call = _make_call or Call
        out: list[Call] = []
        append = out.append
        for number in numbers:
            call = made.get(number)
            if call is not None:
                append(call)
                continue
            up = caller[number]
            if (extra and number in extra) or (entry_data and number in entry_data) or (
                up != NOT_CALLED and up not in made
            ):
                append(self.call(number))
                continue
            f = functions[function[number]]
            width = f.entry_width
            start = row[number] * width
            words = f.entry_words
            args: Any
            kwargs: Any
            if f.unknown is not None:
                args = kwargs = f.unknown
            else:
                if f.plain_args:
                    args = tuple(words[start : start + width])
                else:
                    args = tuple([decode(words, start, b"", 0) for decode in f.params])
                kwargs = dict(zip(f.names, args))
            state = flags[number]
            returned = state & RETURNED
            if not returned or f.returns is None:
                retval = None
            elif f.plain_return and not return_data:
                retval = f.return_words[row[number] * f.return_width]
            else:
                retval = self.retval(number)
            call = make_call(
                function=f.probe,
                path=f.path,
                args=args,
                kwargs=kwargs,
                tid=tid[number],
                ts_ns=ts[number],
                retval=retval,
                returned=bool(returned),
                unwound=bool(state & UNWOUND),
                probes=f.probes,
                tail_call=bool(state & TAIL_CALL),
                return_ts_ns=return_ts[number] if returned else None,
                caller=made[up] if up != NOT_CALLED else None,
                depth=made[up].depth + 1 if up != NOT_CALLED else 0,
            )
            made[number] = call
            append(call)
        return out

    def _order(self) -> Sequence[int]:
        """Call numbers by entry time (a stable sort: ties keep the order of events)."""
        cached: Sequence[int] | None = getattr(self, "_by_time", None)
        if cached is not None:
            return cached
        ts = self.ts
        order: Sequence[int]
        if all(map(operator.le, ts, itertools.islice(ts, 1, None))):
            order = range(len(ts))
        else:
            order = array("I", sorted(range(len(ts)), key=ts.__getitem__))
        self._by_time = order
        return order

    def nbytes(self) -> int:
        """Bytes the columns hold (not counting what the `Call`s made so far hold)."""
        columns = [self.function, self.row, self.ts, self.return_ts, self.tid, self.caller,
                   self.flags]  # fmt: skip
        for f in self.functions:
            columns += [f.entry_words, f.return_words]
        return sum(c.buffer_info()[1] * c.itemsize for c in columns)


def _function_count(plan: ProbePlan) -> int:
    return len(plan.functions) + len(plan.markers)


_make_call = _call_maker()
