"""A finished run's probes are closed in the background (closing a uprobe_multi link waits
about 50 ms for an RCU grace period), and they count nothing in the meantime: the program's
gate admits hits only from the run in progress, and it is closed when the run ends."""

from __future__ import annotations

from pytest_uprobe.bpf import session
from pytest_uprobe.launch import HeldProcess
from tests.conftest import uprobe_multi_links


def test_a_run_returns_before_its_links_are_closed_and_they_close_soon(uprobe_trace, cargo_bin):
    exe = cargo_bin("example_crates/args")
    trace = uprobe_trace.run([exe, "1", "2"], probes=["args::hello"])
    assert trace["args::hello"].call_count == 2
    session.join_detaches()
    assert uprobe_multi_links() == []


def test_hits_outside_an_open_gate_count_nothing(uprobe_trace, cargo_bin):
    exe = cargo_bin("example_crates/args")
    plan = uprobe_trace.plan(exe, ["args::hello"])
    counted = []
    for gate_open in (True, False):
        run = session.Session(plan)
        held = HeldProcess(exe, [str(exe), "1", "2", "3"], env=None, cwd=None, stdin_data=False)
        try:
            run.attach(held.pid)
            if not gate_open:  # as when a finished run's links meet a process reusing its pid
                run._program.set_gate(0)
            held.release()
            finished = held.wait(None, 30)
            assert finished.returncode == 0 and "return value: 7" in finished.stdout
            run.finish()
            hello = [
                i
                for i, s in enumerate(plan.sites)
                if s.kind.starts_a_call and s.function < len(plan.functions)
            ]
            counted.append(sum(run.counts()[i] for i in hello))
        finally:
            held.reap()
            run.close()
    assert counted == [3, 0]  # hello(1..3, 4), then nothing through a shut gate
