"""Calls kept as columns and made on first use (callstore.py, lazylist.py), and raw events
kept as bytes (rawevents.py): the same Calls as making each one alone, the list behaving
as a list, and the bytes a call of two integers costs."""

from __future__ import annotations

import dataclasses
import pickle
import random

import pytest

from pytest_uprobe.dwarf.locations import Piece
from pytest_uprobe.dwarf.types import RustType
from pytest_uprobe.events import Pairing, build_calls, collect
from pytest_uprobe.lazylist import LazyList
from pytest_uprobe.plan import Value
from pytest_uprobe.rawevents import EVENT_SIZE, RawEvent, RawEvents

from .test_events import ev, make_plan, panicking_plan


def fields(call):
    """Every field (Unavailable equals nothing: by its repr), the caller by its entry."""
    shown = {k: repr(v) for k, v in vars(call).items() if k != "caller"}
    return shown, call.caller and (call.caller.ts_ns, call.caller.args)


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
def test_calls_made_in_bulk_are_those_made_one_by_one(plan, events, exited):
    one_by_one = collect(plan, events, exited=exited)
    singles = [one_by_one.call(i) for i in range(len(one_by_one))]
    bulk = build_calls(plan, events, exited=exited)
    assert [fields(c) for c in bulk] == [fields(c) for c in singles]
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
def test_events_paired_in_batches_while_the_program_runs_give_the_same_calls(
    plan, events, exited
):
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
