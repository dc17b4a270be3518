"""DWARF's names for what legacy mangling cannot name: closures and generic instances.

The legacy scheme (`_ZN...17h<hash>E`) names every closure and async body `{{closure}}`,
and every instance of a generic function by the generic's path alone, so neither the
closures of one function nor the instances of one generic can be told apart by their
symbols. rustc's DWARF keeps the numbered name (`{closure#0}`, `{async_fn_env#0}`, as v0
symbols spell them) and the instance's arguments (`largest<u8>`) on the subprogram; this
module maps each such function's address to its path with DWARF's names, and names
inlined copies the same way.
"""

from __future__ import annotations

from ..elf import ElfBinary
from ..names import crate_of
from .index import unit_index, unit_offset_at
from .scan import UnitIndex

LEGACY_CLOSURE = "{{closure}}"


def closure_aliases(binary: ElfBinary, crate: str) -> dict[int, str]:
    """Address -> path with DWARF's names (`zoo::main::{closure#0}`, `zoo::ident::<u8>`) for
    the legacy-mangled functions of `crate` whose symbol path lacks what DWARF adds; empty
    without DWARF."""
    known = binary.memo("closure_aliases")  # by crate name
    cached: dict[int, str] | None = known.get(crate)
    if cached is not None:
        return cached
    found: dict[int, str] = {}
    if binary.has_dwarf:
        disk = binary.cache("main")
        stored = disk.get(("dwarf_aliases", crate))
        if isinstance(stored, dict):
            found = stored
        else:
            by_low_pc = binary.memo("subprograms_by_low_pc")  # by unit
            for symbol in binary.functions:
                if not symbol.name.startswith("_ZN") or crate_of(symbol.path) != crate:
                    continue
                offset = unit_offset_at(binary, symbol.address)
                if offset is None:
                    continue
                unit = unit_index(binary, offset)
                lows = by_low_pc.get(offset)
                if lows is None:
                    lows = by_low_pc[offset] = unit.by_low_pc()
                die = lows.get(symbol.address)
                if die is None:
                    continue
                named = with_dwarf_names(symbol.path, indexed_segments(unit, die))
                if named != symbol.path:
                    found[symbol.address] = named
            disk.put(("dwarf_aliases", crate), found)
    known[crate] = found
    return found


def indexed_segments(unit: UnitIndex, offset: int) -> list[str]:
    """The namespace path DWARF gives the subprogram at `offset` (following its abstract
    origin or specification to the DIE that names it), outermost first."""
    at: int | None = offset
    for _ in range(4):
        entry = unit.subprograms.get(at) if at is not None else None
        if entry is None:
            return []
        if entry.name is not None:
            segments = [str(entry.name)]
            parent = entry.parent
            while parent is not None and parent in unit.namespaces:
                parent, name = unit.namespaces[parent]
                segments.append(name)
            return segments[::-1]
        at = entry.origin
    return []


def with_dwarf_names(path: str, dwarf: list[str]) -> str:
    """`path` (a legacy symbol's) with DWARF's numbered closure names and, for a generic
    instance, its arguments: `m::f::{{closure}}` -> `m::f::{closure#1}`, `m::largest` ->
    `m::largest::<u8>` when DWARF names it `largest<u8>`."""
    if not dwarf or (LEGACY_CLOSURE not in path and "<" not in dwarf[-1]):
        return path
    named = _number_closures(path, dwarf) if LEGACY_CLOSURE in path else path
    last = dwarf[-1]
    cut = last.find("<")
    if cut > 0 and "::<" not in named and named.endswith("::" + last[:cut]):
        named = f"{named}::{last[cut:]}"
    return named


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
    """Replace the `{{closure}}` segments of `path`, from the end, by DWARF's numbered ones
    (`{closure#0}`, `{async_fn_env#0}`, `{async_block#1}`), as long as the two paths agree
    segment by segment (generic arguments aside)."""
    segments = split_path(path)
    for back in range(1, min(len(segments), len(dwarf)) + 1):
        mine, theirs = segments[-back], _without_generics(dwarf[-back])
        if mine == LEGACY_CLOSURE and theirs.startswith("{") and "#" in theirs:
            segments[-back] = theirs
        elif mine != theirs:
            break
    return "::".join(segments)


def _without_generics(name: str) -> str:
    cut = name.find("<")
    return name if cut <= 0 else name[:cut]
