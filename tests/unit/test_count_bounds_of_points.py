"""Counts that are bounds for reasons the plan finds: a source line whose shape in
optimized code makes arrivals at its sites no exact count of its executions
(dwarf.lines.count_shape, "neither" bounds) and a recursion check that failed
(dwarf/recursion.py). Both reach the count through plan.Coverage and bounds.CallCount, as
the other bounds do. No root, no compiler."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_uprobe.bounds import InexactCount
from pytest_uprobe.dwarf import recursion
from pytest_uprobe.dwarf.lines import CountShape
from pytest_uprobe.elf import Symbol
from pytest_uprobe.plan import Coverage
from pytest_uprobe.trace import FunctionTrace


def trace_of(coverage: Coverage, count: int) -> FunctionTrace:
    return FunctionTrace(
        "src/main.rs:13",
        [],
        call_count=count,
        unseen=coverage.unseen,
        merged_away=coverage.merged_away,
        may_be_fewer=coverage.may_be_fewer,
    )


def _neither(shape: str) -> CountShape:
    """What count_shape answers for a line of `shape` (its wording)."""
    return CountShape(
        ("main.rs:13 is a loop's header in optimized code",),
        (f"main.rs:13: the same ({shape}), either way",),
        (shape,),
    )


def test_a_line_s_neither_bound_flows_through_coverage_into_the_count():
    counted = _neither("loop header")
    assert not counted.exact and CountShape().exact
    coverage = Coverage(unseen=list(counted.may_be_more), may_be_fewer=list(counted.may_be_fewer))
    assert not coverage.exact and not trace_of(coverage, 3).complete
    count = trace_of(coverage, 3).call_count
    assert repr(count) == "CallCount(3, neither a lower nor an upper bound)"
    for compare in (lambda: count == 4, lambda: count >= 2, lambda: count <= 5):
        with pytest.raises(InexactCount, match="loop header"):
            compare()
    # Arrivals at a line's own code mean the line ran: `>= 1`, called, assert_called decide.
    assert count >= 1 and count != 0 and trace_of(coverage, 3).called
    trace_of(coverage, 3).assert_called()
    with pytest.raises(AssertionError):
        trace_of(coverage, 3).assert_not_called()
    with pytest.raises(InexactCount):
        trace_of(coverage, 3).assert_called_once()
    # Counted 0: no arrival, so nothing is known to have run; and it may have run.
    nothing = trace_of(coverage, 0).call_count
    assert nothing.low == 0
    with pytest.raises(InexactCount):
        assert nothing == 0


def test_copies_without_the_line_make_a_lower_bound():
    coverage = Coverage(unseen=["main.rs:13: 2 of the inlined copies hold no code of this line"])
    count = trace_of(coverage, 3).call_count
    assert repr(count) == "CallCount(at least 3)" and count >= 3
    with pytest.raises(InexactCount, match="hold no code of this line"):
        assert count == 3


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
