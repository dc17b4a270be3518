"""Functions the optimizer merged into another one and whose names are gone.

LLVM's function merging keeps one of several functions with identical bodies. Where
the others' addresses do not matter (rustc marks functions `unnamed_addr`), it points
their callers at the survivor and deletes them: no symbol, no DWARF subprogram. A probe
on the survivor then counts their calls too, and a probe on one of them finds nothing.

What is left is the call instructions: each still has the line-table row of the call
expression the programmer wrote, and the source there names the function called. A call
of `twin_a` whose row points at `twin_b(n)`, where the crate's source defines `fn
twin_b` and the binary has no function of that name, is a call of `twin_b` merged into
`twin_a`. This needs the source files; without them nothing is found (and nothing is
claimed).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from ..elf import ElfBinary, Symbol
from ..names import crate_of, strip_generics
from . import source


@dataclass(frozen=True)
class MergedAway:
    """Calls of `name` (defined at `defined`) that run as `survivor`; `where` is one of
    those calls in the source."""

    survivor: str
    name: str
    defined: str
    where: str

    @property
    def path(self) -> str:
        """Its path, taken to be in the survivor's module (merging works within one)."""
        parent = strip_generics(self.survivor).rpartition("::")[0]
        return f"{parent}::{self.name}" if parent else self.name

    def __str__(self) -> str:
        return (
            f"calls of `{self.name}` (defined at {self.defined}; called at {self.where}) run "
            f"as {self.survivor}: the optimizer merged the two functions' identical bodies "
            f"and removed `{self.name}`, so its calls are counted as {self.survivor}'s (fix: "
            "trace a dev build, which keeps every function)"
        )


def merged_into(binary: ElfBinary, symbol: Symbol) -> list[MergedAway]:
    """The functions whose calls run as `symbol` because the optimizer merged them into it
    and removed their names (found through their call sites in the source)."""
    memo = binary.memo("merging")
    if symbol.address in memo:
        known: list[MergedAway] = memo[symbol.address]
        return known
    try:
        found = list(_merged_into(binary, symbol))
    except (OSError, ValueError, KeyError, IndexError):
        found = []  # DWARF this reader cannot follow: no evidence
    memo[symbol.address] = found
    return found


def survivor_of(binary: ElfBinary, probe: str) -> MergedAway | None:
    """For a name the binary lacks: the function its source call sites now call, when
    those calls go to a function of another name (it was merged into that one)."""
    crate = crate_of(probe)
    name = strip_generics(probe).rsplit("::", 1)[-1]
    if crate is None or not name.isidentifier() or not binary.has_dwarf:
        return None
    try:
        for target, spot, text in source.crate_calls(binary, crate):
            if target is not None and _called_name(text, spot) == name:
                for symbol in binary.functions_by_address.get(target, ()):
                    survivor = _last(symbol.path)
                    if survivor != name and survivor.isidentifier():
                        defined = _definition(binary, crate, name)
                        if defined is not None:
                            return MergedAway(
                                symbol.path, name, defined, f"{text.path}:{spot.line}"
                            )
    except (OSError, ValueError, KeyError, IndexError):
        return None
    return None


def _merged_into(binary: ElfBinary, symbol: Symbol) -> Iterator[MergedAway]:
    crate = crate_of(symbol.path)
    own = _last(symbol.path)
    if crate is None or not own.isidentifier() or not binary.has_dwarf:
        return
    known = {_last(f.path) for f in binary.functions}
    reported: set[str] = set()
    for target, spot, text in source.crate_calls(binary, crate):
        if target != symbol.address:
            continue
        called = _called_name(text, spot)
        if called is None or called == own or called in known or called in reported:
            continue
        defined = _definition(binary, crate, called)
        if defined is None:
            continue  # a variable holding it (`let f = twin_a; f(1)`), not a function
        reported.add(called)
        yield MergedAway(symbol.path, called, defined, f"{text.path}:{spot.line}")


def _last(path: str) -> str:
    return strip_generics(path).rsplit("::", 1)[-1]


_NAME_AT = re.compile(r"[A-Za-z_]\w*")


def _called_name(text: source.SourceFile, spot: source.Spot) -> str | None:
    """The function a call expression at `spot` names: `twin_b` for `twin_b(n)`,
    `crate::m::twin_b(n)`, `x.twin_b()` (the row points at the name or the path's start)."""
    offset = text.offset(spot.line, spot.column)
    if offset is None or spot.column == 0:
        return None
    code_text = text.code
    found = re.compile(
        r"(?:[A-Za-z_]\w*\s*(?:::\s*<[^(){};]*>\s*)?::\s*)*([A-Za-z_]\w*)\s*(?:::\s*<[^(){};]*>\s*)?\("
    ).match(code_text, offset)
    if found is None:
        return None
    return found.group(1)


def _definition(binary: ElfBinary, crate: str, name: str) -> str | None:
    """Where the crate's source defines `fn name` (`path:line`), among the source files
    its line tables name."""
    memo = binary.memo("merging.definitions")
    key = (crate, name)
    if key in memo:
        known: str | None = memo[key]
        return known
    pattern = re.compile(rf"\bfn\s+{re.escape(name)}\b")
    found = None
    files = sorted(
        {text.path: text for _, _, text in source.crate_calls(binary, crate)}.values(),
        key=lambda t: t.path,
    )
    for text in files:
        hit = pattern.search(text.code)
        if hit is not None:
            line, _ = text.position(hit.start())
            found = f"{text.path}:{line}"
            break
    memo[key] = found
    return found
