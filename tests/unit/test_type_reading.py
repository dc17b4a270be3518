"""Reading DWARF types always terminates and takes every form DWARF 4 and 5 allow for a
constant; planning turns an unexpected exception into an InternalError (issue 13, class 9).

The DIEs here are small stand-ins for pyelftools' (tag, attributes, children, references),
so each form can be tried without a compiler that emits it."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from elftools.dwarf.die import AttributeValue
from elftools.dwarf.structs import DWARFStructs

from pytest_uprobe import plan
from pytest_uprobe.dwarf import types
from pytest_uprobe.elf import Symbol
from pytest_uprobe.errors import InternalError, UprobeError

STRUCTS = DWARFStructs(little_endian=True, dwarf_format=32, address_size=8, dwarf_version=5)
_offsets = itertools.count(0x100, 0x10)


class Unit:
    """What type reading uses of a compile unit: its file's identity and its structs."""

    def __init__(self) -> None:
        self.dwarfinfo = type("DWARFInfo", (), {})()  # carries the memo of types read
        self.structs = STRUCTS


UNIT = Unit()


def attr(name: str, form: str, value: Any) -> AttributeValue:
    return AttributeValue(name, form, value, value, 0, 0)


class Die:
    def __init__(self, tag: str, *attributes: AttributeValue, children: list[Die] = ()) -> None:
        self.tag = tag
        self.offset = next(_offsets)
        self.cu = UNIT
        self.attributes = {a.name: a for a in attributes}
        self.children = list(children)
        self.refs: dict[str, Die] = {}

    def iter_children(self) -> Any:
        return iter(self.children)

    def get_DIE_from_attribute(self, name: str) -> Die:  # noqa: N802
        return self.refs[name]

    def typed(self, target: Die) -> Die:
        self.attributes["DW_AT_type"] = attr("DW_AT_type", "DW_FORM_ref4", target.offset)
        self.refs["DW_AT_type"] = target
        return self


def name(text: str) -> AttributeValue:
    return attr("DW_AT_name", "DW_FORM_strx1", text.encode())  # pyelftools resolves strx


def size(n: int, form: str = "DW_FORM_data1") -> AttributeValue:
    return attr("DW_AT_byte_size", form, n)


def base(text: str, n: int, encoding: int = 0x07) -> Die:
    return Die(
        "DW_TAG_base_type", name(text), size(n), attr("DW_AT_encoding", "DW_FORM_data1", encoding)
    )


def member(text: str, offset: AttributeValue, of: Die) -> Die:
    return Die("DW_TAG_member", name(text), offset).typed(of)


def at(n: int, form: str = "DW_FORM_data1") -> AttributeValue:
    return attr("DW_AT_data_member_location", form, n)


U32 = base("u32", 4)
U64 = base("u64", 8)


def test_member_offsets_in_every_constant_form_and_as_an_expression() -> None:
    plus_uconst_16 = [0x23, 16]  # DW_OP_plus_uconst 16: DWARF 2's way, still allowed
    point = Die(
        "DW_TAG_structure_type",
        name("Point"),
        size(32),
        children=[
            member("a", at(0, "DW_FORM_implicit_const"), U32),
            member("b", at(4, "DW_FORM_udata"), U32),
            member("c", at(8, "DW_FORM_data2"), U64),
            member("d", attr("DW_AT_data_member_location", "DW_FORM_exprloc", plus_uconst_16), U64),
            member("e", attr("DW_AT_data_member_location", "DW_FORM_block1", [0x23, 24]), U64),
        ],
    )
    read = types.type_of(point)
    assert read.kind == "struct"
    assert [(f.name, f.offset) for f in read.fields] == [
        ("a", 0), ("b", 4), ("c", 8), ("d", 16), ("e", 24)
    ]  # fmt: skip


