"""A run's calls as columns of numbers, made into `Call` objects on first access.

events.py pairs a run's events into calls and writes each call here as a few integers: its
function, entry time, thread, nearest traced caller, outcome flags and return time,
and the event words its arguments and return value are decoded from (per function, only
as many words as its values read). A `Call` (a `StoredCall`: its call number and store)
is made the first time something asks for it, and kept, so the same call is always the
same object (a call's `caller` is the very object the caller's list holds); each of its
fields is read from the columns, and decoded, when first asked for.

What few calls need (an unusual ending, a tail call, a source line's locals, a big event's
copied bytes) is kept beside the columns, by call number.

Two integer arguments and an integer return value cost about 60 bytes per call here;
each call made, with its values, about 600 more (tracemalloc; 1,000 as plain Calls).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import itertools
import operator
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, SupportsIndex

from .dwarf.locations import Indirect
from .lazylist import LazyList
from .plan import PlannedFunction, ProbePlan, Value
from .trace import Call

_new_object = object.__new__

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
        self._made: list[Call | None] = []  # by call number, once any call is made

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
        """The call `number`: made the first time, the same object every time after."""
        made = self._made_list()
        call = made[number]
        if call is None:
            call = made[number] = self._new(number)
        return call

    def _made_list(self) -> list[Call | None]:
        made = self._made
        if len(made) < len(self.ts):
            made.extend([None] * (len(self.ts) - len(made)))
        return made

    def _new(self, number: int) -> StoredCall:
        call = _new_object(StoredCall)
        call._store, call._f, call._number = self, self.functions[self.function[number]], number
        extra = self.extra.get(number) if self.extra else None
        if extra is not None:
            for name, value in extra.items():
                if name not in ("args", "kwargs", "retval"):
                    setattr(call, name, value)
        return call

    def depth(self, number: int) -> int:
        """How many traced frames were below the call `number` on its thread."""
        depths: array[int] | None = getattr(self, "_depths", None)
        if depths is None or len(depths) != len(self.caller):
            # A caller is entered before its callee: its number is lower, its depth known.
            depths = array("I", bytes(4 * len(self.caller)))
            for at, up in enumerate(self.caller):
                if up != NOT_CALLED:
                    depths[at] = depths[up] + 1
            self._depths = depths
        return depths[number]

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
        """The calls `numbers`, made in bulk: `call` with its lookups done once, and the
        cyclic garbage collector paused (it would walk the growing heap again and again,
        most of the time taken, for objects that form no cycle)."""
        with paused_collector():
            return self._make_many(numbers)

    def _make_many(self, numbers: Iterable[int]) -> list[Call]:
        made, extra = self._made_list(), self.extra
        function, functions = self.function, self.functions
        row, flags = self.row, self.flags
        odd = self.entry_data.keys() | self.return_data.keys()  # calls with copied bytes
        # Functions of whole-integer values only: their args, kwargs and retval cost less
        # made here, in bulk and with the collector paused, than read one by one later.
        whole = [f.unknown is None and f.plain_args and f.plain_return for f in functions]
        new = _new_object
        out: list[Call] = []
        append = out.append
        for number in numbers:
            call = made[number]
            if call is None:
                if extra and number in extra:
                    call = self.call(number)
                else:
                    at = function[number]
                    f = functions[at]
                    call = new(StoredCall)
                    call._store, call._f, call._number = self, f, number
                    if whole[at] and flags[number] & RETURNED and number not in odd:
                        at = row[number]
                        if f.entry_width == 2:
                            words, first, second = f.entry_words, f.names[0], f.names[1]
                            a, b = words[2 * at], words[2 * at + 1]
                            call.__dict__ = {
                                "returned": True,
                                "args": (a, b),
                                "kwargs": {first: a, second: b},
                                "retval": f.return_words[at],
                            }
                        else:
                            width = f.entry_width
                            args = tuple(f.entry_words[at * width : (at + 1) * width])
                            call.__dict__ = {
                                "returned": True,
                                "args": args,
                                "kwargs": dict(zip(f.names, args)),
                                "retval": f.return_words[at],
                            }
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


class StoredCall(Call):
    """A `Call` whose fields are read from its store's columns when first asked for.

    Making one costs a small object (its store, function and call number), so a test
    that makes a million calls to check one field of each pays for that field alone.
    Calls made in bulk (iterating a list of calls) of a function whose values are whole
    integers get their args, kwargs and retval at once instead: cheaper then than a
    read each. A field read is kept in the instance's __dict__ where it is an object of
    its own (decoded args, kwargs, retval, locals: the same object every time); an
    assignment goes there too and wins from then on, as on a plain Call. It equals a
    plain Call with the same fields, and pickles and copies as one."""

    __slots__ = ("_store", "_f", "_number")
    _store: CallStore
    _f: _Function
    _number: int

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Call) or _plain_class(other) is not Call:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _COMPARED)

    __hash__ = None  # type: ignore[assignment]  # mutable and compared by value, as Call

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        return (_plain_call, ({name: getattr(self, name) for name in _FIELDS},))


def _plain_class(call: Call) -> type:
    return Call if isinstance(call, StoredCall) else type(call)


def _plain_call(fields: dict[str, Any]) -> Call:
    return Call(**fields)


_FIELDS = tuple(f.name for f in dataclasses.fields(Call))
_COMPARED = tuple(f.name for f in dataclasses.fields(Call) if f.compare)


# Each field of a StoredCall is a non-data descriptor: what the call's __dict__ holds
# (an assignment, or a value kept at first read) is found first; else its `__get__` reads
# the columns. Values that are objects of their own (decoded structs, dicts) are kept
# there, so every read gives the same object; integers are read again each time.


def _args(self: Any, call: Any, owner: type | None = None) -> Any:
    if call is None:
        return self
    store, number, f = call._store, call._number, call._f
    extra = store.extra.get(number) if store.extra else None
    if extra is not None and "args" in extra:
        return extra["args"]
    if f.unknown is not None:
        return f.unknown
    width = f.entry_width
    start = store.row[number] * width
    words = f.entry_words
    if f.plain_args:
        if width == 2:
            return (words[start], words[start + 1])
        return tuple(words[start : start + width])
    data, failed = store.entry_data.get(number, NO_DATA) if store.entry_data else NO_DATA
    args = tuple([decode(words, start, data, failed) for decode in f.params])
    call.__dict__["args"] = args
    return args


def _kwargs(self: Any, call: Any, owner: type | None = None) -> Any:
    if call is None:
        return self
    store, number, f = call._store, call._number, call._f
    extra = store.extra.get(number) if store.extra else None
    if extra is not None and "kwargs" in extra:
        return extra["kwargs"]
    if f.unknown is not None:
        return f.unknown
    kwargs = call.__dict__["kwargs"] = dict(zip(f.names, call.args))
    return kwargs


def _retval(self: Any, call: Any, owner: type | None = None) -> Any:
    if call is None:
        return self
    store, number, f = call._store, call._number, call._f
    if (
        f.plain_return
        and store.flags[number] & RETURNED
        and not (store.extra and number in store.extra)
        and not (store.return_data and number in store.return_data)
    ):
        return f.return_words[store.row[number]]  # one word per call
    retval = call.__dict__["retval"] = store.retval(number)
    return retval


def _return_ts_ns(self: Any, call: Any, owner: type | None = None) -> Any:
    if call is None:
        return self
    store, number = call._store, call._number
    return store.return_ts[number] if store.flags[number] & RETURNED else None


def _caller(self: Any, call: Any, owner: type | None = None) -> Any:
    if call is None:
        return self
    store = call._store
    up = store.caller[call._number]
    return None if up == NOT_CALLED else store.call(up)


def _locals(self: Any, call: Any, owner: type | None = None) -> Any:
    if call is None:
        return self
    made: dict[str, Any] = {}
    call.__dict__["locals"] = made
    return made


def _column(name: str, column: str, flag: int = 0) -> Callable[..., Any]:
    if flag:

        def read_flag(self: Any, call: Any, owner: type | None = None) -> Any:
            if call is None:
                return self
            return bool(call._store.flags[call._number] & flag)

        return read_flag

    def read(self: Any, call: Any, owner: type | None = None) -> Any:
        if call is None:
            return self
        return getattr(call._store, column)[call._number]

    return read


def _function(self: Any, call: Any, owner: type | None = None) -> Any:
    return self if call is None else call._f.probe


def _path(self: Any, call: Any, owner: type | None = None) -> Any:
    return self if call is None else call._f.path


def _probes(self: Any, call: Any, owner: type | None = None) -> Any:
    return self if call is None else (call._f.probes or (call._f.probe,))


def _depth(self: Any, call: Any, owner: type | None = None) -> Any:
    return self if call is None else call._store.depth(call._number)


for _name, _get in {
    "function": _function,
    "path": _path,
    "probes": _probes,
    "args": _args,
    "kwargs": _kwargs,
    "retval": _retval,
    "tid": _column("tid", "tid"),
    "ts_ns": _column("ts_ns", "ts"),
    "returned": _column("returned", "flags", RETURNED),
    "unwound": _column("unwound", "flags", UNWOUND),
    "tail_call": _column("tail_call", "flags", TAIL_CALL),
    "return_ts_ns": _return_ts_ns,
    "caller": _caller,
    "depth": _depth,
    "locals": _locals,
}.items():
    setattr(StoredCall, _name, type(f"_Read_{_name}", (), {"__get__": _get, "__slots__": ()})())


def _function_count(plan: ProbePlan) -> int:
    return len(plan.functions) + len(plan.markers)
