"""Nothing stays attached or running after a traced run, whatever happened in it."""

from __future__ import annotations

import os

import pytest

from pytest_uprobe.errors import NoMatchingFunction, TraceTimeout, UsageError
from tests.conftest import attached_uprobes, processes_running, uprobe_events


def assert_clean(exe) -> None:
    # BCC attaches through /proc/<pid>/root/<path>: match the path's end, and this process.
    mine = [
        p
        for p in attached_uprobes()
        if str(p.get("filename", "")).endswith(str(exe)) and p.get("pid") == os.getpid()
    ]
    assert mine == []
    assert uprobe_events() == []
    assert processes_running(exe) == []


def test_nothing_left_after_a_normal_run(uprobe_trace, cargo_bin):
    exe = cargo_bin("example_crates/args")
    uprobe_trace.run([exe, "1"], probes=["args::hello"])
    assert_clean(exe)


def test_nothing_left_after_a_bad_probe_name(uprobe_trace, cargo_bin):
    exe = cargo_bin("example_crates/args")
    with pytest.raises(NoMatchingFunction, match="did you mean 'args::hello'"):
        uprobe_trace.run([exe, "1"], probes=["args::helo"])
    assert_clean(exe)


def test_timeout_kills_the_target_and_keeps_the_partial_trace(uprobe_trace, cargo_bin):
    exe = cargo_bin("example_crates/workload")
    with pytest.raises(TraceTimeout) as info:
        uprobe_trace.run([exe, "hang", "5"], probes=["workload::tick"], timeout=1.0)
    trace = info.value.trace
    assert trace.timed_out and trace.returncode < 0
    assert "ticked 5" in trace.stdout  # it ran at least five ticks before the kill
    tick = trace["workload::tick"]
    assert tick.call_count >= 5
    assert tick.args_list[:5] == [(0,), (1,), (2,), (3,), (4,)]
    assert "did not finish within 1.0 s" in str(info.value)
    assert_clean(exe)


@pytest.mark.parametrize("mode, signal_number", [("segv", 11), ("abort", 6)])
def test_a_crash_returns_normally_with_every_call_recorded(
    uprobe_trace, cargo_bin, mode, signal_number
):
    exe = cargo_bin("example_crates/workload")
    trace = uprobe_trace.run([exe, mode, "4"], probes=["workload::tick"])
    assert trace.returncode == -signal_number
    tick = trace["workload::tick"]
    assert tick.args_list == [(0,), (1,), (2,), (3,)]
    assert tick.retvals == [2 * n + 1 for n in range(4)]
    assert_clean(exe)


def test_every_thread_is_counted(uprobe_trace, cargo_bin):
    exe = cargo_bin("example_crates/workload")
    trace = uprobe_trace.run([exe, "threads", "8"], probes=["workload::tick"])
    assert "threads 8 ticks 8000" in trace.stdout
    tick = trace["workload::tick"]
    assert tick.call_count == 8000
    assert len({c.tid for c in tick.calls}) == 8
    assert sorted(a for (a,) in tick.args_list) == list(range(8000))
    assert all(c.returned and c.retval == 2 * c.args[0] + 1 for c in tick.calls)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"probes": "args::hello"}, "probes must be a list"),
        ({"probes": []}, "probes is empty"),
        ({"probes": [""]}, "non-empty str"),
        ({"probes": ["args::hello"], "timeout": 0}, "timeout must be a positive number"),
        ({"probes": ["args::hello"], "env": {"A": 1}}, "env must map str to str"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(uprobe_trace, cargo_bin, kwargs, message):
    exe = cargo_bin("example_crates/args")
    with pytest.raises(UsageError, match=message):
        uprobe_trace.run([exe, "1"], **kwargs)
    assert_clean(exe)
