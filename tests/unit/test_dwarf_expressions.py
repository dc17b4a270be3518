"""DWARF expressions (DWARF 5, section 2.5): every arithmetic, logical, relational and stack
operation, values computed from registers after the event (`Computed`), and the
operations this tool refuses, each with its reason. No root, no compiler: the operations
are written out as pyelftools' parser would give them."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from pytest_uprobe import Unavailable
from pytest_uprobe.dwarf.locations import Computed, Piece, evaluate
from pytest_uprobe.dwarf.types import Field, RustType
from pytest_uprobe.plan import Value

RAX, RDX, RBX, RDI, RBP, RSP, R12 = 0, 1, 3, 5, 6, 7, 12
U8 = RustType("u8", "int", 1)
U64 = RustType("u64", "int", 8)
I64 = RustType("i64", "int", 8, signed=True)
BOOL = RustType("bool", "bool", 1)
ITEM_REF = RustType("&u64", "pointer", 8)
object.__setattr__(ITEM_REF, "_target", U64)  # what type_of(target_die) would give


class Op(NamedTuple):
    op_name: str
    args: tuple[Any, ...] = ()
    offset: int | None = None


def ops(*spec: str | tuple[Any, ...]) -> list[Op]:
    """Operations at the byte offsets a real expression would give them (for DW_OP_skip
    and DW_OP_bra): each takes 1 byte plus 2 for a branch's operand, 9 for others' here."""
    found: list[Op] = []
    at = 0
    for s in spec:
        name, args = (s, ()) if isinstance(s, str) else (s[0], tuple(s[1:]))
        found.append(Op(name, args, at))
        at += 3 if name in ("DW_OP_skip", "DW_OP_bra") else 1 + 8 * len(args)
    return found


def constant(*spec: str | tuple[Any, ...], size: int = 8) -> int:
    """The value an expression ending in DW_OP_stack_value computes from constants only."""
    where = evaluate(ops(*spec, "DW_OP_stack_value"), None, size, None, None)
    assert isinstance(where, bytes), where
    return int.from_bytes(where, "little")


M = 2**64


@pytest.mark.parametrize(
    ("op", "a", "b", "expected"),
    [
        ("DW_OP_and", 0b1100, 0b1010, 0b1000),
        ("DW_OP_or", 0b1100, 0b1010, 0b1110),
        ("DW_OP_xor", 0b1100, 0b1010, 0b0110),
        ("DW_OP_plus", M - 1, 2, 1),  # wraps at the address size
        ("DW_OP_minus", 3, 5, M - 2),  # second minus top
        ("DW_OP_mul", 40, 3, 120),
        ("DW_OP_div", M - 7, 2, M - 3),  # signed, toward zero: -7 / 2 == -3
        ("DW_OP_div", 7, M - 2, M - 3),
        ("DW_OP_mod", 17, 5, 2),
        ("DW_OP_shl", 1, 63, 2**63),
        ("DW_OP_shl", 1, 64, 0),
        ("DW_OP_shr", M - 8, 1, (M - 8) >> 1),  # logical
        ("DW_OP_shra", M - 8, 1, M - 4),  # arithmetic: -8 >> 1 == -4
        ("DW_OP_eq", 4, 4, 1),
        ("DW_OP_ne", 4, 4, 0),
        ("DW_OP_lt", M - 1, 1, 1),  # signed: -1 < 1
        ("DW_OP_gt", M - 1, 1, 0),
        ("DW_OP_le", 2, 2, 1),
        ("DW_OP_ge", 1, 2, 0),
    ],
)
def test_binary_operations_take_the_second_entry_then_the_top(op, a, b, expected) -> None:
    assert constant(("DW_OP_constu", a), ("DW_OP_constu", b), op) == expected


@pytest.mark.parametrize(
    ("op", "a", "expected"),
    [("DW_OP_abs", M - 5, 5), ("DW_OP_neg", 5, M - 5), ("DW_OP_not", 0, M - 1)],
)
def test_unary_operations(op, a, expected) -> None:
    assert constant(("DW_OP_constu", a), op) == expected


def test_plus_uconst_and_literals_of_every_form() -> None:
    assert constant("DW_OP_lit31", ("DW_OP_plus_uconst", 11)) == 42
    assert constant(("DW_OP_const1s", -1), ("DW_OP_const2u", 2), "DW_OP_plus") == 1
    assert constant(("DW_OP_consts", -3), "DW_OP_neg") == 3


@pytest.mark.parametrize(
    ("stack_ops", "expected"),
    [
        (["DW_OP_dup", "DW_OP_mul"], 9),  # 3 3 -> 9 (under it: 2 1)
        (["DW_OP_drop"], 2),
        (["DW_OP_over"], 2),
        ([("DW_OP_pick", 2)], 1),
        (["DW_OP_swap"], 2),
        (["DW_OP_swap", "DW_OP_minus"], 1),  # 1 3 2 -> 3 - 2
        (["DW_OP_rot"], 2),  # 1 2 3 -> 3 1 2
        (["DW_OP_rot", "DW_OP_drop"], 1),
        (["DW_OP_nop"], 3),
    ],
)
def test_stack_operations(stack_ops, expected) -> None:
    assert constant("DW_OP_lit1", "DW_OP_lit2", "DW_OP_lit3", *stack_ops) == expected


def test_skip_and_bra_follow_constant_conditions() -> None:
    # lit1; bra +1 (over lit5); lit5; lit7 -> 7 on top, lit5 never pushed
    assert constant("DW_OP_lit1", ("DW_OP_bra", 1), "DW_OP_lit5", "DW_OP_lit7") == 7
    # lit0; bra (not taken); lit5 -> 5
    assert constant("DW_OP_lit0", ("DW_OP_bra", 1), "DW_OP_lit5") == 5
    # skip over lit5
    assert constant("DW_OP_lit2", ("DW_OP_skip", 1), "DW_OP_lit5") == 2


def test_a_branch_on_a_register_is_refused() -> None:
    where = evaluate(
        ops(("DW_OP_breg0", 0), ("DW_OP_bra", 1), "DW_OP_lit5", "DW_OP_stack_value"),
        None,
        8,
        None,
        None,
    )
    assert isinstance(where, Unavailable) and "branches on a run-time value" in where.reason


def test_a_pointer_computed_from_two_registers() -> None:
    # stockpile's `items.iter().map(|it| score(it, weight))`, inlined: `it` is
    # DW_OP_breg6 RBP+0, DW_OP_breg12 R12+0, DW_OP_constu 0x28, DW_OP_mul, DW_OP_plus,
    # DW_OP_stack_value (the slice's start plus the index times an Item's 40 bytes).
    where = evaluate(
        ops(
            ("DW_OP_breg6", 0),
            ("DW_OP_breg12", 0),
            ("DW_OP_constu", 0x28),
            "DW_OP_mul",
            "DW_OP_plus",
            "DW_OP_stack_value",
        ),
        None,
        8,
        None,
        None,
    )
    assert isinstance(where, Computed)
    assert where.inputs == (Piece(RBP, 0, 8, memory=False), Piece(R12, 0, 8, memory=False))
    assert where.describe() == "(rbp + (r12 * 40))"
    assert where.compute([0x5000, 2]) == (0x5000 + 80).to_bytes(8, "little")
    # The value of a pointer computes; what it points to was not copied, and says so.
    value = Value("it", ITEM_REF, where, first_piece=1)
    decoded = value.decode([0, 0x5000, 2])
    assert isinstance(decoded, Unavailable) and "not copied" in decoded.reason
    assert "0x5050" in decoded.reason


def test_scalars_computed_from_registers_and_memory_decode() -> None:
    low_bit = evaluate(
        ops(("DW_OP_breg3", 0), "DW_OP_lit1", "DW_OP_and", "DW_OP_stack_value"), None, 1, None, None
    )
    assert isinstance(low_bit, Computed)
    assert Value("flag", BOOL, low_bit).decode([0xFE]) is False
    assert Value("flag", BOOL, low_bit).decode([0x0F]) is True
    # A 4-byte load from memory, plus one: only 4 bytes count, the rest of the word not.
    loaded = evaluate(
        ops(
            ("DW_OP_breg5", 8),
            ("DW_OP_deref_size", 4),
            "DW_OP_lit1",
            "DW_OP_plus",
            "DW_OP_stack_value",
        ),
        None,
        8,
        None,
        None,
    )
    assert isinstance(loaded, Computed)
    assert loaded.inputs == (Piece(RDI, 8, 4, memory=True),)
    assert Value("n", U64, loaded).decode([0xFFFF_FFFF_0000_0029]) == 42
    negative = evaluate(
        ops(("DW_OP_breg0", 0), "DW_OP_neg", "DW_OP_stack_value"), None, 8, None, None
    )
    assert Value("n", I64, negative).decode([5]) == -5


def test_a_division_by_zero_at_run_time_is_unavailable() -> None:
    where = evaluate(
        ops("DW_OP_lit8", ("DW_OP_breg1", 0), "DW_OP_div", "DW_OP_stack_value"), None, 8, None, None
    )
    assert isinstance(where, Computed)
    decoded = Value("q", U64, where).decode([0])
    assert isinstance(decoded, Unavailable) and "divides by zero" in decoded.reason
    assert Value("q", U64, where).decode([2]) == 4


def test_pieces_mixing_computed_and_register_parts() -> None:
    # The high half of rax, then the low half of rdi: a (u32, u32) pair.
    where = evaluate(
        ops(
            ("DW_OP_breg0", 0),
            ("DW_OP_constu", 32),
            "DW_OP_shr",
            "DW_OP_stack_value",
            ("DW_OP_piece", 4),
            "DW_OP_reg5",
            ("DW_OP_piece", 4),
        ),
        None,
        8,
        None,
        None,
    )
    assert isinstance(where, Computed)
    assert where.compute([0x0000_0007_FFFF_FFFF, 0x1_0000_0009]) == (7).to_bytes(4, "little") + (
        9
    ).to_bytes(4, "little")
    pair = RustType(
        "(u32, u32)",
        "tuple",
        8,
        fields=(Field("0", 0, RustType("u32", "int", 4)), Field("1", 4, RustType("u32", "int", 4))),
    )
    assert Value("pair", pair, where).decode([0x0000_0007_FFFF_FFFF, 0x1_0000_0009]) == (7, 9)


def test_stack_value_after_a_deref_is_the_memory_word() -> None:
    where = evaluate(
        ops(("DW_OP_breg7", 16), "DW_OP_deref", "DW_OP_stack_value"), None, 8, None, None
    )
    assert where == (Piece(RSP, 16, 8, memory=True),)


def test_an_address_computed_beyond_a_register_plus_offset_is_refused() -> None:
    where = evaluate(
        ops(("DW_OP_breg6", 0), ("DW_OP_breg12", 0), "DW_OP_plus"), None, 8, None, None
    )
    assert isinstance(where, Unavailable)
    assert "address computed as (rbp + r12)" in where.reason


@pytest.mark.parametrize(
    ("op", "why"),
    [
        (("DW_OP_entry_value", b"\x55"), "when the function was entered"),
        (("DW_OP_implicit_pointer", 0, 0), "has no address"),
        (("DW_OP_addr", 0x1000), "static address"),
        ("DW_OP_form_tls_address", "thread-local"),
        ("DW_OP_push_object_address", "object being described"),
    ],
)
def test_operations_that_are_refused_say_why(op, why) -> None:
    where = evaluate(ops(op, "DW_OP_stack_value"), None, 8, None, None)
    assert isinstance(where, Unavailable) and why in where.reason


class _BaseType:
    def __init__(self, size: int, encoding: int) -> None:
        attr = type("Attr", (), {})
        self.attributes = {"DW_AT_byte_size": attr(), "DW_AT_encoding": attr()}
        self.attributes["DW_AT_byte_size"].value = size
        self.attributes["DW_AT_encoding"].value = encoding


class _Unit:
    cu_offset = 100

    def get_DIE_from_refaddr(self, offset: int) -> _BaseType:
        return {110: _BaseType(1, 0x5), 120: _BaseType(2, 0x8)}[offset]


class _Die:
    cu = _Unit()


def test_convert_truncates_and_sign_extends_to_the_base_type() -> None:
    signed = evaluate(
        ops(("DW_OP_constu", 0x1FF), ("DW_OP_convert", 10), "DW_OP_stack_value"),
        _Die(),
        8,
        None,
        None,
    )
    assert signed == (M - 1).to_bytes(8, "little")  # 0xff as an i8 is -1
    unsigned = evaluate(
        ops(("DW_OP_constu", 0x12345), ("DW_OP_convert", 20), "DW_OP_stack_value"),
        _Die(),
        8,
        None,
        None,
    )
    assert unsigned == (0x2345).to_bytes(8, "little")
    generic = evaluate(
        ops(("DW_OP_breg0", 0), ("DW_OP_convert", 0), "DW_OP_stack_value"), _Die(), 8, None, None
    )
    assert generic == (Piece(RAX, 0, 8, memory=False),)
    assert U8.decode(b"\x05") == 5
