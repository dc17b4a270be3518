"""Counts the optimizer makes wrong without a trace (example_crates/recursion): recursion a
release build turned (partly) into a loop, and a function merged into an identical one
whose name is gone. Each such count is a bound that exact assertions refuse, naming the
cause; every other count stays exact. Expected counts come from arithmetic on the
arguments the program prints, and the dev build (no such optimization) proves them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_uprobe.bounds import InexactCount
from pytest_uprobe.diskcache import DISABLE_ENV
from pytest_uprobe.dwarf import source
from pytest_uprobe.dwarf.merging import merged_into, survivor_of
from pytest_uprobe.dwarf.recursion import looped_recursion
from pytest_uprobe.elf import ElfBinary, Identity
from pytest_uprobe.errors import NoMatchingFunction
from pytest_uprobe.tracer import Tracer

CRATE = "example_crates/recursion"
CargoBin = Callable[..., Path]
N = 9

LOOPED = {  # the functions whose calls of themselves a release build (partly) loops
    "recursion::fib",
    "recursion::Tree::sum",
    "recursion::gcd",
    "recursion::sum_to",
    "recursion::countdown",
    "recursion::visit",
}
# Its calls of itself all became a loop, then it was inlined whole into main.
INLINED_LOOPED = "recursion::gcd_inlined"
KEPT = {  # recursive or looping, every call a call: exact in every build
    "recursion::build",
    "recursion::depth_of",
    "recursion::fib_kept",
    "recursion::walk",
    "recursion::loops",
    "recursion::grow",
}


SOURCE = (Path(__file__).parents[2] / CRATE / "src" / "main.rs").read_text()


def where(text: str) -> str:
    """`line:column` (1-based) of `text` in the crate's main.rs."""
    at = SOURCE.index(text)
    line = SOURCE.count("\n", 0, at) + 1
    return f"{line}:{at - SOURCE.rfind(chr(10), 0, at)}"


def fib_calls(n: int) -> int:
    return 1 if n < 2 else 1 + fib_calls(n - 1) + fib_calls(n - 2)


def gcd_calls(a: int, b: int) -> int:
    calls = 1
    while b:
        a, b = b, a % b
        calls += 1
    return calls


def expected_counts(stdout: str) -> dict[str, int]:
    """Every function's calls, from the arguments the program printed."""
    n = int(re.search(r"^fib\((\d+)\) = ", stdout, re.M).group(1))
    a = int(re.search(r"^gcd\((\d+), ", stdout, re.M).group(1))
    c = int(re.search(r"^gcd_inlined\((\d+), ", stdout, re.M).group(1))
    tree_nodes = 2 ** (3 + 1) - 1
    return {
        "recursion::fib": fib_calls(n),
        "recursion::fib_kept": fib_calls(n),
        "recursion::Tree::sum": tree_nodes,
        "recursion::build": tree_nodes,
        "recursion::visit": tree_nodes,
        "recursion::gcd": gcd_calls(a, n * 55 + 1),
        INLINED_LOOPED: gcd_calls(c, n * 21 + 1),
        "recursion::sum_to": n + 1,
        "recursion::countdown": n + 1,
        "recursion::loops": 1,
        "recursion::depth_of": n.bit_length() + 1,
        "recursion::walk": sum(3**d for d in range(4)),
        "recursion::grow": sum(3**d for d in range(4)),
        "recursion::twin_a": len(re.findall(r"^twin_a\(", stdout, re.M)),
    }


# -- without a run: what the binary and its source say ---------------------------------------


def test_release_recursion_made_a_loop_is_found_and_nothing_else(cargo_bin: CargoBin) -> None:
    binary = ElfBinary.open(cargo_bin(CRATE, profile="release"))
    found = {
        s.path: looped_recursion(binary, s)
        for s in binary.functions
        if s.path.startswith("recursion::")
    }
    assert {path for path, why in found.items() if why is not None} == LOOPED
    assert found.keys() >= KEPT  # each is a function of its own (not inlined) and exact
    fib = found["recursion::fib"]
    assert fib is not None and fib.where.endswith(f"main.rs:{where('fib(n - 2)')}")
    assert "fib(n - 1) + fib(n - 2)" in str(fib) and "black_box" in str(fib)


def test_an_inlined_copy_of_recursion_made_a_loop_is_found(cargo_bin: CargoBin) -> None:
    exe = cargo_bin(CRATE, profile="release")
    assert not any(s.path == INLINED_LOOPED for s in ElfBinary.open(exe).functions)
    plan = Tracer().plan(exe, [INLINED_LOOPED, "recursion::depth_of"])
    assert plan.functions_of(INLINED_LOOPED)  # its copy in main
    (why,) = plan.coverage_of(INLINED_LOOPED).unseen
    assert "gcd_inlined(b, a % b)" in why
    assert plan.coverage_of("recursion::depth_of").exact


