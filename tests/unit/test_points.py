"""USDT argument specs and notes, and the entry points of a line over hand-made code flow:
no root, no compiler."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from pytest_uprobe.dwarf.lines import _host_entries
from pytest_uprobe.dwarf.locations import Piece
from pytest_uprobe.elf import Symbol
from pytest_uprobe.machine_code import Flow
from pytest_uprobe.points import is_point, split_line_probe
from pytest_uprobe.usdt import parse_argument, parse_notes
from pytest_uprobe.values import Unavailable


@pytest.mark.parametrize(
    ("spec", "size", "signed", "location"),
    [
        ("8@%rdi", 8, False, Piece(5, 0, 8, memory=False)),
        ("-4@%eax", 4, True, Piece(0, 0, 4, memory=False)),
        ("-4@%r13d", 4, True, Piece(13, 0, 4, memory=False)),
        ("-4@-12(%rbp)", 4, True, Piece(6, -12, 4, memory=True)),
        ("8@(%rsp)", 8, False, Piece(7, 0, 8, memory=True)),
        ("8@$5", 8, False, 5),
        ("-4@$-3", 4, True, -3),
        ("%rsi", 8, False, Piece(4, 0, 8, memory=False)),
    ],
)
def test_usdt_argument_specs(spec, size, signed, location):
    argument = parse_argument(spec)
    assert (argument.size, argument.signed, argument.location) == (size, signed, location)


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("-8@8(%rax,%rdx,8)", "index * scale"),
        ("4@counter(%rip)", "not supported"),
        ("1@%ah", "high-byte"),
        ("8@%xmm0", "not a general-purpose register"),
        ("3@%rax", "3 bytes"),
    ],
)
def test_usdt_argument_specs_that_cannot_be_read_say_why(spec, why):
    location = parse_argument(spec).location
    assert isinstance(location, Unavailable) and why in location.reason


def _note(pc: int, base: int, semaphore: int, provider: str, name: str, args: str) -> bytes:
    desc = (
        pc.to_bytes(8, "little")
        + base.to_bytes(8, "little")
        + semaphore.to_bytes(8, "little")
        + f"{provider}\0{name}\0{args}\0".encode()
    )
    owner = b"stapsdt\0"
    pad = b"\0" * (-len(desc) % 4)
    header = len(owner).to_bytes(4, "little") + len(desc).to_bytes(4, "little")
    return header + (3).to_bytes(4, "little") + owner + desc + pad


def test_usdt_notes_are_moved_by_the_prelink_difference_of_the_base():
    data = _note(0x1000, 0x2000, 0x4000, "p", "a", "8@%rdi -4@$7") + _note(
        0x1100, 0x2000, 0, "p", "b", ""
    )
    first, second = parse_notes(data, actual_base=0x2010)
    assert (first.provider, first.name, first.address, first.semaphore) == (
        "p",
        "a",
        0x1010,
        0x4010,
    )
    assert [a.spec for a in first.arguments] == ["8@%rdi", "-4@$7"]
    assert (second.name, second.address, second.semaphore, second.arguments) == ("b", 0x1110, 0, ())
    (kept,) = parse_notes(_note(0x1000, 0, 0, "p", "a", ""), actual_base=None)
    assert kept.address == 0x1000


def test_probe_names_of_points():
    assert split_line_probe("src/parser.rs:42") == ("src/parser.rs", 42)
    assert split_line_probe("main.rs:7") == ("main.rs", 7)
    assert is_point("usdt:myapp:request")
    for name in ("zoo::fib", "main", "src/main.rs:0", "a::b:3", "<* as zoo::Shape>::area"):
        assert not is_point(name), name


HOST = Symbol("f", "crate::f", 0x100, 0x40, "function")


class Step(NamedTuple):
    """One hand-made instruction: it falls through to the next and/or jumps to `target`."""

    address: int
    size: int
    falls_through: bool
    target: int | None


def as_flow(steps, stores=()):
    """The Flow code.flow would make of `steps` (`stores`: plain stores to memory)."""
    return Flow(
        boundaries=tuple(s.address for s in steps),
        preds={},
        nops=frozenset(),
        indirect_jumps=0,
        jumps={s.address: s.target for s in steps if s.target is not None},
        falls=frozenset(s.address for s in steps if s.falls_through),
        plain_stores=frozenset(stores),
    )


def _entries(flows, ranges, zero=(), statements=None, stores=(), optimized=False):
    statements = {r[0] for r in ranges} if statements is None else statements
    flow = as_flow(flows, stores)
    return [
        (e.address, e.loops_back)
        for e in _host_entries(HOST, flow, ranges, list(zero), statements, optimized)
    ]


def straight(*addresses):
    return [Step(a, 4, True, None) for a in addresses]


def test_a_line_entered_once_and_interrupted_by_its_own_inlined_call_is_one_entry():
    # 0x100-0x108 the previous line, 0x108-0x118 the line (its inlined callee merged in).
    flows = straight(0x100, 0x104, 0x108, 0x10C, 0x110, 0x114) + [Step(0x118, 1, False, None)]
    assert _entries(flows, [(0x108, 0x118)]) == [(0x108, False)]


def test_code_of_no_line_reached_only_from_the_line_joins_it():
    # line: 0x100-0x108 (ends jmp 0x110); an unrelated line at 0x108-0x110 ends with a ret;
    # line 0 at 0x110 falls into the line again at 0x114.
    flows = [
        Step(0x100, 4, True, None),
        Step(0x104, 4, False, 0x110),
        Step(0x108, 4, True, None),
        Step(0x10C, 4, False, None),
        Step(0x110, 4, True, None),
        Step(0x114, 4, True, None),
        Step(0x118, 4, False, None),
    ]
    line = [(0x100, 0x108), (0x114, 0x11C)]
    assert _entries(flows, line, zero=[(0x110, 0x114)]) == [(0x100, False)]
    # Without the line-0 rule the second part would look entered from outside: two counts.
    assert len(_entries(flows, line)) == 2


def test_a_run_that_only_jumps_on_is_not_an_execution():
    # the `if` line 0x100-0x108 branches to 0x10c; both branches end with a jump attributed
    # to the `if` line (0x108 and 0x110), to the join at 0x114.
    flows = [
        Step(0x100, 4, True, None),
        Step(0x104, 4, True, 0x10C),
        Step(0x108, 4, False, 0x114),
        Step(0x10C, 4, True, None),
        Step(0x110, 4, False, 0x114),
        Step(0x114, 4, False, None),
    ]
    line = [(0x100, 0x10C), (0x110, 0x114)]
    assert _entries(flows, line) == [(0x100, False)]


def test_a_part_reached_only_from_inside_the_line_is_not_an_entry():
    # 0x100 the line, jo to 0x110 (a panic block of the same line) else falls on.
    flows = [
        Step(0x100, 4, True, None),
        Step(0x104, 4, True, 0x110),
        Step(0x108, 4, True, None),
        Step(0x10C, 4, False, None),
        Step(0x110, 4, False, None),
    ]
    assert _entries(flows, [(0x100, 0x108), (0x110, 0x114)]) == [(0x100, False)]


def test_a_loop_head_entered_from_outside_and_from_the_line_itself_is_marked():
    # the line 0x104-0x10c: its head 0x104 is reached by fallthrough from outside and by a
    # jump back from 0x108 (a loop written on one line).
    flows = [
        Step(0x100, 4, True, None),
        Step(0x104, 4, True, None),
        Step(0x108, 4, True, 0x104),
        Step(0x10C, 4, False, None),
    ]
    assert _entries(flows, [(0x104, 0x10C)]) == [(0x104, True)]


def test_a_run_without_a_statement_row_is_left_out_in_optimized_code_only():
    flows = straight(0x100, 0x104, 0x108) + [Step(0x10C, 1, False, None)]
    assert _entries(flows, [(0x104, 0x108)], statements=set(), optimized=True) == []
    # Dev code does not scatter a line's instructions: such a run is where a loop comes
    # back (a dev `for` over an array re-enters `next()`, rows with is_stmt false).
    assert _entries(flows, [(0x104, 0x108)], statements=set()) == [(0x104, False)]


def test_an_entry_going_on_through_line_zero_code_to_another_entry_counts_there_once():
    # Dev `for code in [100, 335, 7] {`: into_iter at 0x104 (the line), a line-0 `lea` at
    # 0x10c that the body's jump back (0x11c, another line) also reaches, `next()` at
    # 0x110 (the line). Both entries would count the first arrival: n + 2 for n items.
    flows = [
        Step(0x100, 4, True, None),
        Step(0x104, 4, True, None),
        Step(0x108, 4, True, None),
        Step(0x10C, 4, True, None),  # line 0
        Step(0x110, 4, True, None),
        Step(0x114, 4, True, 0x124),  # je: done
        Step(0x118, 4, True, None),  # the body
        Step(0x11C, 4, False, 0x10C),  # jmp back
        Step(0x120, 4, False, None),
        Step(0x124, 4, False, None),
    ]
    line = [(0x104, 0x10C), (0x110, 0x118)]
    assert _entries(flows, line, zero=[(0x10C, 0x110)]) == [(0x110, False)]


def test_a_store_sunk_out_of_the_line_s_loop_is_no_execution_in_optimized_code():
    # The loop 0x104-0x110 holds the line's work at 0x104 (a statement); the loop exits at
    # 0x110, where `mov [rsp + 8], rax` (a statement of the same line) writes the value the
    # loop kept in a register, and on the path that skips the loop at 0x118 (the stockpile
    # worker's release code: 21 hits for 18 executions).
    flows = [
        Step(0x100, 4, True, 0x118),  # je: n == 0
        Step(0x104, 4, True, None),  # the line's work
        Step(0x108, 4, True, None),  # the iterator's code (another line)
        Step(0x10C, 4, True, 0x104),  # jbe: next iteration
        Step(0x110, 4, True, None),  # mov [rsp + 8], rax: the sunk store
        Step(0x114, 4, False, 0x11C),  # another line: jmp to the join
        Step(0x118, 4, True, None),  # n == 0: the sunk store's copy
        Step(0x11C, 1, False, None),  # the join: ret
    ]
    line = [(0x104, 0x108), (0x110, 0x114), (0x118, 0x11C)]
    sunk = (0x110, 0x118)
    assert _entries(flows, line, stores=sunk, optimized=True) == [(0x104, False)]
    # At opt-level 0 every store is the statement's own: each run stays an execution.
    assert len(_entries(flows, line, stores=sunk)) == 3
    # A store-only run of a line with no code in a loop is the line's only execution.
    assert _entries(flows, [(0x110, 0x114)], stores=sunk, optimized=True) == [(0x110, False)]


def _for_header(body_jumps_back_from_the_line: bool = False):
    """Dev code of `for x in items {` (line at 0x104-0x10c and 0x114-0x11c): `into_iter` at
    0x104, a jump to the loop's `next()` at 0x114 (the same line), whose `je` leaves the
    loop; the body (another line, 0x120) jumps back to 0x114 after each pass."""
    return [
        Step(0x100, 4, True, None),  # the line before
        Step(0x104, 4, True, None),  # into_iter (a call: it returns)
        Step(0x108, 4, False, 0x114),  # jmp next
        Step(0x10C, 4, False, None),  # a panic path's trap
        Step(0x110, 4, False, None),
        Step(0x114, 4, True, None),  # call next
        Step(0x118, 4, True, 0x130),  # je: done
        Step(0x11C, 4, True, 0x104 if body_jumps_back_from_the_line else None),
        Step(0x120, 4, True, None),  # the body
        Step(0x124, 4, False, 0x114),  # jmp back to next()
        Step(0x128, 4, False, None),
        Step(0x12C, 4, False, None),
        Step(0x130, 4, False, None),
    ]


def test_an_entry_that_jumps_on_to_another_entry_of_its_line_counts_there_once():
    # Entered at 0x104 once, then at 0x114 once per pass and once more to end the loop:
    # counting both would count the first arrival twice (n + 2 where gcov's count of the
    # header is n + 1). The body's jump back carries the body's line here; when it carries
    # the header's, _latches counts it (tests/integration/test_line_counts.py).
    line = [(0x104, 0x10C), (0x114, 0x120)]
    assert _entries(_for_header(), line) == [(0x114, False)]


def test_an_entry_joined_into_a_loop_head_of_its_own_line_keeps_the_loop_mark():
    # The same, with the line's own code (0x11c) jumping back to 0x104 on some passes: a
    # loop on the line, which the entry counting it now (0x114) still counts.
    line = [(0x104, 0x10C), (0x114, 0x120)]
    assert _entries(_for_header(body_jumps_back_from_the_line=True), line) == [(0x114, True)]


def _one_line_for(back: Step):
    """Dev `for x in v { s += x; }` on one line (0x104-0x118): into_iter at 0x104, the
    loop's `next()` at 0x108, its exit test at 0x10c, the body at 0x110, `back` at 0x114."""
    return [
        Step(0x100, 4, True, None),  # the line before
        Step(0x104, 4, True, None),  # into_iter
        Step(0x108, 4, True, None),  # next()
        Step(0x10C, 4, True, 0x118),  # je: done
        Step(0x110, 4, True, None),  # the body
        back,
        Step(0x118, 4, False, None),  # the line after
    ]


def test_a_loop_on_one_line_counts_each_pass_at_its_jump_back():
    # gcov's count of the line: the arrival (0x104) and one per pass (the jmp at 0x114).
    flows = _one_line_for(Step(0x114, 4, False, 0x108))
    assert _entries(flows, [(0x104, 0x118)]) == [(0x104, False), (0x114, False)]


def test_a_conditional_jump_back_inside_the_line_makes_its_passes_uncounted():
    flows = _one_line_for(Step(0x114, 4, True, 0x108))
    found = _host_entries(HOST, as_flow(flows), [(0x104, 0x118)], [], {0x104}, False)
    assert [(e.address, e.passes_uncounted) for e in found] == [(0x104, True)]
