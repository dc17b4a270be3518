"""Counts that are bounds for reasons the plan finds: a source line that one execution
passes more than once (points.repeated_passes) and a recursion check that failed
(dwarf/recursion.py). Both reach the count through plan.Coverage and bounds.CallCount, as
the other bounds do. No root, no compiler."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_uprobe.bounds import InexactCount
from pytest_uprobe.dwarf import recursion
from pytest_uprobe.dwarf.lines import closure_body
from pytest_uprobe.elf import Symbol
from pytest_uprobe.plan import Coverage
from pytest_uprobe.points import LinePoint, repeated_passes
from pytest_uprobe.trace import FunctionTrace


def point(address: int, host: str, function: str | None, loops_back: bool = False) -> LinePoint:
    return LinePoint("/src/main.rs", 13, address, host, function, loops_back)


def trace_of(coverage: Coverage, count: int) -> FunctionTrace:
    return FunctionTrace(
        "src/main.rs:13",
        [],
        call_count=count,
        unseen=coverage.unseen,
        merged_away=coverage.merged_away,
        may_be_fewer=coverage.may_be_fewer,
    )


def test_a_site_the_line_jumps_back_to_makes_the_count_an_upper_bound():
    reasons = repeated_passes([point(0x10, "c::countdown", "countdown", loops_back=True)])
    assert len(reasons) == 1 and "a loop written on one line" in reasons[0]
    assert "main.rs:13 in c::countdown at 0x10" in reasons[0]
    coverage = Coverage(may_be_fewer=reasons)
    assert not coverage.exact
    count = trace_of(coverage, 15).call_count
    assert repr(count) == "CallCount(between 1 and 15)"
    assert count <= 15 and count < 16 and not count > 15
    with pytest.raises(InexactCount, match="a loop written on one line"):
        assert count == 3
    with pytest.raises(InexactCount, match="at most 15 calls ran"):
        assert count >= 2
    # A line counted at all ran at least once: `called` and assert_called decide.
    assert count >= 1 and count != 0 and trace_of(coverage, 15).called
    trace_of(coverage, 15).assert_called()
    with pytest.raises(AssertionError):
        trace_of(coverage, 15).assert_not_called()
    assert not trace_of(coverage, 15).complete
    assert repr(trace_of(coverage, 0).call_count) == "CallCount(at most 0)"
    assert trace_of(coverage, 0).call_count == 0  # at most 0 is exactly 0


def test_a_closure_body_next_to_the_code_that_calls_it_is_an_upper_bound():
    parent = point(0x10, "c::chain", "chain")
    outlined = point(0x20, "c::chain::{{closure}}", "{closure#0}")
    inlined = point(0x30, "<Map<I,F> as Iterator>::next", "{closure#0}")
    reasons = repeated_passes([parent, outlined, inlined])
    assert len(reasons) == 2 and all("body of a closure" in r for r in reasons)
    assert "in c::chain::{{closure}} at 0x20" in reasons[0]  # its own symbol: not "inlined"
    assert "(inlined {closure#0}) at 0x30" in reasons[1]


@pytest.mark.parametrize(
    "points",
    [
        [point(0x10, "c::first_caller", "scale"), point(0x20, "c::second_caller", "scale")],
        [point(0x20, "c::f::{{closure}}", "{closure#0}")],  # a line of a closure only
        [point(0x20, "c::f::{{closure}}", "{closure#0}"), point(0x30, "c::g", "{closure#1}")],
    ],
)
def test_lines_passed_once_per_execution_stay_exact(points):
    assert repeated_passes(points) == []
    assert trace_of(Coverage(may_be_fewer=repeated_passes(points)), 3).call_count == 3


def test_closure_bodies_are_told_by_symbol_or_by_dwarf_name():
    assert closure_body("c::f::{{closure}}", None)
    assert closure_body("core::iter::Map::next", "{closure#2}")
    assert not closure_body("c::f", "f") and not closure_body("c::f", None)


class _Cache:
    def get(self, key: Any) -> Any:
        return None

    def put(self, key: Any, value: Any) -> None:
        raise AssertionError("a failed check is not kept on disk")


class _Binary:
    """The two caches looped_recursion asks a binary for."""

    def __init__(self) -> None:
        self.memos: dict[str, dict[Any, Any]] = {}
        self.has_dwarf = True

    def memo(self, name: str) -> dict[Any, Any]:
        return self.memos.setdefault(name, {})

    def cache(self, part: str) -> _Cache:
        return _Cache()

    def function_containing(self, address: int) -> Symbol:
        return Symbol("_ZN1c4walk", "c::walk", 0x100, 0x40, "FUNC")


def _broken(*args: Any) -> None:
    raise KeyError("DW_AT_call_line")


def test_a_recursion_check_that_fails_makes_a_lower_bound_naming_the_error(monkeypatch):
    monkeypatch.setattr(recursion, "_find", _broken)
    symbol = Symbol("_ZN1c4walk", "c::walk", 0x100, 0x40, "FUNC")
    found = recursion.looped_recursion(_Binary(), symbol)  # type: ignore[arg-type]
    assert found is not None and found.how == "unchecked"
    assert "KeyError: 'DW_AT_call_line'" in str(found) and "c::walk" in str(found)
    coverage = Coverage()
    monkeypatch.setattr("pytest_uprobe.plan.merging.merged_into", lambda *a: [])
    coverage.note(_Binary(), symbol, lambda name: True)  # type: ignore[arg-type]
    assert coverage.unseen == [str(found)]
    count = trace_of(coverage, 3).call_count
    assert repr(count) == "CallCount(at least 3)" and count >= 3
    with pytest.raises(InexactCount, match="could not be checked .KeyError"):
        assert count == 3


def test_the_inlined_copy_s_recursion_check_that_fails_is_a_lower_bound_too(monkeypatch):
    monkeypatch.setattr(recursion, "_find_inlined", _broken)
    found = recursion.looped_recursion_inlined(_Binary(), "c::walk", object(), 0x110)  # type: ignore[arg-type]
    assert found is not None and found.how == "unchecked" and "KeyError" in str(found)
