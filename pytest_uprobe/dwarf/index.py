"""From a code address or a name to the few DIEs that describe it.

Never the whole tree: an address goes through `.debug_aranges` to its one compile unit,
and a name is looked up only in the compile units of its own crate.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from ..elf import ElfBinary
from ..names import crate_of
from .scan import UnitIndex, scan_unit, section_bytes
from .types import RustType, type_of


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


def unit_offset_at(binary: ElfBinary, address: int) -> int | None:
    """The offset of the compile unit whose code holds `address`, through .debug_aranges."""
    starts, ends, units = _aranges(binary)
    i = bisect.bisect_right(starts, address) - 1
    return units[i] if i >= 0 and address < ends[i] else None


class Aranges(NamedTuple):
    """.debug_aranges, sorted: range i is [starts[i], ends[i]) in the unit at units[i]."""

    starts: list[int]
    ends: list[int]
    units: list[int]


def _aranges(binary: ElfBinary) -> Aranges:
    """.debug_aranges parsed once per binary from the raw bytes (pyelftools parses the
    whole section again at every get_aranges)."""
    sections = binary.memo("sections")  # raw or parsed, by section name
    found: Aranges | None = sections.get(".debug_aranges")
    if found is not None:
        return found
    section = binary.dwarf.debug_aranges_sec
    data = section_bytes(section) if section is not None else b""
    ranges: list[tuple[int, int, int]] = []
    pos = 0
    while pos + 4 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "little")
        offset_size = 4
        head = pos + 4
        if length == 0xFFFFFFFF:
            length = int.from_bytes(data[pos + 4 : pos + 12], "little")
            offset_size, head = 8, pos + 12
        end = head + length
        unit = int.from_bytes(data[head + 2 : head + 2 + offset_size], "little")
        address_size = data[head + 2 + offset_size]
        pair = 2 * address_size
        at = head + 2 + offset_size + 2
        at += (-(at - pos)) % pair  # tuples are aligned to twice the address size
        while at + pair <= end:
            start = int.from_bytes(data[at : at + address_size], "little")
            size = int.from_bytes(data[at + address_size : at + pair], "little")
            at += pair
            if start == 0 and size == 0:
                break
            if size:
                ranges.append((start, start + size, unit))
        pos = end
    ranges.sort()
    found = Aranges([r[0] for r in ranges], [r[1] for r in ranges], [r[2] for r in ranges])
    sections[".debug_aranges"] = found
    return found


def unit_index(binary: ElfBinary, offset: int) -> UnitIndex:
    """The plain-data index of the compile unit at `offset`: from memory, from the on-disk
    cache, or by one fast pass over the unit's bytes (then cached in both)."""
    units = binary.memo("unit_indexes")
    found: UnitIndex | None = units.get(offset)
    if found is None:
        disk = binary.cache("dwarf")
        found = disk.get(("unit", offset))
        if not isinstance(found, UnitIndex):
            sections = binary.memo("sections")  # kept: a cold plan scans several units
            info = sections.get(".debug_info")
            if info is None:
                info = sections[".debug_info"] = section_bytes(binary.dwarf.debug_info_sec)
            found = scan_unit(binary.dwarf, binary.dwarf.get_CU_at(offset), info)
            disk.put(("unit", offset), found)
        units[offset] = found
    return found


class FunctionPlace(NamedTuple):
    """Where DWARF describes an out-of-line function (kept on disk, by its address)."""

    unit: int  # the compile unit's offset
    die: int  # its DW_TAG_subprogram's offset
    params: tuple[int, ...]  # its DW_TAG_formal_parameter children's offsets


def function_at(binary: ElfBinary, address: int) -> FunctionInfo | None:
    """The out-of-line function whose code starts at `address`, if DWARF describes it."""
    if not binary.has_dwarf:
        return None
    main = binary.cache("main")
    known: dict[int, FunctionPlace] = main.get("functions") or {}
    where = known.get(address)
    if where is None:
        offset = unit_offset_at(binary, address)
        if offset is None:
            return None
        unit = unit_index(binary, offset)
        die_offset = unit.by_low_pc().get(address)
        if die_offset is None:
            return None
        # Kept on disk: a warm run reads the DIEs it needs without .debug_aranges or the
        # unit's index.
        where = FunctionPlace(offset, die_offset, tuple(unit.params.get(die_offset, ())))
        known[address] = where
        main.put("functions", known)
    cu = binary.dwarf.get_CU_at(where.unit)
    die = cu.get_DIE_from_refaddr(where.die)
    high = die.attributes["DW_AT_high_pc"]
    high_pc = address + high.value if high.form != "DW_FORM_addr" else high.value
    return FunctionInfo(
        low_pc=address,
        high_pc=high_pc,
        params=tuple(_parameter(cu.get_DIE_from_refaddr(o), i) for i, o in enumerate(where.params)),
        return_type=type_of(referenced(die, "DW_AT_type")),
        frame_base=die.attributes.get("DW_AT_frame_base"),
        prologue_end=_prologue_end(binary, cu, address, high_pc),
        die=die,
    )


