"""What `pytest-uprobe lines` prints: the probe-able lines of a file or of a function."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .dwarf import lines
from .elf import ElfBinary
from .names import matcher
from .plan import resolve, shape_of
from .points import resolve_source_file


@dataclass(frozen=True)
class LineRow:
    probe: str  # the probe name that counts it: `<file as given or relative>:<line>`
    file: str  # full path, as the line table names it
    line: int
    addresses: tuple[int, ...]  # the sites: where executions of the line begin
    functions: tuple[str, ...]  # the functions holding those sites, demangled
    loops_back: bool  # some site is also reached from inside the line
    # Empty: the count is exact. Else the shapes (`pieces`, `copies`, `loop header`, ...)
    # that make it a bound exact assertions refuse (dwarf.lines.count_shape says why).
    bound: tuple[str, ...] = ()


def line_rows(binary: ElfBinary, file: str | None, function: str | None) -> list[LineRow]:
    """Every line with code of `file` (or of the function `function`), with its sites."""
    wanted: set[tuple[str, int]] = set()
    hosts: set[int] | None = None
    path = resolve_source_file(binary, f"{file}:1", file) if file is not None else None
    if function is not None:
        symbols = resolve(binary, function)
        hosts = {s.address for s in symbols}
        for symbol in symbols:
            wanted |= lines.lines_in_range(binary, symbol.address, symbol.end)
        if path is not None:
            wanted = {pair for pair in wanted if pair[0] == path}
    elif path is not None:
        wanted = {(path, n) for n in lines.lines_with_code(binary, path)}
    matches = matcher(function) if function is not None else None
    rows: list[LineRow] = []
    for source, line in sorted(wanted):
        entries = lines.entry_points(binary, source, line)
        if hosts is not None and matches is not None:
            entries = [e for e in entries if e.host.address in hosts or matches(e.host.path)]
        # Sites no uprobe can take (a `lock`-prefixed instruction with no stand-in) are not
        # listed; a line left with none, or with one that loops, cannot be probed (see
        # points._plan_line).
        probeable = [e for e in entries if _probeable(binary, e)]
        if len(probeable) < len(entries) and any(e.loops_back for e in entries):
            continue
        entries = probeable
        if not entries:
            continue
        shown = file if file is not None and source == path else _short(source)
        rows.append(
            LineRow(
                f"{shown}:{line}",
                source,
                line,
                tuple(e.address for e in entries),
                tuple(sorted({e.host.path for e in entries})),
                any(e.loops_back for e in entries),
                lines.count_shape(binary, source, line, entries).shapes,
            )
        )
    return rows


def _probeable(binary: ElfBinary, entry: lines.LineEntry) -> bool:
    shape = shape_of(binary, entry.host, entry.host.path)
    return shape.probe_point(entry.address) is not None


def _short(source: str) -> str:
    """A path relative to the working directory when it lies below it, else as it is."""
    here = os.getcwd()
    return os.path.relpath(source, here) if source.startswith(here + os.sep) else source
