"""Nothing outlives the test under the in-process engine either: its runs are contained as
the BPF engine's are (a cgroup per run where writable, the run's own process group, the
watchdog that kills live runs when the tracing process dies, SIGKILL included), the timeout
and the children policies kill/wait/leave behave the same. The twins of
tests/integration/test_lifetime.py's tests, with the same helpers. Needs frida."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_uprobe import launch
from pytest_uprobe.errors import TraceTimeout
from pytest_uprobe.launch import CGROUP_SWITCH, cgroup_root, containment
from pytest_uprobe.tracer import Tracer
from tests.integration import test_lifetime as lifetime
from tests.integration.test_cleanup import use_tool_homes
from tests.integration.test_lifetime import (
    TARGETS,
    TICK,
    descendants_of,
    marked,
    running,
    spawned_pid,
    wait_until,
    writes_of,
)

# The same fixtures as the BPF engine's lifetime tests.
workload, mark, marked_env, started = (
    lifetime.workload, lifetime.mark, lifetime.marked_env, lifetime.started
)  # fmt: skip

pytest.importorskip("frida")
pytestmark = pytest.mark.uprobe

INPROCESS = "inprocess"


def instrumented(pid: int) -> bool:
    """Frida's agent is mapped in the process and it runs (no longer held at spawn)."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return "frida-agent" in maps and state not in ("t", "T")


def assert_nothing_left(mark: str, targets: list[int]) -> None:
    __tracebackhide__ = True
    wait_until(lambda: not marked(mark), f"every marked process is gone: {marked(mark)}")
    # A process killed mid-exit has no environment to read (marked() misses it) and is no
    # zombie yet: it is gone once it has finished dying, so wait for that too.
    wait_until(
        lambda: not any(running(pid) for pid in targets),
        f"every traced process is gone: {[pid for pid in targets if running(pid)]}",
    )


def start_inner_pytest(pytester, exe: Path, argv: list[str], env: dict[str, str], started):
    pytester.makepyfile(
        f"""
        def test_traced(uprobe_trace):
            uprobe_trace.run({[str(exe), *argv]!r}, probes={TICK!r}, timeout=600)
        """
    )
    log = open(pytester.path / "inner.log", "wb")  # noqa: SIM115  (the child writes it)
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--uprobe", f"--uprobe-backend={INPROCESS}",
         "-p", "no:cacheprovider", "-q"],
        cwd=pytester.path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a signal for it never reaches this pytest
    )  # fmt: skip
    log.close()
    started.append(child)
    return child


def wait_for_targets(mark: str, exe: Path, count: int) -> list[int]:
    """`count` processes of `exe` carry the mark, and the first is instrumented and runs."""

    def ready() -> bool:
        found = sorted(marked(mark, exe))
        return len(found) == count and instrumented(found[0])

    wait_until(ready, f"{count} processes running, the first one instrumented")
    return sorted(marked(mark, exe))


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
@pytest.mark.parametrize("target", TARGETS)
def test_killing_pytest_mid_run_leaves_nothing_running(
    pytester, workload, mark, marked_env, monkeypatch, started, how, target
):
    use_tool_homes(monkeypatch)
    argv, count = TARGETS[target]
    child = start_inner_pytest(pytester, workload, argv, marked_env, started)
    targets = wait_for_targets(mark, workload, count)
    assert all(t in descendants_of(child.pid) for t in targets)
    if cgroup_root().path is not None:  # the inner pytest finds the same hierarchy
        assert all("pytest-uprobe-run-" in Path(f"/proc/{t}/cgroup").read_text() for t in targets)
    child.send_signal(how)
    assert child.wait(timeout=60) == -how
    assert_nothing_left(mark, targets)
    # The shared file's name is removed once both sides map it: nothing left in /dev/shm
    # (its name carries the pid of the process that made it).
    assert [n for n in os.listdir("/dev/shm") if n.startswith(f"pytest-uprobe-{child.pid}-")] == []


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killing_pytest_mid_run_without_cgroups_leaves_nothing_running(
    pytester, workload, mark, marked_env, monkeypatch, started, how
):
    """Where cgroups cannot be used, the watchdog kills the run's process group (Frida's
    spawn makes the target a session leader)."""
    use_tool_homes(monkeypatch)
    argv, count = TARGETS["looping with a looping child"]
    env = {**marked_env, CGROUP_SWITCH: "0"}
    child = start_inner_pytest(pytester, workload, argv, env, started)
    targets = wait_for_targets(mark, workload, count)
    own = Path("/proc/self/cgroup").read_text()
    assert all(Path(f"/proc/{t}/cgroup").read_text() == own for t in targets)  # no cgroup
    assert {os.getpgid(t) for t in targets} == {targets[0]}  # the target leads the group
    child.send_signal(how)
    assert child.wait(timeout=60) == -how
    assert_nothing_left(mark, targets)


def test_a_child_holding_stdout_does_not_keep_run_waiting(workload, mark, marked_env):
    argv = [workload, "spawn", "3", "exit", "hang", "100000"]
    with Tracer(backend=INPROCESS, timeout=600) as tracer:
        trace = tracer.run(argv, probes=TICK, env=marked_env)
    spawned = spawned_pid(trace.stdout)
    assert trace.stdout == f"spawned {spawned}\n"
    assert trace.returncode == 0 and not trace.timed_out
    assert trace["workload::tick"].args_list == [(0,), (1,), (2,)]
    assert [p.pid for p in trace.orphans] == [spawned]
    assert trace.orphans[0].command == f"{workload} hang 100000"
    assert trace.orphans_held_output and trace.children == "kill"
    assert_nothing_left(mark, [spawned])


