"""Inlined copies of a function: where each starts, who it was inlined into, its parameters.

Looked up only in the compile units of the function's own crate: rustc names them
`<file>/@/<crate>.<hash>-cgu.<n>`, so the rest of the binary's DWARF is never read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..elf import ElfBinary
from ..names import crates_of, demangle, may_match
from .closures import indexed_segments, with_dwarf_names
from .entries import CopyEntries, copy_entries, die_ranges
from .entries import file_name as _call_file
from .index import Parameter, crate_unit_offsets, origin_holder, parameters_of, unit_index
from .scan import UnitIndex


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
    origin: Any = field(default=None, repr=False, compare=False)  # the abstract subprogram DIE
    # Every address where an execution of the copy begins (see dwarf.entries); `entry`
    # is the first. A loop unrolled four times around one call site gives four.
    entries: tuple[int, ...] = ()
    doubt: str | None = field(default=None, compare=False)  # why the count may be wrong

    def describe(self) -> str:
        where = f"{self.call_file}:{self.call_line}" if self.call_file else f"{self.entry:#x}"
        return f"{self.caller} ({where})"


def inlined_sites(
    binary: ElfBinary, path: str, matches: Callable[[str], bool]
) -> list[InlinedSite]:
    """Inlined copies of the functions `matches` accepts, in `path`'s crate, by address.

    `matches` must be `names.matcher(path)`: the copies found are cached by `path`, in
    memory and on disk, as plain data; only the DIEs of the copies' parameters are read
    again (through pyelftools) to build the sites.
    """
    crates = crates_of(path)
    if not crates or not binary.has_dwarf:
        return []
    main = binary.cache("main")
    rows = main.get(("inlined-entries", path))
    if rows is None:
        rows = []
        seen: set[int] = set()
        for crate in crates:
            for row in _find_copies(binary, crate, path, matches):
                if row[6] not in seen:  # one copy DIE once, whichever crate found it
                    seen.add(row[6])
                    rows.append(row)
        rows.sort(key=lambda r: r[2])
        main.put(("inlined-entries", path), rows)  # written by binary.save_caches() (build_plan)
    return [_site(binary, row) for row in rows]


# One copy as plain data: (path, caller, entries, call file, call line, unit offset,
# copy DIE offset, abstract origin offset, caller DIE offset, described, doubt).
CopyRow = tuple[
    str,
    str,
    tuple[int, ...],
    "str | None",
    "int | None",
    int,
    int,
    int,
    "int | None",
    bool,
    "str | None",
]


def _find_copies(
    binary: ElfBinary, crate: str, path: str, matches: Callable[[str], bool]
) -> list[CopyRow]:
    spelled = may_match(path)
    rows: list[CopyRow] = []
    units = crate_unit_offsets(binary, crate)
    # By .debug_info offset, over all the crate's units: with several codegen units a copy's
    # abstract origin may sit in another unit than the copy.
    abstract: dict[int, tuple[str, bool]] = {}
    for unit_offset in units:
        unit = unit_index(binary, unit_offset)
        for offset, (_, _, inline, linkage, _, _, described) in unit.subprograms.items():
            if not inline or (linkage is not None and not spelled(linkage)):
                continue
            abstract_path = _indexed_path(unit, offset, crate)
            if abstract_path is not None and matches(abstract_path):
                # Line-tables-only DWARF keeps no declaration and no parameters.
                abstract[offset] = (abstract_path, described)
    if not abstract:
        return rows
    for unit_offset in units:
        unit = unit_index(binary, unit_offset)
        cu = None
        for offset, origin, entry, _, call_file, call_line, caller in unit.inlined:
            if origin not in abstract:
                continue
            if entry is not None and (entry == 0 or entry >= _TOMBSTONE):
                continue  # code the linker dropped keeps its DWARF at address 0 (or -1)
            if cu is None:
                cu = binary.dwarf.get_CU_at(unit_offset)
            die = cu.get_DIE_from_refaddr(offset)
            ranges = die_ranges(binary, cu, die)
            found = copy_entries(binary, cu, die, ranges)
            if not found.addresses and (found.doubt is None or not ranges):
                continue  # no code (dropped by the linker), or none that ever runs
            if not found.addresses:  # it runs, but where each execution begins is unknown:
                found = CopyEntries((min(r[0] for r in ranges),), found.doubt)  # left out
            abstract_path, described = abstract[origin]
            if (
                found.doubt is None
                and _COROUTINE_BODY.search(abstract_path)
                and _may_suspend(binary, origin)
            ):
                found = CopyEntries(found.addresses, COROUTINE_DOUBT)
            rows.append(
                (
                    abstract_path,
                    _caller_path(binary, unit, caller, crate) or "?",
                    found.addresses,
                    _call_file(binary, cu, call_file),
                    int(call_line) if call_line else None,
                    unit_offset,
                    offset,
                    origin,
                    caller,
                    described,
                    found.doubt,
                )
            )
    rows.sort(key=lambda r: r[2])
    return rows


_TOMBSTONE = 0xFFFF_FFFF_FFFF_FFF0
# An async fn's body or an async block polled again resumes where it suspended: the code
# inlined into the poller jumps to that point, past where the copy begins, so a probe at
# its beginning sees first polls only (tokio's select!: one hit for two polls).
_COROUTINE_BODY = re.compile(r"::\{(async_fn|async_block|coroutine)#\d+\}$")


def _may_suspend(binary: ElfBinary, origin: int) -> bool:
    """Whether the async body's state has a SuspendN variant (an `.await` that can return
    Pending): a body without one runs whole at each poll, from where its copy begins. True
    when DWARF does not say."""
    try:
        body = binary.dwarf.get_DIE_from_refaddr(origin)
        pinned = next(c for c in body.iter_children() if c.tag == "DW_TAG_formal_parameter")
        pin = pinned.get_DIE_from_attribute("DW_AT_type")
        member = next(c for c in pin.iter_children() if c.tag == "DW_TAG_member")
        state = member.get_DIE_from_attribute("DW_AT_type").get_DIE_from_attribute("DW_AT_type")
        for part in state.iter_children():
            if part.tag != "DW_TAG_variant_part":
                continue
            for variant in part.iter_children():
                for field in variant.iter_children():
                    if field.tag != "DW_TAG_member" or "DW_AT_type" not in field.attributes:
                        continue
                    named = field.get_DIE_from_attribute("DW_AT_type").attributes.get("DW_AT_name")
                    if named is not None and bytes(named.value).startswith(b"Suspend"):
                        return True
            return False
    except Exception:  # any other shape than rustc 1.95's: assume it can suspend
        return True
    return True


COROUTINE_DOUBT = (
    "an inlined async body is resumed where it last suspended, not where the copy begins, "
    "so a probe there misses every poll but the first"
)


def _site(binary: ElfBinary, row: CopyRow) -> InlinedSite:
    (
        path,
        caller_path,
        entries,
        call_file,
        call_line,
        unit_offset,
        offset,
        origin,
        caller,
        described,
        doubt,
    ) = row
    cu = binary.dwarf.get_CU_at(unit_offset)
    die = cu.get_DIE_from_refaddr(offset)
    origin_die = binary.dwarf.get_DIE_from_refaddr(origin)  # maybe in another unit
    caller_die = binary.dwarf.get_DIE_from_refaddr(caller) if caller is not None else None
    return InlinedSite(
        path=path,
        caller=caller_path,
        entry=entries[0],
        entries=tuple(entries),
        doubt=doubt,
        call_file=call_file,
        call_line=call_line,
        params=parameters_of(die, origin_die),
        params_known=described,
        origin=origin_die,
        frame_base=(
            caller_die.attributes.get("DW_AT_frame_base") if caller_die is not None else None
        ),
    )


def _indexed_path(unit: UnitIndex, offset: int, crate: str) -> str | None:
    """`_abstract_path` over a unit's index: the linkage name demangled, or the name in its
    namespaces, following abstract origins and specifications as `origin_holder` does."""
    for wanted in (3, 4):  # linkage name first, then name
        at: int | None = offset
        for _ in range(4):
            entry = unit.subprograms.get(at) if at is not None else None
            if entry is None:
                break
            if entry[wanted] is not None:
                if wanted == 3:
                    return with_dwarf_names(demangle(entry[3]), indexed_segments(unit, offset))
                return _namespaced(unit, entry.parent, str(entry.name), crate)
            at = entry[5]
    return None


def _namespaced(unit: UnitIndex, parent: int | None, name: str, crate: str) -> str:
    segments = [name]
    while parent is not None and parent in unit.namespaces:
        parent, segment = unit.namespaces[parent]
        segments.append(segment)
    return _path_of(segments, crate)


def _path_of(innermost_first: list[str], crate: str) -> str:
    """`['f<u8>', 'm']` in crate `c` -> `c::m::f::<u8>`: DWARF's names as a Rust path."""
    segments = list(innermost_first)
    if segments[-1] != crate:
        segments.append(crate)
    cut = segments[0].find("<")
    if cut > 0:  # `f<u8>` as DWARF spells it -> `f::<u8>` as a path does
        segments[0] = f"{segments[0][:cut]}::{segments[0][cut:]}"
    return "::".join(reversed(segments))


def _caller_path(binary: ElfBinary, unit: UnitIndex, caller: int | None, crate: str) -> str | None:
    if caller is None:
        return None
    found = _indexed_path(unit, caller, crate)
    if found is not None:
        return found
    die = binary.dwarf.get_DIE_from_refaddr(caller)  # its origin is in another unit
    named = origin_holder(die, "DW_AT_linkage_name") or origin_holder(die, "DW_AT_name")
    return _abstract_path(named, crate) if named is not None else None


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
    return _path_of(segments, crate)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
