"""Closure names for legacy-mangled binaries.

The legacy scheme (`_ZN...17h<hash>E`) names every closure `{{closure}}`, so the closures
of one function cannot be told apart by their symbols. rustc's DWARF keeps the numbered
name (`{closure#0}`, as v0 symbols spell it) on the closure's subprogram; this module
maps the address of each such closure to the path with its number.
"""

from __future__ import annotations

from typing import Any

from ..elf import ElfBinary
from .index import compile_unit_at, origin_holder, walk

LEGACY_CLOSURE = "{{closure}}"

_aliases: dict[tuple[object, str], dict[int, str]] = {}


def closure_aliases(binary: ElfBinary, crate: str) -> dict[int, str]:
    """Address -> numbered path (`zoo::main::{closure#0}`) for the closures of `crate` whose
    symbols demangle to `{{closure}}`; empty without DWARF or without such symbols."""
    key = (binary.identity, crate)
    cached = _aliases.get(key)
    if cached is not None:
        return cached
    found: dict[int, str] = {}
    legacy = {
        s.address: s.path
        for s in binary.functions
        if LEGACY_CLOSURE in s.path and s.path.startswith((crate + "::", "<" + crate + "::"))
    }
    if legacy and binary.has_dwarf:
        # Through .debug_aranges to the units that hold the closures: dev builds name their
        # units by hash only, so the crate's units cannot be told by name.
        units: dict[int, Any] = {}
        for address in legacy:
            cu = compile_unit_at(binary, address)
            if cu is not None:
                units[cu.cu_offset] = cu
        for cu in units.values():
            for die in walk(cu.get_top_DIE()):
                if die.tag != "DW_TAG_subprogram":
                    continue
                low = die.attributes.get("DW_AT_low_pc")
                if low is None or low.value not in legacy:
                    continue
                dwarf_path = _dwarf_segments(die)
                if dwarf_path:
                    found[low.value] = _number_closures(legacy[low.value], dwarf_path)
    _aliases[key] = found
    return found


def _dwarf_segments(die: Any) -> list[str]:
    """The namespace path DWARF gives a subprogram, generic arguments dropped."""
    named = origin_holder(die, "DW_AT_name")
    if named is None:
        return []
    segments = [_without_generics(named.attributes["DW_AT_name"].value.decode())]
    parent = named.get_parent()
    while parent is not None and parent.tag == "DW_TAG_namespace":
        name = parent.attributes.get("DW_AT_name")
        segments.append(name.value.decode() if name is not None else "")
        parent = parent.get_parent()
    return segments[::-1]


def _without_generics(name: str) -> str:
    cut = name.find("<")
    return name if cut <= 0 else name[:cut]


def split_path(path: str) -> list[str]:
    """`<a::B as c::D>::f::{{closure}}` -> ['<a::B as c::D>', 'f', '{{closure}}']."""
    segments: list[str] = []
    depth = start = 0
    i = 0
    while i < len(path):
        ch = path[i]
        if ch == "<":
            depth += 1
        elif ch == ">" and not (i > 0 and path[i - 1] == "-"):  # not the `->` of fn types
            depth -= 1
        elif depth == 0 and path.startswith("::", i):
            segments.append(path[start:i])
            i += 2
            start = i
            continue
        i += 1
    segments.append(path[start:])
    return segments


def _number_closures(path: str, dwarf: list[str]) -> str:
    """Replace the `{{closure}}` segments of `path`, from the end, by DWARF's numbered ones,
    as long as the two paths agree segment by segment."""
    segments = split_path(path)
    for back in range(1, min(len(segments), len(dwarf)) + 1):
        mine, theirs = segments[-back], dwarf[-back]
        if mine == LEGACY_CLOSURE and theirs.startswith("{closure#"):
            segments[-back] = theirs
        elif mine != theirs:
            break
    return "::".join(segments)
