"""The in-process engine (Frida) against the BPF engine and against what the program
printed: same calls, same arguments, same return values, same counts. Needs frida."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_uprobe import Tracer

pytest.importorskip("frida")
pytestmark = pytest.mark.uprobe

ROOT = Path(__file__).resolve().parents[2]
HELLO = re.compile(r"Hello, world! (-?\d+) in (\d+)")
RETURN = re.compile(r"return value: (-?\d+)")


@pytest.mark.parametrize("argv", [["1", "2", "3", "4"], ["-7", "2147483640", "x"]])
def test_both_engines_see_what_the_program_printed(cargo_bin, argv):
    exe = cargo_bin("example_crates/args")
    seen = {}
    for backend in ("bpf", "inprocess"):
        with Tracer(backend=backend) as tracer:
            assert tracer.backend_used == backend
            trace = tracer.run([exe, *argv], probes=["args::hello"])
        hello = trace["args::hello"]
        printed_args = [(int(i), int(n)) for i, n in HELLO.findall(trace.stdout)]
        assert hello.args_list == printed_args
        assert [c.retval for c in hello.calls] == [int(r) for r in RETURN.findall(trace.stdout)]
        assert hello.call_count == len(printed_args)
        seen[backend] = (trace.returncode, trace.stdout, hello.args_list, hello.call_count)
    assert seen["bpf"] == seen["inprocess"]


def test_count_only_mode_counts_exactly(cargo_bin):
    exe = cargo_bin("example_crates/args")
    with Tracer(backend="inprocess", record=False) as tracer:
        trace = tracer.run([exe, "5", "6", "7"], probes=["args::hello"])
    assert trace["args::hello"].call_count == len(HELLO.findall(trace.stdout)) == 3


def test_an_unhookable_return_is_an_error_naming_the_backend_to_use(cargo_bin):
    """helloworld's hello ends in `xor eax, eax; ret`: too short for Frida's patch."""
    from pytest_uprobe.errors import UnreadableFunction

    exe = cargo_bin("example_crates/helloworld")
    with Tracer(backend="inprocess") as tracer, pytest.raises(UnreadableFunction) as error:
        tracer.run([exe], probes=["helloworld::hello"])
    assert "--uprobe-backend=bpf" in str(error.value)


def test_nothing_is_left_running_or_in_dev_shm(cargo_bin):
    exe = cargo_bin("example_crates/args")
    before = set(os.listdir("/dev/shm"))
    with Tracer(backend="inprocess") as tracer:
        trace = tracer.run([exe, "1"], probes=["args::hello"])
    assert trace.returncode == 0
    mine = f"pytest-uprobe-{os.getpid()}-"  # others' runs share /dev/shm
    assert {n for n in os.listdir("/dev/shm") if n.startswith(mine)} <= before


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root")
@pytest.mark.parametrize("backend", ["inprocess", "auto"])
def test_pytest_uprobe_runs_as_an_unprivileged_user(cargo_bin, tmp_path, backend):
    """nobody runs `pytest --uprobe` on the args crate through this interpreter (its
    environment must be readable by others): explicitly on the in-process engine, and with
    "auto", which takes it because nobody may not use BPF; the summary line says so."""
    exe = cargo_bin("example_crates/args")
    work = tmp_path / "nobody"
    work.mkdir()
    shutil.copy(exe, work / "args")
    (work / "test_it.py").write_text(
        "def test_it(uprobe_trace):\n"
        "    trace = uprobe_trace.run(['./args', '3', '4'], probes=['args::hello'])\n"
        "    assert trace['args::hello'].args_list == [(3, 3), (4, 3)]\n"
        "    assert [c.retval for c in trace['args::hello'].calls] == [6, 7]\n"
    )
    os.chmod(tmp_path, 0o755)
    os.chmod(work, 0o777)
    for parent in tmp_path.parents:
        if parent in (Path("/tmp"), Path("/")):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o005)
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         sys.executable, "-m", "pytest", "--uprobe", f"--uprobe-backend={backend}", "-q",
         "-p", "no:cacheprovider", "--rootdir", str(work), str(work / "test_it.py")],
        cwd=work, capture_output=True, text=True,
        env={**os.environ, "HOME": str(work), "XDG_CACHE_HOME": str(work / ".cache")},
    )  # fmt: skip
    if "Permission denied" in result.stdout + result.stderr and "venv" in result.stderr:
        pytest.skip("this interpreter's environment is not readable by nobody")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "engine: inprocess" in result.stdout


def _tick_calls(trace):
    tick = trace["workload::tick"]
    return tick.call_count, [c.args[0] for c in tick.calls], [c.retval for c in tick.calls]


@pytest.mark.parametrize(
    ("mode", "returncode"), [("loop", 0), ("abort", -6), ("segv", -11)], ids=str
)
def test_counts_are_exact_however_the_process_ends(cargo_bin, mode, returncode):
    """exit(), abort() and a fatal signal: the counters live in memory shared with pytest,
    so nothing needs flushing; every recorded tick is there with its value."""
    exe = cargo_bin("example_crates/workload")
    with Tracer(backend="inprocess") as tracer:
        trace = tracer.run([exe, mode, "5"], probes=["workload::tick"])
    assert trace.returncode == returncode
    assert _tick_calls(trace) == (5, list(range(5)), [2 * i + 1 for i in range(5)])


def test_a_timeout_kills_the_target_and_keeps_what_it_counted(cargo_bin):
    from pytest_uprobe.errors import TraceTimeout

    exe = cargo_bin("example_crates/workload")
    with Tracer(backend="inprocess") as tracer, pytest.raises(TraceTimeout) as error:
        tracer.run([exe, "hang", "3"], probes=["workload::tick"], timeout=1.0)
    trace = error.value.trace
    assert trace.returncode == -9
    count, args, _ = _tick_calls(trace)
    assert count >= 3 and args == list(range(count))


def test_threads_are_recorded_each_on_its_own_tid(cargo_bin):
    exe = cargo_bin("example_crates/workload")
    with Tracer(backend="inprocess") as tracer:
        trace = tracer.run([exe, "threads", "4"], probes=["workload::tick"])
    assert "threads 4 ticks 4000" in trace.stdout
    tick = trace["workload::tick"]
    assert tick.call_count == 4000
    assert sorted(c.args[0] for c in tick.calls) == list(range(4000))
    assert all(c.retval == 2 * c.args[0] + 1 for c in tick.calls)
    by_tid = {}
    for call in tick.calls:
        by_tid.setdefault(call.tid, set()).add(call.args[0] // 1000)
    assert len(by_tid) == 4 and all(len(blocks) == 1 for blocks in by_tid.values())


def test_a_program_that_spawns_copies_of_itself_still_behaves(cargo_bin):
    """`tree` forks and execs itself: the children run (uninstrumented) and report back;
    only the traced process's own calls are counted."""
    exe = cargo_bin("example_crates/workload")
    untraced = subprocess.run([exe, "tree", "3", "1"], capture_output=True, text=True)
    with Tracer(backend="inprocess") as tracer:
        trace = tracer.run([exe, "tree", "3", "1"], probes=["workload::tick"])
    assert (trace.returncode, trace.stdout) == (untraced.returncode, untraced.stdout)
    assert "tree 1 processes 3 ticks 9" in trace.stdout
    assert trace["workload::tick"].call_count == 3


