"""Probe points that are not function calls: source lines (`src/parser.rs:42`) and USDT
probes (`usdt:provider:name`). Each hit of their sites is one event with values and no
return: a line's local variables (`Call.locals`), a USDT probe's arguments (a tuple of ints).

The sites reuse the plan's value machinery (`plan._site_values`, `plan._locate`), so a
local is located and decoded exactly as an argument is.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import plan as _plan
from . import usdt
from .dwarf import frames, lines, slots
from .dwarf.index import Parameter
from .dwarf.locations import Cfa, Piece
from .dwarf.types import RustType
from .elf import ElfBinary, Symbol
from .errors import ProbeNameError
from .values import Unavailable

if TYPE_CHECKING:
    from .plan import ProbePlan

_LINE = re.compile(r"^(?P<file>[^:\s][^:]*\.[A-Za-z0-9_]+):(?P<line>[1-9][0-9]*)$")
RSP = 7
_LISTED = 10  # candidates named in a message


def is_point(probe: str) -> bool:
    """A source line (`path/file.rs:LINE`) or a USDT probe (`usdt:provider:name`)."""
    return usdt.is_usdt(probe) or _LINE.match(probe) is not None


def split_line_probe(probe: str) -> tuple[str, int] | None:
    match = _LINE.match(probe)
    return (match["file"], int(match["line"])) if match else None


# -- errors ----------------------------------------------------------------------------


class NoSuchSourceFile(ProbeNameError):
    def __init__(self, name: str, binary: Path | str, similar: Sequence[str]) -> None:
        self.similar = list(similar)
        fix = (
            "files it has: " + ", ".join(similar)
            if similar
            else f"list a file's lines with `pytest-uprobe lines {binary} FILE`"
        )
        why = "no source file of that name in the binary's line tables (no debug info?)"
        super().__init__(name, binary, why, fix)


class AmbiguousSourceFile(ProbeNameError):
    def __init__(self, name: str, binary: Path | str, candidates: Sequence[str]) -> None:
        self.candidates = list(candidates)
        super().__init__(
            name,
            binary,
            f"{len(candidates)} source files end that way: "
            + ", ".join(candidates[:_LISTED])
            + (f" and {len(candidates) - _LISTED} more" if len(candidates) > _LISTED else ""),
            "write more of the path (relative to the crate, e.g. src/parser.rs:42)",
        )


class NoCodeAtLine(ProbeNameError):
    def __init__(self, name: str, binary: Path | str, nearest: Sequence[int]) -> None:
        self.nearest = list(nearest)
        near = ", ".join(str(n) for n in nearest) if nearest else "none in this file"
        super().__init__(
            name,
            binary,
            "that line has no code (a comment, a blank line, or code the compiler merged "
            f"into another line); the nearest lines with code: {near}",
            f"probe one of those lines; `pytest-uprobe lines {binary} FILE` lists them all",
        )


class NoSuchUsdtProbe(ProbeNameError):
    def __init__(self, name: str, binary: Path | str, known: Sequence[str]) -> None:
        self.known = list(known)
        if known:
            why = "the binary has no USDT probe of that name"
            fix = "its USDT probes: " + ", ".join(known)
        else:
            why = "the binary has no USDT probes (no .note.stapsdt section)"
            fix = "define probes with sys/sdt.h (C) or a stapsdt note (Rust's `probe` crate)"
        super().__init__(name, binary, why, fix)


class BadUsdtName(ProbeNameError):
    def __init__(self, name: str, binary: Path | str) -> None:
        super().__init__(
            name, binary, "a USDT probe is named usdt:PROVIDER:NAME", "e.g. usdt:myapp:request"
        )


# -- what a hit describes ----------------------------------------------------------------


@dataclass(frozen=True)
class LinePoint:
    file: str  # full path, as the line table names it
    line: int
    address: int
    host: str  # the function symbol whose code holds it, demangled
    function: str | None  # the innermost function of that line (an inlined copy's name)
    loops_back: bool  # also reached from inside the line: a pass of a loop on the line

    def describe(self) -> str:
        own = (
            self.function is None
            or self.host.rsplit("::", 1)[-1] == self.function
            or (self.host.endswith("{{closure}}") and self.function.startswith("{closure"))
        )
        inlined = "" if own else f" (inlined {self.function})"
        return f"{os.path.basename(self.file)}:{self.line} in {self.host}{inlined}"


@dataclass(frozen=True)
class UsdtPoint:
    provider: str
    name: str
    address: int
    semaphore: int  # virtual address, 0 for none
    host: str | None

    def describe(self) -> str:
        where = f" in {self.host}" if self.host else ""
        return f"usdt:{self.provider}:{self.name}{where}"


# -- planning ------------------------------------------------------------------------------


def plan_point(plan: ProbePlan, probe: str) -> None:
    if usdt.is_usdt(probe):
        _plan_usdt(plan, probe)
    else:
        _plan_line(plan, probe)


def resolve_source_file(binary: ElfBinary, probe: str, wanted: str) -> str:
    found = lines.match_file(binary, wanted)
    if not found:
        raise NoSuchSourceFile(probe, binary.path, lines.similar_files(binary, wanted))
    if len(found) > 1:
        raise AmbiguousSourceFile(probe, binary.path, found)
    return found[0]


def _plan_line(plan: ProbePlan, probe: str) -> None:
    binary = plan.binary
    split = split_line_probe(probe)
    assert split is not None
    wanted, line = split
    path = resolve_source_file(binary, probe, wanted)
    entries = lines.entry_points(binary, path, line)
    if not entries:
        raise NoCodeAtLine(probe, binary.path, nearest_lines(binary, path, line))
    # Where arrivals at the entry points may not be the line's executions, the count is a
    # bound that exact assertions refuse, naming the line's shape.
    counted = lines.count_shape(binary, path, line, entries)
    coverage = plan.coverage_of(probe)
    coverage.unseen.extend(r for r in counted.may_be_more if r not in coverage.unseen)
    coverage.may_be_fewer.extend(r for r in counted.may_be_fewer if r not in coverage.may_be_fewer)
    if any(e.passes_uncounted for e in entries):
        coverage.unseen.append(
            f"{os.path.basename(path)}:{line}: a loop written on the line jumps back through "
            "a conditional jump that no probe can count: its passes after the first, each "
            "an execution of the line, are not counted"
        )
    refusal: _plan.UnprobeableSite | None = None
    for entry in entries:
        shape = _plan.shape_of(binary, entry.host, probe)
        try:
            address, cfa = _plan._probe_point(
                binary, shape, entry.address, probe, f"line {line} in {entry.host.path}"
            )
        except _plan.UnprobeableSite as refused:
            # Its executions are not counted: the count becomes a lower bound that says so.
            plan.coverage_of(probe).left_out.append(refused.left_out)
            refusal = refusal or refused
            continue
        scope = lines.scope_at(binary, entry.address, path, line)
        located = (
            [
                (v.name, v.type, _settled(binary, entry.host, address, v, scope.frame_base, cfa))
                for v in scope.variables
            ]
            if scope is not None
            else []
        )
        values, pieces, derefs = _plan._site_values(located, plan.caps)
        point = LinePoint(
            path,
            line,
            address,
            entry.host.path,
            scope.function if scope is not None else None,
            entry.loops_back,
        )
        _add(plan, probe, point, address, cfa, values, pieces, derefs, scope is not None)
    if refusal is not None and (not plan.functions_of(probe) or any(e.loops_back for e in entries)):
        # No site of the line can be probed; or one that loops is, and its count (each pass
        # through its loop) would be no lower bound of the line's executions.
        raise refusal


def _settled(
    binary: ElfBinary,
    host: Symbol,
    address: int,
    variable: Parameter,
    frame_base: Any,
    cfa: Cfa,
) -> Any:
    """Where `variable` is at `address`; a stack slot DWARF gives for the whole scope only
    where the code provably keeps the value there (dwarf/slots.py), else Unavailable."""
    where = _plan._locate(variable, address, frame_base, cfa)
    location = variable.die.attributes.get("DW_AT_location")
    whole_scope = location is not None and location.form.startswith(
        ("DW_FORM_exprloc", "DW_FORM_block")
    )
    if not whole_scope or not isinstance(where, tuple):
        return where
    flow = lines.host_flow(binary, host)
    why = (
        slots.unsettled(binary, flow, address, where, lines.optimized(binary, address))
        if flow is not None
        else slots.STALE_SLOT.format(why="the function's code is not in the file")
    )
    return where if why is None else Unavailable(why)


def nearest_lines(binary: ElfBinary, path: str, line: int) -> list[int]:
    """The closest line with code before `line` and the closest after it."""
    with_code = sorted(lines.lines_with_code(binary, path))
    before = [n for n in with_code if n < line]
    after = [n for n in with_code if n > line]
    return ([before[-1]] if before else []) + ([after[0]] if after else [])


def _plan_usdt(plan: ProbePlan, probe: str) -> None:
    binary = plan.binary
    split = usdt.split_name(probe)
    if split is None:
        raise BadUsdtName(probe, binary.path)
    provider, name = split
    known = usdt.probes_of(binary)
    chosen = [p for p in known if p.provider == provider and p.name == name]
    if not chosen:
        raise NoSuchUsdtProbe(probe, binary.path, sorted({p.full_name for p in known}))
    for found in chosen:
        host = binary.function_containing(found.address)
        cfa = frames.cfa_at(binary, found.address) or Cfa(RSP, 8)
        located: list[tuple[str, RustType, Any]] = []
        for number, argument in enumerate(found.arguments):
            bits = 8 * argument.size
            spelled = f"{'i' if argument.signed else 'u'}{bits}"
            rust_type = RustType(spelled, "int", argument.size, argument.signed)
            where: Any = argument.location
            if isinstance(where, int):
                where = (where & (2**bits - 1)).to_bytes(argument.size, "little")
            elif isinstance(where, Piece):
                where = (where,)
            located.append((f"arg{number}", rust_type, where))
        values, pieces, derefs = _plan._site_values(located, plan.caps)
        host_path = host.path if host is not None else None
        point = UsdtPoint(provider, name, found.address, found.semaphore, host_path)
        semaphore = file_offset(binary, found.semaphore) if found.semaphore else None
        _add(plan, probe, point, found.address, cfa, values, pieces, derefs, True, semaphore)


def file_offset(binary: ElfBinary, address: int) -> int | None:
    """The file offset of virtual address `address` (through the PT_LOAD segments)."""
    for segment in binary.elf.iter_segments():
        if segment["p_type"] != "PT_LOAD":
            continue
        start = segment["p_vaddr"]
        if start <= address < start + segment["p_filesz"]:
            return int(segment["p_offset"] + address - start)
    return None


def writable_segments_covering(binary: ElfBinary, address: int) -> list[int]:
    """The virtual addresses of the writable PT_LOAD segments whose page-rounded file range
    holds the file offset of `address`. More than one: a kernel attaching the semaphore
    before the dynamic loader's RELRO protection picks the first, the wrong one (see
    bpf.session.Session.attach)."""
    offset = file_offset(binary, address)
    found: list[int] = []
    for segment in binary.elf.iter_segments():
        if offset is None or segment["p_type"] != "PT_LOAD" or not segment["p_flags"] & 2:
            continue
        low = segment["p_offset"] & ~0xFFF
        high = (segment["p_offset"] + segment["p_filesz"] + 0xFFF) & ~0xFFF
        if low <= offset < high:
            found.append(int(segment["p_vaddr"]))
    return found


def _add(
    plan: ProbePlan,
    probe: str,
    point: LinePoint | UsdtPoint,
    address: int,
    cfa: Cfa,
    values: list[Any],
    pieces: Any,
    derefs: Any,
    known: bool,
    semaphore: int | None = None,
) -> None:
    kind = _plan.SiteKind.LINE if isinstance(point, LinePoint) else _plan.SiteKind.USDT
    number = len(plan.functions)
    symbol = Symbol("", point.host or "?", address, 0, "point")
    plan.functions.append(
        _plan.PlannedFunction(
            probe,
            symbol,
            tuple(values),
            None,
            _plan.ReturnMode.NONE,
            None,
            arguments_known=known,
            point=point,
        )
    )
    plan.sites.append(
        _plan.Site(kind, address, number, cfa, pieces, derefs=derefs, semaphore=semaphore)
    )
