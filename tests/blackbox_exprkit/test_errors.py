"""Typos, assertion helpers and their failure messages, follow_children."""

from unittest.mock import call

import pytest

from pytest_uprobe import UprobeError
from tests.blackbox_exprkit.rdebug import printed


def test_typo_suggests_closest(uprobe_trace, exe):
    with pytest.raises(UprobeError) as ei:
        uprobe_trace.run([exe, "sync"], probes=["exprkit::summarise"])
    msg = str(ei.value)
    assert type(ei.value).__name__ == "NoMatchingFunction"
    assert "exprkit::summarize" in msg
    print(msg)


def test_glob_matches_nothing(uprobe_trace, exe):
    with pytest.raises(UprobeError) as ei:
        uprobe_trace.run([exe, "sync"], probes=["<* as exprkit::Shape>::area"])
    assert type(ei.value).__name__ == "GlobMatchesNothing"
    print(ei.value)


def test_wrong_monomorph(uprobe_trace, exe):
    with pytest.raises(UprobeError) as ei:
        uprobe_trace.run([exe, "sync"], probes=["exprkit::largest::<u8>"])
    msg = str(ei.value)
    assert "exprkit::largest::<u32>" in msg
    print(msg)


def test_mock_helpers_pass(uprobe_trace, exe):
    t = uprobe_trace.run([exe, "sync"], probes=["exprkit::span_of", "exprkit::apply_n"])
    ((sargs, _),) = printed(t.stdout, "exprkit::span_of")
    ap = t["exprkit::apply_n"]
    want = printed(t.stdout, "exprkit::apply_n")
    ap.assert_called()
    t["exprkit::span_of"].assert_called_once_with(*sargs)
    t["exprkit::span_of"].assert_any_call(xs=sargs[0])
    assert [c.args[1:] for c in ap.calls] == [a for a, _ in want]


def test_failure_message_lists_calls(uprobe_trace, exe):
    t = uprobe_trace.run([exe, "sync"], probes=["exprkit::largest::<i64>"])
    ((args, _),) = printed(t.stdout, "exprkit::largest::<i64>")
    with pytest.raises(AssertionError) as ei:
        t["exprkit::largest::<i64>"].assert_called_with([-7, -2, -31])
    msg = str(ei.value)
    assert "[-7, -2, -30]" in msg and "[-7, -2, -31]" in msg
    print(msg)
    with pytest.raises(AssertionError) as ei:
        t["exprkit::largest::<i64>"].assert_has_calls([call(list(args[0])), call([1])])
    print(ei.value)
    assert "[1]" in str(ei.value)


def test_assert_sequence(uprobe_trace, exe):
    t = uprobe_trace.run(
        [exe, "sync"], probes=["exprkit::summarize", "exprkit::min_max", "exprkit::span_of"]
    )
    t.assert_sequence(
        ["exprkit::min_max", "exprkit::summarize", "exprkit::min_max", "exprkit::span_of"],
        exact=True,
    )
    assert (
        t["exprkit::min_max"].called_from("exprkit::summarize").call_count == 1
    )  # `assert` added: the user wrote a bare comparison
    with pytest.raises(AssertionError) as ei:
        t.assert_sequence(["exprkit::span_of", "exprkit::summarize"])
    print(ei.value)


def test_follow_children(uprobe_trace, exe, profile):
    t = uprobe_trace.run([exe, "spawn"], probes=["exprkit::fib"], follow_children=True)
    lines = printed(t.stdout, "exprkit::fib")
    assert [a for a, _ in lines] == [(10,), (12,)]
    calls = {0: 1, 1: 1}
    for i in range(2, 13):
        calls[i] = 1 + calls[i - 1] + calls[i - 2]
    fib = t["exprkit::fib"]
    tops = fib.called_from(None)
    assert sorted(tops.args_list) == [(10,), (12,)]
    assert sorted(tops.retvals) == sorted(r for _, r in lines)
    assert len({c.tid for c in tops.calls}) == 2
    if profile == "dev":
        assert fib.call_count == calls[10] + calls[12]


def test_without_follow_children_child_not_counted(uprobe_trace, exe, profile):
    t = uprobe_trace.run([exe, "spawn"], probes=["exprkit::fib"])
    assert printed(t.stdout, "exprkit::fib")[1][0] == (12,)
    assert t["exprkit::fib"].called_from(None).args_list == [(10,)]
