"""The seed crates, dev profile: every expected value comes from the program's output."""

from __future__ import annotations

import re
import subprocess

import pytest

from pytest_uprobe.errors import InlinedFunction
from tests.conftest import neighbour_running

HELLO = re.compile(r"Hello, world! (-?\d+) in (\d+)")
RETURN = re.compile(r"return value: (-?\d+)")


def printed(stdout: str) -> tuple[list[tuple[int, int]], list[int]]:
    args = [(int(i), int(n)) for i, n in HELLO.findall(stdout)]
    rets = [int(r) for r in RETURN.findall(stdout)]
    return args, rets


@pytest.mark.parametrize(
    "argv",
    [["1", "2", "3", "4"], ["1", "x", "3"], ["-7", "2147483640"], []],
    ids=["four", "skip-non-int", "negative-and-overflowing", "none"],
)
def test_args_match_what_the_program_printed(uprobe_trace, cargo_bin, argv):
    exe = cargo_bin("example_crates/args")
    untraced = subprocess.run([exe, *argv], capture_output=True, text=True)
    trace = uprobe_trace.run([exe, *argv], probes=["args::hello"])
    assert (trace.returncode, trace.stdout, trace.stderr) == (
        untraced.returncode,
        untraced.stdout,
        untraced.stderr,
    )
    args, rets = printed(trace.stdout)
    hello = trace["args::hello"]
    assert hello.call_count == len(args)
    assert hello.args_list == args
    # A call that overflowed panicked: it has no return value, and the program says so.
    assert [c.retval for c in hello.calls if c.returned] == rets
    assert all(c.tid == trace.calls[0].tid for c in hello.calls)


def test_non_integer_arguments_are_not_calls(uprobe_trace, cargo_bin):
    exe = cargo_bin("example_crates/args")
    trace = uprobe_trace.run([exe, "1", "x", "3"], probes=["args::hello"])
    hello = trace["args::hello"]
    assert hello.call_count == 2
    assert hello.args_list == [(1, 4), (3, 4)]
    assert hello.retvals == [1 + 4, 3 + 4]
    assert hello.calls[0].kwargs == {"i": 1, "len": 4}
    hello.assert_called_with(i=3, len=4)
    hello.assert_any_call(1, 4)
    assert "Error: Argument 'x' is not a valid integer" in trace.stderr


def test_helloworld(uprobe_trace, cargo_bin):
    exe = cargo_bin("example_crates/helloworld")
    trace = uprobe_trace.run([exe], probes=["helloworld::hello"])
    hello = trace["helloworld::hello"]
    hello.assert_called_once_with()
    assert hello.retvals == [0]
    assert trace.stdout == "Hello, world!\n"


def test_release_build_without_inlined_counting_reports_inlining_plainly(uprobe_trace, cargo_bin):
    exe = cargo_bin("example_crates/args", profile="release")
    uprobe_trace.inlined = False
    with pytest.raises(InlinedFunction) as info:
        uprobe_trace.run([exe, "1", "2"], probes=["args::hello"])
    message = str(info.value)
    assert message.startswith(f"probe 'args::hello' in {exe}: it was inlined into args::main")
    assert "has no out-of-line copy of its own to probe" in message
    assert "count its inlined copies (the default" in message
    assert 'profile="dev"' in message and "#[inline(never)]" in message
    assert info.value.callers == ["args::main"]


def test_another_process_running_the_same_binary_is_not_counted(uprobe_trace, cargo_bin):
    exe = cargo_bin("example_crates/args")
    with neighbour_running([exe, "9", "9", "9"]) as others:
        traces = [uprobe_trace.run([exe, "1", "2"], probes=["args::hello"]) for _ in range(5)]
    assert others[0] > 0
    for trace in traces:
        assert trace["args::hello"].args_list == [(1, 3), (2, 3)]


def test_arguments_are_read_after_the_prologue_in_dev_builds(uprobe_trace, cargo_bin):
    """Dev builds keep parameters in stack slots written by the prologue; reading them at
    the first instruction would give stale stack contents."""
    exe = cargo_bin("example_crates/args")
    plan = uprobe_trace.plan(exe, ["args::hello"])
    entry = plan.sites[0]
    assert entry.address > plan.functions[0].symbol.address
