"""Regression tests, without root or a compiler, for the classes of wrong values issue 13
found (most by tests/differential): how DWARF locations, rustc's return ABI, Option payloads
and unknown parameter lists are read. The integration side is tests/integration/
test_value_classes.py."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from pytest_uprobe import Struct, Unavailable, Variant
from pytest_uprobe.decode import NO_READER, decode_value
from pytest_uprobe.dwarf.locations import CONSTANT_REG, Cfa, Indirect, Piece, evaluate
from pytest_uprobe.dwarf.types import EnumVariant, Field, RustType
from pytest_uprobe.plan import RAX, RDX, SAVED_POINTER, _c_return_value, _return_value
from pytest_uprobe.trace import Call, FunctionTrace

CAPS = (256, 16)
U8 = RustType("u8", "int", 1)
U16 = RustType("u16", "int", 2)
U32 = RustType("u32", "int", 4)
U64 = RustType("u64", "int", 8)
U128 = RustType("u128", "int", 16)
F32 = RustType("f32", "float", 4)
USIZE = RustType("usize", "int", 8)
STR = RustType("&str", "str", 16, fields=(Field("ptr", 0, U64), Field("len", 8, USIZE)))


class Op(NamedTuple):
    op_name: str
    args: tuple[Any, ...] = ()


def ops(*spec: str | tuple[str, int]) -> list[Op]:
    return [Op(s) if isinstance(s, str) else Op(s[0], (s[1],)) for s in spec]


def option_u32() -> RustType:
    tag = Field("<discriminant>", 0, U32)
    return RustType(
        "Option<u32>",
        "enum",
        8,
        variants=(
            EnumVariant("None", 0, (), False),
            EnumVariant("Some", 1, (Field("0", 4, U32),), True),
        ),
        discr=tag,
    )


def tuple_of(*types: RustType) -> RustType:
    fields, offset = [], 0
    for i, t in enumerate(types):
        offset = -(-offset // max(t.size, 1)) * max(t.size, 1)
        fields.append(Field(str(i), offset, t))
        offset += t.size
    size = -(-offset // max(t.size for t in types)) * max(t.size for t in types)
    return RustType(f"({', '.join(t.name for t in types)})", "tuple", size, fields=tuple(fields))


# -- DWARF pieces that mix constants, registers and memory ----------------------------------------


def test_two_constant_pieces_are_both_constants():
    # The inlined Book::new's `Option<u32>` argument: DW_OP_lit1; DW_OP_piece 4;
    # DW_OP_constu 42; DW_OP_piece 4 used to decode as Some(0).
    where = evaluate(
        ops("DW_OP_lit1", ("DW_OP_piece", 4), ("DW_OP_constu", 42), ("DW_OP_piece", 4)),
        None,
        8,
        None,
        None,
    )
    assert where == (1).to_bytes(4, "little") + (42).to_bytes(4, "little")
    assert decode_value(option_u32(), where, NO_READER, (0,)) == 42
    stack_value_form = evaluate(
        ops(
            "DW_OP_lit1",
            "DW_OP_stack_value",
            ("DW_OP_piece", 4),
            ("DW_OP_constu", 42),
            "DW_OP_stack_value",
            ("DW_OP_piece", 4),
        ),
        None,
        8,
        None,
        None,
    )
    assert stack_value_form == where


def test_a_constant_piece_beside_a_register_piece():
    where = evaluate(
        ops("DW_OP_lit1", ("DW_OP_piece", 4), "DW_OP_reg5", ("DW_OP_piece", 4)), None, 8, None, None
    )
    assert where == (
        Piece(CONSTANT_REG, 0, 4, False, b"\x01\0\0\0"),
        Piece(5, 0, 4, memory=False),
    )


def test_an_empty_str_given_as_constants_is_empty_not_beyond_max_elements():
    where = evaluate(
        ops(
            "DW_OP_lit1",
            "DW_OP_stack_value",
            ("DW_OP_piece", 8),
            "DW_OP_lit0",
            "DW_OP_stack_value",
            ("DW_OP_piece", 8),
        ),
        None,
        16,
        None,
        None,
    )
    assert decode_value(STR, where, NO_READER, (0,)) == ""
    four = (1).to_bytes(8, "little") + (4).to_bytes(8, "little")
    text = decode_value(STR, four, NO_READER, (0,))
    assert isinstance(text, Unavailable) and "constant" in text.reason


def test_a_piece_left_out_makes_the_value_unavailable():
    where = evaluate(
        ops(("DW_OP_piece", 8), "DW_OP_lit4", "DW_OP_stack_value", ("DW_OP_piece", 8)),
        None,
        16,
        None,
        None,
    )
    assert isinstance(where, Unavailable) and "optimized out" in where.reason


def test_a_large_frames_base_is_the_cfa_plus_a_constant():
    from pytest_uprobe.dwarf.locations import _frame_base

    base = _frame_base(
        ops("DW_OP_call_frame_cfa", ("DW_OP_consts", -4192), "DW_OP_plus"), None, Cfa(7, 16)
    )
    assert base == (Piece(7, 16 - 4192, 8, memory=False),)


# -- rustc's return ABI -------------------------------------------------------------------------


def where_returned(t: RustType) -> Any:
    value = _return_value(t, CAPS)
    assert value is not None
    return value.location


def test_a_12_byte_tuple_returns_through_the_hidden_pointer():
    # (u32, u32, u32) decoded as (3000782036, 32765, 9): read from rax:rdx, which hold the
    # hidden pointer and junk. rustc returns aggregates over 8 bytes in the caller's buffer.
    assert where_returned(tuple_of(U32, U32, U32)) == Indirect(Piece(SAVED_POINTER, 0, 8, False))
    assert where_returned(tuple_of(U64, U64)) == (Piece(RAX, 0, 8, False), Piece(RDX, 0, 8, False))


def test_small_aggregates_pack_into_rax_and_pairs_split():
    # rustc lays (u16, u8, u16, u8) out in 6 bytes: u16 u16 u8 u8
    six = RustType(
        "(u16, u8, u16, u8)",
        "tuple",
        6,
        fields=(Field("0", 0, U16), Field("1", 4, U8), Field("2", 2, U16), Field("3", 5, U8)),
    )
    assert where_returned(six) == (Piece(RAX, 0, 6, False),)
    assert where_returned(option_u32()) == (Piece(RAX, 0, 4, False), Piece(RDX, 0, 4, False))
    array = RustType("[u64; 2]", "array", 16, item=U64, count=2)
    assert where_returned(array) == Indirect(Piece(SAVED_POINTER, 0, 8, False))
    assert where_returned(U128) == (Piece(RAX, 0, 8, False), Piece(RDX, 0, 8, False))


def test_a_one_variant_enum_returns_like_its_fields():
    # enum E { V0(&'static str) } came back in rax:rdx, but was read through a hidden
    # pointer that was never passed.
    only = EnumVariant("V0", None, (Field("0", 0, STR),), True)
    one = RustType("E", "enum", 16, variants=(only,))
    assert where_returned(one) == (Piece(RAX, 0, 8, False), Piece(RDX, 0, 8, False))


def test_a_packed_pair_is_no_scalar_pair():
    packed = RustType("P", "struct", 5, fields=(Field("a", 0, U8), Field("b", 1, U32)))
    assert packed.scalars() is None
    assert where_returned(packed) == (Piece(RAX, 0, 5, False),)


def test_a_packed_struct_of_two_words_returns_through_the_hidden_pointer():
    # #[repr(packed)] struct { f0: usize, f1: u64 }: offsets and size of a pair, alignment 1.
    packed = RustType("S", "struct", 16, fields=(Field("f0", 0, U64), Field("f1", 8, U64)), align=1)
    assert where_returned(packed) == Indirect(Piece(SAVED_POINTER, 0, 8, False))
    inner = RustType("S316", "struct", 4, fields=(Field("f0", 0, U32),), align=1)
    assert where_returned(tuple_of(inner, U64)) == Indirect(Piece(SAVED_POINTER, 0, 8, False))


def test_a_one_field_struct_inside_a_pair_depends_on_repr_c():
    # (S316, isize) with #[repr(C)] struct S316 { f0: (u32,) }: rustc makes no Scalar of a
    # repr(C) newtype, so the tuple is no pair and returns through the hidden pointer; without
    # repr(C) it is a pair in rax:rdx. DWARF does not record repr(C).
    newtype = RustType("S316", "struct", 4, fields=(Field("f0", 0, U32),), align=4)
    where = where_returned(tuple_of(newtype, U64))
    assert isinstance(where, Unavailable) and "repr(C)" in where.reason
    # Alone it returns in eax either way.
    assert where_returned(newtype) == (Piece(RAX, 0, 4, False),)


def test_a_pair_with_a_float_is_unavailable_with_the_reason():
    where = where_returned(tuple_of(F32, U32))
    assert isinstance(where, Unavailable) and "SSE" in where.reason


def test_a_coroutine_state_is_laid_out_in_memory():
    # An async fn's future `{async_fn_env#0}` (x: u32, state byte at 4) returns its 8 bytes
    # in rax; read as a (u32, u8) pair it showed the state from rdx's junk.
    unresumed = EnumVariant("Unresumed", 0, (Field("x", 0, U32),), False)
    future = RustType(
        "{async_fn_env#0}", "enum", 8, variants=(unresumed,), discr=Field("<discriminant>", 4, U8)
    )
    assert future.scalars() is None
    assert where_returned(future) == (Piece(RAX, 0, 8, False),)
    raw = (20).to_bytes(4, "little") + b"\0\0\0\0"
    assert decode_value(future, raw, NO_READER, ()) == Variant(
        "Unresumed", Struct("Unresumed", {"x": 20})
    )


def test_c_returns_pack_integer_eightbytes_into_rax_and_rdx():
    trio = RustType(
        "trio", "struct", 12, fields=(Field("x", 0, U32), Field("y", 4, U32), Field("z", 8, U32))
    )
    assert _c_return_value(trio).location == (Piece(RAX, 0, 8, False), Piece(RDX, 0, 4, False))
    mixed = RustType("mixed", "struct", 16, fields=(Field("d", 0, F32), Field("i", 8, U32)))
    assert isinstance(_c_return_value(mixed).location, Unavailable)


# -- Option payloads that read as None ------------------------------------------------------------


def test_some_of_a_none_payload_is_not_none():
    inner = RustType(
        "Option<()>",
        "enum",
        1,
        variants=(
            EnumVariant("None", 0, (), False),
            EnumVariant("Some", 1, (Field("0", 0, RustType("()", "unit", 0)),), True),
        ),
        discr=Field("<discriminant>", 0, U8),
    )
    assert decode_value(inner, b"\x00", NO_READER, ()) is None
    some = decode_value(inner, b"\x01", NO_READER, ())
    assert some == Variant("Some", None) and some is not None
    nested = RustType(
        "Option<Option<()>>",
        "enum",
        1,
        variants=(
            EnumVariant("None", 2, (), False),
            EnumVariant("Some", None, (Field("0", 0, inner),), True),
        ),
        discr=Field("<discriminant>", 0, U8),
    )
    assert decode_value(nested, b"\x02", NO_READER, ()) is None
    assert decode_value(nested, b"\x00", NO_READER, ()) == Variant("Some", None)
    assert decode_value(nested, b"\x01", NO_READER, ()) == Variant("Some", Variant("Some", None))


# -- unknown parameter lists ----------------------------------------------------------------------


def unknown_call() -> Call:
    why = Unavailable(
        "the debug info of its compile unit has no parameters or types (built "
        "with `debug = 1`); fix: set `debug = true`"
    )
    return Call(
        "m::scale", "m::scale", why, why, tid=1, ts_ns=0, retval=Unavailable("same"), returned=True
    )


def test_unknown_arguments_are_never_an_empty_tuple():
    trace = FunctionTrace("m::scale", [unknown_call()], arguments_known=False)
    (args,) = trace.args_list
    assert isinstance(args, Unavailable) and args != ()
    assert trace.retvals[0] is not None
    assert "<arguments unknown" in repr(trace.calls[0])


@pytest.mark.parametrize(
    "assertion", ["assert_called_with", "assert_any_call", "assert_called_once_with"]
)
def test_comparing_unknown_arguments_fails_with_the_reason(assertion):
    trace = FunctionTrace("m::scale", [unknown_call()], arguments_known=False)
    with pytest.raises(AssertionError) as info:
        getattr(trace, assertion)(-3, 4)
    message = str(info.value)
    assert "arguments of 'm::scale' are unknown" in message and "debug = true" in message


def test_a_comparison_that_meets_an_unavailable_value_says_why():
    call = Call(
        "m::f",
        "m::f",
        (1, Unavailable("optimized out")),
        {"a": 1, "b": Unavailable("optimized out")},
        tid=1,
        ts_ns=0,
    )
    trace = FunctionTrace("m::f", [call])
    with pytest.raises(AssertionError, match=r"could not be read.*\n  b: optimized out"):
        trace.assert_called_with(1, 2)
    with pytest.raises(AssertionError, match="b: optimized out"):
        trace.assert_has_calls([(1, 2)])
