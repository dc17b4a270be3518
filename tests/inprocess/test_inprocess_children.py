"""follow_children on the in-process engine: the twins of the BPF engine's follow_children
tests (tests/integration/test_reliability.py, test_lifetime.py, tests/blackbox/
test_process.py) with the same expected values, each taken from what the program printed;
and what only this engine has to get right: a forked child that keeps the hooks, one that
execs the traced binary again (it gets the agent before its first instruction), children
ending by _exit, a fault or SIGKILL, and a process of another binary in between. Needs
frida."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_uprobe import Tracer
from pytest_uprobe.errors import UsageError
from tests.blackbox.stockpile import printed_calls
from tests.conftest import neighbour_running
from tests.inprocess.test_inprocess_lifetime import instrumented
from tests.integration import test_lifetime as lifetime
from tests.integration.test_cleanup import use_tool_homes
from tests.integration.test_lifetime import (
    TARGETS,
    TICK,
    marked,
    running,
    spawned_pid,
    wait_until,
    writes_of,
)
from tests.integration.test_reliability import tree_output

pytest.importorskip("frida")
pytestmark = pytest.mark.uprobe

INPROCESS = "inprocess"
ROOT = Path(__file__).resolve().parents[2]
LABEL = re.compile(r'^label "(\w+ \d+)" -> (\d+)$', re.M)
CHILD = re.compile(r"^child (\d+) status (\d+)$", re.M)

# The same fixtures as the BPF engine's lifetime tests.
workload, mark, marked_env, started = (
    lifetime.workload, lifetime.mark, lifetime.marked_env, lifetime.started
)  # fmt: skip


def run_processes(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (and theirs)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) == pid and stat[0] != "Z":
            found.append(int(entry))
            found.extend(run_processes(int(entry)))
    return found


def assert_nothing_left(exe: Path) -> None:
    """No process of `exe` started by this pytest still runs, and no shared file is left."""
    __tracebackhide__ = True
    left = [
        pid
        for pid in run_processes(os.getpid())
        if os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(exe)
    ]
    assert left == [], f"processes of {exe} still running: {left}"
    mine = f"pytest-uprobe-{os.getpid()}-"
    assert [n for n in os.listdir("/dev/shm") if n.startswith(mine)] == []


# -- twins of tests/integration/test_reliability.py -------------------------------------------


def test_follow_children_counts_every_process_the_target_forks_and_execs(cargo_bin):
    exe = cargo_bin("example_crates/workload")
    with Tracer(backend=INPROCESS, follow_children=True) as tracer:
        trace = tracer.run([exe, "tree", "5", "2"], probes=["workload::tick"])
    processes, ticks = tree_output(trace.stdout)
    assert processes == 7
    tick = trace["workload::tick"]
    assert tick.call_count == ticks
    assert len({c.tid for c in tick.calls}) == processes  # each process's main thread
    assert sorted(a for (a,) in tick.args_list) == sorted(list(range(5)) * processes)
    assert all(c.returned and c.retval == 2 * c.args[0] + 1 for c in tick.calls)
    assert_nothing_left(exe)


def test_without_follow_children_only_the_target_itself_counts(cargo_bin):
    exe = cargo_bin("example_crates/workload")
    with Tracer(backend=INPROCESS) as tracer:
        trace = tracer.run([exe, "tree", "5", "2"], probes=["workload::tick"])
    assert tree_output(trace.stdout) == (7, 35)
    assert trace["workload::tick"].args_list == [(0,), (1,), (2,), (3,), (4,)]


def test_follow_children_never_counts_another_process_running_the_same_binary(cargo_bin):
    """Neighbours running the same binary, forking the same way, children of this very
    pytest process, must not leak in (they have no agent; the device reports only the
    children of gated processes, and a run keeps the ones of its own processes)."""
    exe = cargo_bin("example_crates/workload")
    with (
        neighbour_running([exe, "tree", "50", "1"]) as neighbours,
        Tracer(backend=INPROCESS, follow_children=True) as tracer,
    ):
        traces = [tracer.run([exe, "tree", "3", "1"], probes=["workload::tick"]) for _ in range(5)]
    assert neighbours[0] > 0
    for trace in traces:
        processes, ticks = tree_output(trace.stdout)
        tick = trace["workload::tick"]
        assert (processes, ticks) == (3, 9)
        assert tick.call_count == ticks
        assert sorted(a for (a,) in tick.args_list) == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_follow_children_must_be_a_bool(cargo_bin):
    exe = cargo_bin("example_crates/workload")
    with pytest.raises(UsageError, match="follow_children must be True or False, got 'yes'"):
        Tracer(backend=INPROCESS, follow_children="yes")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="follow_children must be True or False, got 1"):
        Tracer(backend=INPROCESS).run(
            [exe],
            probes=["workload::tick"],
            follow_children=1,  # type: ignore[arg-type]
        )


# -- twins of tests/integration/test_lifetime.py ----------------------------------------------


def test_children_wait_traces_them_until_they_exit(workload, mark, marked_env):
    """`orphan 50` waits until the program has exited, then ticks 50 times: with
    children="wait" and follow_children, run() returns once it exited, with its calls
    counted and its output collected."""
    with Tracer(backend=INPROCESS, children="wait", follow_children=True) as tracer:
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
    assert {c.tid for c in tick.calls if c.args[0] >= 3} == {spawned}
    wait_until(lambda: not marked(mark), f"every marked process is gone: {marked(mark)}")
    assert not running(spawned)


def test_children_leave_keeps_them_running_after_the_run(workload, mark, marked_env):
    """`chatter` ticks and prints a line every 10 ms: after the run it keeps running and
    writing, let go by the engine (not held, not stopped), out of the run's cgroup; its
    calls while the run lasted are counted."""
    argv = [workload, "spawn", "3", "exit", "chatter"]
    spawned = None
    try:
        with Tracer(backend=INPROCESS, children="leave", follow_children=True) as tracer:
            trace = tracer.run(argv, probes=TICK, env=marked_env)
            spawned = spawned_pid(trace.stdout)
            assert trace.children == "leave" and [p.pid for p in trace.orphans] == [spawned]
            assert trace["workload::tick"].call_count >= 3
        written = writes_of(spawned)
        wait_until(lambda: writes_of(spawned) >= written + 3, "the child writes 3 more lines")
        assert running(spawned)
        assert marked(mark, workload) == {spawned: f"{workload} chatter "}
        own = Path("/proc/self/cgroup").read_text()
        assert Path(f"/proc/{spawned}/cgroup").read_text() == own
    finally:
        if spawned is not None:
            os.kill(spawned, signal.SIGKILL)
    wait_until(lambda: not marked(mark), f"every marked process is gone: {marked(mark)}")


def test_a_followed_child_is_killed_with_the_run(workload, mark, marked_env):
    """children="kill" (the default) with follow_children: the instrumented child that
    would tick for ever is killed when the program exits; its calls until then count."""
    with Tracer(backend=INPROCESS, follow_children=True) as tracer:
        trace = tracer.run([workload, "spawn", "3", "exit"], probes=TICK, env=marked_env)
    spawned = spawned_pid(trace.stdout)
    assert [p.pid for p in trace.orphans] == [spawned]
    assert trace["workload::tick"].call_count >= 3
    wait_until(lambda: not marked(mark), f"every marked process is gone: {marked(mark)}")
    assert not running(spawned)
    assert_nothing_left(workload)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killing_pytest_mid_run_leaves_no_followed_child_running(
    pytester, workload, mark, marked_env, monkeypatch, started, how
):
    """The program and its child, both instrumented (the child through the gating), tick
    for ever; the pytest tracing them is killed: the watchdog kills both."""
    use_tool_homes(monkeypatch)
    argv, count = TARGETS["looping with a looping child"]
    pytester.makepyfile(
        f"""
        def test_traced(uprobe_trace):
            uprobe_trace.run({[str(workload), *argv]!r}, probes={TICK!r}, timeout=600,
                             follow_children=True)
        """
    )
    log = open(pytester.path / "inner.log", "wb")  # noqa: SIM115  (the child writes it)
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--uprobe", f"--uprobe-backend={INPROCESS}",
         "-p", "no:cacheprovider", "-q"],
        cwd=pytester.path, env=marked_env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    log.close()
    started.append(child)

    def both_instrumented() -> bool:
        found = marked(mark, workload)
        return len(found) == count and all(instrumented(pid) for pid in found)

    wait_until(both_instrumented, f"{count} processes running, each instrumented")
    targets = sorted(marked(mark, workload))
    child.send_signal(how)
    assert child.wait(timeout=60) == -how
    wait_until(lambda: not marked(mark), f"every marked process is gone: {marked(mark)}")
    assert not [pid for pid in targets if running(pid)]
    assert [n for n in os.listdir("/dev/shm") if n.startswith(f"pytest-uprobe-{child.pid}-")] == []


# -- twin of tests/blackbox/test_process.py ---------------------------------------------------


def test_follow_children_on_the_users_crate(cargo_bin):
    exe = cargo_bin(str(ROOT / "example_crates/stockpile"))
    xs = ["1.5", "2.5"]
    probes = ["stockpile::mean", "stockpile::run_child"]
    with Tracer(backend=INPROCESS) as tracer:
        alone = tracer.run([exe, "child", *xs], probes=probes)
        both = tracer.run([exe, "child", *xs], probes=probes, follow_children=True)
    assert alone["stockpile::mean"].call_count == 0  # the child is another process
    assert alone["stockpile::run_child"].call_count == 1
    printed = printed_calls(both.stdout, "mean")
    assert len(printed) == 1
    m = both["stockpile::mean"]
    m.assert_called_once_with(*printed[0][0])
    assert m.calls[0].tid != both["stockpile::run_child"].calls[0].tid
    rc = printed_calls(both.stdout, "run_child")[0]
    assert both["stockpile::run_child"].retvals == [rc[1]]


# -- what only this engine has to get right ---------------------------------------------------


@pytest.mark.parametrize(
    ("how", "status"), [("exit", 3 << 8), ("segv", signal.SIGSEGV), ("kill", signal.SIGKILL)]
)
def test_a_forked_child_keeps_counting_on_its_own_pid_however_it_ends(cargo_bin, how, status):
    """`fork` forks without exec: parent and child each label and tick, the child then ends
    by _exit(3), a segfault or SIGKILL. Both engines count both processes exactly; the
    child's strings are read in the child's own memory (read in the parent's, at the same
    addresses, they would say "parent")."""
    exe = cargo_bin("example_crates/workload")
    probes = ["workload::tick", "workload::label"]
    for backend in ("bpf", INPROCESS):
        with Tracer(backend=backend, follow_children=True) as tracer:
            trace = tracer.run([exe, "fork", "3", how], probes=probes)
        assert trace.returncode == 0, (backend, trace.stdout, trace.stderr)
        child_pid, child_status = (int(n) for n in CHILD.search(trace.stdout).groups())
        assert child_status & 0x7F7F == status  # without the core-dump bit
        tick, label = trace["workload::tick"], trace["workload::label"]
        assert tick.call_count == 6, backend
        assert sorted(a for (a,) in tick.args_list) == [0, 1, 2, 100, 101, 102]
        assert {c.tid for c in tick.calls if c.args[0] >= 100} == {child_pid}
        assert child_pid not in {c.tid for c in tick.calls if c.args[0] < 100}
        printed = sorted((text, int(n)) for text, n in LABEL.findall(trace.stdout))
        assert len(printed) == 6
        assert sorted((c.args[0], c.retval) for c in label.calls) == printed, backend


@pytest.mark.parametrize("follow", [False, True], ids=["alone", "following"])
def test_a_program_that_forks_prints_what_it_prints_untraced(cargo_bin, follow):
    """The agent's fork handler and the child gating change nothing the program sees: the
    same lines as untraced (but the child's pid, and the two processes' lines interleave
    as they run); without follow_children only the parent's
    calls count."""
    exe = cargo_bin("example_crates/workload")
    argv = [exe, "fork", "3", "exit"]
    untraced = subprocess.run(argv, capture_output=True, text=True)
    with Tracer(backend=INPROCESS, follow_children=follow) as tracer:
        trace = tracer.run(argv, probes=["workload::tick"])
    assert trace.returncode == untraced.returncode == 0
    lines = sorted(CHILD.sub("child", trace.stdout).splitlines())  # in either order
    assert lines == sorted(CHILD.sub("child", untraced.stdout).splitlines())
    expected = [0, 1, 2, 100, 101, 102] if follow else [0, 1, 2]
    assert sorted(a for (a,) in trace["workload::tick"].args_list) == expected


@pytest.mark.parametrize("follow", [False, True], ids=["alone", "following"])
def test_a_program_that_counts_its_threads_runs_as_untraced(cargo_bin, follow):
    """`tasks` prints how many entries /proc/self/task has: 1 untraced. Frida's agent runs
    threads of its own in the process (docs/inprocess.md): the program sees them, unless
    Frida's cloaking hides them (measured with Frida 17.26: it does once child gating is
    on, for follow_children). Either way the program runs and exits as untraced."""
    exe = cargo_bin("example_crates/workload")
    untraced = subprocess.run([exe, "tasks"], capture_output=True, text=True)
    assert untraced.stdout == "tasks 1\n"
    with Tracer(backend=INPROCESS, follow_children=follow) as tracer:
        trace = tracer.run([exe, "tasks"], probes=["workload::tick"])
    assert trace.returncode == 0
    seen = int(re.fullmatch(r"tasks (\d+)\n", trace.stdout).group(1))
    assert seen >= 1
    if not follow:
        assert seen > 1  # the agent's threads: say so in the docs when this changes


def test_a_child_running_another_binary_is_followed_but_not_traced(cargo_bin, tmp_path):
    """As on BPF (whose uprobes sit on the traced file's inode): a shell the program runs is
    followed, and the traced binary it runs in turn counts; a copy of the binary (another
    file) does not."""
    exe = cargo_bin("example_crates/workload")
    copy = tmp_path / "workload-copy"
    shutil.copy2(exe, copy)
    script = f"{exe} loop 4; {copy} loop 2"
    expected = subprocess.run([exe, "run", "/bin/sh", "-c", script], capture_output=True)
    assert expected.stdout.decode().startswith("ticks 4 sum 16\nticks 2 sum 4\n")
    for backend in ("bpf", INPROCESS):
        with Tracer(backend=backend, follow_children=True) as tracer:
            trace = tracer.run([exe, "run", "/bin/sh", "-c", script], probes=["workload::tick"])
        assert trace.stdout == expected.stdout.decode(), backend
        tick = trace["workload::tick"]
        assert (tick.call_count, tick.args_list) == (4, [(0,), (1,), (2,), (3,)]), backend
        assert [c.retval for c in tick.calls] == [1, 3, 5, 7]


def test_a_lock_left_by_a_killed_process_is_taken_over(cargo_bin, monkeypatch):
    """Followed processes share the ring's lock; one killed (SIGKILL) between taking and
    dropping it must not hang the others. Here the lock is left held by a process that is
    gone before the run starts: the program's first recorded hit takes it over, and every
    call is still there."""
    from pytest_uprobe.inprocess import engine

    gone = subprocess.Popen(["true"])
    gone.wait()
    made = engine.SharedBuffer.__init__

    def held_by_the_dead(self, *args, **kwargs):
        made(self, *args, **kwargs)
        self.header.lock = gone.pid

    monkeypatch.setattr(engine.SharedBuffer, "__init__", held_by_the_dead)
    exe = cargo_bin("example_crates/workload")
    with Tracer(backend=INPROCESS, follow_children=True, timeout=120) as tracer:
        trace = tracer.run([exe, "loop", "5"], probes=["workload::tick"])
    assert trace.stdout.startswith("ticks 5 sum 25")
    assert trace["workload::tick"].args_list == [(i,) for i in range(5)]


def test_a_child_that_cannot_be_instrumented_makes_every_count_a_lower_bound(
    cargo_bin, monkeypatch
):
    """Never a silently low count: when the agent cannot be loaded into a child running the
    traced binary (here: refused on purpose), the child runs uninstrumented and every
    probe's count says it may be more, naming the process; exact comparisons refuse it."""
    from pytest_uprobe.bounds import InexactCount
    from pytest_uprobe.inprocess import engine

    monkeypatch.setattr(engine.InprocessRun, "_instrument", lambda self, session: "refused")
    exe = cargo_bin("example_crates/workload")
    with Tracer(backend=INPROCESS, follow_children=True) as tracer:
        trace = tracer.run([exe, "tree", "3", "1"], probes=["workload::tick"])
    assert tree_output(trace.stdout) == (3, 9)
    tick = trace["workload::tick"]
    assert [c.args for c in tick.calls] == [(0,), (1,), (2,)]  # the program's own calls
    with pytest.raises(InexactCount, match="could not be instrumented"):
        tick.args_list  # noqa: B018  (refuses: it may be more)
    assert len(tick.left_out) == 2
    assert all("could not be instrumented (refused)" in why for why in tick.left_out)
    count = tick.call_count
    assert count.may_be_more and int(count) == 3
    with pytest.raises(InexactCount, match="it may be more"):
        assert count == 9


NESTED_FORKS_C = r"""
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>
__attribute__((noinline)) long tick(long n) { return 2 * n + 1; }
int main(void) {
    long base = 0;
    for (int level = 0; level < 3; level++) {  /* each child forks the next one */
        pid_t pid = fork();
        if (pid > 0) { int status; waitpid(pid, &status, 0); break; }
        base += 10;
    }
    for (long i = 0; i < 2; i++) printf("tick %ld -> %ld\n", base + i, tick(base + i));
    return 0;
}
"""


def test_forks_of_forks_and_a_leaf_with_a_frame_pointer(tmp_path):
    """A C program (gcc -O0) whose children fork again: each generation counts on both
    engines (the agent's fork handler runs in children that were given the agent anew).
    Its `tick` is a leaf that keeps its argument below the frame pointer, `[rbp - 8]`,
    which is below rsp too: Frida's trampoline overwrites it, so the entry is moved to the
    first instruction and the value read from rdi (before: a pointer was read, silently)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (make test installs it)")
    source = tmp_path / "forks.c"
    source.write_text(NESTED_FORKS_C)
    exe = tmp_path / "forks"
    subprocess.run(["gcc", "-g", "-O0", "-o", exe, source], check=True)
    untraced = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
    printed = sorted(
        (int(n), int(r)) for n, r in re.findall(r"^tick (\d+) -> (\d+)$", untraced, re.M)
    )
    assert [n for n, _ in printed] == [0, 1, 10, 11, 20, 21, 30, 31]
    for backend in ("bpf", INPROCESS):
        for follow, expected in ((False, printed[:2]), (True, printed)):
            with Tracer(backend=backend, follow_children=follow) as tracer:
                trace = tracer.run([exe], probes=["tick"])
            assert sorted(trace.stdout.splitlines()) == sorted(untraced.splitlines())
            tick = trace["tick"]
            assert tick.call_count == len(expected), (backend, follow)
            assert sorted((c.args[0], c.retval) for c in tick.calls) == expected, backend
