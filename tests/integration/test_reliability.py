"""Children, volume, a binary rebuilt under the test, bad input and safe files (issue 6)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from pytest_uprobe import Tracer
from pytest_uprobe.bpf import headers, program, session
from pytest_uprobe.errors import (
    BinaryChanged,
    BinaryNotFound,
    NoMatchingFunction,
    NotExecutable,
    PrerequisiteError,
    TooManyMatches,
    UsageError,
    WrongArchitecture,
)
from pytest_uprobe.trace import LostEventsError
from tests.conftest import neighbour_running
from tests.integration.test_cleanup import assert_clean, bpf_fds

ROOT = Path(__file__).resolve().parents[2]
TREE = re.compile(r"tree (\d+) processes (\d+) ticks (\d+)\n")


def tree_output(stdout: str) -> tuple[int, int]:
    match = TREE.fullmatch(stdout)
    assert match, stdout
    return int(match.group(2)), int(match.group(3))


# -- follow_children ---------------------------------------------------------------------------


def test_follow_children_counts_every_process_the_target_forks_and_execs(uprobe_trace, cargo_bin):
    exe = cargo_bin("example_crates/workload")
    # tree: each process ticks 5 times and spawns two copies of itself (fork + exec) per
    # level; it prints how many processes and ticks the whole tree made.
    trace = uprobe_trace.run(
        [exe, "tree", "5", "2"], probes=["workload::tick"], follow_children=True
    )
    processes, ticks = tree_output(trace.stdout)
    assert processes == 7
    tick = trace["workload::tick"]
    assert tick.call_count == ticks
    assert len({c.tid for c in tick.calls}) == processes  # each process's main thread
    assert sorted(a for (a,) in tick.args_list) == sorted(list(range(5)) * processes)
    assert all(c.returned and c.retval == 2 * c.args[0] + 1 for c in tick.calls)
    assert_clean(exe)
    assert bpf_fds()["link"] == []


def test_without_follow_children_only_the_target_itself_counts(uprobe_trace, cargo_bin):
    exe = cargo_bin("example_crates/workload")
    trace = uprobe_trace.run([exe, "tree", "5", "2"], probes=["workload::tick"])
    assert tree_output(trace.stdout) == (7, 35)
    assert trace["workload::tick"].args_list == [(0,), (1,), (2,), (3,), (4,)]


def test_follow_children_never_counts_another_process_running_the_same_binary(cargo_bin):
    """The probes of a followed run attach to every process mapping the binary and a BPF
    filter keeps the traced tree: neighbours running the same binary, forking the same way,
    children of this very pytest process, must not leak in."""
    exe = cargo_bin("example_crates/workload")
    with (
        neighbour_running([exe, "tree", "50", "1"]) as neighbours,
        Tracer(follow_children=True) as tracer,
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
        Tracer(follow_children="yes")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="follow_children must be True or False, got 1"):
        Tracer().run([exe], probes=["workload::tick"], follow_children=1)  # type: ignore[arg-type]


# -- volume ------------------------------------------------------------------------------------


def test_a_million_calls_are_counted_exactly_and_all_delivered(uprobe_trace, cargo_bin):
    exe = cargo_bin("example_crates/workload")
    calls = 1_000_000
    trace = uprobe_trace.run([exe, "loop", str(calls)], probes=["workload::tick"], timeout=300)
    match = re.fullmatch(r"ticks (\d+) sum (\d+)\n", trace.stdout)
    assert match, trace.stdout
    assert int(match.group(1)) == calls
    tick = trace["workload::tick"]
    assert tick.call_count == calls  # counted in the kernel
    assert trace.lost_events == 0  # the default ring buffer kept up
    assert len(tick.calls) == calls
    assert tick.args_list == [(i,) for i in range(calls)]
    assert sum(tick.retvals) % 2**64 == int(match.group(2))


@pytest.fixture
def tiny_ring_buffer(monkeypatch):
    """Programs built with a one-page ring buffer (test-only), in a pool of their own that
    is unloaded after the test: other tests keep the programs they had."""
    monkeypatch.setattr(session, "_idle", {})
    monkeypatch.setattr(program, "RINGBUF_PAGES", 1)
    yield
    session.release_programs()  # the tiny ones; then monkeypatch puts the pool back


def test_lost_events_are_reported_and_fail_value_assertions_while_counts_stay_exact(
    uprobe_trace, cargo_bin, tiny_ring_buffer
):
    exe = cargo_bin("example_crates/workload")
    calls = 20_000
    trace = uprobe_trace.run([exe, "loop", str(calls)], probes=["workload::tick"])
    assert trace.stdout.startswith(f"ticks {calls} sum ")
    tick = trace["workload::tick"]
    assert trace.lost_events > 0
    assert tick.lost_events == trace.lost_events
    assert tick.call_count == calls  # exact all the same
    message = f"{trace.lost_events} events with arguments or return values were lost"
    with pytest.raises(LostEventsError, match=message):
        _ = tick.args_list
    with pytest.raises(LostEventsError, match="call_count is still exact|recorded"):
        assert tick.retvals == []
    with pytest.raises(LostEventsError):
        tick.assert_called_with(calls - 1)


# -- the binary changes under the test ---------------------------------------------------------


@pytest.fixture
def two_builds(cargo_bin, tmp_path):
    """A copy of the debug build of workload (the path tests trace), its release build and
    another program (args), as separate files."""
    debug = cargo_bin("example_crates/workload")
    release = cargo_bin("example_crates/workload", profile="release")
    other = cargo_bin("example_crates/args")
    target = tmp_path / "prog"
    shutil.copy2(debug, target)
    return target, release, other


def replace(path: Path, source: Path) -> None:
    """What a build does: write a new file and rename it over the old one (a new inode)."""
    fresh = path.with_name(path.name + ".new")
    shutil.copy2(source, fresh)
    os.utime(fresh)  # a build writes a new mtime
    os.replace(fresh, path)


def test_a_binary_rebuilt_after_resolution_is_resolved_again(two_builds):
    target, release, _ = two_builds
    with Tracer() as tracer:
        stale = tracer.plan(target, ["workload::tick"])
        replace(target, release)
        trace = tracer.run([target, "loop", "5"], probes=["workload::tick"])
        fresh = tracer.plan(target, ["workload::tick"])
    # The two builds put tick at different offsets: the stale plan's would probe garbage.
    assert stale.sites[0].address != fresh.sites[0].address
    assert trace.stdout == "ticks 5 sum 25\n"
    assert trace["workload::tick"].args_list == [(0,), (1,), (2,), (3,), (4,)]
    assert trace["workload::tick"].retvals == [1, 3, 5, 7, 9]


def test_a_binary_rewritten_in_place_is_resolved_again(two_builds):
    target, release, _ = two_builds
    with Tracer() as tracer:
        stale = tracer.plan(target, ["workload::tick"])
        inode = target.stat().st_ino
        shutil.copyfile(release, target)  # same inode, new content and mtime
        assert target.stat().st_ino == inode
        trace = tracer.run([target, "loop", "3"], probes=["workload::tick"])
    assert stale.binary.identity != Tracer().plan(target, ["workload::tick"]).binary.identity
    assert trace["workload::tick"].args_list == [(0,), (1,), (2,)]


def test_a_binary_replaced_by_another_program_fails_clearly(two_builds):
    target, _, other = two_builds
    with Tracer() as tracer:
        tracer.plan(target, ["workload::tick"])
        replace(target, other)
        with pytest.raises(NoMatchingFunction, match="'workload::tick' in .*prog: no function"):
            tracer.run([target, "loop", "3"], probes=["workload::tick"])
    assert_clean(target)


def test_a_binary_replaced_between_attach_and_exec_still_runs_what_was_probed(
    two_builds, monkeypatch
):
    """Replaced after the last check: probes and exec both go through an fd of the file
    that was resolved, so the run is the resolved build, probed at its own offsets."""
    target, _, other = two_builds
    original = session.Session.attach

    def attach_then_replace(self, pid, **kwargs):  # type: ignore[no-untyped-def]
        original(self, pid, **kwargs)
        replace(target, other)

    monkeypatch.setattr(session.Session, "attach", attach_then_replace)
    with Tracer() as tracer:
        trace = tracer.run([target, "loop", "4"], probes=["workload::tick"])
    assert trace.stdout == "ticks 4 sum 16\n"  # workload ran, not args
    assert trace["workload::tick"].args_list == [(0,), (1,), (2,), (3,)]
    assert Tracer().plan(target, ["args::hello"])  # the path holds args by now


def test_a_binary_that_keeps_changing_is_refused_without_attaching(two_builds, monkeypatch):
    target, release, _ = two_builds
    original = Tracer.plan
    builds = iter(range(100))

    def plan_then_rebuild(self, executable, probes):  # type: ignore[no-untyped-def]
        plan = original(self, executable, probes)
        os.utime(target, ns=(0, 10**18 + next(builds)))  # a rebuild touches it each time
        return plan

    monkeypatch.setattr(Tracer, "plan", plan_then_rebuild)
    with Tracer() as tracer, pytest.raises(BinaryChanged) as info:
        tracer.run([target, "loop", "1"], probes=["workload::tick"])
    assert str(info.value).startswith(
        f"{target}: the file changed while its probes were being resolved, 3 times in a row, "
        "so no probe was attached"
    )
    assert "fix: wait for the build that writes it to finish" in str(info.value)
    assert_clean(target)
    assert bpf_fds()["link"] == []


# -- bad input ---------------------------------------------------------------------------------


def test_a_missing_executable_is_refused(uprobe_trace, tmp_path):
    with pytest.raises(BinaryNotFound, match=f"{tmp_path}/nothing-here: no such file"):
        uprobe_trace.run([tmp_path / "nothing-here"], probes=["x::y"])
    with pytest.raises(BinaryNotFound, match="no-such-program-anywhere: no such file"):
        uprobe_trace.run(["no-such-program-anywhere"], probes=["x::y"])


def test_a_file_that_is_not_executable_is_refused(uprobe_trace, cargo_bin, tmp_path):
    copy = tmp_path / "workload"
    shutil.copy(cargo_bin("example_crates/workload"), copy)
    copy.chmod(0o644)
    with pytest.raises(NotExecutable, match=r"workload: the file is not executable\n  fix: chmod"):
        uprobe_trace.run([copy], probes=["workload::tick"])


def test_a_binary_for_another_architecture_is_refused(uprobe_trace, cargo_bin, tmp_path):
    # The same ELF file with e_machine (offset 18) set to AArch64 (183).
    copy = tmp_path / "workload-aarch64"
    data = bytearray(cargo_bin("example_crates/workload").read_bytes())
    data[18:20] = (183).to_bytes(2, "little")
    copy.write_bytes(bytes(data))
    copy.chmod(0o755)
    with pytest.raises(WrongArchitecture) as info:
        uprobe_trace.run([copy, "loop", "1"], probes=["workload::tick"])
    assert "built for AARCH64, but this machine runs x86-64" in str(info.value)
    assert "fix: build for the host target" in str(info.value)


def test_a_name_matching_ten_thousand_functions_is_refused_naming_the_limit(cargo_bin):
    exe = cargo_bin("example_crates/many")  # 10,000 generated functions
    assert subprocess.run([exe], capture_output=True, text=True).stdout.startswith(
        "functions 10000 "
    )
    with pytest.raises(TooManyMatches) as info:
        Tracer().plan(exe, ["many::generated::*"])
    assert (info.value.count, info.value.limit) == (10_000, 1000)
    message = str(info.value)
    assert "it matches 10000 functions, more than the limit of 1000" in message
    assert "max_functions=" in message and "uprobe_max_functions" in message
    # The limit is the user's to raise.
    with pytest.raises(TooManyMatches, match="matches 100 functions, more than the limit of 99"):
        Tracer(max_functions=99).plan(exe, ["many::generated::f00*"])
    assert len(Tracer(max_functions=100).plan(exe, ["many::generated::f00*"]).functions) == 100


# -- security ----------------------------------------------------------------------------------


def test_the_kernel_header_cache_is_private_and_built_under_a_random_name(tmp_path, monkeypatch):
    common = tmp_path / "src/linux-headers-9.9-common"
    arch = tmp_path / "src/linux-headers-9.9-amd64"
    for half, name in ((common, "common.h"), (arch, "arch.h")):
        (half / "include/linux").mkdir(parents=True)
        (half / "include/linux" / name).write_text("")
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    made_in_tmp: list[str] = []
    original = tempfile.mkdtemp

    def watched_mkdtemp(*args, **kwargs):  # type: ignore[no-untyped-def]
        path = original(*args, **kwargs)
        made_in_tmp.append(path)
        return path

    monkeypatch.setattr(tempfile, "mkdtemp", watched_mkdtemp)
    merged = headers._merged(*headers._debian_halves(tmp_path / "src"))
    assert merged == cache / "pytest-uprobe/kernel-source-linux-headers-9.9-amd64"
    assert (merged / "include/linux/common.h").exists()
    assert (merged / "include/linux/arch.h").exists()
    assert stat.S_IMODE((cache / "pytest-uprobe").stat().st_mode) == 0o700
    # Built in a random (mkdtemp) directory inside the private cache, then renamed.
    assert len(made_in_tmp) == 1 and Path(made_in_tmp[0]).parent == cache / "pytest-uprobe"
    assert not Path(made_in_tmp[0]).exists()  # the scratch directory is gone
    assert [p.name for p in (cache / "pytest-uprobe").iterdir()] == [merged.name]


def test_a_cache_directory_open_to_others_is_closed(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (tmp_path / "pytest-uprobe").mkdir(mode=0o777)
    os.chmod(tmp_path / "pytest-uprobe", 0o777)
    headers.cache_dir()
    assert stat.S_IMODE((tmp_path / "pytest-uprobe").stat().st_mode) == 0o700


def test_a_cache_directory_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("SUDO_UID", raising=False)
    planted = tmp_path / "pytest-uprobe"
    planted.mkdir()
    os.chown(planted, 4242, 4242)  # the tests run as root
    with pytest.raises(PrerequisiteError, match="is not a directory owned by this user"):
        headers.cache_dir()
    planted.rmdir()
    planted.symlink_to(tmp_path)  # a symlink planted in its place is refused as well
    os.lchown(planted, 4242, 4242)
    with pytest.raises(PrerequisiteError, match="a private cache directory"):
        headers.cache_dir()
