"""Nothing outlives the test: whatever happens to the process that traces (SIGTERM, SIGKILL,
an xdist worker killed), the traced program and everything it started go with it; run()
returns when the program exits; every run has a timeout; what happens to the processes that
outlive the program is the user's choice. See docs/lifetime.md."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import pytest_uprobe.tracer  # noqa: F401  (imported here, not first inside pytester's runs)
from pytest_uprobe import launch
from pytest_uprobe.errors import TraceTimeout, UsageError
from pytest_uprobe.launch import CGROUP_SWITCH, cgroup_root, containment
from pytest_uprobe.options import TIMEOUT
from pytest_uprobe.tracer import Tracer
from tests.conftest import attached_uprobes
from tests.integration.test_cleanup import TOOL_HOMES, bpf_fds, use_tool_homes

WORKLOAD = "example_crates/workload"
TICK = ["workload::tick"]
MARK = "UPROBE_LIFETIME_MARK"

pytestmark = pytest.mark.uprobe


@pytest.fixture
def workload(cargo_bin, monkeypatch) -> Path:
    use_tool_homes(monkeypatch)  # pytester may have moved HOME, where rustup looks
    return cargo_bin(WORKLOAD)


@pytest.fixture
def mark() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def marked_env(mark) -> dict[str, str]:
    """An environment whose every process (inherited down the tree) this test can find."""
    return {**os.environ, **TOOL_HOMES, MARK: mark}


def marked(mark: str, exe: Path | None = None) -> dict[int, str]:
    """Live processes whose environment carries `mark` (with `exe`: only those running it),
    by pid, with their command line."""
    found = {}
    needle = f"{MARK}={mark}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            if exe is not None and os.readlink(proc / "exe") != str(exe):
                continue
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if state != "Z":
            found[int(proc.name)] = command
    return found


def wait_until(condition: Callable[[], object], what: str, seconds: float = 60) -> None:
    """Poll `condition` until it holds; the deadline only bounds a failure, it never decides
    a pass."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"after {seconds} s still not: {what}")
        time.sleep(0.02)


def spawned_pid(stdout: str) -> int:
    """The pid `workload spawn` printed (its child may print lines of its own, before)."""
    found = re.search(r"^spawned (\d+)$", stdout, re.MULTILINE)
    assert found, f"no 'spawned PID' line in {stdout!r}"
    return int(found[1])


def running(pid: int) -> bool:
    """The process exists and is not a zombie (which init reaps in its own time)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def assert_nothing_left(mark: str, exe: Path, targets: list[int]) -> None:
    """No process of the run is alive (found by the mark in its environment, and by pid),
    and no probe is attached in the workload binary for any of them."""
    __tracebackhide__ = True
    wait_until(lambda: not marked(mark), f"every marked process is gone: {marked(mark)}")
    # A process killed mid-exit has no environment to read (marked() misses it) and is no
    # zombie yet: it is gone once it has finished dying, so wait for that too.
    wait_until(
        lambda: not any(running(pid) for pid in targets),
        f"every traced process is gone: {[pid for pid in targets if running(pid)]}",
    )
    probes = [p for p in attached_uprobes() if str(p.get("filename", "")).endswith(str(exe))]
    assert [p for p in probes if p.get("pid") in targets] == []


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; any still running at its end is killed."""
    children: list[subprocess.Popen[bytes]] = []
    yield children
    for child in children:
        if child.poll() is None:
            child.kill()
            child.wait()


# -- 1. the tracing process dies: SIGTERM and SIGKILL of pytest, of an xdist worker, of the CLI

TARGETS = {
    "looping": (["hang", "1"], 1),
    "looping with a looping child": (["spawn", "1", "hang", "hang", "1"], 2),
}


def start_inner_pytest(
    pytester, exe: Path, argv: list[str], env: dict[str, str], extra: list[str], started
) -> subprocess.Popen[bytes]:
    pytester.makepyfile(
        f"""
        def test_traced(uprobe_trace):
            uprobe_trace.run({[str(exe), *argv]!r}, probes={TICK!r}, timeout=600)
        """
    )
    log = open(pytester.path / "inner.log", "wb")  # noqa: SIM115  (the child writes it)
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--uprobe", "-p", "no:cacheprovider", "-q", *extra],
        cwd=pytester.path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a signal for it never reaches this pytest
    )
    log.close()
    started.append(child)
    return child


