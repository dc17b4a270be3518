"""One compiled program serves every run of its shape; each run still starts from zero."""

from __future__ import annotations

import os

from pytest_uprobe import Tracer
from pytest_uprobe.bpf import session
from tests.integration.test_cleanup import assert_clean


def links_of_this_process() -> list[str]:
    """BPF links (uprobe_multi ones included) that this process still holds open."""
    links = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:bpf_link":
                links.append(fd)
        except OSError:
            continue
    return links


def test_runs_after_the_first_reuse_the_program_and_start_from_zero(cargo_bin, monkeypatch):
    exe = cargo_bin("example_crates/args")
    built: list[int] = []
    original = session._Loaded.__init__

    def counting_init(self, bcc, capacity):  # type: ignore[no-untyped-def]
        built.append(capacity)
        original(self, bcc, capacity)

    with Tracer() as tracer:
        tracer.run([exe, "1"], probes=["args::hello"])  # compiles, unless an earlier test did
        monkeypatch.setattr(session._Loaded, "__init__", counting_init)
        for argv in (["1", "2", "3"], ["1"], ["1", "2"]):
            trace = tracer.run([exe, *argv], probes=["args::hello"])
            hello = trace["args::hello"]
            assert hello.call_count == len(argv)  # counters were reset, not carried over
            assert hello.args_list == [(int(a), len(argv) + 1) for a in argv]
            assert trace.lost_events == 0
            assert_clean(exe)
            assert links_of_this_process() == []
    assert built == []  # no run after the first compiled anything


def test_count_only_mode_counts_without_events(cargo_bin):
    exe = cargo_bin("example_crates/args")
    with Tracer(record=False) as tracer:
        trace = tracer.run([exe, "1", "2", "3"], probes=["args::hello"])
    hello = trace["args::hello"]
    assert hello.call_count == 3
    assert hello.calls == []
    assert_clean(exe)
    assert links_of_this_process() == []


def test_a_closed_session_closes_again_quietly(cargo_bin):
    exe = cargo_bin("example_crates/args")
    plan = Tracer().plan(exe, ["args::hello"])
    Tracer().check()
    live = session.Session(plan)
    live.close()
    live.close()
