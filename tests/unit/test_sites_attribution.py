"""Attribution of events to probes, how pending frames ended, and CallCount bounds, on
hand-made plans and event streams (no root, no compiler)."""

from __future__ import annotations

import pytest

from pytest_uprobe.bounds import CallCount, InexactCount
from pytest_uprobe.dwarf.locations import Cfa
from pytest_uprobe.events import build_calls, entry_counts
from pytest_uprobe.plan import Site, SiteKind
from pytest_uprobe.trace import FunctionTrace, Trace
from tests.unit.test_events import ARG, ev, function, make_plan


def shared_plan():
    """f is named by two probes, `*` and `f`; g by `*` only."""
    plan = make_plan()
    plan.probes = ("*", "f")
    plan.functions[0].probe = "*"
    plan.functions[0].also.append("f")
    plan.functions[1].probe = "*"
    return plan


def test_a_site_named_by_two_probes_counts_for_both():
    plan = shared_plan()
    # site 0: f's entry, site 3: g's entry
    assert entry_counts(plan, [5, 5, 0, 2, 2]) == {"*": 7, "f": 5}


def test_one_event_is_one_call_that_answers_to_every_name():
    plan = shared_plan()
    calls = build_calls(plan, [ev(0, 1000, 1), ev(1, 1000, 3)], exited=True)
    (call,) = calls
    assert call.probes == ("*", "f") and call.function == "*"
    assert call.answers_to("f") and call.answers_to("*") and not call.answers_to("g")
    trace = Trace(["x"], 0, "", "", calls=calls)
    trace.functions = {n: FunctionTrace(n, [c for c in calls if n in c.probes]) for n in ("*", "f")}
    trace.assert_sequence(["f"], exact=True)
    trace.assert_sequence(["*"], exact=True)
    with pytest.raises(AssertionError):
        trace.assert_sequence(["f", "*"])  # one call cannot be two


def marked_plan(marker: str):
    """make_plan with a marker function (exit, abort or panic) at 0x3000, site 5."""
    plan = make_plan()
    marked = function("", 0x3000)
    marked.marker = marker
    plan.markers.append(marked)
    plan.sites.append(Site(SiteKind.ENTRY, 0x3000, 2, Cfa(7, 8), ARG.location))
    return plan


def test_a_frame_the_process_exited_in_did_not_return():
    plan = marked_plan("exit")
    calls = build_calls(plan, [ev(0, 1000, 1), ev(5, 900)], exited=True)
    (call,) = calls  # the marker is no call of the user's
    assert (call.returned, call.unwound, call.ended) == (False, False, "the process exited in it")
    assert "(did not return: the process exited in it)" in repr(call)


def test_a_frame_a_panic_started_in_is_unwound():
    plan = marked_plan("panic")
    (call,) = build_calls(plan, [ev(0, 1000, 1), ev(5, 900)], exited=True)
    assert (call.returned, call.unwound, call.ended) == (False, True, None)


def test_a_pending_frame_with_no_evidence_is_not_unwound():
    (call,) = build_calls(make_plan(), [ev(0, 1000, 1)], exited=True)
    assert (call.unwound, call.ended) == (False, "the process ended while it ran")
    (call,) = build_calls(marked_plan("abort"), [ev(0, 1000, 1), ev(5, 900)], exited=False)
    assert (call.unwound, call.ended) == (False, "the process aborted in it")


def test_a_marker_above_a_frame_proves_nothing_about_it():
    # The panic starts in an outer frame after f(1) returned... and a deeper f(2) is still
    # pending on another thread: neither is marked.
    plan = marked_plan("panic")
    events = [ev(0, 1000, 1, tid=1), ev(1, 1000, 2, tid=1), ev(0, 800, 2, tid=2), ev(5, 900, tid=1)]
    first, second = build_calls(plan, events, exited=True)
    assert first.returned and not second.unwound


def test_a_lower_bound_decides_only_what_it_can():
    count = CallCount(3, "f", may_be_more=["a copy at 0x10: LOCK"])
    assert count >= 3 and count > 2 and count != 2 and (count == 1) is False and not count < 3
    for undecided in (lambda: count == 3, lambda: count <= 5, lambda: count < 4, lambda: count > 3):
        with pytest.raises(InexactCount, match="a copy at 0x10: LOCK"):
            undecided()
    assert repr(count) == "CallCount(at least 3)" and int(count) == 3 and f"{count}" == "3"


def test_an_upper_bound_decides_only_what_it_can():
    count = CallCount(4, "f", may_be_fewer=["shares its address with g"])
    assert count <= 4 and count < 5 and not count >= 5 and (count == 5) is False
    for undecided in (lambda: count == 4, lambda: count >= 1, lambda: bool(count)):
        with pytest.raises(InexactCount, match="shares its address with g"):
            undecided()
    assert not CallCount(0, may_be_fewer=["x"])  # at most 0 is exactly 0


def test_exact_assertions_refuse_an_inexact_count():
    trace = FunctionTrace("f", [], call_count=1, left_out=["the copy in g at 0x10: LOCK"])
    assert not trace.complete and trace.called
    with pytest.raises(InexactCount, match="the copy in g"):
        trace.assert_called_once()
    with pytest.raises(InexactCount, match="the copy in g"):
        trace.assert_called_once_with(1)
    with pytest.raises(InexactCount, match="the copy in g"):
        _ = trace.args_list
    exact = FunctionTrace("f", [], call_count=1)
    exact.assert_called_once()
    assert exact.complete and repr(exact.call_count) == "1"