def test_without_cgroups_a_child_holding_stdout_is_killed_with_the_process_group(
    workload, mark, marked_env, monkeypatch
):
    monkeypatch.setenv(CGROUP_SWITCH, "0")
    monkeypatch.setattr(launch, "_cgroup_root", None)  # looked up again, without cgroups
    assert containment() == f"process group only: {CGROUP_SWITCH}=0 in the environment"
    with Tracer(backend=INPROCESS) as tracer:
        trace = tracer.run([workload, "spawn", "3", "exit"], probes=TICK, env=marked_env)
    spawned = spawned_pid(trace.stdout)
    assert [p.pid for p in trace.orphans] == [spawned] and trace.orphans_held_output
    assert_nothing_left(mark, [spawned])


def test_a_child_in_its_own_process_group_is_killed_too(workload, mark, marked_env):
    if cgroup_root().path is None:
        pytest.skip(f"runs are contained by process group only: {cgroup_root().why_not}")
    env = {**marked_env, "WORKLOAD_DETACH": "1"}
    with Tracer(backend=INPROCESS) as tracer:
        trace = tracer.run([workload, "spawn", "3", "exit"], probes=TICK, env=env)
    spawned = spawned_pid(trace.stdout)
    assert [p.pid for p in trace.orphans] == [spawned]
    assert_nothing_left(mark, [spawned])


def test_a_timeout_kills_the_run_and_says_the_program_did_not_exit(workload, mark, marked_env):
    argv = [workload, "spawn", "1", "hang"]  # ticks for ever, and so does its child
    with Tracer(backend=INPROCESS) as tracer, pytest.raises(TraceTimeout) as info:
        tracer.run(argv, probes=TICK, env=marked_env, timeout=1)
    error = info.value
    trace = error.trace
    spawned = spawned_pid(trace.stdout)
    assert not error.program_exited and trace.timed_out
    assert trace.returncode == -signal.SIGKILL
    assert "the program did not exit" in str(error)
    assert [p.pid for p in trace.orphans] == [spawned]  # the program itself left out
    assert trace["workload::tick"].call_count >= 1
    assert trace["workload::tick"].call_count == len(trace["workload::tick"].calls)
    assert_nothing_left(mark, [spawned, trace.pid])


def test_children_wait_waits_for_them_and_collects_their_output(workload, mark, marked_env):
    """`orphan 30000000` waits until the program has exited, then ticks (tens of ms) and
    prints: the run returns once it exited too, with its output (its calls are not traced:
    the in-process engine instruments the program only)."""
    with Tracer(backend=INPROCESS, children="wait") as tracer:
        trace = tracer.run(
            [workload, "spawn", "3", "exit", "orphan", "30000000"], probes=TICK, env=marked_env
        )
    spawned = spawned_pid(trace.stdout)
    assert trace.stdout == f"spawned {spawned}\norphan ticked 30000000\n"
    assert trace.returncode == 0 and trace.children == "wait" and not trace.timed_out
    assert [p.pid for p in trace.orphans] == [spawned] and trace.orphans_held_output
    assert trace["workload::tick"].args_list == [(0,), (1,), (2,)]
    assert_nothing_left(mark, [spawned])


def test_children_wait_times_out_naming_the_children_still_running(workload, mark, marked_env):
    with Tracer(backend=INPROCESS, children="wait") as tracer, pytest.raises(TraceTimeout) as info:
        tracer.run([workload, "spawn", "3", "exit"], probes=TICK, env=marked_env, timeout=1)
    error = info.value
    trace = error.trace
    spawned = spawned_pid(trace.stdout)
    assert error.program_exited and trace.returncode == 0 and trace.timed_out
    assert "ticked 3" in trace.stdout  # the child's output, collected while waiting
    assert [p.pid for p in trace.orphans] == [spawned]
    text = str(error)
    assert "exited with status 0, but processes it started were still running" in text
    assert f"{spawned} ({workload} hang 3)" in text
    assert_nothing_left(mark, [spawned])


def test_children_leave_keeps_them_running_after_the_run(workload, mark, marked_env):
    argv = [workload, "spawn", "3", "exit", "chatter"]
    spawned = None
    try:
        with Tracer(backend=INPROCESS, children="leave") as tracer:
            trace = tracer.run(argv, probes=TICK, env=marked_env)
            spawned = spawned_pid(trace.stdout)
            assert trace.children == "leave" and [p.pid for p in trace.orphans] == [spawned]
            assert trace["workload::tick"].call_count == 3
        written = writes_of(spawned)
        wait_until(lambda: writes_of(spawned) >= written + 3, "the child writes 3 more lines")
        assert running(spawned)
        assert marked(mark, workload) == {spawned: f"{workload} chatter "}
        own = Path("/proc/self/cgroup").read_text()
        assert Path(f"/proc/{spawned}/cgroup").read_text() == own
    finally:
        if spawned is not None:
            os.kill(spawned, signal.SIGKILL)
    assert_nothing_left(mark, [spawned])


def test_a_run_leaves_no_cgroup_and_no_shared_file(workload):
    root = cgroup_root().path
    before = set(os.listdir(root)) if root is not None else set()
    shm_before = set(os.listdir("/dev/shm"))
    with Tracer(backend=INPROCESS) as tracer:
        trace = tracer.run([workload, "loop", "5"], probes=TICK)
    assert trace["workload::tick"].call_count == 5
    if root is not None:  # this process's run cgroups (others' runs share the directory)
        ours = f"pytest-uprobe-run-{os.getpid()}-"
        assert {n for n in os.listdir(root) if n.startswith(ours)} <= before
    mine = f"pytest-uprobe-{os.getpid()}-"
    assert {n for n in os.listdir("/dev/shm") if n.startswith(mine)} <= shm_before