def test_an_offset_that_is_no_constant_makes_the_type_unsupported_with_the_reason() -> None:
    odd = Die(
        "DW_TAG_structure_type",
        name("Odd"),
        size(8),
        children=[member("x", at(0x40, "DW_FORM_sec_offset"), U64)],  # a location list
    )
    read = types.type_of(odd)
    assert read.kind == "unsupported" and "DW_FORM_sec_offset" in read.why
    assert read.name == "Odd" and read.size == 8


def variant(discr: AttributeValue | None, text: str, payload: Die) -> Die:
    inner = member(text, at(0), payload)
    return Die("DW_TAG_variant", *([discr] if discr else []), children=[inner])


def test_enum_discriminants_in_data16_and_block_forms() -> None:
    """A u128 discriminant (rustc writes it as 16 bytes: DW_FORM_data16 in DWARF 5, a
    block in DWARF 4) reads as the integer, where a TypeError came before."""
    tag = member("<discr>", at(0), base("u128", 16))
    tag.attributes["DW_AT_artificial"] = attr("DW_AT_artificial", "DW_FORM_flag_present", True)
    empty = Die("DW_TAG_structure_type", name("A"), size(32))
    big = 2**100 + 7
    part = Die(
        "DW_TAG_variant_part",
        children=[
            tag,
            variant(attr("DW_AT_discr_value", "DW_FORM_data16", list(big.to_bytes(16, "little"))),
                    "A", empty),
            variant(attr("DW_AT_discr_value", "DW_FORM_block1", [3] + [0] * 15), "B", empty),
            variant(attr("DW_AT_discr_value", "DW_FORM_sdata", 5), "C", empty),
        ],
    )  # fmt: skip
    part.refs["DW_AT_discr"] = tag
    part.attributes["DW_AT_discr"] = attr("DW_AT_discr", "DW_FORM_ref4", tag.offset)
    wide = Die("DW_TAG_structure_type", name("Wide"), size(32), children=[part])
    read = types.type_of(wide)
    assert read.kind == "enum"
    assert [(v.name, v.discr) for v in read.variants] == [("A", big), ("B", 3), ("C", 5)]


def test_signed_enumerators_written_as_unsigned_bytes() -> None:
    i8 = base("i8", 1, encoding=0x05)
    ordering = Die(
        "DW_TAG_enumeration_type",
        name("Ordering"),
        size(1),
        children=[
            Die("DW_TAG_enumerator", name("Less"), attr("DW_AT_const_value", "DW_FORM_data1", 255)),
            Die("DW_TAG_enumerator", name("Equal"), attr("DW_AT_const_value", "DW_FORM_data1", 0)),
        ],
    ).typed(i8)
    assert types.type_of(ordering).enumerators == (("Less", -1), ("Equal", 0))


def test_array_lengths_in_every_form_and_a_runtime_length_refused() -> None:
    def array(*bounds: AttributeValue) -> Die:
        return Die("DW_TAG_array_type", children=[Die("DW_TAG_subrange_type", *bounds)]).typed(U32)

    assert types.type_of(array(attr("DW_AT_count", "DW_FORM_implicit_const", 3))).count == 3
    assert types.type_of(array(attr("DW_AT_count", "DW_FORM_data16", [4] + [0] * 15))).count == 4
    assert types.type_of(array(attr("DW_AT_upper_bound", "DW_FORM_udata", 4))).count == 5
    runtime = types.type_of(array(attr("DW_AT_count", "DW_FORM_exprloc", [0x91, 0x08])))
    assert runtime.kind == "unsupported" and "not a constant" in runtime.why


def vec_of(item: Die) -> Die:
    """`Vec<item>` as rustc describes it: buf (RawVec around a pointer), len, param T."""
    pointer = Die("DW_TAG_pointer_type", name("*const T"), size(8)).typed(item)
    raw = Die("DW_TAG_structure_type", name("RawVec"), size(16),
              children=[member("ptr", at(0), pointer), member("cap", at(8), U64)])  # fmt: skip
    param = Die("DW_TAG_template_type_param", name("T")).typed(item)
    return Die(
        "DW_TAG_structure_type",
        name(f"Vec<{item.attributes['DW_AT_name'].value.decode()}>"),
        size(24),
        children=[member("buf", at(0), raw), member("len", at(16), U64), param],
    )


