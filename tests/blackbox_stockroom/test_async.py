"""Async fns on a tokio multi-thread runtime: spawned tasks, join!, select!, a dropped future."""

import pytest

from pytest_uprobe import Tracer, Unavailable
from pytest_uprobe.futures import FutureOutcomeUnknown, FuturesNotProbeable
from tests.blackbox_stockroom import rdebug

ASYNC = [
    "stockroom::jobs::fetch_stock",
    "stockroom::jobs::fetch_price",
    "stockroom::jobs::slow_audit",
]


@pytest.fixture(
    scope="module",
    params=[("dev", "bpf"), ("release", "bpf"), ("dev", "inprocess"), ("release", "inprocess")],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def arun(request, crate_dir, cargo_bin):
    if not request.config.getoption("--uprobe"):
        pytest.skip("needs --uprobe")
    profile, backend = request.param
    exe = cargo_bin(crate_dir, profile=profile)
    with Tracer(backend=backend) as t:
        # each name in its own run, so a refusal of one does not hide the others
        out = {}
        for name in ASYNC:
            try:
                out[name] = t.run([exe, "async"], probes=[name])
            except Exception as e:  # noqa: BLE001 - recorded, asserted per test
                out[name] = e
    return profile, out


def printed_of(trace, fn):
    return rdebug.calls(trace.stdout, tag="ASYNC")[fn]


def get(arun, name):
    profile, out = arun
    t = out[name]
    if isinstance(t, Exception):
        if "in-process engine cannot instrument" in str(t):  # documented refusal
            pytest.skip(f"refused by the in-process engine: {str(t).splitlines()[0]}")
        raise t
    assert t.returncode == 0, t.stderr
    return profile, t


def test_fetch_stock_spawned_tasks_and_dropped_unpolled(arun):
    profile, trace = get(arun, "stockroom::jobs::fetch_stock")
    printed = printed_of(trace, "fetch_stock")
    fs = trace["stockroom::jobs::fetch_stock"]
    assert fs.call_count == len(printed) == 4
    assert sorted(fs.args_list) == sorted(a for a, _ in printed)
    by_args = {c.args: c for c in fs.calls}
    for args, ret in printed:
        fut = by_args[args]
        if ret == "dropped-unpolled":
            assert fut.polls == []
            assert fut.completed is False
            assert isinstance(fut.retval, Unavailable)
            if "unknown" in fut.outcome:  # documented: drop glue inlined (release)
                # ...but then `dropped` must not answer a confident False: the program dropped it
                # (it refuses, as `completed` does: FutureOutcomeUnknown naming why)
                with pytest.raises(FutureOutcomeUnknown, match="dropped is unknown"):
                    assert not fut.dropped, f"dropped=False while outcome says: {fut.outcome}"
            else:
                assert fut.dropped
                assert fut.outcome == "dropped without being polled"
        else:
            assert fut.completed, fut.outcome
            assert fut.retval == ret
            assert [p.result for p in fut.polls][-1] == "ready"
            assert len(fut.polls) >= 2  # the timer suspends it at least once
            assert fut.outcome == f"completed after {len(fut.polls)} polls"


def test_fetch_price_under_join(arun):
    if (
        arun[0] == "release"
    ):  # documented: constructor inlined away, poll inlined into MaybeDone::poll
        with pytest.raises(FuturesNotProbeable, match="constructor was inlined away"):
            get(arun, "stockroom::jobs::fetch_price")
        return
    profile, trace = get(arun, "stockroom::jobs::fetch_price")
    printed = printed_of(trace, "fetch_price")
    fp = trace["stockroom::jobs::fetch_price"]
    assert fp.call_count == 2
    assert fp.args_list == [a for a, _ in printed]
    for fut, (_, ret) in zip(fp.calls, printed):
        assert fut.completed, fut.outcome
        assert fut.retval == ret
        assert [p.result for p in fut.polls] == ["pending", "ready"]  # yield_now once


def test_slow_audit_cancelled_by_select(arun):
    profile, trace = get(arun, "stockroom::jobs::slow_audit")
    printed = printed_of(trace, "slow_audit")
    assert printed == [((77,), "cancelled")]
    sa = trace["stockroom::jobs::slow_audit"]
    sa.assert_called_once_with(77)
    (fut,) = sa.calls
    if profile == "release" and fut.outcome.startswith("unknown"):
        # documented: slow_audit's poll is inlined into select!'s PollFn::poll
        with pytest.raises(FutureOutcomeUnknown):
            fut.completed
        assert isinstance(fut.retval, Unavailable)
        # the program cancelled (dropped) it: `dropped` must not answer a confident False
        # (it refuses, as `completed` does: FutureOutcomeUnknown naming why)
        with pytest.raises(FutureOutcomeUnknown, match="dropped is unknown"):
            assert not fut.dropped, f"dropped=False while outcome says: {fut.outcome}"
        return
    assert fut.dropped
    assert fut.completed is False
    assert isinstance(fut.retval, Unavailable)
    # select! polls both branches (random order) on each wake-up: 1 or 2 polls, all Pending
    assert fut.polls and all(p.result == "pending" for p in fut.polls)
    n = len(fut.polls)
    assert fut.outcome == f"dropped unfinished after {n} poll{'s' if n > 1 else ''}", fut.outcome
