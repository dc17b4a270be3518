"""Inlined copies the stockpile crate (tests/blackbox's, written from the docs alone) showed
were missed or miscounted: a generic method's copies named through its declaration in
another unit, an instance whose calls were computed at compile time, calls made from
inside a probed copy, values DWARF computes from registers, and `symbols --inlined`.
Expected values come from what the program prints or from its arguments."""

from __future__ import annotations

import pytest

from pytest_uprobe.bounds import InexactCount
from pytest_uprobe.cli import symbol_rows
from pytest_uprobe.elf import ElfBinary
from pytest_uprobe.errors import InlinedFunction
from tests.blackbox.stockpile import ARGV_TAIL, CRATE, printed_calls, printed_value


@pytest.fixture
def release(cargo_bin):
    return cargo_bin(str(CRATE), profile="release")


def test_an_instance_computed_at_compile_time_makes_the_count_a_lower_bound(uprobe_trace, release):
    # map_all's closure runs for map_all::<u64> (3 scores) and map_all::<u8> ([1, 2, 3]);
    # LLVM computed the <u8> calls at compile time (map_all::<u8> stores [2, 4, 6]), so
    # no code runs them and DWARF keeps their copies only in code the linker dropped.
    trace = uprobe_trace.run(
        [release, *ARGV_TAIL],
        probes=["stockpile::map_all::{closure#0}", "stockpile::main::{closure#6}"],
    )
    scores = [r for _, r in printed_calls(trace.stdout, "score")]
    assert printed_value(trace.stdout, "DOUBLED") == [2, 4, 6]
    inner = trace["stockpile::map_all::{closure#0}"]
    assert int(inner.call_count) == len(scores)  # the calls that ran: the <u64> ones
    assert not inner.complete and inner.call_count >= len(scores)
    (why,) = inner.left_out
    assert "stockpile::map_all::{closure#0}::<u8, u32, stockpile::main::{closure_env#7}>" in why
    assert "computed at compile time" in why and "a dev build" in why
    with pytest.raises(InexactCount, match="at least 3 calls ran"):
        assert inner.call_count == len(scores) + 3
    # The closure the <u64> instance calls (`|s| geo::half(s)`) has its own copy, nested in
    # map_all's closure at the same entries: its own calls and arguments, not the outer's.
    # Its vectorized loop did not run (three scores): the count is exact.
    c6 = trace["stockpile::main::{closure#6}"]
    assert c6.complete and c6.call_count == len(scores)
    assert [c.args[-1] for c in c6.calls] == scores


def test_a_copy_in_a_vectorized_loop_makes_the_count_a_lower_bound(uprobe_trace, release):
    # map_all::<u64>'s loop halves four scores per iteration (psrlq on two xmm registers),
    # then the rest one by one: with six items, one vector iteration and two scalar ones.
    items = [f"i{n}:{n}:{n}" for n in range(1, 7)]
    trace = uprobe_trace.run([release, *items], probes=["stockpile::main::{closure#6}"])
    halves = printed_value(trace.stdout, "HALVES")
    assert len(halves) == 6
    c6 = trace["stockpile::main::{closure#6}"]
    assert int(c6.call_count) == 3  # what the probes saw: 1 vector + 2 scalar executions
    assert c6.call_count >= 3 and not c6.complete
    (why,) = c6.left_out
    assert "1 of its executions began in vectorized code (`psrlq xmm0, 1` at" in why
    with pytest.raises(InexactCount):
        assert c6.call_count == len(halves)