def wait_for_targets(mark: str, exe: Path, count: int, tracer_pid: int) -> list[int]:
    """The target (and its child) run under probes: `count` processes of `exe` carry the
    mark, and the tracing process holds BPF links."""
    wait_until(
        lambda: len(marked(mark, exe)) == count and bpf_fds(tracer_pid)["link"],
        f"{count} traced processes running and probes attached",
    )
    return sorted(marked(mark, exe))


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
@pytest.mark.parametrize("target", TARGETS)
def test_killing_pytest_mid_run_leaves_nothing_running(
    pytester, workload, mark, marked_env, monkeypatch, started, how, target
):
    use_tool_homes(monkeypatch)
    argv, count = TARGETS[target]
    child = start_inner_pytest(pytester, workload, argv, marked_env, [], started)
    targets = wait_for_targets(mark, workload, count, child.pid)
    assert all(t in descendants_of(child.pid) for t in targets)
    child.send_signal(how)
    assert child.wait(timeout=60) == -how
    assert_nothing_left(mark, workload, targets)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killing_pytest_mid_run_without_cgroups_leaves_nothing_running(
    pytester, workload, mark, marked_env, monkeypatch, started, how
):
    """Where cgroups cannot be used, the watchdog kills the run's process group."""
    use_tool_homes(monkeypatch)
    argv, count = TARGETS["looping with a looping child"]
    env = {**marked_env, CGROUP_SWITCH: "0"}
    child = start_inner_pytest(pytester, workload, argv, env, [], started)
    targets = wait_for_targets(mark, workload, count, child.pid)
    own = Path("/proc/self/cgroup").read_text()
    assert all(Path(f"/proc/{t}/cgroup").read_text() == own for t in targets)  # no cgroup
    child.send_signal(how)
    assert child.wait(timeout=60) == -how
    assert_nothing_left(mark, workload, targets)


