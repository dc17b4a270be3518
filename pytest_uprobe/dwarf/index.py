"""From a code address or a name to the few DIEs that describe it.

Never the whole tree: an address goes through `.debug_aranges` to its one compile unit,
and a name is looked up only in the compile units of its own crate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..elf import ElfBinary
from ..names import crate_of
from .types import RustType, type_of

# Subtrees that never hold a function definition: skipping them keeps walks short.
_LEAF_TAGS = frozenset(
    {
        "DW_TAG_subprogram",
        "DW_TAG_lexical_block",
        "DW_TAG_formal_parameter",
        "DW_TAG_variable",
        "DW_TAG_inlined_subroutine",
        "DW_TAG_member",
        "DW_TAG_variant_part",
        "DW_TAG_template_type_param",
    }
)


@dataclass(frozen=True)
class Parameter:
    name: str
    type: RustType
    die: Any = field(repr=False, compare=False)  # the DIE whose DW_AT_location places it


@dataclass(frozen=True)
class FunctionInfo:
    """What DWARF says about one out-of-line function."""

    low_pc: int
    high_pc: int
    params: tuple[Parameter, ...]
    return_type: RustType
    prologue_end: int | None
    frame_base: Any = field(repr=False, compare=False)  # DW_AT_frame_base, or None
    die: Any = field(repr=False, compare=False)


def origin_holder(die: Any, name: str) -> Any:
    """The DIE that carries attribute `name` for `die`: itself, or what it specifies or abstracts
    (generic instances and inlined copies carry no name or type of their own)."""
    for _ in range(4):
        if die is None or name in die.attributes:
            return die
        for link in ("DW_AT_abstract_origin", "DW_AT_specification"):
            if link in die.attributes:
                die = die.get_DIE_from_attribute(link)
                break
        else:
            return None
    return None


def attr(die: Any, name: str) -> Any:
    holder = origin_holder(die, name)
    return holder.attributes[name] if holder is not None else None


def referenced(die: Any, name: str) -> Any:
    """The DIE a reference attribute such as DW_AT_type points to, following origins."""
    holder = origin_holder(die, name)
    return holder.get_DIE_from_attribute(name) if holder is not None else None


def compile_unit_at(binary: ElfBinary, address: int) -> Any:
    dwarf = binary.dwarf
    aranges = dwarf.get_aranges()
    offset = aranges.cu_offset_at_addr(address) if aranges is not None else None
    if offset is None:
        return None
    return dwarf.get_CU_at(offset)


def function_at(binary: ElfBinary, address: int) -> FunctionInfo | None:
    """The out-of-line function whose code starts at `address`, if DWARF describes it."""
    if not binary.has_dwarf:
        return None
    cu = compile_unit_at(binary, address)
    if cu is None:
        return None
    for die in walk(cu.get_top_DIE()):
        if die.tag != "DW_TAG_subprogram":
            continue
        low = die.attributes.get("DW_AT_low_pc")
        if low is None or low.value != address:
            continue
        return _function_info(die, address, cu, binary)
    return None


def _function_info(die: Any, low_pc: int, cu: Any, binary: ElfBinary) -> FunctionInfo:
    high = die.attributes["DW_AT_high_pc"]
    high_pc = low_pc + high.value if high.form != "DW_FORM_addr" else high.value
    return FunctionInfo(
        low_pc=low_pc,
        high_pc=high_pc,
        params=parameters_of(die),
        return_type=type_of(referenced(die, "DW_AT_type")),
        frame_base=die.attributes.get("DW_AT_frame_base"),
        prologue_end=_prologue_end(binary, cu, low_pc, high_pc),
        die=die,
    )


def parameters_of(die: Any, origin: Any = None) -> tuple[Parameter, ...]:
    """The formal parameters of a subprogram, named through their origins.

    For an inlined copy pass its abstract `origin`: the parameter list is the origin's, in
    order, each placed by the copy's child that refers to it (compilers sometimes tag that
    child DW_TAG_variable); a parameter the copy does not mention was optimized out.
    """
    declared = origin if origin is not None else die
    concrete: dict[int, Any] = {}
    if origin is not None:
        for child in die.iter_children():
            if "DW_AT_abstract_origin" in child.attributes:
                concrete[child.get_DIE_from_attribute("DW_AT_abstract_origin").offset] = child
    params: list[Parameter] = []
    for child in declared.iter_children():
        if child.tag != "DW_TAG_formal_parameter":
            if origin is not None and _parameter_as_variable(child, declared):
                pass  # LLVM sometimes turns an inlined function's parameter into a variable
            elif origin is not None:
                break  # parameters come first; the body's variables follow
            else:
                continue
        name = attr(child, "DW_AT_name")
        params.append(
            Parameter(
                name.value.decode() if name else f"arg{len(params)}",
                type_of(referenced(child, "DW_AT_type")),
                concrete.get(child.offset, child) if origin is not None else child,
            )
        )
    return tuple(params)


def _parameter_as_variable(child: Any, function: Any) -> bool:
    """A variable declared on the function's own line, among its parameters: rustc's
    abstract subprograms sometimes spell a parameter that way."""
    line = function.attributes.get("DW_AT_decl_line")
    own = child.attributes.get("DW_AT_decl_line")
    return (
        child.tag == "DW_TAG_variable"
        and line is not None
        and own is not None
        and own.value == line.value
    )


_prologue_ends: dict[tuple[object, int], list[int]] = {}


def _prologue_end(binary: ElfBinary, cu: Any, low: int, high: int) -> int | None:
    key = (binary.identity, cu.cu_offset)
    marks = _prologue_ends.get(key)
    if marks is None:
        marks = []
        program = binary.dwarf.line_program_for_CU(cu)
        if program is not None:
            for entry in program.get_entries():
                state = entry.state
                if state is not None and state.prologue_end:
                    marks.append(state.address)
        marks.sort()
        _prologue_ends[key] = marks
    return next((a for a in marks if low <= a < high), None)


def walk(top: Any) -> Iterator[Any]:
    """Every DIE under `top` that can be or contain a definition, without entering bodies."""
    stack = [top]
    while stack:
        die = stack.pop()
        yield die
        if die.tag not in _LEAF_TAGS:
            stack.extend(reversed(list(die.iter_children())))


_crate_units: dict[tuple[object, str], list[int]] = {}


def crate_units(binary: ElfBinary, crate: str) -> list[Any]:
    """The compile units holding `crate`'s code.

    Release builds name them `<file>/@/<crate>.<hash>-cgu.<n>`; dev builds name them by a
    hash only, so the units that hold the crate's function symbols (found through
    .debug_aranges) count too. Only top DIEs are read to tell names apart.
    """
    key = (binary.identity, crate)
    offsets = _crate_units.get(key)
    if offsets is None:
        found: set[int] = set()
        marker = f"/@/{crate}."
        for cu in binary.dwarf.iter_CUs():
            name = cu.get_top_DIE().attributes.get("DW_AT_name")
            if name is not None and marker in name.value.decode("utf-8", "replace"):
                found.add(cu.cu_offset)
        aranges = binary.dwarf.get_aranges()
        if aranges is not None:
            for symbol in binary.functions:
                if crate_of(symbol.path) == crate:
                    offset = aranges.cu_offset_at_addr(symbol.address)
                    if offset is not None:
                        found.add(offset)
        offsets = sorted(found)
        _crate_units[key] = offsets
    return [binary.dwarf.get_CU_at(offset) for offset in offsets]
