"""Calls kept as columns and made on first use (callstore.py, lazylist.py), and raw events
kept as bytes (rawevents.py): the same Calls as making each one alone, the list behaving
as a list, and the bytes a call of two integers costs."""

from __future__ import annotations

import dataclasses
import pickle
import random

import pytest

from pytest_uprobe.callstore import NOT_CALLED, RETURNED, TAIL_CALL, UNWOUND, CallStore
from pytest_uprobe.dwarf.locations import Piece
from pytest_uprobe.dwarf.types import RustType
from pytest_uprobe.events import Pairing, build_calls, collect
from pytest_uprobe.lazylist import LazyList
from pytest_uprobe.plan import Value
from pytest_uprobe.rawevents import EVENT_SIZE, RawEvent, RawEvents
from pytest_uprobe.trace import Call

from .test_events import ev, make_plan, panicking_plan


def fields(call):
    """Every field (Unavailable equals nothing: by its repr), the caller by its entry."""
    shown = {f.name: repr(getattr(call, f.name)) for f in FIELDS if f.name != "caller"}
    return shown, call.caller and (call.caller.ts_ns, call.caller.args)


FIELDS = dataclasses.fields(Call)


def eager(store: CallStore, number: int) -> Call:
    """The call `number` made the way calls were made before they read their columns
    lazily: every field decoded at once into a plain Call (an independent reading of the
    same columns, through each value's own `decode`)."""
    f = store.functions[store.function[number]]
    flags, up = store.flags[number], store.caller[number]
    extra = store.extra.get(number, {})
    data, failed = store.entry_data.get(number, (b"", 0))
    start = store.row[number] * f.entry_width
    words = f.entry_words[start : start + f.entry_width]
    values = tuple(value.decode(words, data, failed) for value in f.planned.params)
    if "args" in extra:
        args, kwargs = extra["args"], extra["kwargs"]
    elif f.unknown is not None:
        args = kwargs = f.unknown
    else:
        args, kwargs = values, dict(zip(f.names, values))
    returned = bool(flags & RETURNED)
    retval = None
    if "retval" in extra:
        retval = extra["retval"]
    elif returned and f.planned.returns is not None:
        back = store.row[number] * f.return_width
        data, failed = store.return_data.get(number, (b"", 0))
        retval = f.planned.returns.decode(
            f.return_words[back : back + f.return_width], data, failed
        )
    caller = eager(store, up) if up != NOT_CALLED else None
    call = Call(
        function=f.probe, path=f.path, args=args, kwargs=kwargs, tid=store.tid[number],
        ts_ns=store.ts[number], retval=retval, returned=returned,
        unwound=bool(flags & UNWOUND), probes=f.probes, tail_call=bool(flags & TAIL_CALL),
        return_ts_ns=store.return_ts[number] if returned else None, caller=caller,
        depth=caller.depth + 1 if caller is not None else 0,
    )  # fmt: skip
    for name, value in extra.items():
        if name not in ("args", "kwargs", "retval"):
            setattr(call, name, value)
    return call