def test_ctrl_c_while_waiting_for_a_child_that_holds_stdout_leaves_nothing_running(
    pytester, workload, mark, marked_env, monkeypatch, started
):
    """The program exited; with children="wait" the run waits for its looping child, which
    holds its stdout. SIGINT: pytest stops, and the child is killed in teardown."""
    use_tool_homes(monkeypatch)
    pytester.makepyfile(
        f"""
        def test_traced(uprobe_trace):
            uprobe_trace.run({[str(workload), "spawn", "1", "exit"]!r}, probes={TICK!r},
                             timeout=600, children="wait")
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--uprobe", "-p", "no:cacheprovider", "-q"],
        cwd=pytester.path,
        env=marked_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started.append(child)

    def only_the_child_runs() -> bool:
        return [c.split()[1:2] for c in marked(mark, workload).values()] == [["hang"]]

    wait_until(only_the_child_runs, "the program exited and its child loops")
    targets = sorted(marked(mark, workload))
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 2, out  # pytest's "interrupted"
    assert b"KeyboardInterrupt" in out
    assert_nothing_left(mark, workload, targets)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killing_an_xdist_worker_mid_run_leaves_nothing_running(
    pytester, workload, mark, marked_env, monkeypatch, started, how
):
    pytest.importorskip("xdist")
    use_tool_homes(monkeypatch)
    argv, count = TARGETS["looping with a looping child"]
    child = start_inner_pytest(pytester, workload, argv, marked_env, ["-n", "1"], started)
    wait_until(lambda: len(marked(mark, workload)) == count, "the traced processes run")
    targets = sorted(marked(mark, workload))
    worker = parent_of(min(targets))  # the program's parent traces it: the xdist worker
    assert worker != child.pid and "python" in os.readlink(f"/proc/{worker}/exe")
    wait_until(lambda: bpf_fds(worker)["link"], "the worker holds its probe links")
    os.kill(worker, how)
    child.wait(timeout=120)  # the controller reports the crashed worker and ends
    assert "crashed" in (pytester.path / "inner.log").read_text() or child.returncode != 0
    assert_nothing_left(mark, workload, targets)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killing_the_trace_command_mid_run_leaves_nothing_running(
    workload, mark, marked_env, started, how
):
    argv, count = TARGETS["looping with a looping child"]
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest_uprobe", "trace", "-p", TICK[0], "--", str(workload),
         *argv],
        env=marked_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    started.append(child)
    targets = wait_for_targets(mark, workload, count, child.pid)
    child.send_signal(how)
    _, err = child.communicate(timeout=60)
    if how == signal.SIGTERM:  # unwinds: the program is killed, then it exits 128+15
        assert child.returncode == 128 + signal.SIGTERM, err
        assert b"terminated" in err
    else:
        assert child.returncode == -signal.SIGKILL
    assert_nothing_left(mark, workload, targets)


def descendants_of(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                children.setdefault(parent_of(int(proc.name)), []).append(int(proc.name))
            except (OSError, IndexError, ValueError):
                continue
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


# -- 2. run() returns when the program exits, even while its children hold the output -------


def test_a_child_holding_stdout_does_not_keep_run_waiting(workload, mark, marked_env):
    """`spawn` starts `workload hang 100000` (which never exits, and prints nothing for
    1,000 s) with its own stdout, ticks three times and exits 0: run() returns, says who held
    the output, and kills it."""
    argv = [workload, "spawn", "3", "exit", "hang", "100000"]
    with Tracer(timeout=600) as tracer:
        trace = tracer.run(argv, probes=TICK, env=marked_env)
    spawned = spawned_pid(trace.stdout)
    assert trace.stdout == f"spawned {spawned}\n"
    assert trace.returncode == 0 and not trace.timed_out
    assert trace["workload::tick"].args_list == [(0,), (1,), (2,)]
    assert [p.pid for p in trace.orphans] == [spawned]
    assert trace.orphans[0].command == f"{workload} hang 100000"
    assert trace.orphans_held_output and trace.children == "kill"
    assert_nothing_left(mark, workload, [spawned])


def test_without_cgroups_a_child_holding_stdout_is_killed_with_the_process_group(
    workload, mark, marked_env, monkeypatch
):
    monkeypatch.setenv(CGROUP_SWITCH, "0")
    monkeypatch.setattr(launch, "_cgroup_root", None)  # looked up again, without cgroups
    assert containment() == f"process group only: {CGROUP_SWITCH}=0 in the environment"
    with Tracer() as tracer:
        trace = tracer.run([workload, "spawn", "3", "exit"], probes=TICK, env=marked_env)
    spawned = spawned_pid(trace.stdout)
    assert [p.pid for p in trace.orphans] == [spawned] and trace.orphans_held_output
    assert_nothing_left(mark, workload, [spawned])


def test_a_child_in_its_own_process_group_is_killed_too(workload, mark, marked_env):
    """A child that leaves the run's process group (as a daemon's setsid does) is still in
    the run's cgroup, and killed with it."""
    if cgroup_root().path is None:
        pytest.skip(f"runs are contained by process group only: {cgroup_root().why_not}")
    env = {**marked_env, "WORKLOAD_DETACH": "1"}
    with Tracer() as tracer:
        trace = tracer.run([workload, "spawn", "3", "exit"], probes=TICK, env=env)
    spawned = spawned_pid(trace.stdout)
    assert [p.pid for p in trace.orphans] == [spawned]
    assert_nothing_left(mark, workload, [spawned])


# -- 3. a default timeout ---------------------------------------------------------------------


def test_every_run_has_a_timeout_by_default():
    assert TIMEOUT.default == 60.0
    assert Tracer().timeout == 60.0
    assert Tracer(timeout=None).timeout is None