@pytest.mark.parametrize("profile", ["dev", "release"])
def test_a_float_return_is_read_from_xmm0_where_bpf_says_unavailable(cargo_bin, profile):
    from pytest_uprobe.values import Unavailable

    exe = cargo_bin("example_crates/types", profile=profile)
    printed = re.search(
        r"^RET t_f64 = (\S+)$", subprocess.run([exe], capture_output=True, text=True).stdout, re.M
    )
    assert printed is not None
    retvals = {}
    for backend in ("bpf", "inprocess"):
        with Tracer(backend=backend) as tracer:
            trace = tracer.run([exe], probes=["types::t_f64"])
        (call,) = trace["types::t_f64"].calls
        assert call.args == (-2.5, pytest.approx(0.1))
        retvals[backend] = call.retval
    assert isinstance(retvals["bpf"], Unavailable)
    assert retvals["inprocess"] == float(printed.group(1))


@pytest.mark.parametrize("data", [b"to the end\n", None], ids=["input", "no-input"])
def test_the_target_reads_its_stdin_to_the_end(data):
    """Frida's own stdio pipes never close the target's stdin (a program that reads to EOF
    would hang): the engine gives the target pipes of its own, as subprocess does."""
    import frida

    from pytest_uprobe.inprocess.engine import _Pipes

    device = frida.get_local_device()
    cat = shutil.which("cat")
    assert cat is not None
    with _Pipes(data) as pipes:
        pid = pipes.spawn(lambda: device.spawn(cat, argv=["cat"], stdio="inherit"))
        device.resume(pid)
        stdout, stderr = pipes.collect()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    assert (stdout, stderr) == (data or b"", b"")
