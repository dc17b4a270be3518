"""Call order, callers and the call log, on hand-made calls and event streams."""

from __future__ import annotations

import pytest

from pytest_uprobe.events import build_calls
from pytest_uprobe.trace import Call, FunctionTrace, LostEventsError, Trace

from .test_events import ev, make_plan


def make_call(
    name: str, ts: int, *, caller: Call | None = None, ret: int = 0, tid: int = 7
) -> Call:
    return Call(
        name, name, (ts,), {"n": ts}, tid, ts * 1000, retval=ret, returned=True,
        return_ts_ns=ts * 1000 + 500, caller=caller,
        depth=0 if caller is None else caller.depth + 1,
    )  # fmt: skip


def make_trace(calls: list[Call], lost: int = 0, policy: str = "fail") -> Trace:
    trace = Trace(["prog"], 0, "", "", calls=calls, lost_events=lost, lost_events_policy=policy)
    for name in dict.fromkeys(c.function for c in calls):
        mine = [c for c in calls if c.function == name]
        trace.functions[name] = FunctionTrace(
            name, mine, lost_events=lost, lost_events_policy=policy
        )
    return trace


MAIN = make_call("main", 0)
PARSE = make_call("parse", 1, caller=MAIN)
LEX = make_call("lex", 2, caller=PARSE)
EVAL = make_call("eval", 3, caller=MAIN)
PARSE2 = make_call("parse", 4, caller=EVAL)
ORDERED = make_trace([MAIN, PARSE, LEX, EVAL, PARSE2])


def test_caller_and_depth_come_from_entry_return_nesting():
    # f(1) enters, g(2) runs inside it and returns, f returns; then g(3) on its own.
    events = [ev(0, 1000, 1), ev(3, 960, 2), ev(4, 960, 20), ev(1, 1000, 10), ev(3, 1000, 3)]
    f, g_inner, g_alone = build_calls(make_plan(), events, exited=True)
    assert (f.caller, f.depth) == (None, 0)
    assert (g_inner.caller, g_inner.depth) == (f, 1)
    assert (g_alone.caller, g_alone.depth) == (None, 0)


def test_callers_are_per_thread():
    events = [ev(0, 1000, 1, tid=1), ev(3, 960, 2, tid=2), ev(3, 960, 3, tid=1)]
    f, g_other_thread, g_same_thread = build_calls(make_plan(), events, exited=True)
    assert g_other_thread.caller is None and g_other_thread.depth == 0
    assert g_same_thread.caller is f and g_same_thread.depth == 1


def test_recursion_nests_callers():
    events = [ev(0, 1000, 3), ev(0, 960, 2), ev(0, 920, 1), ev(1, 920), ev(1, 960), ev(1, 1000)]
    outer, middle, inner = build_calls(make_plan(), events, exited=True)
    assert [c.depth for c in (outer, middle, inner)] == [0, 1, 2]
    assert inner.caller is middle and middle.caller is outer


def test_assert_sequence_as_a_subsequence():
    ORDERED.assert_sequence(["parse", "eval"])
    ORDERED.assert_sequence(["main", "parse", "parse"])
    ORDERED.assert_sequence(["parse", "eval", "parse"], exact=False)
    with pytest.raises(AssertionError) as info:
        ORDERED.assert_sequence(["eval", "lex"])
    assert str(info.value).splitlines()[:6] == [
        "Expected the calls of 'eval', 'lex' in this order as a subsequence (other calls may "
        "come between):",
        "  ['eval', 'lex']",
        "Actual order (2 calls):",
        "  ['lex', 'eval']",
        "matched 1 of 2: no call of 'lex' (position 1) came after the calls matched before it.",
        "Calls seen (2):",
    ]


def test_assert_sequence_exact_considers_only_the_named_functions():
    ORDERED.assert_sequence(["parse", "eval", "parse"], exact=True)
    with pytest.raises(AssertionError) as info:
        ORDERED.assert_sequence(["parse", "eval"], exact=True)
    text = str(info.value)
    assert "in exactly this order:\n  ['parse', 'eval']" in text
    assert "Actual order (3 calls):\n  ['parse', 'eval', 'parse']" in text
    assert "first difference at position 2" in text
    assert "  2: parse(4) -> 0 [tid 7] from eval" in text


def test_assert_sequence_refuses_a_string():
    with pytest.raises(TypeError):
        ORDERED.assert_sequence("parse")  # type: ignore[arg-type]


def test_called_from_and_callers():
    parse = ORDERED["parse"]
    assert parse.callers == {"main": 1, "eval": 1}
    assert parse.called_from("main").calls == [PARSE]
    assert parse.called_from("eval").args_list == [(4,)]
    assert ORDERED["main"].called_from(None).call_count == 1
    assert not parse.called_from("lex")
    ORDERED["lex"].assert_only_called_from("parse")
    with pytest.raises(AssertionError, match=r"come from 'main'; 1 of 2 did not. Callers: "):
        parse.assert_only_called_from("main")


def test_lost_events_fail_or_warn():
    failing = make_trace([MAIN, PARSE], lost=3)
    with pytest.raises(LostEventsError, match="3 events .* lost .* the order of calls is"):
        failing.assert_sequence(["main"])
    with pytest.raises(LostEventsError, match="uprobe_lost_events = warn"):
        failing["parse"].called_from("main")
    assert failing["parse"].call_count == 1  # counted in the kernel: still usable
    tolerant = make_trace([MAIN, PARSE], lost=3, policy="warn")
    tolerant.assert_sequence(["main", "parse"])
    assert tolerant["parse"].args_list == [(1,)]


def test_log_shows_offset_thread_depth_values_and_inlining():
    inlined = Call("lex", "lex", (9,), {"n": 9}, 8, 5_000_000, inlined=True, inlined_into="parse")
    lines = make_trace([MAIN, PARSE, inlined]).log().splitlines()
    assert lines == [
        "     0.000 ms  tid 7       main(0) -> 0  [out-of-line, 0.5 us]",
        "     0.001 ms  tid 7         parse(1) -> 0  [out-of-line, 0.5 us]",
        "     5.000 ms  tid 8       lex(9)  [inlined into parse]",
    ]


def test_long_logs_keep_the_first_and_last_calls_and_count_the_rest():
    calls = [make_call("f", i) for i in range(1000)]
    lines = make_trace(calls).log(limit=100).splitlines()
    assert len(lines) == 101
    assert lines[74].endswith("f(74) -> 0  [out-of-line, 0.5 us]")
    assert lines[75] == "... 900 calls left out (of 1000; all are in trace.calls) ..."
    assert lines[76].endswith("f(975) -> 0  [out-of-line, 0.5 us]")
    assert lines[-1].endswith("f(999) -> 0  [out-of-line, 0.5 us]")
    assert len(make_trace(calls).log(limit=None).splitlines()) == 1000
