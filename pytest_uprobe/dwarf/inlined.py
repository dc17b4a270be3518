"""Inlined copies of a function: where each starts, who it was inlined into, its parameters.

Looked up only in the compile units of the function's own crate: rustc names them
`<file>/@/<crate>.<hash>-cgu.<n>`, so the rest of the binary's DWARF is never read.
"""

from __future__ import annotations

import bisect
import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..elf import ElfBinary
from ..names import crates_of, demangle, may_match, strip_generics
from .closures import indexed_segments, with_dwarf_names
from .coroutine_entry import poll_entries
from .entries import CopyEntries, copy_entries, die_ranges
from .entries import file_name as _call_file
from .index import Parameter, crate_unit_offsets, origin_holder, parameters_of, unit_index
from .scan import UnitIndex
from .unnamed import identify_copy


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
    # The code that runs as part of the copy (its DIE's address ranges): a call made from
    # there is made by the copy (events.py names it the caller).
    ranges: tuple[tuple[int, int], ...] = field(default=(), repr=False, compare=False)
    die: int = field(default=0, compare=False)  # the copy's DIE (.debug_info offset)
    # Entries whose first statement runs vector arithmetic (the instruction, as text): a hit
    # there may stand for several calls (events.vectorized_hits says so after a run).
    vectorized: tuple[tuple[int, str], ...] = field(default=(), repr=False, compare=False)

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
    return [_site(binary, row) for row in _copies(binary, path, matches).rows]


def codeless_copies(
    binary: ElfBinary, path: str, matches: Callable[[str], bool]
) -> list[CodelessCopy]:
    """The copies of the functions `matches` accepts whose calls no probe can see: a copy
    with no instructions of its own at a place that runs, and an instance whose only copies
    are in code the linker dropped while the binary has no code of it at all (its calls,
    if any ran, were computed at compile time). `path`'s count is a lower bound with any."""
    return list(_copies(binary, path, matches).codeless)


class CopyRow(NamedTuple):
    """One inlined copy as plain data (cached on disk), from which `_site` builds its
    InlinedSite. Offsets are .debug_info offsets."""

    path: str  # the inlined function, demangled, with DWARF's names
    caller: str  # the function it was inlined into
    entries: tuple[int, ...]  # where its executions begin (see dwarf.entries)
    call_file: str | None
    call_line: int | None
    unit: int  # the copy's compile unit
    copy: int  # the DW_TAG_inlined_subroutine
    origin: int  # its abstract origin (maybe in another unit)
    caller_die: int | None  # the subprogram it sits in
    described: bool  # DWARF declares the function (not line tables only)
    doubt: str | None  # why its executions cannot be counted exactly
    ranges: tuple[tuple[int, int], ...]  # its code, by the DIE's address ranges
    vectorized: tuple[tuple[int, str], ...]  # entries in vectorized code, with the instruction


class CodelessCopy(NamedTuple):
    """A copy (or every copy of one instance) whose calls no probe sees; `why` says so."""

    path: str  # the instance, with DWARF's names
    where: str  # "the copy inlined into f (src/main.rs:12)", or the instance's copies
    why: str


class _Found(NamedTuple):
    rows: list[CopyRow]
    codeless: list[CodelessCopy]


def _copies(binary: ElfBinary, path: str, matches: Callable[[str], bool]) -> _Found:
    crates = crates_of(path)
    if not crates or not binary.has_dwarf:
        return _Found([], [])
    main = binary.cache("main")
    key = ("inlined-copies", 17, path)  # bump when what is found changes
    found = main.get(key)
    if not isinstance(found, _Found):
        rows: list[CopyRow] = []
        codeless: list[CodelessCopy] = []
        seen: set[int] = set()
        for crate in crates:
            crate_rows, crate_codeless = _find_copies(binary, crate, path, matches)
            for row in crate_rows:
                if row.copy not in seen:  # one copy DIE once, whichever crate found it
                    seen.add(row.copy)
                    rows.append(row)
            codeless.extend(c for c in crate_codeless if c not in codeless)
        rows.sort(key=lambda r: r.entries)
        found = _Found(rows, codeless)
        main.put(key, found)  # written by binary.save_caches() (build_plan)
    return found


class _Instance(NamedTuple):
    """An abstract subprogram the probe names."""

    path: str
    described: bool
    linkage: str | None  # the mangled name of the instance, one per instance in every unit


