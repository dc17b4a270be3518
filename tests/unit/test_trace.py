"""Assertion helpers: unittest.mock's wording, then every call seen."""

from __future__ import annotations

import pytest

from pytest_uprobe.errors import UsageError
from pytest_uprobe.options import LostEvents
from pytest_uprobe.trace import Call, FunctionTrace, LostEventsError
from pytest_uprobe.values import Unavailable


def call(i: int, n: int, ret: int | None = None, tid: int = 7) -> Call:
    return Call(
        "args::hello", "args::hello", (i, n), {"i": i, "len": n}, tid, 0,
        retval=ret, returned=ret is not None,
    )  # fmt: skip


HELLO = FunctionTrace("args::hello", [call(1, 3, 4), call(2, 3, 5)])


def test_counts_and_lists():
    assert HELLO.call_count == 2 and HELLO.called
    assert HELLO.args_list == HELLO.call_args_list == [(1, 3), (2, 3)]
    assert HELLO.retvals == [4, 5]
    assert HELLO.call_args == (2, 3)


def test_passing_assertions():
    HELLO.assert_called()
    HELLO.assert_called_with(2, 3)
    HELLO.assert_called_with(i=2, len=3)
    HELLO.assert_called_with(2, len=3)
    HELLO.assert_any_call(1, 3)
    HELLO.assert_has_calls([(1, 3), (2, 3)])
    HELLO.assert_has_calls([(2, 3), (1, 3)], any_order=True)
    FunctionTrace("f", []).assert_not_called()


def test_called_once_uses_mocks_wording_and_lists_calls():
    with pytest.raises(AssertionError) as info:
        HELLO.assert_called_once()
    assert str(info.value).splitlines() == [
        "Expected 'args::hello' to have been called once. Called 2 times.",
        "Calls seen (2):",
        "  0: args::hello(1, 3) -> 4 [tid 7]",
        "  1: args::hello(2, 3) -> 5 [tid 7]",
    ]


def test_called_once_with_on_two_calls():
    with pytest.raises(
        AssertionError, match=r"Expected 'args::hello' to be called once. Called 2 times."
    ):
        HELLO.assert_called_once_with(2, 3)


def test_called_with_mismatch_shows_expected_actual_and_calls():
    with pytest.raises(AssertionError) as info:
        HELLO.assert_called_with(2, 4)
    text = str(info.value)
    assert "Expected: args::hello(2, 4)" in text
    assert "  Actual: args::hello(2, 3) -> 5 [tid 7]" in text
    assert "  0: args::hello(1, 3) -> 4 [tid 7]" in text


def test_not_called_and_any_call_failures():
    with pytest.raises(
        AssertionError, match="Expected 'args::hello' to not have been called. Called 2 times."
    ):
        HELLO.assert_not_called()
    with pytest.raises(AssertionError, match=r"args::hello\(9, 9\) call not found"):
        HELLO.assert_any_call(9, 9)
    with pytest.raises(AssertionError, match="Actual: not called."):
        FunctionTrace("f", []).assert_called_with(1)


def test_long_call_lists_are_cut_with_a_count():
    many = FunctionTrace("f", [call(i, 0, i) for i in range(60)])
    with pytest.raises(AssertionError) as info:
        many.assert_called_once()
    assert "... and 10 more" in str(info.value)


def test_lost_events_make_value_assertions_fail_with_the_reason():
    lossy = FunctionTrace("f", [call(1, 1, 2)], call_count=5, lost_events=4)
    assert lossy.call_count == 5  # counted in the kernel: still exact
    with pytest.raises(LostEventsError, match="4 events with arguments or return values were lost"):
        lossy.args_list  # noqa: B018
    with pytest.raises(LostEventsError):
        lossy.assert_called_with(1, 1)


def test_unavailable_equals_nothing_and_says_why():
    value = Unavailable("optimized out")
    assert value != 0 and value != value and repr(value) == "Unavailable('optimized out')"
    trace = FunctionTrace("f", [Call("f", "f", (value,), {"x": value}, 1, 0)])
    with pytest.raises(AssertionError, match=r"Unavailable\('optimized out'\)"):
        trace.assert_called_with(0)


