"""Inlining snapshots: where the copies of each function are in a release build.

`inlining(exe, "mycrate::*")` says, for every function the glob names, whether it has code
of its own (out of line, and how many instances), and into which callers the compiler
copied it, with the number of copies in each. The text names callers, never addresses or
line numbers, so it changes only when an inlining decision does. Built on the planner's
`find_sites` (symbols, and DWARF's inlined subroutines through dwarf.inlined).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

from . import plan as planner
from .abi_snapshot import NO_DWARF, copies_by_path, display_paths
from .elf import ElfBinary
from .errors import UsageError
from .options import MAX_FUNCTIONS
from .snapshot import Report


@dataclass(frozen=True)
class Inlining:
    """Where one function's code is. `copies`: (caller, number of copies), by caller."""

    path: str
    out_of_line: int  # instances with code of their own (generic instances count apart)
    copies: tuple[tuple[str, int], ...] = ()
    unknown: str | None = None  # why the inlined copies cannot be known

    @property
    def key(self) -> str:
        return self.path

    @property
    def callers(self) -> list[str]:
        return [caller for caller, _ in self.copies]

    def copies_in(self, caller: str) -> int:
        return dict(self.copies).get(caller, 0)

    def lines(self) -> list[str]:
        if self.out_of_line == 0:
            own = "no"
        elif self.out_of_line == 1:
            own = "yes"
        else:
            own = f"yes, {self.out_of_line} instances"
        lines = [self.path, f"  out of line: {own}"]
        if self.unknown is not None:
            return [*lines, f"  inlined: unknown: {self.unknown}"]
        if not self.copies:
            return [*lines, "  inlined: nowhere"]
        for caller, count in self.copies:
            lines.append(f"  inlined into {caller}: {count} {'copy' if count == 1 else 'copies'}")
        return lines


class InliningReport(Report[Inlining]):
    """`Inlining` records by path; `repr()` is the snapshot text."""

    title = "inlining"


def inlining(
    executable: str | os.PathLike[str],
    glob: str,
    *,
    max_functions: int = MAX_FUNCTIONS.default,
) -> InliningReport:
    """Where the code of every function `glob` names is: out of line, and inlined into
    which callers how many times. Raises the probe-name errors a trace would."""
    if not isinstance(glob, str):
        raise UsageError(f"the glob must be a str such as 'mycrate::*', got {glob!r}")
    binary = ElfBinary.open(executable)
    sites = planner.find_sites(binary, glob, max_functions=max_functions)
    # Generic instances (one path under legacy mangling) count as one function here.
    named = display_paths(binary, glob, sites.out_of_line, generics=False)
    own = Counter(path for _, path in named)
    copies: dict[str, Counter[str]] = {}
    for path, found in copies_by_path(binary, named, sites.inlined).items():
        copies[path] = Counter(copy.caller for copy in found)
    unknown = None if binary.has_dwarf else NO_DWARF
    records = [
        Inlining(
            path, own.get(path, 0), tuple(sorted(copies.get(path, Counter()).items())), unknown
        )
        for path in set(own) | set(copies)
    ]
    return InliningReport(records)