class _Units:
    """The crate's unit indexes, to follow a reference into another unit (a generic
    method's abstract copy specifies a declaration that may sit in another unit)."""

    def __init__(self, binary: ElfBinary, offsets: list[int]) -> None:
        self.binary = binary
        self.offsets = sorted(offsets)

    def holding(self, offset: int) -> UnitIndex | None:
        i = bisect.bisect_right(self.offsets, offset) - 1
        if i < 0:
            return None
        unit = unit_index(self.binary, self.offsets[i])
        return unit if offset in unit.subprograms else None


def _find_copies(
    binary: ElfBinary, crate: str, path: str, matches: Callable[[str], bool]
) -> tuple[list[CopyRow], list[CodelessCopy]]:
    spelled = may_match(path)
    rows: list[CopyRow] = []
    units = _Units(binary, crate_unit_offsets(binary, crate))
    # By .debug_info offset, over all the crate's units: with several codegen units a copy's
    # abstract origin may sit in another unit than the copy.
    abstract: dict[int, _Instance] = {}
    # Abstract subprograms named by a bare name only (line-tables-only DWARF: no linkage
    # name, no namespace): whose function each copy is must be told from its code lines.
    bare: dict[int, str] = {}
    could_be = _could_be(path)
    for unit_offset in units.offsets:
        unit = unit_index(binary, unit_offset)
        for offset, (_, _, inline, linkage, name, _, described) in unit.subprograms.items():
            if not inline or (linkage is not None and not spelled(linkage)):
                continue
            named = _indexed_path(unit, offset, crate, units)
            if named is not None and matches(named[0]):
                # Line-tables-only DWARF keeps no declaration and no parameters.
                abstract[offset] = _Instance(named[0], described or named[1], named[2])
            elif named is None and linkage is None and name is not None and could_be(name):
                bare[offset] = str(name)
    if not abstract and not bare:
        return rows, []
    live: set[str] = set()  # instances (by linkage name, else path) with code here
    dropped: dict[str, list[str]] = {}  # instance -> its copies in code the linker dropped
    codeless: list[CodelessCopy] = []
    for unit_offset in units.offsets:
        unit = unit_index(binary, unit_offset)
        cu = None
        for offset, origin, _, _, call_file, call_line, caller in unit.inlined:
            instance = abstract.get(origin)
            if instance is None and origin not in bare:
                continue
            if cu is None:
                cu = binary.dwarf.get_CU_at(unit_offset)
            die = cu.get_DIE_from_refaddr(offset)
            caller_path = _caller_path(binary, unit, caller, crate, units) or "?"
            line = int(call_line) if call_line else None
            file = _call_file(binary, cu, call_file)
            where = f"{caller_path} ({file}:{line})" if file else caller_path
            ranges = die_ranges(binary, cu, die, keep_empty=True)
            # Code the linker dropped keeps its DWARF at address 0, 1 or -1: in no function.
            placed = [(lo, hi) for lo, hi in ranges if binary.function_containing(lo)]
            declared_at = None
            if instance is None:  # a bare name: the copy's own code lines tell whose it is
                site = (file, line) if file is not None and line is not None else None
                told = identify_copy(binary, die, placed, bare[origin], site)
                declared_at = told.declared_at
                if told.path is not None and matches(told.path):
                    instance = _Instance(told.path, False, None)
                elif told.path is None and told.why is not None:
                    codeless.append(
                        CodelessCopy(
                            f"{bare[origin]} (path unknown)",
                            f"the copy named only `{bare[origin]}` inlined into {where}",
                            f"{told.why}, so it may be this function; build with "
                            "`debug = 1` or more for DWARF to name its path",
                        )
                    )
                    continue
                else:
                    continue  # another function's copy (std's, or another path)
            if not placed:
                dropped.setdefault(instance.linkage or instance.path, []).append(where)
                continue
            live.add(instance.linkage or instance.path)  # the binary has code of it
            if not any(hi > lo for lo, hi in placed):
                codeless.append(
                    CodelessCopy(
                        instance.path,
                        f"the copy inlined into {where}",
                        "DWARF gives it no instructions of its own (empty address ranges), "
                        "so no probe sees its calls",
                    )
                )
                continue
            code_ranges = tuple(r for r in placed if r[1] > r[0])
            found = copy_entries(binary, cu, die, code_ranges, declared_at)
            if not found.addresses and found.doubt is None:
                continue  # no code that ever runs
            if not found.addresses:  # it runs, but where each execution begins is unknown:
                found = CopyEntries((min(r[0] for r in code_ranges),), found.doubt)  # left out
            if (
                found.doubt is None
                and _COROUTINE_BODY.search(instance.path)
                and _may_suspend(binary, origin)
            ):
                # Countable where polls enter it, if that can be told (dwarf/coroutine_entry).
                entries = poll_entries(binary, code_ranges, origin)
                found = (
                    CopyEntries(entries)
                    if entries
                    else CopyEntries(found.addresses, COROUTINE_DOUBT, found.vectorized)
                )
            rows.append(
                CopyRow(
                    instance.path,
                    caller_path,
                    found.addresses,
                    file,
                    line,
                    unit_offset,
                    offset,
                    origin,
                    caller,
                    instance.described,
                    found.doubt,
                    tuple(r for r in placed if r[1] > r[0]),
                    found.vectorized,
                )
            )
    rows = _split_calls_doubted(binary, rows)
    rows.sort(key=lambda r: r.entries)
    codeless.extend(_vanished(binary, abstract, live, dropped))
    return rows, codeless


