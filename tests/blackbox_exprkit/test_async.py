"""tokio multi-thread: spawned tasks, join!, select! with a cancelled future."""

from pytest_uprobe import Unavailable
from tests.blackbox_exprkit.rdebug import printed


def test_score_futures(uprobe_trace, exe, profile):
    t = uprobe_trace.run([exe, "async"], probes=["exprkit::score"])
    want = printed(t.stdout, "exprkit::score")
    sc = t["exprkit::score"]
    assert sc.call_count == len(want) == 5
    assert sorted(sc.args_list) == sorted(a for a, _ in want)
    by_args = {c.args: c for c in sc.calls}
    for args, ret in want:
        fut = by_args[args]
        assert fut.completed
        assert fut.retval == ret
        # yield_now + sleep: pending twice at least, then ready
        assert [p.result for p in fut.polls][-1] == "ready"
        assert len(fut.polls) >= 3


def test_select_cancels_slow_total(uprobe_trace, exe, profile):
    t = uprobe_trace.run([exe, "async"], probes=["exprkit::slow_total"])
    ((args, ret),) = printed(t.stdout, "exprkit::slow_total")
    assert "@@cancelled slow_total slow 3000" in t.stdout
    st = t["exprkit::slow_total"]
    if profile == "release":  # constructor inlined away: futures seen from their first poll
        assert st.call_count >= 2
    else:
        assert st.call_count == 2
    fast = [c for c in st.calls if c.args == args]
    slow = [c for c in st.calls if c.args == ("slow", 3000)]
    assert len(fast) == 1 and len(slow) == 1
    assert fast[0].completed and fast[0].retval == ret
    assert not slow[0].completed
    assert isinstance(slow[0].retval, Unavailable)
    if profile == "release":  # drop glue inlined: honest "unknown", documented
        from pytest_uprobe.futures import FutureOutcomeUnknown

        try:
            assert slow[0].dropped
        except FutureOutcomeUnknown as e:
            assert "drop" in str(e)
    else:
        assert slow[0].dropped


def test_record_total_mutex_inside_spawned_tasks(uprobe_trace, exe):
    t = uprobe_trace.run([exe, "async"], probes=["exprkit::record_total"])
    want = printed(t.stdout, "exprkit::score")[:3]  # the three spawned tasks
    total = int([l for l in t.stdout.splitlines() if l.startswith("@@total")][0].split()[1])
    rt = t["exprkit::record_total"]
    assert rt.call_count == 3
    assert sorted(c.args[1] for c in rt.calls) == sorted(r for _, r in want)
    # the retval is the running total; the last one is the printed total
    assert max(rt.retvals) == total
    # the Mutex's value at entry is the previous running total
    # two workers may enter at once (both see the Mutex before locking it): each value
    # seen at entry is 0 or a running total some call returned
    assert sum(c.args[1] for c in rt.calls) == total
    for c in rt.calls:
        assert c.args[0] == 0 or any(c.args[0] == r for r in rt.retvals)
    assert all(c.args[0].locked is False for c in rt.calls)
