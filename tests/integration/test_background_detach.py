"""A finished run's probes are closed in the background (closing a uprobe_multi link waits
about 50 ms for an RCU grace period), and they count nothing in the meantime: the program's
gate admits hits only from the run in progress, and it is closed when the run ends."""

from __future__ import annotations

import contextlib
import os
import signal
import time

from pytest_uprobe import Tracer
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


def test_links_a_forked_process_keeps_open_count_in_no_later_run(cargo_bin, monkeypatch):
    """A process forked while a run's links are open (a thread starting a subprocess,
    multiprocessing) holds their fds, so closing ours leaves a link attached, for every
    process (follow_children), for as long as that process lives. Its hits must not count
    into the next runs of the same program: once seen as 18 ticks for 9 under load."""
    exe = cargo_bin("example_crates/workload")
    original = session.Session.attach
    holders: list[int] = []

    def attach_then_fork(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if not holders:
            pid = os.fork()
            if pid == 0:  # holds every fd of the parent, its links too, until it exits
                time.sleep(60)
                os._exit(0)
            holders.append(pid)

    monkeypatch.setattr(session.Session, "attach", attach_then_fork)
    try:
        with Tracer(follow_children=True) as tracer:
            followed = [tracer.run([exe, "tree", "3", "1"], probes=["workload::tick"])
                        for _ in range(3)]  # fmt: skip
        with Tracer() as tracer:
            alone = tracer.run([exe, "tree", "3", "1"], probes=["workload::tick"])
        assert stale_link_attached(holders[0]), "the forked process did not keep the link"
    finally:
        for pid in holders:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    for trace in followed:
        assert "processes 3 ticks 9" in trace.stdout
        assert trace["workload::tick"].call_count == 9
        assert sorted(trace["workload::tick"].args_list) == [(0,), (0,), (0,), (1,), (1,),
                                                             (1,), (2,), (2,), (2,)]  # fmt: skip
    assert alone["workload::tick"].args_list == [(0,), (1,), (2,)]  # the tree's first process


def stale_link_attached(holder: int) -> bool:
    """Whether process `holder` has a BPF link fd open (the one it inherited)."""
    for fd in os.listdir(f"/proc/{holder}/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{holder}/fd/{fd}") == "anon_inode:bpf_link":
                return True
    return False
