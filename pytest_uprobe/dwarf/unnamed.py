"""Whose function an inlined copy named by a bare name is (line-tables-only DWARF).

With `debug = "line-tables-only"` rustc names an abstract subprogram by its bare name
(`prec`, `parse<f64>`): no namespace, no linkage name, no declaration file. The name alone
cannot tell `exprkit::Parser::prec` from core's `str::parse::<f64>` inlined into the
crate's code. The line table can: the copy's own instructions (its address ranges, less
those of the copies inlined into it) come from lines of one `fn NAME`'s body in one
source file, and the source says which module and impl that fn sits in.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from ..elf import ElfBinary
from .entries import die_ranges, file_name
from .source import Definition, file_definitions, module_path, rows_in, text_of

_INLINED = "DW_TAG_inlined_subroutine"


class Identified(NamedTuple):
    """What a bare-named copy is: `path` when its code proves it; otherwise `why` says why
    it may be the crate's function and cannot be told, or both are None: its own code is
    all in the standard library's files (or it has none), so it is not the crate's."""

    path: str | None
    why: str | None
    declared_at: tuple[str, int] | None = None  # with `path`: the file and line of its `fn`


def identify_copy(
    binary: ElfBinary,
    die: Any,
    ranges: list[tuple[int, int]],
    name: str,
    call_site: tuple[str, int] | None = None,
) -> Identified:
    """Identify the copy `die` (its placed address `ranges`, called from `call_site`: file
    and line) of the function DWARF names only `name`."""
    bare, generics = _split(name)
    own, calls = _own_code(binary, die, ranges)
    lines: dict[str, set[int]] = {}
    std_code = False  # own code, or calls it makes, in the standard library's files
    for low, high in own:
        for row in rows_in(binary, low, high):
            if row.line > 0 and not row.file.startswith("/rustc/"):
                lines.setdefault(row.file, set()).add(row.line)
            std_code = std_code or row.file.startswith("/rustc/")
    # The lines of the calls it makes that were inlined into it are lines of its body too
    # (`SQ_CALLS.fetch_add(1, ..)` in `fn sq`, whose own `x * x` went elsewhere).
    for file, line in calls:
        if file.startswith("/rustc/"):
            std_code = True
        elif line > 0:
            lines.setdefault(file, set()).add(line)
    if not lines and std_code:
        return Identified(None, None)
    if not lines:  # no code of its own: only the copies inlined into it
        if not any(
            not row.file.startswith("/rustc/")
            for low, high in ranges
            for row in rows_in(binary, low, high)
        ):
            return Identified(None, None)
        return Identified(
            None,
            f"DWARF names it only `{name}`, and it has no code of its own to tell whose "
            "it is (only functions inlined into it)",
        )
    spelled = ", ".join(f"{f}:{_span(sorted(ls))}" for f, ls in sorted(lines.items()))
    found: list[tuple[str, Definition]] = []
    unread: list[str] = []
    for file, numbers in sorted(lines.items()):
        definitions = file_definitions(binary, file)
        if definitions is None:
            unread.append(file)
            continue
        for definition in definitions.get(bare, []):
            if any(definition.first_line <= n <= definition.last_line for n in numbers):
                found.append((file, definition))
    if bare.startswith("{"):  # `{closure#0}`, `{async_block#1}`: no `fn` in the source
        return Identified(
            None,
            f"DWARF names it only `{name}` (a closure or async body; its code is at "
            f"{spelled}), and which of the enclosing fn's bodies rustc numbered so cannot "
            "be told from the source",
        )
    if len(found) > 1:
        places = ", ".join(f"{f}:{d.first_line}" for f, d in found)
        return Identified(
            None,
            f"DWARF names it only `{name}`, and its code ({spelled}) "
            f"is in several `fn {bare}` ({places})",
        )
    if not found:
        if unread:
            return Identified(
                None,
                f"DWARF names it only `{name}`, and its code ({spelled}) "
                "is in source files that cannot be read here",
            )
        return Identified(
            None,
            f"DWARF names it only `{name}`, and its code ({spelled}) is "
            f"in no `fn {bare}` of those files",
        )
    file, definition = found[0]
    if (
        call_site is not None
        and _absolute(die.cu, call_site[0]) == file
        and (definition.first_line <= call_site[1] <= definition.last_line)
    ):
        # Called from inside the very fn its lines point at: its lines are the caller's
        # (LLVM gave the caller's line to code in the copy's range), not proof of identity.
        return Identified(
            None,
            f"DWARF names it only `{name}`, and the lines of its code ({spelled}) are those "
            f"of the fn that calls it (`fn {bare}` at {file}:{definition.first_line})",
        )
    module = module_path(binary, file)
    if module is None or definition.scope is None:
        what = "its file's module" if module is None else "the trait, impl or macro it is in"
        return Identified(
            None,
            f"DWARF names it only `{name}`, its code ({spelled}) is "
            f"`fn {bare}` at {file}:{definition.first_line}, and {what} cannot "
            "be told from the source",
        )
    path = "::".join((*module, *definition.scope, bare))
    named = f"{path}::{generics}" if generics else path
    return Identified(named, None, (file, definition.first_line))


def _split(name: str) -> tuple[str, str]:
    """`parse<f64>` -> (`parse`, `<f64>`), as DWARF spells a generic instance."""
    cut = name.find("<")
    return (name[:cut], name[cut:]) if cut > 0 else (name, "")


def _own_code(
    binary: ElfBinary, die: Any, ranges: list[tuple[int, int]]
) -> tuple[list[tuple[int, int]], list[tuple[str, int]]]:
    """`ranges` less the ranges of the copies inlined into this one (directly, under its
    lexical blocks too): the instructions that are the copy's own code; and the call file
    and line of each such copy (a call its body makes)."""
    nested: list[tuple[int, int]] = []
    calls: list[tuple[str, int]] = []
    pending = list(die.iter_children())
    while pending:
        child = pending.pop()
        if child.tag == _INLINED:
            nested.extend(die_ranges(binary, die.cu, child))
            attrs = child.attributes
            file = (
                file_name(binary, die.cu, attrs["DW_AT_call_file"].value)
                if ("DW_AT_call_file" in attrs)
                else None
            )
            line = attrs.get("DW_AT_call_line")
            if file is not None and line is not None:
                calls.append((_absolute(die.cu, file), int(line.value)))
        else:
            pending.extend(child.iter_children())
    own = [r for r in ranges if r[1] > r[0]]
    for cut_low, cut_high in nested:
        left: list[tuple[int, int]] = []
        for low, high in own:
            if cut_high <= low or high <= cut_low:
                left.append((low, high))
                continue
            if low < cut_low:
                left.append((low, cut_low))
            if cut_high < high:
                left.append((cut_high, high))
        own = left
    return own, calls


def _absolute(cu: Any, file: str) -> str:
    """A line table's file name as the rows name it: relative ones under the unit's
    DW_AT_comp_dir."""
    if os.path.isabs(file):
        return file
    directory = cu.get_top_DIE().attributes.get("DW_AT_comp_dir")
    base = text_of(directory.value) if directory is not None else ""
    return os.path.normpath(os.path.join(base, file))


def _span(numbers: list[int]) -> str:
    return str(numbers[0]) if numbers[0] == numbers[-1] else f"{numbers[0]}-{numbers[-1]}"
