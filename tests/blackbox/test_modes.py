"""Floats, panics on threads, long slices (Truncated), overlapping probes, --no-inlined."""

import pytest

from pytest_uprobe import Truncated, Unavailable
from tests.blackbox.stockpile import ARGV_TAIL, printed_calls, printed_counts

FLOATS = ["1.5", "2.5", "4"]
HALVES = ["4", "7", "10"]


def test_float_args(uprobe_trace, exe, profile):
    trace = uprobe_trace.run(
        [exe, "stats", *FLOATS], probes=["stockpile::mean", "stockpile::weighted"]
    )
    printed_mean = printed_calls(trace.stdout, "mean")
    printed_w = printed_calls(trace.stdout, "weighted")
    mean = trace["stockpile::mean"]
    mean.assert_called_once_with([float(x) for x in FLOATS])
    assert mean.args_list == [args for args, _ in printed_mean]
    # f64 return values: documented kernel limit -> Unavailable
    assert all(isinstance(r, Unavailable) for r in mean.retvals)
    w = trace["stockpile::weighted"]
    assert w.call_count == len(FLOATS)
    assert [c.args[1] for c in w.calls] == [i + 1 for i in range(len(FLOATS))]
    for c, (args, _) in zip(w.calls, printed_w):
        # dev: float in memory -> readable; release: in xmm0 -> Unavailable (documented)
        if profile == "dev":
            assert c.args[0] == args[0]
        else:
            assert c.args[0] == args[0] or isinstance(c.args[0], Unavailable)


def test_long_slice_is_truncated_then_full_with_higher_cap(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "stats", *FLOATS], probes=["stockpile::sum_all"])
    ((xs,), total) = printed_calls(trace.stdout, "sum_all")[0]
    s = trace["stockpile::sum_all"]
    (arg,) = s.calls[0].args
    assert isinstance(arg, Truncated)
    assert arg != xs
    assert s.retvals == [total] == [sum(range(1, 10 * len(FLOATS) + 1))]


def test_long_slice_full_with_higher_cap(exe):
    from pytest_uprobe import Tracer

    with Tracer(max_elements=64) as t:
        trace = t.run([exe, "stats", *FLOATS], probes=["stockpile::sum_all"])
    ((xs,), total) = printed_calls(trace.stdout, "sum_all")[0]
    trace["stockpile::sum_all"].assert_called_once_with(xs)


def test_panic_on_a_thread_unwinds_and_program_continues(uprobe_trace, exe):
    trace = uprobe_trace.run(
        [exe, "halves", *HALVES], probes=["stockpile::checked_half", "stockpile::half_in_thread"]
    )
    assert trace.returncode == 0
    assert "odd input 7" in trace.stderr
    printed = printed_calls(trace.stdout, "checked_half")
    ch = trace["stockpile::checked_half"]
    assert ch.call_count == len(HALVES)
    assert ch.args_list == [(int(n),) for n in HALVES]
    odd = [c for c in ch.calls if c.args[0] % 2 == 1]
    even = [c for c in ch.calls if c.args[0] % 2 == 0]
    assert all(c.unwound and not c.returned for c in odd)
    assert [(c.args, c.retval) for c in even] == printed
    hit = trace["stockpile::half_in_thread"]
    assert hit.retvals == [r for _, r in printed_calls(trace.stdout, "half_in_thread")]
    # checked_half runs on a spawned thread: no traced caller on that thread
    assert all(c.caller is None for c in ch.calls)
    assert all(c.tid != h.tid for c in ch.calls for h in hit.calls)


def test_overlapping_glob_and_exact(uprobe_trace, dev_exe):
    trace = uprobe_trace.run(
        [dev_exe, *ARGV_TAIL], probes=["stockpile::*", "stockpile::clamp_add", "stockpile::fib"]
    )
    counts = printed_counts(trace.stdout)
    assert trace["stockpile::clamp_add"].call_count == counts["clamp_add"]
    assert trace["stockpile::fib"].call_count == counts["fib"]
    allc = trace["stockpile::*"]
    assert allc.call_count >= counts["clamp_add"] + counts["fib"]
    assert len([c for c in trace.calls if c.path == "stockpile::fib"]) == counts["fib"]


def test_no_inlined_option_names_callers(release_exe):
    from pytest_uprobe import Tracer, UprobeError

    with pytest.raises(UprobeError) as ei, Tracer(inlined=False) as t:
        t.run([release_exe, *ARGV_TAIL], probes=["stockpile::sq"])
    assert "stockpile::score" in str(ei.value)
