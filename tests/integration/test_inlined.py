"""Inlined functions are counted at every inlined copy; expected counts come from the
program's own counters (`calls add N`) and from arithmetic on its inputs."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_uprobe import Tracer, Unavailable
from pytest_uprobe.errors import NoMatchingFunction

PROFILES = ["dev", "release"]
CRATE = "example_crates/inlining"
ROOT = Path(__file__).resolve().parents[2]


def counted(stdout: str, name: str) -> int:
    return int(re.search(rf"^calls {name} (\d+)$", stdout, re.M).group(1))


def test_seed_release_build_counts_four_calls_with_their_arguments(uprobe_trace, cargo_bin):
    exe = cargo_bin("example_crates/args", profile="release")
    argv = ["1", "2", "3", "4"]
    trace = uprobe_trace.run([exe, *argv], probes=["args::hello"])
    hello = trace["args::hello"]
    printed = [
        (int(i), int(n)) for i, n in re.findall(r"Hello, world! (\d+) in (\d+)", trace.stdout)
    ]
    assert hello.call_count == 4 == len(printed)
    assert hello.args_list == printed == [(int(a), len(argv) + 1) for a in argv]
    assert all(c.inlined and not c.returned for c in hello.calls)
    for call in hello.calls:
        assert isinstance(call.retval, Unavailable)
        assert "no return to probe" in call.retval.reason
        assert call.inlined_into.startswith("args::main (src/main.rs:")


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("n", [1, 5, 300])
def test_counts_equal_the_programs_own_counter(uprobe_trace, cargo_bin, profile, n):
    exe = cargo_bin(CRATE, profile=profile)
    trace = uprobe_trace.run([exe, str(n)], probes=["inlining::add", "inlining::step"])
    assert trace["inlining::add"].call_count == counted(trace.stdout, "add") == n + 4
    assert trace["inlining::step"].call_count == counted(trace.stdout, "step") == 1


@pytest.mark.parametrize("profile", PROFILES)
def test_the_per_site_breakdown(uprobe_trace, cargo_bin, profile):
    n = 7
    exe = cargo_bin(CRATE, profile=profile)
    trace = uprobe_trace.run([exe, str(n)], probes=["inlining::add"])
    add = trace["inlining::add"]
    per_caller = Counter(
        c.inlined_into.split(" (")[0] if c.inlined else "out of line" for c in add.calls
    )
    # in_a_loop runs add n times; another_caller, step and through_generic (via the trait
    # impl) once each; the call through a function pointer runs the out-of-line copy.
    assert per_caller == {
        "inlining::in_a_loop": n,
        "inlining::another_caller": 1,
        "inlining::step": 1,
        "inlining::through_generic::<u64>": 1,  # DWARF names the instance
        "out of line": 1,
    }
    out_of_line = [c for c in add.calls if not c.inlined]
    assert out_of_line[0].args == (n, 2) and out_of_line[0].retval == n + 2


def test_arguments_at_inlined_copies_where_dwarf_places_them(uprobe_trace, cargo_bin):
    n = 9
    exe = cargo_bin(CRATE, profile="release")
    trace = uprobe_trace.run([exe, str(n)], probes=["inlining::add"])
    by_caller = {
        c.inlined_into.split(" (")[0]: c for c in trace["inlining::add"].calls if c.inlined
    }
    # another_caller(x) is add(x, 100): x from a register, 100 a constant DWARF gives outright.
    assert by_caller["inlining::another_caller"].args == (n, 100)
    assert by_caller["inlining::another_caller"].kwargs == {"a": n, "b": 100}
    for call in trace["inlining::add"].calls:
        for value in call.args:
            assert isinstance(value, (int, Unavailable))  # never a wrong-typed guess


@pytest.mark.parametrize("profile", PROFILES)
def test_only_out_of_line_when_asked(uprobe_trace, cargo_bin, profile):
    exe = cargo_bin(CRATE, profile=profile)
    uprobe_trace.inlined = False
    trace = uprobe_trace.run([exe, "4"], probes=["inlining::add"])
    add = trace["inlining::add"]
    assert add.call_count == 1 and not add.calls[0].inlined
    assert add.calls[0].args == (4, 2)


def test_line_tables_only_is_enough_to_count(uprobe_trace, cargo_bin):
    exe = cargo_bin("example_crates/args", profile="release-lines")
    trace = uprobe_trace.run([exe, "5", "6", "7"], probes=["args::hello"])
    hello = trace["args::hello"]
    assert hello.call_count == 3 == trace.stdout.count("Hello, world!")
    with pytest.raises(AssertionError, match="arguments of 'args::hello' are unknown"):
        hello.assert_called_with(7, 4)


def test_without_debug_info_the_error_says_which_setting_counts_inlined_calls(cargo_bin):
    exe = cargo_bin("example_crates/args", profile="release-nodebug")
    with pytest.raises(NoMatchingFunction) as info:
        Tracer().plan(exe, ["args::hello"])
    message = str(info.value)
    assert "the binary has no debug info" in message
    assert 'debug = "line-tables-only"' in message and "debug = true" in message


def test_sites_lists_inlined_copies_with_caller_file_and_line(cargo_bin):
    exe = cargo_bin(CRATE, profile="release")
    sites = Tracer().sites(exe, "inlining::add")
    assert [s.path for s in sites.out_of_line] == ["inlining::add"]
    assert sites.callers == [
        "inlining::another_caller",
        "inlining::in_a_loop",
        "inlining::step",
        "inlining::through_generic::<u64>",
    ]
    lines = (ROOT / CRATE / "src/main.rs").read_text().splitlines()
    for copy in sites.inlined:
        assert copy.call_file == "src/main.rs"
        assert "add(" in lines[copy.call_line - 1]  # the line really calls add
    assert Tracer().sites(exe, "inlining::step").inlined == ()


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(n=st.integers(min_value=0, max_value=2000))
def test_property_traced_count_equals_the_programs_counter(uprobe_trace, cargo_bin, n):
    """Every function with both inlined and out-of-line copies: traced == counted by itself."""
    exe = cargo_bin(CRATE, profile="release")
    trace = uprobe_trace.run([exe, str(n)], probes=["inlining::add", "inlining::step"])
    for name in ("add", "step"):
        assert trace[f"inlining::{name}"].call_count == counted(trace.stdout, name)


def test_count_only_mode_counts_inlined_copies_too(cargo_bin):
    exe = cargo_bin(CRATE, profile="release")
    with Tracer(record=False) as tracer:
        trace = tracer.run([exe, "11"], probes=["inlining::add"])
    assert trace["inlining::add"].call_count == counted(trace.stdout, "add") == 15


def test_two_probes_on_one_instruction_both_count(uprobe_trace, cargo_bin):
    """another_caller's entry and add's copy inlined into it begin at the same probe-able
    instruction (past a `lock inc`): one address, two sites, both counted."""
    exe = cargo_bin(CRATE, profile="release")
    probes = ["inlining::add", "inlining::another_caller"]
    plan = uprobe_trace.plan(exe, probes)
    addresses = [s.address for s in plan.sites if s.kind.starts_a_call]
    assert len(addresses) != len(set(addresses))  # the situation this test is about
    trace = uprobe_trace.run([exe, "5"], probes=probes)
    assert trace["inlining::add"].call_count == counted(trace.stdout, "add")
    trace["inlining::another_caller"].assert_called_once_with(5)
    assert trace["inlining::another_caller"].retvals == [105]