SPLIT_DOUBT = (
    "LLVM split one inlined call into two DWARF copies at the same line (one without a "
    "column, their code side by side), so a run of the call may pass the beginnings of both"
)


def _split_calls_doubted(binary: ElfBinary, rows: list[CopyRow]) -> list[CopyRow]:
    """Copies of one function at one call line of one caller where a copy has no
    DW_AT_call_column: LLVM cloned part of another copy there (seen on a loop guarded by
    a length test), and counting both beginnings counts one call twice. The column-less
    copy and the copies whose code abuts it are doubted (left out, a lower bound)."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for number, row in enumerate(rows):
        key = (row.origin, row.caller_die, row.call_file, row.call_line)
        groups.setdefault(key, []).append(number)
    doubted: set[int] = set()
    for members in groups.values():
        if len(members) < 2:
            continue
        columnless = [n for n in members if _call_column(binary, rows[n]) is None]
        if not columnless or len(columnless) == len(members):
            continue
        for n in columnless:
            touching = [m for m in members if m != n and _abut(rows[m].ranges, rows[n].ranges)]
            doubted.update([n, *(touching or members)])
    return [
        row._replace(doubt=row.doubt or SPLIT_DOUBT) if n in doubted else row
        for n, row in enumerate(rows)
    ]


def _call_column(binary: ElfBinary, row: CopyRow) -> int | None:
    column = binary.dwarf.get_DIE_from_refaddr(row.copy).attributes.get("DW_AT_call_column")
    return int(column.value) if column is not None else None


def _abut(a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]) -> bool:
    return any(hi == lo2 or hi2 == lo for lo, hi in a for lo2, hi2 in b)


_TOMBSTONE = 0xFFFF_FFFF_FFFF_FFF0
# An async fn's body or an async block polled again resumes where it suspended: the code
# inlined into the poller jumps to that point, past where the copy begins, so a probe at
# its beginning sees first polls only (tokio's select!: one hit for two polls), unless the
# places where polls enter the copy can be told (dwarf/coroutine_entry.py).
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


def _vanished(
    binary: ElfBinary,
    abstract: dict[int, _Instance],
    live: set[str],
    dropped: dict[str, list[str]],
) -> list[CodelessCopy]:
    """The instances whose every copy is in dropped code and that have no code in the
    binary: DWARF proves the instance was inlined somewhere, and nothing of it runs. Either
    it was never called, or every call of it was computed at compile time (a generic
    instance called on constants): a count cannot tell, so it says it may be more."""
    instances = {i.linkage or i.path: i for i in abstract.values()}
    out_of_line = {s.name for s in binary.functions} | {s.path for s in binary.functions}
    found: list[CodelessCopy] = []
    for key, callers in sorted(dropped.items()):
        if key in live or key in out_of_line:
            continue
        instance = instances[key]
        copies = "1 copy" if len(callers) == 1 else f"{len(callers)} copies"
        found.append(
            CodelessCopy(
                instance.path,
                instance.path,
                f"the binary has no code of it: DWARF lists {copies} of it, all in code the "
                "linker dropped, so any call of it was optimized away (computed at compile "
                "time, as for constant arguments) or never made, and no probe sees such "
                "calls; a dev build keeps every call",
            )
        )
    return found


def _site(binary: ElfBinary, row: CopyRow) -> InlinedSite:
    cu = binary.dwarf.get_CU_at(row.unit)
    die = cu.get_DIE_from_refaddr(row.copy)
    origin_die = binary.dwarf.get_DIE_from_refaddr(row.origin)  # maybe in another unit
    caller_die = (
        binary.dwarf.get_DIE_from_refaddr(row.caller_die) if row.caller_die is not None else None
    )
    return InlinedSite(
        path=row.path,
        caller=row.caller,
        entry=row.entries[0],
        entries=tuple(row.entries),
        doubt=row.doubt,
        ranges=row.ranges,
        die=row.copy,
        vectorized=row.vectorized,
        call_file=row.call_file,
        call_line=row.call_line,
        params=parameters_of(die, origin_die),
        params_known=row.described,
        origin=origin_die,
        frame_base=(
            caller_die.attributes.get("DW_AT_frame_base") if caller_die is not None else None
        ),
    )


def _indexed_path(
    unit: UnitIndex, offset: int, crate: str, units: _Units | None = None
) -> tuple[str, bool, str | None] | None:
    """`_abstract_path` over a unit's index: the linkage name demangled, or the name in its
    namespaces, following abstract origins and specifications as `origin_holder` does (into
    the crate's other units with `units`); with whether a DIE on the way declares it, and
    the linkage name."""
    for wanted in (3, 4):  # linkage name first, then name
        at: int | None = offset
        here: UnitIndex | None = unit
        described = False
        for _ in range(4):
            entry = here.subprograms.get(at) if here is not None and at is not None else None
            if entry is None and units is not None and at is not None:
                here = units.holding(at)  # a reference into another unit (DW_FORM_ref_addr)
                entry = here.subprograms.get(at) if here is not None else None
            if entry is None or here is None or at is None:
                break
            described = described or bool(entry[6])
            if entry[wanted] is not None:
                if wanted == 3:
                    named = with_dwarf_names(demangle(entry[3]), indexed_segments(here, at))
                    return named, described, str(entry[3])
                path = _namespaced(here, entry.parent, str(entry.name), crate)
                return (path, described, None) if path is not None else None
            at = entry[5]
    return None


def _namespaced(unit: UnitIndex, parent: int | None, name: str, crate: str) -> str | None:
    """The name in its namespaces as a path; None for a name in no namespace: rustc puts
    every function in its crate's namespace, except line-tables-only DWARF, which keeps
    the bare name only (`parse<f64>`, core's or the crate's: the name cannot tell)."""
    segments = [name]
    while parent is not None and parent in unit.namespaces:
        parent, segment = unit.namespaces[parent]
        segments.append(segment)
    if len(segments) == 1:
        return None
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


def _caller_path(
    binary: ElfBinary, unit: UnitIndex, caller: int | None, crate: str, units: _Units
) -> str | None:
    if caller is None:
        return None
    found = _indexed_path(unit, caller, crate, units)
    if found is not None:
        return found[0]
    entry = unit.subprograms.get(caller)
    if entry is not None and entry.low_pc is not None:
        # Line tables only: the subprogram has a bare name, and code whose symbol names it.
        symbols = binary.functions_by_address.get(entry.low_pc, [])
        paths = sorted({s.path for s in symbols})
        if paths:
            return " = ".join(paths)  # merged functions: every name of the code
    die = binary.dwarf.get_DIE_from_refaddr(caller)  # its origin is in another unit
    named = origin_holder(die, "DW_AT_linkage_name") or origin_holder(die, "DW_AT_name")
    return _abstract_path(named, crate) if named is not None else None


def _abstract_path(die: Any, crate: str) -> str | None:
    """The demangled path of an abstract subprogram. With `debug = "line-tables-only"` DWARF
    keeps neither linkage names nor modules, only a bare name: that is no path (it may be
    std's as well as the crate's), shown as `name (path unknown)`."""
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
    if len(segments) == 1:
        return f"{segments[0]} (path unknown)"
    return _path_of(segments, crate)


def _could_be(probe: str) -> Callable[[str], bool]:
    """Whether a bare DWARF name (`prec`, `parse<f64>`) may be the last segment of a
    function the probe names."""
    last = strip_generics(probe).split("::")[-1]

    def test(name: str) -> bool:
        return fnmatch.fnmatchcase(name.split("<", 1)[0], last)

    return test


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