def _parameter(die: Any, number: int) -> Parameter:
    name = attr(die, "DW_AT_name")
    return Parameter(
        name.value.decode() if name else f"arg{number}",
        type_of(referenced(die, "DW_AT_type")),
        die,
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
    unnamed: list[tuple[int, Any]] = []  # parameters without a name (zero-sized ones)
    for child in declared.iter_children():
        if child.tag != "DW_TAG_formal_parameter":
            if child.tag in _BEFORE_PARAMETERS:
                continue  # a generic's `T` comes before its parameters
            if origin is not None and _parameter_as_variable(child, declared):
                same = next((u for u in unnamed if _same_type(u[1], child)), None)
                if same is not None:
                    # rustc names a zero-sized parameter by a variable after the parameters
                    unnamed.remove(same)
                    name = attr(child, "DW_AT_name").value.decode()
                    params[same[0]] = replace(params[same[0]], name=name)
                    continue
                pass  # LLVM sometimes turns an inlined function's parameter into a variable
            elif origin is not None:
                break  # parameters come first; the body's variables follow
            else:
                continue
        name = attr(child, "DW_AT_name")
        if name is None and child.tag == "DW_TAG_formal_parameter":
            unnamed.append((len(params), child))
        params.append(
            Parameter(
                name.value.decode() if name else f"arg{len(params)}",
                type_of(referenced(child, "DW_AT_type")),
                concrete.get(child.offset, child) if origin is not None else child,
            )
        )
    return tuple(params)


_BEFORE_PARAMETERS = frozenset({"DW_TAG_template_type_param", "DW_TAG_template_value_param"})


def _same_type(a: Any, b: Any) -> bool:
    ta, tb = a.attributes.get("DW_AT_type"), b.attributes.get("DW_AT_type")
    return ta is not None and tb is not None and ta.value == tb.value and ta.form == tb.form


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


def _prologue_end(binary: ElfBinary, cu: Any, low: int, high: int) -> int | None:
    known = binary.memo("prologue_ends")  # by unit
    marks: list[int] | None = known.get(cu.cu_offset)
    if marks is None:
        disk = binary.cache("main")
        marks = disk.get(("prologue_ends", cu.cu_offset))
        if marks is None:
            marks = []
            program = binary.dwarf.line_program_for_CU(cu)
            if program is not None:
                for entry in program.get_entries():
                    state = entry.state
                    if state is not None and state.prologue_end:
                        marks.append(state.address)
            marks.sort()
            disk.put(("prologue_ends", cu.cu_offset), marks)
        known[cu.cu_offset] = marks
    i = bisect.bisect_left(marks, low)
    return marks[i] if i < len(marks) and marks[i] < high else None


def crate_unit_offsets(binary: ElfBinary, crate: str) -> list[int]:
    """The offsets of the compile units holding `crate`'s code.

    Release builds name them `<file>/@/<crate>.<hash>-cgu.<n>`; dev builds name them by a
    hash only, so the units that hold the crate's function symbols (found through
    .debug_aranges) count too. Only top DIEs are read to tell names apart.
    """
    known = binary.memo("crate_units")  # by crate name
    offsets: list[int] | None = known.get(crate)
    if offsets is None:
        disk = binary.cache("main")
        offsets = disk.get(("crate_units", crate))
        if offsets is None:
            offsets = _find_crate_units(binary, crate)
            disk.put(("crate_units", crate), offsets)
        known[crate] = offsets
    return offsets


def _find_crate_units(binary: ElfBinary, crate: str) -> list[int]:
    found: set[int] = set()
    marker = f"/@/{crate}."
    for cu in binary.dwarf.iter_CUs():
        name = cu.get_top_DIE().attributes.get("DW_AT_name")
        if name is not None and marker in name.value.decode("utf-8", "replace"):
            found.add(cu.cu_offset)
    for symbol in binary.functions:
        # A mangled name spells its crate's name as it is: demangle only those.
        if crate in symbol.name and crate_of(symbol.path) == crate:
            offset = unit_offset_at(binary, symbol.address)
            if offset is not None:
                found.add(offset)
    return sorted(found)


def crate_roots(binary: ElfBinary) -> dict[str, str]:
    """Each crate root file (absolute path) the binary's compile units name, with its crate:
    rustc names a unit `<root file>/@/<crate>.<hash>-cgu.<n>` in the crate's directory.
    Only top DIEs are read."""
    known: dict[str, str] | None = binary.memo("crate_roots").get("all")
    if known is None:
        disk = binary.cache("main")
        known = disk.get("crate_roots")
        if not isinstance(known, dict):
            known = {}
            for cu in binary.dwarf.iter_CUs() if binary.has_dwarf else ():
                top = cu.get_top_DIE()
                name = top.attributes.get("DW_AT_name")
                directory = top.attributes.get("DW_AT_comp_dir")
                if name is None or directory is None:
                    continue
                text = name.value.decode("utf-8", "replace")
                root, marker, rest = text.partition("/@/")
                if not marker or "-cgu." not in rest:
                    continue  # dev builds name units by a hash only
                crate = rest.split(".", 1)[0]
                where = os.path.join(directory.value.decode("utf-8", "replace"), root)
                known.setdefault(os.path.normpath(where), crate)
            disk.put("crate_roots", known)
        binary.memo("crate_roots")["all"] = known
    return known