def streams():
    """Event streams touching every path of the pairing: recursion, panics, frames left
    unseen, threads, tail calls into probed and unprobed functions, a killed process."""
    yield panicking_plan(), [ev(0, 1000, 1, ts=1), ev(5, 900, ts=2), ev(0, 1000, 2, ts=3),
                             ev(1, 1000, 20, ts=4)], True  # fmt: skip
    recursion = [ev(0, 1000, 3, ts=1), ev(0, 960, 2, ts=2), ev(0, 920, 1, ts=3),
                 ev(1, 920, 1, ts=4), ev(1, 960, 2, ts=5), ev(1, 1000, 6, ts=6)]  # fmt: skip
    yield make_plan(), recursion, True
    yield make_plan(), [ev(0, 1000, 1, ts=1), ev(2, 1000, ts=2), ev(3, 1000, 5, ts=3),
                        ev(4, 1000, 42, ts=4)], True  # fmt: skip
    yield make_plan(), [ev(0, 1000, 1, ts=1), ev(0, 900, 2, ts=2), ev(1, 1000, 7, ts=3)], True
    yield make_plan(), [ev(0, 1000, 1, ts=1), ev(2, 1000, ts=2)], True
    yield make_plan(), [ev(0, 1000, 1, tid=1, ts=1), ev(0, 1000, 2, tid=2, ts=2),
                        ev(1, 1000, 20, tid=2, ts=3), ev(0, 1000, 9, ts=4)], False  # fmt: skip
    rng = random.Random(15)
    events, depth = [], 0
    for ts in range(1, 400):  # random nesting on two threads, inputs decoded from words
        tid = rng.choice((1, 2))
        if rng.random() < 0.5 or depth == 0:
            events.append(ev(0, 2000 - 16 * depth, rng.getrandbits(64), tid=1, ts=ts))
            depth += 1
        else:
            depth -= 1
            events.append(ev(1, 2000 - 16 * depth, rng.getrandbits(63), tid=1, ts=ts))
        if tid == 2:  # g on another thread: entered, and returned half of the time
            events.append(ev(3, 5000, ts, tid=2, ts=ts))
            if rng.random() < 0.5:
                events.append(ev(4, 5000, ts + 1, tid=2, ts=ts))
    yield make_plan(), events, True


@pytest.mark.parametrize("plan, events, exited", list(streams()))
def test_calls_read_from_columns_are_those_decoded_at_once(plan, events, exited):
    one_by_one = collect(plan, events, exited=exited)
    singles = [one_by_one.call(i) for i in range(len(one_by_one))]
    bulk = build_calls(plan, events, exited=exited)
    store = collect(plan, events, exited=exited)
    reference = [eager(store, i) for i in range(len(store))]
    assert [fields(c) for c in bulk] == [fields(c) for c in reference]
    assert [fields(c) for c in singles] == [fields(c) for c in reference]
    assert [repr(c) for c in bulk] == [repr(c) for c in reference]
    assert [c.depth for c in bulk] == [c.depth for c in reference]
    assert len(bulk) == len(singles) > 0


def test_a_signed_argument_and_a_big_event_decode_as_before():
    plan = make_plan()  # ARG is an i64: a word with the top bit set is negative
    events = [ev(0, 1000, 2**64 - 5), ev(1, 1000, 2**64 - 1)]
    (call,) = build_calls(plan, events, exited=True)
    assert (call.args, call.kwargs, call.retval) == ((-5,), {"n": -5}, -1)


def test_calls_are_the_same_objects_in_every_view_and_their_callers():
    plan = make_plan()
    plan.functions[1].also = ("f",)  # g answers to "f" too
    events = [ev(0, 1000, 1, ts=1), ev(3, 900, 2, ts=2), ev(4, 900, 3, ts=3), ev(1, 1000, 4, ts=4)]
    store = collect(plan, events, exited=True)
    every, of_g = store.calls(), store.calls("g")
    assert len(every) == 2 and len(of_g) == 1
    assert of_g[0] is every[1] and every[1].caller is every[0]
    assert [c.path for c in store.calls("f")] == ["f", "g"]


def test_calls_come_in_time_order_whatever_the_order_of_events():
    events = [ev(0, 1000, 1, tid=1, ts=50), ev(0, 1000, 2, tid=2, ts=10),
              ev(1, 1000, 5, tid=1, ts=60), ev(1, 1000, 6, tid=2, ts=20)]  # fmt: skip
    calls = collect(make_plan(), events, exited=True).calls()
    assert [c.args for c in calls] == [(2,), (1,)]
    assert calls[0].args == (2,) and calls[-1].retval == 5


def lazy(n):
    made: list[int] = []

    def item(i):
        made.append(i)
        return i * 10

    return LazyList(n, item), made


def test_a_lazy_list_makes_only_what_is_indexed():
    items, made = lazy(5)
    assert isinstance(items, list) and len(items) == 5 and items
    assert items[-1] == 40 and items[1] == 10 and made == [4, 1]
    with pytest.raises(IndexError):
        items[5]
    assert items[1:3] == [10, 20]  # a slice makes them all, once
    assert made == [4, 1, 0, 1, 2, 3, 4] and items[4] == 40 and len(made) == 7