@pytest.mark.parametrize(
    "ini, message",
    [
        ("uprobe_timeout = 1", "raise the timeout with --uprobe-timeout or ini uprobe_timeout"),
        ("uprobe_timeout = 0\n", None),  # no timeout: the program's own end ends the run
    ],
)
def test_a_hang_without_an_explicit_timeout_fails_naming_the_option(
    pytester, workload, monkeypatch, ini, message
):
    use_tool_homes(monkeypatch)
    pytester.makeini(f"[pytest]\n{ini}\n")
    mode = ["hang", "5"] if message else ["loop", "3"]
    pytester.makepyfile(
        f"""
        def test_traced(uprobe_trace):
            assert uprobe_trace.timeout == {1.0 if message else None!r}
            trace = uprobe_trace.run({[str(workload), *mode]!r}, probes={TICK!r})
            assert trace.returncode == 0
        """
    )
    result = pytester.runpytest_inprocess("--uprobe", "-p", "no:cacheprovider")
    if message is None:
        result.assert_outcomes(passed=1)
        return
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "TraceTimeout" in out and "did not finish within 1.0 s" in out
    assert "the program did not exit" in out
    assert message in out


def test_a_timeout_names_the_argument_it_came_from(workload):
    with Tracer(timeout=600) as tracer, pytest.raises(TraceTimeout) as info:
        tracer.run([workload, "hang", "5"], probes=TICK, timeout=0.5)
    assert not info.value.program_exited
    assert "fix: raise the timeout with timeout=... (of Tracer or run()" in str(info.value)


@pytest.mark.parametrize("timeout", [0, -1, "5", float("nan")])
def test_a_bad_timeout_is_refused(workload, timeout):
    with pytest.raises(UsageError, match="positive number of seconds, or None for no timeout"):
        Tracer(timeout=timeout)
    with pytest.raises(UsageError, match="positive number of seconds, or None for no timeout"):
        Tracer().run([workload], probes=TICK, timeout=timeout)


# -- 4. children that outlive the program: kill (default), wait, leave ------------------------


def test_children_wait_traces_them_until_they_exit(workload, mark, marked_env):
    """`orphan 50` waits until the program has exited, stays 300 ms (so the run finds it
    alive when the program exits: it ticked and was gone in under 1 ms, and a run under load
    once looked too late), then ticks 50 times: with
    children="wait" and follow_children, run() returns once it exited, with its calls
    counted and its output collected."""
    with Tracer(children="wait", follow_children=True) as tracer:
        trace = tracer.run(
            [workload, "spawn", "3", "exit", "orphan", "50"], probes=TICK, env=marked_env
        )
    spawned = spawned_pid(trace.stdout)
    assert trace.stdout == f"spawned {spawned}\norphan ticked 50\n"
    assert trace.returncode == 0 and trace.children == "wait"
    assert [p.pid for p in trace.orphans] == [spawned] and trace.orphans_held_output
    tick = trace["workload::tick"]
    assert tick.call_count == 3 + 50
    assert sorted(a for (a,) in tick.args_list) == sorted([*range(3), *range(50)])
    assert_nothing_left(mark, workload, [spawned])


def test_children_wait_times_out_naming_the_children_still_running(workload, mark, marked_env):
    with Tracer(children="wait") as tracer, pytest.raises(TraceTimeout) as info:
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
    assert "did not finish" not in text
    assert_nothing_left(mark, workload, [spawned])


def writes_of(pid: int) -> int:
    """How many write calls process `pid` has made."""
    io = Path(f"/proc/{pid}/io").read_text()
    return int(io.split("syscw:")[1].split()[0])