def test_a_generic_method_is_found_through_its_declaration_in_another_unit(uprobe_trace, release):
    # `Rule::new` is generic over its closure: each instance's abstract copy specifies
    # (DW_AT_specification) a declaration inside `impl Rule`, in another compile unit.
    trace = uprobe_trace.run([release, *ARGV_TAIL], probes=["stockpile::Rule::new"])
    names = list(dict.fromkeys(n for (n, _), _ in printed_calls(trace.stdout, "Rule::matches")))
    area = printed_calls(trace.stdout, "total_area")[0][1]
    new = trace["stockpile::Rule::new"]
    assert new.complete and new.call_count == len(names) == 3
    assert [c.path for c in new.calls] == [
        f"stockpile::Rule::new::<stockpile::main::{{closure_env#{n}}}>" for n in (12, 13, 14)
    ]
    assert all(c.inlined_into.startswith("stockpile::main (src/main.rs:") for c in new.calls)
    # the over_area closure captures `threshold`, the total area
    assert new.calls[1].args[1]["threshold"] == area


def test_a_call_made_inside_a_probed_inlined_copy_names_it_as_caller(uprobe_trace, release):
    # `items.iter().map(|it| score(it, weight))`: the closure is inlined into main.
    closure = "stockpile::main::{closure#1}"
    trace = uprobe_trace.run([release, *ARGV_TAIL], probes=[closure, "stockpile::score"])
    n_scores = len(printed_calls(trace.stdout, "score"))
    score = trace["stockpile::score"]
    assert score.callers == {closure: n_scores}
    closure_calls = trace[closure].calls
    assert [c.caller for c in score.calls] == closure_calls  # each its own execution
    # main probed as well: the copy, not main's frame, is the nearest caller.
    trace = uprobe_trace.run(
        [release, *ARGV_TAIL], probes=[closure, "stockpile::score", "stockpile::main"]
    )
    assert trace["stockpile::score"].callers == {closure: n_scores}
    assert trace[closure].callers == {"stockpile::main": n_scores}
    # Not probed, the copy is no caller: main's frame is.
    trace = uprobe_trace.run([release, *ARGV_TAIL], probes=["stockpile::score", "stockpile::main"])
    assert trace["stockpile::score"].callers == {"stockpile::main": n_scores}


def test_a_pointer_dwarf_computes_from_a_register_is_followed(uprobe_trace, release):
    # `args.get(1).and_then(|a| a.parse().ok())`, inlined into main: `a` is &args[1], which
    # DWARF gives as r15 + 24 (DW_OP_breg15 24; DW_OP_stack_value).
    closure = "stockpile::extra_modes::{closure#5}"
    trace = uprobe_trace.run([release, "exit", "7"], probes=[closure])
    assert trace.returncode == 7
    (call,) = trace[closure].calls
    assert call.args == ("7",)
    # `|it| score(it, weight)`: `it` is rbp + r12 * 40, an address the probe cannot follow:
    # the value says so, with the address it computed.
    trace = uprobe_trace.run([release, *ARGV_TAIL], probes=["stockpile::main::{closure#1}"])
    for call in trace["stockpile::main::{closure#1}"].calls:
        (it,) = call.args
        assert "DWARF computes this value from registers" in it.reason


def test_symbols_inlined_lists_functions_that_exist_only_as_copies(release):
    binary = ElfBinary.open(release)
    rows = {row.path: row for row in symbol_rows(binary, "stockpile::*", inlined=True)}
    sq = rows["stockpile::sq"]  # #[inline(always)], called from score only
    assert (sq.return_mode, sq.size, sq.inlined, sq.symbol) == ("inlined", 0, 1, "")
    assert rows["stockpile::geo::half"].inlined == 2  # into map_all::<u64> and Tri::area
    assert rows["stockpile::score"].return_mode == "ret-sites"  # out of line: as before
    new = [p for p in rows if p.startswith("stockpile::Rule::new::")]
    assert len(new) == 3 and all(rows[p].instances == 3 for p in new)
    (half,) = symbol_rows(binary, "stockpile::geo::half", inlined=True)
    assert half.return_mode == "inlined" and half.inlined == 2
    # Without --inlined, a name with no code of its own is the error a probe gets.
    with pytest.raises(InlinedFunction):
        symbol_rows(binary, "stockpile::geo::half")
    assert "stockpile::sq" not in {r.path for r in symbol_rows(binary, "stockpile::*")}