def test_len_is_what_iterating_yields_and_call_count_is_the_calls_made():
    lossy = FunctionTrace("f", [call(1, 1, 2)], call_count=5, lost_events=4)
    assert len(lossy) == len(list(lossy)) == 1
    assert lossy.call_count == 5
    counted_only = FunctionTrace("f", [], call_count=3)  # record=False: no call delivered
    assert len(counted_only) == 0 and counted_only.call_count == 3


@pytest.mark.parametrize("policy", ["warn", LostEvents.WARN])
def test_the_lost_events_policy_is_an_enum_that_takes_its_strings(policy):
    lossy = FunctionTrace("f", [call(1, 1, 2)], call_count=5, lost_events=4,
                          lost_events_policy=policy)  # fmt: skip
    assert lossy.lost_events_policy is LostEvents.WARN
    assert lossy.retvals == [2]  # warn: the calls recorded are used
    with pytest.raises(UsageError, match="lost_events must be 'fail' or 'warn', got 'sometimes'"):
        FunctionTrace("f", [], lost_events_policy="sometimes")


def test_the_package_exports_the_errors_and_warnings_users_catch():
    import pytest_uprobe

    assert pytest_uprobe.LostEventsError is LostEventsError
    assert issubclass(pytest_uprobe.LostEventsWarning, UserWarning)
    assert pytest_uprobe.UsageError is UsageError


def test_a_trace_is_built_from_a_finished_run_by_from_run():
    """What Tracer.run hands over (the plan, how the program finished, the calls and the
    kernel's counts) becomes the Trace and one FunctionTrace per probe name, calls in time
    order, without anything to run."""
    from pathlib import Path

    from pytest_uprobe.elf import ElfBinary
    from pytest_uprobe.launch import Finished
    from pytest_uprobe.plan import build_plan
    from pytest_uprobe.trace import Trace

    tiny = Path(__file__).resolve().parent.parent / "data" / "tiny" / "tiny-O0-dwarf4"
    plan = build_plan(ElfBinary.open(tiny), ["tiny::sum"])
    later, earlier = call(2, 3, 5), call(1, 3, 4)
    later.ts_ns, earlier.ts_ns = 20, 10
    later.probes = earlier.probes = ("tiny::sum",)
    finished = Finished(returncode=3, stdout="out", stderr="err", timed_out=False)
    trace = Trace.from_run(
        plan, finished, argv=[str(tiny)], calls=[later, earlier], counts={"tiny::sum": 7},
        lost=0, lost_events_policy=LostEvents.FAIL, children="kill", record=False,
        compile_seconds=0.5, pid=42,
    )  # fmt: skip
    assert (trace.returncode, trace.stdout, trace.stderr, trace.pid) == (3, "out", "err", 42)
    assert trace.calls == [earlier, later]
    assert trace["tiny::sum"].call_count == 7 and list(trace["tiny::sum"]) == [earlier, later]
    # record=False: only the sites that start a call are attached
    assert trace.probes_attached == sum(s.kind.starts_a_call for s in plan.sites) >= 1


def test_has_calls_takes_unittest_mock_call_objects():
    # as unittest.mock takes them: positional, keyword and mixed, in order or any order
    from unittest import mock

    HELLO.assert_has_calls([mock.call(1, 3), mock.call(2, 3)])
    HELLO.assert_has_calls([mock.call(i=1, len=3), mock.call(2, len=3)])
    HELLO.assert_has_calls([mock.call(2, 3), mock.call(1, 3)], any_order=True)
    HELLO.assert_has_calls([mock.call(2, 3), (1, 3)], any_order=True)
    with pytest.raises(AssertionError) as info:
        HELLO.assert_has_calls([mock.call(2, 3), mock.call(1, 3)])
    assert "Expected: [args::hello(2, 3), args::hello(1, 3)]" in str(info.value)
    with pytest.raises(AssertionError, match=r"\[args::hello\(i=9, len=3\)\] not all found"):
        HELLO.assert_has_calls([mock.call(1, 3), mock.call(i=9, len=3)], any_order=True)
    with pytest.raises(UsageError, match="the method 'other'"):
        HELLO.assert_has_calls([mock.call.other(1, 3)])