@pytest.mark.parametrize("where", ["Tracer", "run"])
def test_children_leave_keeps_them_running_after_the_run(workload, mark, marked_env, where):
    """`chatter` prints a line every 10 ms: after the run and the Tracer are over, it keeps
    running and writing (to the stdout it inherited, drained while this process lives)."""
    tracer_kwargs = {"children": "leave"} if where == "Tracer" else {}
    run_kwargs = {"children": "leave"} if where == "run" else {}
    argv = [workload, "spawn", "3", "exit", "chatter"]
    spawned = None
    try:
        with Tracer(follow_children=True, **tracer_kwargs) as tracer:
            trace = tracer.run(argv, probes=TICK, env=marked_env, **run_kwargs)
            spawned = spawned_pid(trace.stdout)
            assert trace.children == "leave" and [p.pid for p in trace.orphans] == [spawned]
            assert trace["workload::tick"].call_count >= 3  # its calls while the run lasted
        # The Tracer is closed: the child still runs and writes, out of the run's cgroup.
        written = writes_of(spawned)
        wait_until(lambda: writes_of(spawned) >= written + 3, "the child writes 3 more lines")
        assert running(spawned)
        assert marked(mark, workload) == {spawned: f"{workload} chatter "}
        own = Path("/proc/self/cgroup").read_text()
        assert Path(f"/proc/{spawned}/cgroup").read_text() == own
        assert not [p for p in attached_uprobes() if p.get("pid") == spawned]
    finally:
        if spawned is not None:
            os.kill(spawned, signal.SIGKILL)
    assert_nothing_left(mark, workload, [spawned])


def test_children_must_be_a_known_policy(workload):
    with pytest.raises(UsageError, match="children must be 'kill', 'wait' or 'leave'"):
        Tracer(children="keep")
    with pytest.raises(UsageError, match="children must be 'kill', 'wait' or 'leave'"):
        Tracer().run([workload], probes=TICK, children="daemon")


def test_the_children_option_reaches_the_fixture(pytester, workload, monkeypatch):
    use_tool_homes(monkeypatch)
    pytester.makepyfile(
        """
        def test_policy(uprobe_trace):
            print("POLICY", uprobe_trace.children)
        """
    )
    for flags, expected in ([], "kill"), (["--uprobe-children=leave"], "leave"):
        result = pytester.runpytest_inprocess("--uprobe", "-s", "-p", "no:cacheprovider", *flags)
        result.assert_outcomes(passed=1)
        assert f"POLICY {expected}" in result.stdout.str()


# -- 5. the trace command's exit status -------------------------------------------------------


def trace_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_uprobe", "trace", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize(
    "argv, program_status, expected",
    [
        (["loop", "3"], 0, 0),
        (["unknown-mode"], 2, 2),  # the program's own 2, not a usage error of ours
        (["segv", "2"], -11, 128 + 11),
        (["abort", "2"], -6, 128 + 6),
    ],
)
def test_the_trace_command_passes_the_program_status_through(
    workload, argv, program_status, expected
):
    plain = subprocess.run([workload, *argv], capture_output=True)
    assert plain.returncode == program_status
    result = trace_cli("-p", TICK[0], "--", str(workload), *argv)
    assert result.returncode == expected, result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["-p", "workload::no_such_function"], "no_such_function"),
        (
            ["-p", TICK[0], "--children", "keep"],
            "argument --children: must be 'kill', 'wait' or 'leave', got 'keep'",
        ),
        (
            ["-p", TICK[0], "--max-string", "0"],
            "argument --max-string: must be a positive integer, got '0'",
        ),
        (["--timeout", "1"], "-p/--probe"),
    ],
)
def test_the_trace_command_uses_125_for_its_own_errors(workload, args, message):
    result = trace_cli(*args, "--", str(workload), "loop", "1")
    assert result.returncode == 125, result.stderr
    assert message in result.stderr
    assert result.stderr.startswith(("pytest-uprobe trace: ", "usage: pytest-uprobe trace"))


def test_the_trace_command_times_out_with_124_and_says_why(workload, mark, marked_env):
    result = trace_cli(
        "--timeout", "1", "-p", TICK[0], "--", str(workload), "hang", "3", env=marked_env
    )
    assert result.returncode == 124
    assert "did not finish within 1.0 s" in result.stderr
    assert "raise the timeout with --timeout S (0: no timeout)" in result.stderr
    assert marked(mark) == {}


def test_the_trace_command_reports_children_it_killed(workload, mark, marked_env):
    result = trace_cli("-p", TICK[0], "--", str(workload), "spawn", "2", "exit", env=marked_env)
    assert result.returncode == 0, result.stderr
    assert "processes it started outlived it (killed):" in result.stderr
    assert f"({workload} hang 2)" in result.stderr
    assert marked(mark) == {}
