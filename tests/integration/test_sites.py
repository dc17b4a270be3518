"""Probe sites that are easy to get wrong (example_crates/sites): probe names that overlap,
a site no uprobe can take, functions merged by the optimizer, and calls the process ends
in. Every expected value comes from what the program prints or from arithmetic on its
inputs; every count is right or says why not.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_uprobe import plan as planning
from pytest_uprobe.bounds import CallCount, InexactCount
from pytest_uprobe.cli import symbol_rows
from pytest_uprobe.elf import ElfBinary
from pytest_uprobe.errors import NoMatchingFunction, UnreadableFunction
from pytest_uprobe.machine_code import CodeShape
from pytest_uprobe.names import strip_generics
from pytest_uprobe.tracer import Tracer

CRATE = "example_crates/sites"
V0 = "-C symbol-mangling-version=v0"
CargoBin = Callable[..., Path]

pytestmark = pytest.mark.uprobe


def fib_calls(n: int) -> int:
    """Calls the naive recursive fib(n) makes, itself included: 2 * F(n + 1) - 1."""
    a, b = 0, 1
    for _ in range(n + 1):
        a, b = b, a + b
    return 2 * a - 1


# -- 1. a site belongs to every probe that names its function ------------------------------


@pytest.mark.parametrize("profile", ["dev", "release"])
def test_a_glob_beside_an_exact_name_gives_both_every_call(
    uprobe_trace: Tracer, cargo_bin: CargoBin, profile: str
) -> None:
    exe = cargo_bin(CRATE, profile=profile)
    alone = uprobe_trace.run([exe, "overlap", "10"], probes=["sites::fib"])
    both = uprobe_trace.run([exe, "overlap", "10"], probes=["sites::*", "sites::fib"])
    assert "fib(10) = 55" in both.stdout
    fib = both["sites::fib"]
    # The same number counted (in release both are the same lower bound: recursion.py).
    assert int(fib.call_count) == int(alone["sites::fib"].call_count) > 0
    assert [c.args for c in fib.calls] == [c.args for c in alone["sites::fib"].calls]
    assert [c.retval for c in fib.calls] == [c.retval for c in alone["sites::fib"].calls]
    if profile == "dev":  # release turns part of the recursion into a loop
        assert fib.call_count == fib_calls(10)
    # One call per execution: the glob's calls hold fib's once, not twice.
    globbed = both["sites::*"]
    assert [c for c in globbed.calls if c.path == "sites::fib"] == fib.calls
    # (In release the glob leaves `tick`'s copy in maybe_tick out: its count is a bound.)
    assert len(both.calls) == len(globbed.calls) == int(globbed.call_count)
    assert all(c.probes == ("sites::*", "sites::fib") for c in fib.calls)
    assert all(c.function == "sites::*" for c in fib.calls)  # the first name given
    assert fib.called_from("sites::main").call_count == 1
    both.assert_sequence(["sites::main", "sites::fib", "sites::fib"])
    both.assert_sequence(["sites::*", "sites::fib"])


@pytest.mark.parametrize("profile", ["dev", "release"])
def test_a_trait_glob_beside_one_impl(
    uprobe_trace: Tracer, cargo_bin: CargoBin, profile: str
) -> None:
    exe = cargo_bin(CRATE, profile=profile)
    glob, square = "<* as sites::Shape>::area", "<sites::Sq as sites::Shape>::area"
    trace = uprobe_trace.run([exe, "overlap", "7"], probes=[glob, square])
    printed = [int(v) for v in re.findall(r"^area = (\d+)$", trace.stdout, re.MULTILINE)]
    assert printed == [7 * 7, 7 * 2]
    assert trace[square].retvals == [printed[0]]
    trace[square].assert_called_once()
    assert trace[glob].call_count == len(printed)
    assert sorted(trace[glob].retvals) == sorted(printed)


def test_a_generic_beside_one_of_its_instances_v0(
    uprobe_trace: Tracer, cargo_bin: CargoBin
) -> None:
    exe = cargo_bin(CRATE, profile="dev", rustflags=V0)
    probes = ["sites::ident", "sites::ident::<u8>"]
    trace = uprobe_trace.run([exe, "ident", "300"], probes=probes)
    assert "ident::<u8>(44) = 44" in trace.stdout  # 300 as u8
    trace["sites::ident::<u8>"].assert_called_once_with(44)
    assert trace["sites::ident::<u8>"].retvals == [44]
    assert trace["sites::ident"].call_count == 2
    assert sorted(trace["sites::ident"].args_list) == [(44,), (300,)]


# -- 2. sites no uprobe can take -----------------------------------------------------------


def _printed_ticks(stdout: str) -> int:
    return int(re.search(r"^ticks = (\d+)$", stdout, re.MULTILINE)[1])


def test_a_glob_runs_without_its_unprobeable_site_and_says_so(
    uprobe_trace: Tracer, cargo_bin: CargoBin
) -> None:
    """`tick` (one `lock incq`) inlined into `maybe_tick` between a conditional jump and
    that jump's target: no instruction there runs exactly as often, so that copy is left
    out; the copy in `main` is counted."""
    exe = cargo_bin(CRATE, profile="release")
    n = 10
    trace = uprobe_trace.run([exe, "tick", str(n)], probes=["sites::*", "sites::tick"])
    ticks = _printed_ticks(trace.stdout)
    assert ticks == 1 + len(range(0, n, 3))
    for name in ("sites::*", "sites::tick"):
        function = trace[name]
        assert not function.complete
        assert len(function.left_out) == 1 and "sites::maybe_tick" in function.left_out[0]
        assert "LOCK" in function.left_out[0]
        assert isinstance(function.call_count, CallCount) and not function.call_count.exact
    tick = trace["sites::tick"]
    assert tick.call_count >= 1  # the copy in main ran once
    assert int(tick.call_count) <= ticks  # a lower bound never exceeds the truth
    assert tick.call_count > 0 and tick.called
    with pytest.raises(InexactCount, match="sites::maybe_tick"):
        assert tick.call_count == ticks
    with pytest.raises(InexactCount, match="sites::maybe_tick"):
        tick.assert_called_once()
    with pytest.raises(AssertionError, match="Called at least 1 time"):
        tick.assert_not_called()  # decided: the copy in main was seen
    with pytest.raises(InexactCount, match="sites::maybe_tick"):
        assert tick.args_list == [()]
    # The functions of the glob that have every site are still counted right.
    assert trace["sites::*"].call_count >= 1 + n  # ticking, and maybe_tick n times
    maybe = [c for c in trace["sites::*"].calls if c.path == "sites::maybe_tick"]
    assert [c.args for c in maybe] == [(i,) for i in range(n)]


def test_an_exact_name_with_no_probeable_site_fails_before_the_run(
    cargo_bin: CargoBin, monkeypatch: pytest.MonkeyPatch
) -> None:
    exe = cargo_bin(CRATE, profile="release")
    binary = ElfBinary.open(exe)
    plan = planning.build_plan(binary, ["sites::tick"])  # one copy of two is probe-able
    assert [f.inlined.caller for f in plan.functions if f.inlined] == ["sites::main"]
    assert "sites::maybe_tick" in str(plan.coverage["sites::tick"].left_out[0])
    # Refuse main's copy too, as the kernel would refuse a LOCK there: nothing is left.
    entries = {copy.entry for copy in planning.find_sites(binary, "sites::tick").inlined}
    original = CodeShape.probe_point

    def refusing(shape: CodeShape, address: int) -> int | None:
        return None if address in entries else original(shape, address)

    monkeypatch.setattr(CodeShape, "probe_point", refusing)
    with pytest.raises(UnreadableFunction, match="probe 'sites::tick'.*LOCK"):
        planning.build_plan(binary, ["sites::tick"])
    # Also when a glob before it met (and left out) the same copies first; the glob runs.
    with pytest.raises(UnreadableFunction, match="probe 'sites::tick'.*LOCK"):
        planning.build_plan(binary, ["sites::t*", "sites::tick"])
    globbed = planning.build_plan(binary, ["sites::t*"])
    assert len(globbed.coverage["sites::t*"].left_out) == len(entries) == 2


# -- 3. functions merged by the optimizer -------------------------------------------------


APPLE = "<sites::Apple as sites::Weigh>::weight"
PEAR = "<sites::Pear as sites::Weigh>::weight"


def test_a_name_sharing_its_address_says_whose_calls_it_counts(
    uprobe_trace: Tracer, cargo_bin: CargoBin
) -> None:
    exe = cargo_bin(CRATE, profile="release")
    n = 4
    trace = uprobe_trace.run([exe, "twins", str(n)], probes=[APPLE])
    apples = len(re.findall(r"^Apple\(\d+\)\.weight = ", trace.stdout, re.MULTILINE))
    pears = len(re.findall(r"^Pear\(\d+\)\.weight = ", trace.stdout, re.MULTILINE))
    assert (apples, pears) == (n + 1, 1)
    apple = trace[APPLE]
    assert apple.shares_address_with == (PEAR,) and not apple.complete
    assert int(apple.call_count) == apples + pears  # the merged body ran that often
    assert apple.call_count <= apples + pears
    with pytest.raises(InexactCount, match=re.escape(PEAR)):
        assert apple.call_count == apples
    with pytest.raises(InexactCount, match=re.escape(PEAR)):
        apple.assert_called_once()
    with pytest.raises(InexactCount, match=re.escape(PEAR)):
        apple.assert_any_call(0)


def test_a_glob_naming_every_alias_counts_exactly(
    uprobe_trace: Tracer, cargo_bin: CargoBin
) -> None:
    exe = cargo_bin(CRATE, profile="release")
    trace = uprobe_trace.run([exe, "twins", "4"], probes=["<* as sites::Weigh>::weight"])
    weights = trace["<* as sites::Weigh>::weight"]
    assert weights.complete
    assert weights.call_count == len(re.findall(r"\.weight = ", trace.stdout))


def test_a_dev_build_keeps_merged_functions_apart(
    uprobe_trace: Tracer, cargo_bin: CargoBin
) -> None:
    exe = cargo_bin(CRATE, profile="dev")
    trace = uprobe_trace.run([exe, "twins", "4"], probes=[APPLE, "sites::twin_b"])
    assert trace[APPLE].complete and trace[APPLE].call_count == 5
    trace["sites::twin_b"].assert_called_once_with(4)


def test_symbols_lists_every_name_of_an_address(cargo_bin: CargoBin) -> None:
    exe = cargo_bin(CRATE, profile="release")
    binary = ElfBinary.open(exe)
    rows = {row.path: row for row in symbol_rows(binary)}
    assert rows[APPLE].address == rows[PEAR].address
    assert rows[APPLE].shares_address_with == [PEAR]
    assert rows[PEAR].shares_address_with == [APPLE]
    # Every function name nm prints (demangled, size > 0) is listed.
    nm = subprocess.run(
        ["nm", "-C", "-S", "--defined-only", str(exe)], capture_output=True, text=True
    ).stdout
    ours = {
        line.split(" ", 3)[3]
        for line in nm.splitlines()
        if line.count(" ") >= 3 and line.split(" ")[2] in "tTwW" and " sites::" in f" {line}"
    }
    listed = {row.path for row in symbol_rows(binary, "sites::*")}
    # A legacy-mangled generic instance is listed under its DWARF name (`ident::<u8>`).
    listed |= {strip_generics(path) for path in listed}
    assert {p for p in ours if p.startswith("sites::") and "{{closure}}" not in p} <= listed
    globbed = {row.path for row in symbol_rows(binary, "<* as sites::Weigh>::weight")}
    assert globbed == {APPLE, PEAR}


def test_a_merged_away_name_explains_why_it_is_missing(cargo_bin: CargoBin) -> None:
    exe = cargo_bin(CRATE, profile="release")
    with pytest.raises(NoMatchingFunction) as caught:
        Tracer().plan(exe, ["sites::twin_b"])
    message = str(caught.value)
    assert "main.rs:" in message and "merged" in message
    assert "pytest-uprobe symbols" in message and "dev build" in message
    assert caught.value.merged_into == "sites::twin_a"  # its calls run as twin_a
    with pytest.raises(NoMatchingFunction) as caught:
        Tracer().plan(exe, ["sites::no_such_function"])
    assert "merged" not in str(caught.value)


# -- 4. calls the process ends in -----------------------------------------------------------


@pytest.mark.parametrize("profile", ["dev", "release"])
def test_a_call_the_process_exits_in_is_not_unwound(
    uprobe_trace: Tracer, cargo_bin: CargoBin, profile: str
) -> None:
    exe = cargo_bin(CRATE, profile=profile)
    trace = uprobe_trace.run(
        [exe, "exit", "3"], probes=["sites::run_then_exit", "sites::finish", "sites::work"]
    )
    assert trace.returncode == 3 and "finish(3) exits" in trace.stdout
    assert "work(3) = 4" in trace.stdout
    trace["sites::work"].assert_called_once_with(3)
    assert trace["sites::work"].retvals == [4]
    for name in ("sites::run_then_exit", "sites::finish"):
        (call,) = trace[name].calls
        assert (call.returned, call.unwound) == (False, False), trace.log()
        assert call.ended == "the process exited in it"
    assert "(did not return: the process exited in it)" in trace.log()
    assert "unwound" not in trace.log()


def test_probing_exit_itself(uprobe_trace: Tracer, cargo_bin: CargoBin) -> None:
    exe = cargo_bin(CRATE, profile="release")
    trace = uprobe_trace.run([exe, "exit", "5"], probes=["std::process::exit", "sites::finish"])
    assert trace.returncode == 5
    trace["std::process::exit"].assert_called_once()  # (std has no parameter DIEs)
    for name in ("std::process::exit", "sites::finish"):
        (call,) = trace[name].calls
        assert (call.unwound, call.ended) == (False, "the process exited in it")