def test_without_the_source_a_loop_that_keeps_a_call_is_still_found(
    cargo_bin: CargoBin, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = cargo_bin(CRATE, profile="release").resolve()
    monkeypatch.setenv(DISABLE_ENV, "1")  # no answer kept from a run that read the source
    monkeypatch.setattr(source, "read_source", lambda binary, path: None)
    with path.open("rb") as stream:
        binary = ElfBinary(path, Identity.of(path), stream)  # not the cached one
        found = {
            s.path: why
            for s in binary.functions
            if s.path.startswith("recursion::") and (why := looped_recursion(binary, s))
        }
    # The loops that keep one call (fib, sum, visit's unrolled loop) are found from the
    # machine code alone; tail recursion with no call left needs the source (documented).
    assert set(found) == {"recursion::fib", "recursion::Tree::sum", "recursion::visit"}
    assert all(why.how == "loops back" for why in found.values())


def test_a_dev_build_has_no_recursion_made_a_loop(cargo_bin: CargoBin) -> None:
    binary = ElfBinary.open(cargo_bin(CRATE, profile="dev"))
    assert [
        s.path
        for s in binary.functions
        if s.path.startswith("recursion::") and looped_recursion(binary, s) is not None
    ] == []


def test_the_merged_away_twin_is_named_by_its_survivor_and_the_other_way(
    cargo_bin: CargoBin,
) -> None:
    binary = ElfBinary.open(cargo_bin(CRATE, profile="release"))
    twin_a = next(s for s in binary.functions if s.path == "recursion::twin_a")
    assert not any(s.path == "recursion::twin_b" for s in binary.functions)
    (merged,) = merged_into(binary, twin_a)
    assert merged.name == "twin_b"
    assert merged.where.endswith(f"main.rs:{where('twin_b(n)').split(':')[0]}")
    assert merged.defined.endswith(f"main.rs:{where('fn twin_b').split(':')[0]}")
    assert all(
        merged_into(binary, s) == []
        for s in binary.functions
        if s.path.startswith("recursion::") and s.path != "recursion::twin_a"
    )
    survivor = survivor_of(binary, "recursion::twin_b")
    assert survivor is not None and survivor.survivor == "recursion::twin_a"
    with pytest.raises(NoMatchingFunction) as caught:
        Tracer().plan(binary.path, ["recursion::twin_b"])
    assert caught.value.merged_into == "recursion::twin_a"
    assert "recursion::twin_a" in str(caught.value) and "dev build" in str(caught.value)
    dev = ElfBinary.open(cargo_bin(CRATE, profile="dev"))
    assert all(merged_into(dev, s) == [] for s in dev.functions)


# -- traced: the counts -------------------------------------------------------------------


@pytest.mark.uprobe
def test_release_counts_are_exact_or_a_lower_bound_that_says_why(
    uprobe_trace: Tracer, cargo_bin: CargoBin
) -> None:
    exe = cargo_bin(CRATE, profile="release")
    names = sorted(LOOPED | KEPT | {INLINED_LOOPED})
    trace = uprobe_trace.run([exe, str(N)], probes=names)
    assert trace.returncode == 0
    expected = expected_counts(trace.stdout)
    for name in [*sorted(LOOPED), INLINED_LOOPED]:
        count = trace[name].call_count
        assert not trace[name].complete and trace[name].unseen, name
        assert 1 <= int(count) <= expected[name], name  # a true bound
        if name != INLINED_LOOPED:  # (an inlined copy's entries count jumps back to its
            assert int(count) < expected[name], name  # first statement: gcd's are all seen)
        assert count >= int(count)  # what a lower bound decides
        with pytest.raises(InexactCount, match=re.escape(f"calls of {name} to itself")):
            assert count == expected[name]
        if int(count) == 1:  # "called once" is what was seen, not what ran
            with pytest.raises(InexactCount):
                trace[name].assert_called_once()
        with pytest.raises(InexactCount):
            _ = trace[name].args_list
    for name in sorted(KEPT):
        assert trace[name].complete, (name, trace[name].unseen)
        assert trace[name].call_count == expected[name], name


@pytest.mark.uprobe
def test_dev_counts_are_exact_and_match_the_arithmetic(
    uprobe_trace: Tracer, cargo_bin: CargoBin
) -> None:
    exe = cargo_bin(CRATE, profile="dev")
    names = sorted(LOOPED | KEPT | {INLINED_LOOPED})
    trace = uprobe_trace.run([exe, str(N)], probes=names)
    expected = expected_counts(trace.stdout)
    for name in names:
        assert trace[name].complete, name
        assert trace[name].call_count == expected[name], name


@pytest.mark.uprobe
def test_a_survivor_of_merging_counts_the_merged_calls_as_an_upper_bound(
    uprobe_trace: Tracer, cargo_bin: CargoBin
) -> None:
    exe = cargo_bin(CRATE, profile="release")
    trace = uprobe_trace.run([exe, str(N)], probes=["recursion::twin_a"])
    twins_a = len(re.findall(r"^twin_a\(", trace.stdout, re.M))
    twins_b = len(re.findall(r"^twin_b\(", trace.stdout, re.M))
    assert (twins_a, twins_b) == (N, 1)
    twin = trace["recursion::twin_a"]
    assert int(twin.call_count) == twins_a + twins_b  # the merged body ran that often
    assert not twin.complete and "twin_b" in twin.merged_away[0]
    assert twin.call_count <= twins_a + twins_b
    with pytest.raises(InexactCount, match="calls of `twin_b`"):
        assert twin.call_count == twins_a
    with pytest.raises(InexactCount, match="twin_b"):
        twin.assert_any_call(0)
    dev = uprobe_trace.run(
        [cargo_bin(CRATE, profile="dev"), str(N)], probes=["recursion::twin_a", "recursion::twin_b"]
    )
    assert dev["recursion::twin_a"].complete and dev["recursion::twin_a"].call_count == N
    dev["recursion::twin_b"].assert_called_once_with(N)
