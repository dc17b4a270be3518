"""Process-level behaviour: exit inside a call, timeouts, child processes."""

import re

import pytest

from pytest_uprobe import TraceTimeout
from tests.blackbox.stockpile import printed_calls


def test_exit_inside_a_call(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "exit", "5"], probes=["stockpile::finish"])
    assert trace.returncode == 5
    code = int(re.search(r"^CALL finish \((-?\d+),\) -> exit$", trace.stdout, re.M).group(1))
    f = trace["stockpile::finish"]
    f.assert_called_once_with(code)
    c = f.calls[0]
    assert not c.returned and not c.unwound
    assert "exited" in str(c.ended)


def test_timeout_keeps_partial_trace(uprobe_trace, exe):
    with pytest.raises(TraceTimeout) as ei:
        uprobe_trace.run([exe, "nap", "10", "20", "60000"], probes=["stockpile::nap"], timeout=3)
    partial = ei.value.trace
    nap = partial["stockpile::nap"]
    assert nap.call_count == 3
    assert nap.args_list == [(10,), (20,), (60000,)]
    assert nap.calls[0].retval == 10 and nap.calls[1].retval == 20
    assert not nap.calls[2].returned


def test_follow_children(uprobe_trace, exe):
    xs = ["1.5", "2.5"]
    alone = uprobe_trace.run(
        [exe, "child", *xs], probes=["stockpile::mean", "stockpile::run_child"]
    )
    assert alone["stockpile::mean"].call_count == 0  # the child is another process
    assert alone["stockpile::run_child"].call_count == 1
    both = uprobe_trace.run(
        [exe, "child", *xs],
        probes=["stockpile::mean", "stockpile::run_child"],
        follow_children=True,
    )
    printed = printed_calls(both.stdout, "mean")
    assert len(printed) == 1
    m = both["stockpile::mean"]
    m.assert_called_once_with(*printed[0][0])
    assert m.calls[0].tid != both["stockpile::run_child"].calls[0].tid
    rc = printed_calls(both.stdout, "run_child")[0]
    assert both["stockpile::run_child"].retvals == [rc[1]]