@pytest.mark.parametrize(
    "use, expected",
    [
        (lambda x: list(x), [0, 10, 20]),
        (lambda x: [*x], [0, 10, 20]),
        (lambda x: x == [0, 10, 20], True),
        (lambda x: x == [0, 10, 20], True),
        (lambda x: x == lazy(3)[0], True),
        (lambda x: [5] + x, [5, 0, 10, 20]),
        (lambda x: x + [5], [0, 10, 20, 5]),
        (lambda x: 20 in x, True),
        (lambda x: repr(x), "[0, 10, 20]"),
        (lambda x: sorted(x, reverse=True), [20, 10, 0]),
        (lambda x: list(reversed(x)), [20, 10, 0]),
        (lambda x: tuple(x), (0, 10, 20)),
        (lambda x: x.index(20), 2),
        (lambda x: x * 2, [0, 10, 20, 0, 10, 20]),
        (lambda x: pickle.loads(pickle.dumps(x)), [0, 10, 20]),  # noqa: S301  (our own bytes)
        (lambda x: (x.append(1), x)[1], [0, 10, 20, 1]),
        (lambda x: (x.pop(), len(x))[1], 2),
    ],
)
def test_a_lazy_list_is_a_list(use, expected):
    items, _ = lazy(3)
    assert use(items) == expected


def test_raw_events_keep_each_event_and_a_big_events_bytes():
    events = RawEvents()
    small = RawEvent(1, 2, 3, 4, tuple(range(16)), b"", 5)
    big = RawEvent(6, 7, 8, 9, (1,) + (0,) * 15, b"copied", 0)
    events.append(small)
    events.add(RawEvents.of([big]).records + b"copied")
    assert len(events) == 2 and list(events) == [small, big] and events[-1] == big
    assert len(events.records) == 2 * EVENT_SIZE and events.data == {1: b"copied"}


def test_a_call_of_two_integers_costs_at_most_64_bytes():
    n = 20_000
    events = []
    for i in range(n):
        events += [ev(0, 1000, i, ts=2 * i), ev(1, 1000, i, ts=2 * i + 1)]
    store = collect(make_plan(), events, exited=True)
    per_call = store.nbytes() / n
    # make_plan's f takes one integer; two take one more word (8 bytes) in a real run.
    assert per_call + 8 <= 64, per_call
    calls = store.calls()
    assert len(calls) == n and calls[-1].args == (n - 1,) and calls[-1].retval == n - 1


def test_values_that_are_not_whole_integers_decode_through_their_type_in_bulk():
    plan = make_plan()
    flag = Value("flag", RustType("bool", "bool", 1), (Piece(4, 0, 1, memory=False),), 1)
    f = plan.functions[0]
    plan.functions[0] = dataclasses.replace(f, params=(*f.params, flag))
    words = (7, 1) + (0,) * 14
    events = [RawEvent(1, 1000, 1, 0, words), ev(1, 1000, 3, ts=2)]
    bulk = build_calls(plan, events, exited=True)
    store = collect(plan, events, exited=True)
    assert [c.kwargs for c in bulk] == [store.call(0).kwargs] == [{"n": 7, "flag": True}]


@pytest.mark.parametrize("plan, events, exited", list(streams()))
def test_events_paired_in_batches_while_the_program_runs_give_the_same_calls(plan, events, exited):
    expected = [fields(c) for c in build_calls(plan, events, exited=exited)]
    for batch in (1, 2, 3, 7):
        raw = RawEvents()
        raw.consumer = Pairing(plan)
        for i, event in enumerate(events):
            raw.append(event)
            if i % batch == batch - 1:
                raw.flush(EVENT_SIZE * batch)
                assert len(raw) == 0 and raw.handed == i + 1
        calls = collect(plan, raw, exited=exited).calls()
        assert sorted(map(fields, calls), key=repr) == sorted(expected, key=repr)


