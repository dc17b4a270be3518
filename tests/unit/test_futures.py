"""How futures are made from constructor calls, polls and drops (pytest_uprobe/futures.py),
on hand-built calls: no root, no compiler. Each case is one the integration tests cannot
force on a real executor (equal arguments, memory reused, polls that cannot be given to a
future), and each asserts the answer is right or says it is unknown."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_uprobe.futures import (
    DROPPED_ADDRESS,
    DROPPED_STATE,
    STATE_ADDRESS,
    FutureCall,
    FutureOutcomeUnknown,
    TrackedFuture,
    _assemble,
)
from pytest_uprobe.trace import Call, Trace
from pytest_uprobe.values import Struct, Unavailable, Variant

F = "m::fetch"
POLL = "m::fetch::{async_fn#0}"
DROP = "core::ptr::drop_in_place<m::fetch::{{closure}}>"
TRACKED = TrackedFuture(F, "async fn", True, (POLL,), DROP)


def create(ts: int, x: Any, tid: int = 1) -> Call:
    return Call(F, F, (x,), {"x": x}, tid, ts, retval=None, returned=True)


def poll(
    ts: int, address: Any, state: str, result: Any, tid: int = 1, x: Any = 1, returned: bool = True
) -> Call:
    value = Struct("Unresumed", {"x": x}) if state == "Unresumed" else Struct(state, {})
    pinned = Variant(state, value)  # Pin<&mut State> decodes as the state it points to
    return Call(
        POLL,
        POLL,
        (pinned, address),
        {"_0": pinned, STATE_ADDRESS: address},
        tid,
        ts,
        retval=result,
        returned=returned,
        return_ts_ns=ts + 1 if returned else None,
    )


def drop(ts: int, address: Any, state: str | None = None, x: Any = 1) -> Call:
    if state is None:
        return Call(DROP, DROP, (address,), {DROPPED_ADDRESS: address}, 1, ts)
    value = Struct("Unresumed", {"x": x}) if state == "Unresumed" else Struct(state, {})
    read = Variant(state, value)
    return Call(DROP, DROP, (read, address), {DROPPED_STATE: read, DROPPED_ADDRESS: address}, 1, ts)


PENDING = Variant("Pending")


def ready(value: Any) -> Variant:
    return Variant("Ready", value)


def futures_of(*calls: Call, tracked: TrackedFuture = TRACKED) -> list[FutureCall]:
    trace = Trace(argv=["x"], returncode=0, stdout="", stderr="", calls=list(calls))
    return _assemble(trace, tracked, {F: sum(c.function == F for c in calls)}).futures


def test_a_future_polled_on_two_threads_is_one_future_with_its_output() -> None:
    (future,) = futures_of(
        create(1, 7),
        poll(2, 0x1000, "Unresumed", PENDING, tid=11, x=7),
        poll(3, 0x1000, "Suspend0", PENDING, tid=12),
        poll(4, 0x1000, "Suspend0", ready(70), tid=11),
    )
    assert future.args == (7,)
    assert [p.tid for p in future.polls] == [11, 12, 11]
    assert future.threads == [11, 12]
    assert future.completed and future.retval == 70
    assert future.outcome == "completed after 3 polls"


def test_constructor_calls_are_matched_to_first_polls_by_arguments() -> None:
    # Created 1 then 2; polled 2 first: each future keeps its own arguments and output.
    one, two = futures_of(
        create(1, 1),
        create(2, 2),
        poll(3, 0x2000, "Unresumed", ready(20), x=2),
        poll(4, 0x1000, "Unresumed", ready(10), x=1),
    )
    assert (one.args, one.retval, one.creation_doubt) == ((1,), 10, None)
    assert (two.args, two.retval, two.creation_doubt) == ((2,), 20, None)


def test_equal_arguments_leave_a_doubt_on_the_creation_not_on_the_arguments() -> None:
    first, second = futures_of(
        create(1, 5, tid=1),
        create(2, 5, tid=2),
        poll(3, 0x1000, "Unresumed", ready(1), x=5),
        poll(4, 0x2000, "Unresumed", ready(2), x=5),
    )
    assert first.args == second.args == (5,)
    assert first.creation_doubt and second.creation_doubt
    assert "one of 2 constructor calls with equal arguments" in first.creation_doubt


def test_a_completed_future_is_not_said_undropped_when_drops_went_unseen() -> None:
    (future,) = futures_of(
        create(1, 1),
        poll(2, 0x1000, "Unresumed", ready(1), x=1),
        drop(3, Unavailable("no parameter in DWARF")),  # perhaps its own drop
    )
    assert future.completed and future.retval == 1
    with pytest.raises(FutureOutcomeUnknown, match="1 drops of this future type ran where"):
        assert not future.dropped


def test_memory_reused_by_a_new_future_ends_the_old_one_as_unseen() -> None:
    old, new = futures_of(
        create(1, 1),
        poll(2, 0x1000, "Unresumed", PENDING, x=1),
        create(3, 2),
        poll(4, 0x1000, "Unresumed", ready(2), x=2),
    )
    assert not old.completed
    with pytest.raises(FutureOutcomeUnknown, match="was dropped is unknown: its memory held"):
        assert not old.dropped
    assert "its memory held a new future" in old.outcome
    assert isinstance(old.retval, Unavailable)
    assert new.completed and new.retval == 2


def test_drops_end_live_futures_and_unpolled_ones() -> None:
    polled, unpolled = futures_of(
        create(1, 1),
        poll(2, 0x1000, "Unresumed", PENDING, x=1),
        create(3, 2),
        drop(4, 0x1000),
        drop(5, 0x9000),  # the only future never polled: it was moved, then dropped
    )
    assert polled.dropped and polled.outcome == "dropped unfinished after 1 poll"
    assert unpolled.dropped and unpolled.outcome == "dropped without being polled"
    assert isinstance(polled.retval, Unavailable) and not polled.completed


def test_a_drop_where_a_completed_future_lived_is_ambiguous_with_unpolled_futures() -> None:
    done, waiting = futures_of(
        create(1, 1),
        poll(2, 0x1000, "Unresumed", ready(1), x=1),
        create(3, 2),
        drop(4, 0x1000),  # the completed one's drop, or the unpolled one moved there
    )
    assert done.completed
    assert "dropped or not is unknown" in waiting.outcome
    with pytest.raises(FutureOutcomeUnknown, match="several unpolled futures"):
        assert not waiting.dropped  # no confident False: the drop may have been its


def test_polls_that_cannot_be_given_to_a_future_make_unfinished_outcomes_unknown() -> None:
    future, other = futures_of(
        create(1, 1),
        create(2, 2),
        poll(3, 0x1000, "Unresumed", ready(1), x=1),
        poll(4, Unavailable("optimized out"), "Unresumed", PENDING, x=2),
    )
    assert future.completed and future.retval == 1
    assert not future.polls_complete
    assert other.polls == []
    with pytest.raises(FutureOutcomeUnknown, match="polls ran where the state's address"):
        assert not other.completed
    assert isinstance(other.retval, Unavailable)


def test_a_poll_with_no_return_seen_gives_no_output() -> None:
    (future,) = futures_of(
        create(1, 1),
        poll(2, 0x1000, "Unresumed", Unavailable("an inlined copy has no return"), x=1),
    )
    assert future.polls[0].result.startswith("unknown:")
    with pytest.raises(FutureOutcomeUnknown):
        assert future.completed
    assert isinstance(future.retval, Unavailable)


def test_a_panicking_poll_and_a_future_never_dropped() -> None:
    unwound = poll(3, 0x1000, "Suspend0", None, returned=False)
    unwound.unwound = True
    panicked, left = futures_of(
        create(1, 1),
        poll(2, 0x1000, "Unresumed", PENDING, x=1),
        unwound,
        create(4, 2),
        poll(5, 0x2000, "Unresumed", PENDING, x=2),
    )
    assert panicked.unwound and panicked.outcome == "panicked in its poll #2"
    assert [p.result for p in panicked.polls] == ["pending", "panicked"]
    assert left.outcome == "unfinished after 1 poll when the program ended, never dropped"
    assert left.ended == left.outcome


def test_drop_glue_inlined_where_the_address_is_unknown_leaves_the_fate_unknown() -> None:
    (future,) = futures_of(
        create(1, 1),
        poll(2, 0x1000, "Unresumed", PENDING, x=1),
        drop(3, Unavailable("no parameter in DWARF")),
    )
    assert "dropped or not is unknown: 1 drops" in future.outcome
    with pytest.raises(FutureOutcomeUnknown, match="1 drops of this future type ran where"):
        assert not future.dropped


def test_a_first_poll_whose_constructor_call_differs_is_not_matched_to_it() -> None:
    created, seen = futures_of(create(1, 2), poll(2, 0x1000, "Unresumed", ready(1), x=1))
    assert created.args == (2,) and created.polls == []
    assert seen.args == (1,) and not seen.created
    assert seen.creation_doubt == "no constructor call with its arguments was seen for it"


def test_functions_only_futures_watch_are_nobodys_caller() -> None:
    from pytest_uprobe.futures import FuturePlan, apply
    from pytest_uprobe.plan import ProbePlan

    outer = Call("m::run", "m::run", (), {}, 1, 0)
    glue = drop(1, 0x1000)
    glue.caller, glue.depth = outer, 1
    inner = Call("m::log", "m::log", (), {}, 1, 2)
    inner.caller, inner.depth = glue, 2  # the glue's frame had returned unseen
    trace = Trace(argv=["x"], returncode=0, stdout="", stderr="", calls=[outer, glue, inner])
    plan = FuturePlan(
        [F, POLL, DROP, "m::run", "m::log"], [TRACKED], frozenset({F, "m::run", "m::log"})
    )
    apply(trace, ProbePlan(None, ()), plan, {})  # type: ignore[arg-type]
    assert inner.caller is outer and inner.depth == 1
    assert glue not in trace.calls


def test_the_state_read_at_a_drop_tells_which_unpolled_future_it_was() -> None:
    one, two, done = futures_of(
        create(1, 1),
        create(2, 2),
        create(3, 3),
        poll(4, 0x1000, "Unresumed", ready(3), x=3),
        drop(5, 0x1000, "Unresumed", x=2),  # memory reused: the state says who
    )
    assert two.dropped and two.outcome == "dropped without being polled"
    assert not one.dropped and one.outcome.startswith("never polled")
    assert done.completed and done.retval == 3


def test_a_poll_not_seen_returning_is_told_by_the_next_poll_and_by_the_drop() -> None:
    unknown = Unavailable("an inlined copy has no return")
    (future,) = futures_of(
        create(1, 1),
        poll(2, 0x1000, "Unresumed", unknown, x=1),
        poll(3, 0x1000, "Suspend0", unknown),
        drop(4, 0x1000, "Returned"),
    )
    assert [p.result for p in future.polls] == ["pending", "unknown: an inlined copy has no return"]
    assert future.completed  # its state said Returned when dropped
    assert isinstance(future.retval, Unavailable)  # the output itself was never seen
    assert "its state said so when dropped" in future.outcome


def test_a_drop_of_a_suspended_future_is_unfinished_even_after_an_unseen_return() -> None:
    unknown = Unavailable("an inlined copy has no return")
    (future,) = futures_of(
        create(1, 1),
        poll(2, 0x1000, "Unresumed", unknown, x=1),
        drop(3, 0x1000, "Suspend0"),
    )
    assert future.dropped and not future.completed
    assert future.outcome == "dropped unfinished after 1 poll"


def test_a_drop_without_the_state_after_an_unseen_return_says_it_does_not_know() -> None:
    (future,) = futures_of(
        create(1, 1),
        poll(2, 0x1000, "Unresumed", Unavailable("an inlined copy has no return"), x=1),
        drop(3, 0x1000),
    )
    assert future.dropped
    with pytest.raises(FutureOutcomeUnknown):
        assert not future.completed
    assert "completed or not is unknown" in future.outcome
