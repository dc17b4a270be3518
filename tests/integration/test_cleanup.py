"""Nothing stays attached or running after a traced run, whatever happened in it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pytest_uprobe.machine_code  # noqa: F401  (imported here, not first inside pytester's inner runs)
import pytest_uprobe.tracer  # noqa: F401  (whose module snapshot would drop and re-import them)
from pytest_uprobe.bpf import session
from pytest_uprobe.errors import NoMatchingFunction, TraceTimeout, UsageError
from tests.conftest import attached_uprobes, processes_running, uprobe_events, uprobe_multi_links


def assert_clean(exe) -> None:
    # A finished run's uprobe_multi links close in the background (each close waits for an
    # RCU grace period); they can count nothing meanwhile (tests/integration/
    # test_background_detach.py). Once they are closed, none of this process may be left.
    session.join_detaches()
    assert uprobe_multi_links() == []
    # BCC attaches through /proc/<pid>/root/<path>: match the path's end, and this process.
    mine = [
        p
        for p in attached_uprobes()
        if str(p.get("filename", "")).endswith(str(exe)) and p.get("pid") == os.getpid()
    ]
    assert mine == []
    assert uprobe_events() == []
    assert processes_running(exe, parent=os.getpid()) == []


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


# -- pytest itself stops: a setup error, `-x`, SIGINT ----------------------------------------

TOOL_HOMES = {
    "RUSTUP_HOME": os.environ.get("RUSTUP_HOME", str(Path.home() / ".rustup")),
    "CARGO_HOME": os.environ.get("CARGO_HOME", str(Path.home() / ".cargo")),
}


def use_tool_homes(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytester points HOME at a temporary directory: keep rustup and cargo findable."""
    for name, value in TOOL_HOMES.items():
        monkeypatch.setenv(name, value)


def bpf_fds(pid: int | str = "self") -> dict[str, list[int]]:
    """The BPF objects process `pid` holds open, by kind: ids of programs and maps, and link
    fds (`bpftool prog show` on this machine does not say which process holds what)."""
    held: dict[str, list[int]] = {"prog": [], "map": [], "link": []}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        if target == "anon_inode:bpf-prog":
            held["prog"].append(int(fields["prog_id"]))
        elif target == "anon_inode:bpf-map":
            held["map"].append(int(fields["map_id"]))
        elif target == "anon_inode:bpf_link":
            held["link"].append(int(fd))
    return held


def loaded_program_ids() -> set[int]:
    out = subprocess.run(
        ["bpftool", "prog", "show", "--json"], capture_output=True, text=True, check=True
    ).stdout
    return {p["id"] for p in json.loads(out or "[]")}


def children_of(pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if (
                proc.name.isdigit()
                and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid
            ):
                found.append(int(proc.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def test_nothing_left_after_a_test_that_errors_in_setup(pytester, cargo_bin, monkeypatch):
    """A fixture traces a run, then fails: the test errors in setup, and the run's probes
    and process are gone all the same (checked here, in this very process)."""
    use_tool_homes(monkeypatch)
    exe = cargo_bin("example_crates/workload")
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.fixture
        def broken(uprobe_trace):
            uprobe_trace.run([{str(exe)!r}, "loop", "3"], probes=["workload::tick"])
            raise RuntimeError("setup failed after a traced run")

        def test_never_runs(broken):
            pass
        """
    )
    result = pytester.runpytest_inprocess("--uprobe", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    assert "setup failed after a traced run" in result.stdout.str()
    assert_clean(exe)
    assert bpf_fds()["link"] == []


def test_nothing_left_when_dash_x_stops_the_session_early(pytester, cargo_bin, monkeypatch):
    use_tool_homes(monkeypatch)
    exe = cargo_bin("example_crates/workload")
    pytester.makepyfile(
        f"""
        def test_fails(uprobe_trace):
            trace = uprobe_trace.run([{str(exe)!r}, "hang", "5"], probes=["workload::tick"],
                                     timeout=0.5)

        def test_not_reached(uprobe_trace):
            raise AssertionError("-x should have stopped before this test")
        """
    )
    result = pytester.runpytest_inprocess("--uprobe", "-x", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    assert "TraceTimeout" in result.stdout.str()
    assert "stopping after 1 failures" in result.stdout.str()
    assert_clean(exe)
    assert bpf_fds()["link"] == []


SIGINT_CONFTEST = """
import json, os

def pytest_unconfigure(config):
    # After the interrupted session's teardown, before the interpreter exits.
    held = {"link": [], "children": []}
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:bpf_link":
                held["link"].append(fd)
        except OSError:
            pass
    for proc in os.listdir("/proc"):
        try:
            if proc.isdigit() and os.readlink(f"/proc/{proc}/exe") == EXE:
                with open(f"/proc/{proc}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
                if ppid == os.getpid():  # ours, not another xdist worker's
                    held["children"].append(int(proc))
        except OSError:
            pass
    with open(REPORT, "w") as f:
        json.dump(held, f)
"""


def test_nothing_left_after_sigint_in_the_middle_of_a_traced_run(pytester, cargo_bin, monkeypatch):
    """Ctrl-C while `workload hang` runs under tracing: pytest stops, and afterwards no
    traced process runs, no probe is attached and no program of that pytest stays loaded."""
    use_tool_homes(monkeypatch)
    exe = cargo_bin("example_crates/workload")
    report = pytester.path / "report.json"
    pytester.makeconftest(f"EXE = {str(exe)!r}\nREPORT = {str(report)!r}\n" + SIGINT_CONFTEST)
    pytester.makepyfile(
        f"""
        def test_hangs(uprobe_trace):
            uprobe_trace.run([{str(exe)!r}, "hang", "1"], probes=["workload::tick"], timeout=120)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--uprobe", "-p", "no:cacheprovider", "-q"],
        cwd=pytester.path,
        env={**os.environ, **TOOL_HOMES},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # Wait until the target runs and the child holds its probe links.
        deadline = time.monotonic() + 60
        held: dict[str, list[int]] = {}
        targets: list[int] = []
        while time.monotonic() < deadline and child.poll() is None:
            targets = [p for p in processes_running(exe) if p in descendants(child.pid)]
            held = bpf_fds(child.pid)
            if targets and held["link"]:
                break
            time.sleep(0.05)
        assert targets and held["link"], "the traced run never started"
        assert held["prog"], "the child holds no BPF program?"
        time.sleep(0.3)  # some ticks under tracing
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 2, out  # pytest's "interrupted"
    assert "KeyboardInterrupt" in out
    after_teardown = json.loads(report.read_text())
    assert after_teardown == {"link": [], "children": []}  # detached and killed in teardown
    for pid in targets:
        assert not Path(f"/proc/{pid}").exists(), f"traced process {pid} still runs"
    assert processes_running(exe) == [] or not set(processes_running(exe)) & set(targets)
    assert not set(held["prog"]) & loaded_program_ids()  # unloaded at exit
    assert uprobe_events() == []


def descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for child in children_of(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found