def test_a_consumer_that_failed_fails_the_run_rather_than_lose_events():
    class Broken:
        def feed(self, records, data):
            raise RuntimeError("broken")

    raw = RawEvents()
    raw.consumer = Broken()
    raw.append(ev(0, 1000, 1))
    with pytest.raises(RuntimeError):
        raw.flush()
    raw.append(ev(1, 1000, 1))
    with pytest.raises(RuntimeError, match="broken"):
        collect(make_plan(), raw, exited=True)


def test_a_calls_depth_counts_the_traced_frames_below_it():
    events = [ev(0, 1000, 3, ts=1), ev(0, 960, 2, ts=2), ev(0, 920, 1, ts=3),
              ev(1, 920, 1, ts=4), ev(0, 920, 1, ts=5), ev(3, 2000, 9, tid=2, ts=6)]  # fmt: skip
    calls = build_calls(make_plan(), events, exited=True)
    assert [c.depth for c in calls] == [0, 1, 2, 2, 0]
    assert [c.caller.args if c.caller else None for c in calls] == [None, (3,), (2,), (2,), None]


def stored_and_plain():
    """A call read from columns, and the same call made as a plain Call."""
    store = collect(make_plan(), [ev(0, 1000, 5, ts=1), ev(1, 1000, 8, ts=4)], exited=True)
    return store.call(0), eager(store, 0)


def test_a_stored_call_equals_the_plain_call_with_its_fields_and_nothing_else():
    stored, plain = stored_and_plain()
    assert stored == plain and plain == stored
    assert not stored != plain  # noqa: SIM202  (__ne__ as well as __eq__)
    assert [plain].index(stored) == 0 and stored in [plain]
    assert stored != dataclasses.replace(plain, retval=9)
    assert dataclasses.replace(plain, retval=9) != stored
    assert stored != (5,) and stored != "f"
    with pytest.raises(TypeError, match="unhashable"):
        hash(stored)


def test_a_stored_call_reads_like_a_plain_call():
    stored, plain = stored_and_plain()
    assert repr(stored) == repr(plain) == "f(5) -> 8 [tid 1]"
    assert (stored.duration_ns, stored.answers_to("f"), stored.locals) == (3, True, {})
    assert dataclasses.asdict(stored) == dataclasses.asdict(plain)
    assert dataclasses.replace(stored, retval=9).retval == 9 and stored.retval == 8
    copied = pickle.loads(pickle.dumps(stored))  # noqa: S301  (our own bytes)
    assert type(copied) is Call and copied == plain


def test_what_is_assigned_to_a_stored_call_stays_and_its_objects_are_kept():
    store = collect(make_plan(), [ev(0, 1000, 5, ts=1), ev(1, 1000, 8, ts=4)], exited=True)
    call = store.call(0)
    assert call.kwargs is call.kwargs and call.locals is call.locals
    call.kwargs["extra"] = 1
    call.args, call.retval, call.depth, call.returned = (6,), 7, 3, False
    assert (call.args, call.kwargs, call.retval, call.depth, call.returned) == (
        (6,), {"n": 5, "extra": 1}, 7, 3, False)  # fmt: skip
    assert store.call(0) is call and store.make([0]) == [call]


def test_two_whole_word_arguments_are_read_from_their_words():
    u64 = RustType("u64", "int", 8, signed=False)
    a = Value("a", u64, (Piece(5, 0, 8, memory=False),))
    b = Value("b", u64, (Piece(4, 0, 8, memory=False),), first_piece=1)
    plan = make_plan()
    plan.functions[0] = dataclasses.replace(
        plan.functions[0], params=(a, b), returns=dataclasses.replace(a, name="return")
    )
    events = []
    for i in range(3):
        events += [RawEvent(2 * i, 1000, 1, 0, (2**64 - 1 - i, i) + (0,) * 14),
                   RawEvent(2 * i + 1, 1000, 1, 1, (i * 31,) + (0,) * 15)]  # fmt: skip
    store = collect(plan, events, exited=True)
    calls = store.calls()
    assert [(c.args, c.kwargs, c.retval) for c in calls] == [
        ((2**64 - 1 - i, i), {"a": 2**64 - 1 - i, "b": i}, i * 31) for i in range(3)
    ]
    assert calls == [eager(store, i) for i in range(3)]
