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
from .index import Parameter, crate_units, origin_holder, parameters_of


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
    params_known: bool = field(default=True, repr=False)  # False with line tables only

    def describe(self) -> str:
        where = f"{self.call_file}:{self.call_line}" if self.call_file else f"{self.entry:#x}"
        return f"{self.caller} ({where})"


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
                abstract_path = _abstract_path(die, crate)
                if abstract_path is not None and matches(abstract_path):
                    abstract[die.offset] = abstract_path
            elif (
                die.tag == "DW_TAG_inlined_subroutine" and "DW_AT_abstract_origin" in die.attributes
            ):
                copies.append(die)
        for die in copies:
            origin = die.get_DIE_from_attribute("DW_AT_abstract_origin")
            if origin.offset in abstract:
                # Line-tables-only DWARF keeps no declaration and no parameters.
                described = "DW_AT_decl_line" in origin.attributes
                site = _site(binary, cu, die, origin, abstract[origin.offset], crate, described)
                if site is not None:
                    sites.append(site)
    return sorted(sites, key=lambda s: s.entry)


def _abstract_path(die: Any, crate: str) -> str | None:
    """The demangled path of an abstract subprogram. With `debug = "line-tables-only"` DWARF
    keeps neither linkage names nor modules, only `name` in the crate's units: then the
    path is `crate::name`, so only functions at the crate's root can be matched."""
    linkage = die.attributes.get("DW_AT_linkage_name")
    if linkage is not None:
        return demangle(linkage.value.decode())
    name = die.attributes.get("DW_AT_name")
    if name is None:
        return None
    segments = [_text(name.value)]
    parent = die.get_parent()
    while parent is not None and parent.tag == "DW_TAG_namespace":
        segments.append(_text(parent.attributes["DW_AT_name"].value))
        parent = parent.get_parent()
    if segments[-1] != crate:
        segments.append(crate)
    cut = segments[0].find("<")
    if cut > 0:  # `f<u8>` as DWARF spells it -> `f::<u8>` as a path does
        segments[0] = f"{segments[0][:cut]}::{segments[0][cut:]}"
    return "::".join(reversed(segments))


def _site(
    binary: ElfBinary,
    cu: Any,
    die: Any,
    origin: Any,
    path: str,
    crate: str,
    described: bool,
) -> InlinedSite | None:
    entry = _entry(binary, cu, die)
    if entry is None:
        return None
    caller = die.get_parent()
    while caller is not None and caller.tag != "DW_TAG_subprogram":
        caller = caller.get_parent()
    named = origin_holder(caller, "DW_AT_linkage_name") or origin_holder(caller, "DW_AT_name")
    caller_path = _abstract_path(named, crate) if named is not None else None
    line = die.attributes.get("DW_AT_call_line")
    return InlinedSite(
        path=path,
        caller=caller_path or "?",
        entry=entry,
        call_file=_call_file(binary, cu, die),
        call_line=int(line.value) if line else None,
        params=parameters_of(die, origin),
        params_known=described,
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
    entry = entries[position]
    name = _text(entry.name)
    directories = program.header.include_directory
    directory = entry.dir_index - 1 if program.header.version < 5 else entry.dir_index
    if name.startswith("/") or not 0 <= directory < len(directories):
        return name
    return f"{_text(directories[directory])}/{name}"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
