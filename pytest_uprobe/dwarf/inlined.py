"""Inlined copies of a function: where each starts, who it was inlined into, its parameters.

Looked up only in the compile units of the function's own crate: rustc names them
`<file>/@/<crate>.<hash>-cgu.<n>`, so the rest of the binary's DWARF is never read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..elf import ElfBinary
from ..names import crate_of, demangle
from .index import Parameter, attr, crate_units, parameters_of


@dataclass(frozen=True)
class InlinedSite:
    """One copy of a function inlined into another."""

    path: str  # the inlined function, demangled
    caller: str  # the function it was inlined into, demangled
    entry: int  # the address where the copy begins to run
    call_file: str | None
    call_line: int | None
    params: tuple[Parameter, ...] = field(default=(), repr=False, compare=False)
    frame_base: Any = field(default=None, repr=False, compare=False)  # the caller's


def inlined_sites(
    binary: ElfBinary, path: str, matches: Callable[[str], bool]
) -> list[InlinedSite]:
    """Inlined copies of the functions `matches` accepts, in `path`'s crate, by address."""
    crate = crate_of(path)
    if crate is None or not binary.has_dwarf:
        return []
    sites: list[InlinedSite] = []
    for cu in crate_units(binary, crate):
        abstract: dict[int, str] = {}
        copies: list[Any] = []
        for die in cu.iter_DIEs():
            if die.tag == "DW_TAG_subprogram" and "DW_AT_inline" in die.attributes:
                linkage = die.attributes.get("DW_AT_linkage_name")
                if linkage is not None:
                    demangled = demangle(linkage.value.decode())
                    if matches(demangled):
                        abstract[die.offset] = demangled
            elif (
                die.tag == "DW_TAG_inlined_subroutine"
                and "DW_AT_abstract_origin" in die.attributes
            ):
                copies.append(die)
        for die in copies:
            origin = die.get_DIE_from_attribute("DW_AT_abstract_origin").offset
            if origin in abstract:
                site = _site(binary, cu, die, abstract[origin])
                if site is not None:
                    sites.append(site)
    return sorted(sites, key=lambda s: s.entry)


def _site(binary: ElfBinary, cu: Any, die: Any, path: str) -> InlinedSite | None:
    entry = _entry(binary, cu, die)
    if entry is None:
        return None
    caller = die.get_parent()
    while caller is not None and caller.tag != "DW_TAG_subprogram":
        caller = caller.get_parent()
    caller_name = attr(caller, "DW_AT_linkage_name") if caller is not None else None
    line = die.attributes.get("DW_AT_call_line")
    return InlinedSite(
        path=path,
        caller=demangle(caller_name.value.decode()) if caller_name else "?",
        entry=entry,
        call_file=_call_file(binary, cu, die),
        call_line=int(line.value) if line else None,
        params=parameters_of(die),
        frame_base=caller.attributes.get("DW_AT_frame_base") if caller is not None else None,
    )


def _entry(binary: ElfBinary, cu: Any, die: Any) -> int | None:
    for name in ("DW_AT_entry_pc", "DW_AT_low_pc"):
        found = die.attributes.get(name)
        if found is not None and found.form == "DW_FORM_addr":
            return int(found.value)
    ranges_attr = die.attributes.get("DW_AT_ranges")
    if ranges_attr is None:
        return None
    base = cu.get_top_DIE().attributes.get("DW_AT_low_pc")
    base_address = int(base.value) if base is not None else 0
    for entry in binary.dwarf.range_lists().get_range_list_at_offset(ranges_attr.value, cu=cu):
        if hasattr(entry, "base_address"):
            base_address = entry.base_address
        elif entry.begin_offset != entry.end_offset:
            absolute = getattr(entry, "is_absolute", False)
            return int(entry.begin_offset if absolute else base_address + entry.begin_offset)
    return None


def _call_file(binary: ElfBinary, cu: Any, die: Any) -> str | None:
    index = die.attributes.get("DW_AT_call_file")
    program = binary.dwarf.line_program_for_CU(cu)
    if index is None or program is None:
        return None
    entries = program.header.file_entry
    position = index.value - 1 if program.header.version < 5 else index.value
    if not 0 <= position < len(entries):
        return None
    name = entries[position].name
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