def test_a_type_that_reaches_itself_through_vec_and_box_reads_to_a_finite_graph() -> None:
    """`struct Ast { children: Vec<Ast>, parent: Box<Ast> }`: a RecursionError before."""
    ast = Die("DW_TAG_structure_type", name("Ast"), size(32))
    boxed = Die("DW_TAG_pointer_type", name("Box<Ast>"), size(8)).typed(ast)
    ast.children = [member("children", at(0), vec_of(ast)), member("parent", at(24), boxed)]
    read = types.type_of(ast)
    children, parent = read.fields
    assert children.type.kind == "vec" and children.type.element is read
    assert parent.type.kind == "pointer" and parent.type.target is read
    assert read.scalars() is None and not read.float_return  # walks that stay inline


def test_a_type_that_contains_itself_inline_or_nests_too_deep_is_cut_with_the_reason() -> None:
    loop = Die("DW_TAG_structure_type", name("Loop"), size(8))
    loop.children = [member("again", at(0), loop)]  # only broken DWARF says this
    read = types.type_of(loop)
    (again,) = read.fields
    assert again.type.kind == "unsupported" and "contains itself" in again.type.why

    deepest = U32
    for depth in range(types.MAX_NESTING + 10):
        deepest = Die("DW_TAG_structure_type", name(f"Level{depth}"), size(4),
                      children=[member("inner", at(0), deepest)])  # fmt: skip
    value = types.type_of(deepest)
    while value.kind == "struct":
        value = value.fields[0].type
    assert value.kind == "unsupported" and f"more than {types.MAX_NESTING}" in value.why


class Binary:
    path = "/bin/example"
    functions: tuple[Symbol, ...] = ()  # no other symbols: no shared addresses, no markers
    functions_by_address: dict[int, tuple[Symbol, ...]] = {}

    def save_caches(self) -> None:
        pass


def test_an_unexpected_exception_while_planning_names_probe_function_and_die(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    symbol = Symbol("_ZN3app4work17h0123456789abcdefE", "app::work", 0x1000, 16, "function")
    sites = plan.FunctionSites("app::work", (symbol,), ())
    monkeypatch.setattr(plan, "find_sites", lambda *a, **k: sites)

    def broken(*args: Any) -> None:
        error = TypeError("int() argument must be ... not 'ListContainer'")
        error.dwarf_die = 0x2A4F  # type: ignore[attr-defined]  # as type_of marks it
        raise error

    monkeypatch.setattr(plan, "_plan_function", broken)
    with pytest.raises(InternalError) as caught:
        plan.build_plan(Binary(), ["app::work"])  # type: ignore[arg-type]
    text = str(caught.value)
    assert "'app::work'" in text and "reading app::work (DWARF DIE 0x2a4f)" in text
    assert "TypeError: int() argument" in text and "\n  fix: " in text
    assert isinstance(caught.value.error, TypeError) and caught.value.die == 0x2A4F

    def no_sites(*args: Any, **kwargs: Any) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(plan, "find_sites", no_sites)
    with pytest.raises(InternalError, match="failed resolving it: RecursionError"):
        plan.build_plan(Binary(), ["app::*"])  # type: ignore[arg-type]


def test_errors_of_ours_pass_through_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args: Any, **kwargs: Any) -> None:
        raise UprobeError("a clear error")

    monkeypatch.setattr(plan, "find_sites", refused)
    with pytest.raises(UprobeError, match="a clear error") as caught:
        plan.build_plan(Binary(), ["app::work"])  # type: ignore[arg-type]
    assert not isinstance(caught.value, InternalError)
