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
from pathlib import Path

from ..elf import ElfBinary, Symbol
from ..names import crate_of, strip_generics
from . import source

_VERSION = 2  # of how the answer kept on disk is found: bump when that changes


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
    try:
        memo = binary.memo("merging")
        if symbol.address in memo:
            known: list[MergedAway] = memo[symbol.address]
            return known
        disk = binary.cache("counts")  # the answer, for the next process (plain data)
        key = ("merged", _VERSION, symbol.address)
        stored = disk.get(key)
        if isinstance(stored, list):
            found = [MergedAway(*fields) for fields in stored]
        else:
            found = list(_merged_into(binary, symbol))
            disk.put(key, [tuple(vars(m).values()) for m in found])
        memo[symbol.address] = found
    except Exception:  # DWARF or source this reader cannot follow: no evidence
        return []
    return found


def survivor_of(binary: ElfBinary, probe: str) -> MergedAway | None:
    """For a name the binary lacks: the function its source call sites now call, when
    those calls go to a function of another name (it was merged into that one)."""
    crate = crate_of(probe)
    name = _last(probe)
    if crate is None or not name.isidentifier():
        return None
    try:
        if not binary.has_dwarf:
            return None
        for target in source.crate_calls(binary, crate):
            for spot, text in _calls_to(binary, crate, target):
                if _called_name(text, spot) != name:
                    continue
                for symbol in binary.functions_by_address.get(target, ()):
                    survivor = _last(symbol.path)
                    if survivor == name or not survivor.isidentifier():
                        continue
                    defined = _definition(binary, symbol, text, name)
                    if defined is not None:
                        return MergedAway(symbol.path, name, defined, f"{text.path}:{spot.line}")
    except Exception:  # DWARF or source this reader cannot follow: no evidence
        return None
    return None


def _merged_into(binary: ElfBinary, symbol: Symbol) -> Iterator[MergedAway]:
    crate = crate_of(symbol.path)
    own = _last(symbol.path)
    if crate is None or not own.isidentifier() or not binary.has_dwarf:
        return
    known = _known_names(binary)
    reported: set[str] = set()
    for spot, text in _calls_to(binary, crate, symbol.address):
        called = _called_name(text, spot)
        if called is None or called == own or called in known or called in reported:
            continue
        defined = _definition(binary, symbol, text, called)
        if defined is None:
            continue  # a variable holding it (`let f = twin_a; f(1)`), not a function
        reported.add(called)
        yield MergedAway(symbol.path, called, defined, f"{text.path}:{spot.line}")


def _calls_to(
    binary: ElfBinary, crate: str, target: int
) -> Iterator[tuple[source.Spot, source.SourceFile]]:
    """The line-table rows, with readable source, of the crate's calls of `target`."""
    for address in source.crate_calls(binary, crate).get(target, ()):
        spot = source.row_at(binary, address)
        if spot is None or spot.line == 0 or spot.column == 0:
            continue
        text = source.read_source(binary, spot.file)
        if text is not None:
            yield spot, text


def _known_names(binary: ElfBinary) -> set[str]:
    """The last names of the binary's functions."""
    memo = binary.memo("merging.names")
    if "names" not in memo:
        memo["names"] = {_last(f.path) for f in binary.functions}
    names: set[str] = memo["names"]
    return names


def _last(path: str) -> str:
    return strip_generics(path).rsplit("::", 1)[-1]


_CALLED = re.compile(
    r"(?:[A-Za-z_]\w*\s*(?:::\s*<[^(){};]*>\s*)?::\s*)*"  # a path to it
    r"([A-Za-z_]\w*)\s*(?:::\s*<[^(){};]*>\s*)?\("  # its name, generic arguments, `(`
)


def _called_name(text: source.SourceFile, spot: source.Spot) -> str | None:
    """The function a call expression at `spot` names: `twin_b` for `twin_b(n)`,
    `crate::m::twin_b(n)`, `x.twin_b()` (the row points at the name or the path's start)."""
    offset = text.offset(spot.line, spot.column)
    found = _CALLED.match(text.code, offset) if offset is not None else None
    return found.group(1) if found is not None else None


def _definition(
    binary: ElfBinary, survivor: Symbol, caller: source.SourceFile, name: str
) -> str | None:
    """Where the crate's source defines `fn name` (`path:line`): in the calling file, the
    survivor's, or another file of the survivor's package (the directory with its
    Cargo.toml)."""
    memo = binary.memo("merging.definitions")
    key = (survivor.address, caller.path, name)
    if key in memo:
        known: str | None = memo[key]
        return known
    pattern = re.compile(rf"\bfn\s+{re.escape(name)}\b")
    candidates = [caller.path]
    home = source.row_at(binary, survivor.address)
    if home is not None:
        candidates.append(home.file)
        package = Path(home.file).parent
        while package != package.parent and not (package / "Cargo.toml").is_file():
            package = package.parent
        if (package / "Cargo.toml").is_file():
            candidates += [str(p) for p in sorted(package.rglob("*.rs"))[:500]]
    found = None
    for path in dict.fromkeys(candidates):
        text = source.read_source(binary, path)
        hit = pattern.search(text.code) if text is not None else None
        if text is not None and hit is not None:
            found = f"{text.path}:{text.position(hit.start())[0]}"
            break
    memo[key] = found
    return found
