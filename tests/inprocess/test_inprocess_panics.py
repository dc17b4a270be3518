"""Panics unwind unchanged under the in-process engine: its return hooks (Frida onLeave)
go on leaf functions only, exactly where the BPF engine puts uretprobes, and every other
return is a plain probe on the instruction. A panicking function, traced, must leave the
program's output and exit status what they are untraced."""

from __future__ import annotations

import re

import pytest

from pytest_uprobe import Tracer
from pytest_uprobe.errors import UnreadableFunction
from pytest_uprobe.plan import ReturnMode
from tests.integration.test_panics import (
    CRATE,
    assert_same_as_untraced,
    command,
    printed,
    quiet_env,
    untraced,
)

pytestmark = pytest.mark.uprobe


@pytest.mark.parametrize("profile", ["dev", "release"])
@pytest.mark.parametrize(
    "mode, args, status", [("catch", (4, 3, 6, 5), 0), ("uncaught", (2, 10, 5, 4), 101)]
)
def test_a_panic_unwinds_through_an_instrumented_frame_unchanged(
    cargo_bin, profile: str, mode: str, args: tuple[int, ...], status: int
) -> None:
    exe = cargo_bin(CRATE, profile=profile)
    argv = command(exe, mode, *args)
    env = quiet_env()
    plain = untraced(argv, env)
    with Tracer(backend="inprocess") as tracer:
        try:
            trace = tracer.run(argv, probes=["panics::checked_half"], env=env)
        except UnreadableFunction as refused:  # said before the run, never a changed run
            assert "--uprobe-backend=bpf" in str(refused)
            pytest.skip(f"the in-process engine refuses this build's site: {refused}")
    assert_same_as_untraced(trace, plain)
    assert trace.returncode == status
    assert "failed to initiate panic" not in trace.stderr
    # catch: every input is halved (odd ones panic, caught); uncaught: the first odd
    # input's panic ends the program.
    ran = (
        list(args)
        if mode == "catch"
        else list(args[: next(i for i, n in enumerate(args) if n % 2) + 1])
    )
    half = trace["panics::checked_half"]
    assert half.call_count == len(ran)
    assert [c.args for c in half.calls] == [(n,) for n in ran]
    assert [c.returned for c in half.calls] == [n % 2 == 0 for n in ran]
    assert [c.retval for c in half.calls if c.returned] == [n // 2 for n in ran if n % 2 == 0]
    assert printed(trace.stdout) == printed(plain.stdout)


def test_only_a_leaf_gets_the_return_hook_and_the_program_is_unchanged(cargo_bin) -> None:
    exe = cargo_bin(CRATE, profile="dev")
    probes = ["panics::leaf_mix", "panics::non_leaf"]
    with Tracer(backend="inprocess") as tracer:
        leaf, non_leaf = tracer.plan(exe, probes).functions
        assert leaf.return_mode is ReturnMode.URETPROBE  # onLeave in this engine
        assert non_leaf.return_mode is ReturnMode.RET_SITES  # plain probes on its rets
        argv = command(exe, "leaf", 9, 2)
        env = quiet_env()
        plain = untraced(argv, env)
        trace = tracer.run(argv, probes=probes, env=env)
    assert_same_as_untraced(trace, plain)
    said = re.search(r"^leaf_mix\(9, 2\) = (\d+)", plain.stdout, re.MULTILINE)
    assert said is not None
    assert trace["panics::leaf_mix"].retvals[0] == int(said.group(1))
