"""What the source says at an address: line-table rows with their columns, and the Rust
source text they point at, read with comments and literals blanked out.

Two questions of the count bounds (bounds.py) need the source: which calls a function's
body makes of itself (recursion.py) and which function a call instruction was written to
call (merging.py). DWARF's line table names the file, line and column of every
instruction; the source at that column is the call expression the compiler emitted the
instruction for.
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .. import machine_code as code
from ..elf import ElfBinary
from ..names import crate_of
from .index import crate_roots, crate_unit_offsets, unit_offset_at

_TOMBSTONE = 0xFFFF_FFFF_FFFF_FFF0


@dataclass(frozen=True)
class Spot:
    """One line-table row: the code [address, end) comes from `file:line:column`."""

    address: int
    end: int
    file: str
    line: int
    column: int
    is_stmt: bool


def unit_rows(binary: ElfBinary, address: int) -> list[Spot]:
    """The rows, with columns, of the line table of the compile unit holding `address`,
    sorted by address; [] without DWARF."""
    if not binary.has_dwarf:
        return []
    offset = unit_offset_at(binary, address)
    if offset is None:
        return []
    memo = binary.memo("source.rows")
    found = memo.get(offset)
    if found is None:
        disk = binary.cache("columns")  # decoding a line program is slow: kept on disk
        stored = disk.get(("rows", 1, offset))
        if isinstance(stored, list):
            found = [Spot(*row) for row in stored]
        else:
            found = _read_rows(binary, offset)
            disk.put(("rows", 1, offset), [tuple(vars(row).values()) for row in found])
        memo[offset] = found
    return found


def _starts(binary: ElfBinary, rows: list[Spot]) -> list[int]:
    """The rows' addresses, for bisecting; kept per row list."""
    memo = binary.memo("source.starts")
    found = memo.get(id(rows))
    if found is None:
        found = memo[id(rows)] = [r.address for r in rows]
    return found


def rows_in(binary: ElfBinary, start: int, end: int) -> list[Spot]:
    """The rows covering any of [start, end)."""
    rows = unit_rows(binary, start)
    starts = _starts(binary, rows)
    i = max(bisect.bisect_right(starts, start) - 1, 0)
    found: list[Spot] = []
    for row in rows[i:]:
        if row.address >= end:
            break
        if row.end > start:
            found.append(row)
    return found


def row_at(binary: ElfBinary, address: int) -> Spot | None:
    rows = unit_rows(binary, address)
    starts = _starts(binary, rows)
    i = bisect.bisect_right(starts, address) - 1
    if i >= 0 and rows[i].address <= address < rows[i].end:
        return rows[i]
    return None


def _read_rows(binary: ElfBinary, offset: int) -> list[Spot]:
    dwarf = binary.dwarf
    cu = dwarf.get_CU_at(offset)
    program = dwarf.line_program_for_CU(cu)
    if program is None:
        return []
    files = file_names(cu, program)
    rows: list[Spot] = []
    previous: Any = None
    for entry in program.get_entries():
        state = entry.state
        if state is None:
            continue
        if previous is not None and state.address > previous.address:
            path = files.get(previous.file)
            if path is not None and 0 < previous.address < _TOMBSTONE:
                rows.append(
                    Spot(
                        previous.address,
                        state.address,
                        path,
                        previous.line,
                        previous.column,
                        bool(previous.is_stmt),
                    )
                )
        previous = None if state.end_sequence else state
    rows.sort(key=lambda r: r.address)
    return rows


def file_names(cu: Any, program: Any) -> dict[int, str]:
    """A unit's file table: file number -> full path (DWARF 4 counts from 1, 5 from 0)."""
    top = cu.get_top_DIE()
    comp = top.attributes.get("DW_AT_comp_dir")
    comp_dir = text_of(comp.value) if comp is not None else ""
    header = program.header
    v5 = header.version >= 5
    directories = [comp_dir] + [
        os.path.join(comp_dir, text_of(d)) for d in header.include_directory
    ]
    if v5:
        directories = [os.path.join(comp_dir, text_of(d)) for d in header.include_directory]
    files: dict[int, str] = {}
    for number, entry in enumerate(header.file_entry, start=0 if v5 else 1):
        directory = directories[entry.dir_index] if entry.dir_index < len(directories) else ""
        files[number] = os.path.normpath(os.path.join(directory, text_of(entry.name)))
    return files


def text_of(value: Any) -> str:
    """A DWARF string attribute's value as text."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


# -- the source text -----------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    """A Rust file's text, and the same text with comments, string and char literals
    blanked (same length, newlines kept), so that searches see code only."""

    path: str
    text: str
    code: str
    line_starts: tuple[int, ...]

    @classmethod
    def of(cls, path: str, text: str) -> SourceFile:
        starts = [0] + [m.end() for m in re.finditer("\n", text)]
        return cls(path, text, _blank(text), tuple(starts))

    def offset(self, line: int, column: int) -> int | None:
        """The offset of 1-based `line`:`column` (column 0: the line's start)."""
        if not 0 < line <= len(self.line_starts):
            return None
        return self.line_starts[line - 1] + max(column - 1, 0)

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of `offset`."""
        i = bisect.bisect_right(self.line_starts, offset) - 1
        return i + 1, offset - self.line_starts[i] + 1

    def line_text(self, line: int) -> str:
        start = self.line_starts[line - 1]
        end = self.text.find("\n", start)
        return self.text[start : end if end >= 0 else len(self.text)].strip()


def read_source(binary: ElfBinary, path: str) -> SourceFile | None:
    """The source file at `path` as DWARF names it, or None when it cannot be read (not on
    this machine, or the standard library's `/rustc/<hash>/` paths)."""
    memo = binary.memo("source.files")
    if path in memo:
        found: SourceFile | None = memo[path]
        return found
    found = None
    if path.endswith(".rs") and not path.startswith("/rustc/"):
        try:
            with open(path, encoding="utf-8", errors="replace") as stream:
                text = stream.read(4_000_000)
        except OSError:
            text = None
        if text is not None:
            found = SourceFile.of(path, text)
    memo[path] = found
    return found


_LITERAL = re.compile(
    r"""//[^\n]*"""  # line comment
    r"""|/\*(?:[^*]|\*(?!/))*\*/"""  # block comment (not nested)
    r"""|b?r(?P<hashes>\#*)"(?:.|\n)*?"(?P=hashes)"""  # raw string
    r"""|b?"(?:[^"\\]|\\.|\\\n)*\""""  # string
    r"""|b?'(?:[^'\\\n]|\\[^\n]{1,10}?)'"""  # char (a lifetime has no closing quote)
)


def _blank(text: str) -> str:
    def spaces(found: re.Match[str]) -> str:
        return re.sub(r"[^\n]", " ", found.group(0))

    return _LITERAL.sub(spaces, text)


_FN = r"\bfn\s+{name}\b"


def function_body(source: SourceFile, name: str, line: int) -> tuple[int, int, str] | None:
    """The body of `fn name` declared at or just after `line`: (start, end) offsets of its
    text between the braces, and its signature's text; None when not found."""
    start = source.offset(line, 0)
    if start is None:
        return None
    # The declaration line DWARF gives is the `fn` line; attributes may precede it.
    found = re.compile(_FN.format(name=re.escape(name))).search(source.code, start, start + 2000)
    if found is None:
        return None
    depth = 0
    i = found.end()
    code = source.code
    while i < len(code):
        c = code[i]
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == ";" and depth == 0:
            return None  # a declaration without a body (a trait's)
        elif c == "{" and depth == 0:
            break
        i += 1
    else:
        return None
    open_at = i
    braces = 0
    for j in range(open_at, len(code)):
        if code[j] == "{":
            braces += 1
        elif code[j] == "}":
            braces -= 1
            if braces == 0:
                return open_at + 1, j, code[found.start() : open_at]
    return None


_CALL = r"(?<![\w!])(?P<name>{name})\s*(?:::\s*<[^(){{}};]*>\s*)?\("


def calls_named(source: SourceFile, name: str, start: int, end: int) -> Iterator[Call]:
    """The call expressions of something named `name` in [start, end) of `source`."""
    pattern = re.compile(_CALL.format(name=re.escape(name)))
    for found in pattern.finditer(source.code, start, end):
        at = found.start("name")
        before = source.code[max(start, at - 200) : at].rstrip()
        if re.search(r"\bfn$", before):
            continue  # a nested function's definition
        kind = "plain"
        qualifier = ""
        expression_start = at
        if before.endswith("."):
            kind = "method"
            receiver = re.search(r"([\w.]*(?:\([^()]*\))?[\w.]*)\s*\.$", before)
            if receiver is not None:
                expression_start = max(start, at - 200) + receiver.start(1)
        elif before.endswith("::"):
            kind = "path"
            # `a::b::`, `Tree::<T>::`, `<T as Trait>::`: segments, each a name or <...>
            path = re.search(r"((?:(?:\w+|<[^<>(){};]*>)\s*::\s*)+)$", before)
            if path is not None:
                qualifier = re.sub(r"\s+", "", path.group(1))
                expression_start = max(start, at - 200) + path.start(1)
        yield Call(kind, qualifier, at, expression_start)


@dataclass(frozen=True)
class Call:
    """A call expression in the source: `plain` (`f(x)`), `method` (`x.f()`) or `path`
    (`Self::f(x)`, whose `qualifier` is `Self::`)."""

    kind: str
    qualifier: str
    name_offset: int
    expression_offset: int  # where the whole call expression starts (receiver, path)


_LOOP_HEAD = re.compile(r"(?:\A|[\s;{}])(?:'\w+\s*:\s*)?(?:loop|while|for)\b")


def inside_loop(source: SourceFile, body_start: int, offset: int) -> bool:
    """Whether the code at `offset` is in a loop of the source: inside the block of a
    `loop`, `while` or `for` that opens after `body_start`, or in such a loop's header
    (`for x in <here>`, `while <here>`)."""
    code = source.code
    loops: list[bool] = []  # per open brace: whether it opens a loop's block
    segment = body_start  # where the statement or header being read began
    for i in range(body_start, min(offset, len(code))):
        c = code[i]
        if c == "{":
            loops.append(_LOOP_HEAD.search(code, segment, i) is not None)
            segment = i + 1
        elif c == "}":
            if loops:
                loops.pop()
            segment = i + 1
        elif c == ";":
            segment = i + 1
    return any(loops) or _LOOP_HEAD.search(code, segment, offset) is not None


def crate_calls(binary: ElfBinary, crate: str) -> dict[int, list[int]]:
    """The direct calls and jumps (`call rel32`, `jmp rel32`) in the code of the crate's
    functions (those it names, and std's generic code instantiated in its compile units),
    by target: target -> the addresses of the instructions. Found by scanning the bytes,
    not by decoding: a false hit inside another instruction is possible, which is why
    every user of this list checks the source at the hit's line-table row. Kept per
    binary and crate."""
    memo = binary.memo("source.calls")
    found: dict[int, list[int]] | None = memo.get(crate)
    if found is not None:
        return found
    found = {}
    units = set(crate_unit_offsets(binary, crate))
    for function in binary.functions:
        if function.size <= 0:
            continue
        if (
            crate_of(function.path) != crate
            and unit_offset_at(binary, function.address) not in units
        ):
            continue
        raw = binary.code(function.address, function.size)
        if raw is None:
            continue
        for opcode in (0xE8, 0xE9):
            at = raw.find(opcode)
            while 0 <= at <= len(raw) - 5:
                source = function.address + at
                target = source + 5 + int.from_bytes(raw[at + 1 : at + 5], "little", signed=True)
                if not function.address <= target < function.end:
                    found.setdefault(target, []).append(source)
                at = raw.find(opcode, at + 1)
    memo[crate] = found
    return found


def calls_at(binary: ElfBinary, unit_address: int, file: str, line: int, columns: set[int]) -> bool:
    """Whether code of the compile unit holding `unit_address` whose row is `file:line`
    at one of `columns` calls something (a call, or a jump through a register)."""
    for row in unit_rows(binary, unit_address):
        if row.line != line or row.column not in columns or row.file != file:
            continue
        raw = binary.code(row.address, row.end - row.address)
        if raw is None:
            continue
        try:
            steps = code.steps(raw, row.address)
        except code.UndecodableCode:
            continue
        for step in steps:
            if is_call(raw[step.address - row.address :][: step.size]) or step.indirect:
                return True
    return False


def is_call(instruction: bytes) -> bool:
    """A call instruction: E8 rel32, or FF /2 (through a register or memory)."""
    if instruction[:1] and 0x40 <= instruction[0] <= 0x4F:  # REX prefix
        instruction = instruction[1:]
    if instruction[:1] == b"\xe8":
        return True
    return len(instruction) >= 2 and instruction[0] == 0xFF and (instruction[1] >> 3) & 7 == 2


# -- which function's body holds a line ----------------------------------------------------


@dataclass(frozen=True)
class Definition:
    """A `fn NAME` with a body in a source file: its lines, from the `fn` to the closing
    brace, and the path segments of the items it sits in (`["Parser"]` in `impl Parser`,
    `["ops"]` in `mod ops { }`), None when reading the source cannot tell them (a trait
    impl or a trait, a macro, an impl of a type spelled with a path or not defined here)."""

    name: str
    first_line: int
    last_line: int
    scope: tuple[str, ...] | None


_ITEM = re.compile(
    r"\{|\}|\bfn\s+(?P<fn>[A-Za-z_]\w*)|\bmod\s+(?P<mod>[A-Za-z_]\w*)\s*\{"
    r"|\b(?P<head>impl|trait|macro_rules!)"
)


def definitions(source: SourceFile) -> dict[str, list[Definition]]:
    """Every `fn` with a body in `source`, by name (kept on the SourceFile's reader)."""
    code = source.code
    found: dict[str, list[Definition]] = {}
    # One entry per open brace: (the scope segment it adds, or None: unknowable; "" adds
    # nothing; the fn it opens the body of, with its first line).
    stack: list[tuple[str | None, tuple[str, int] | None]] = []
    pending_fn: tuple[str, int] | None = None
    pending_head: tuple[str, int] | None = None  # impl/trait/macro and where it starts
    for token in _ITEM.finditer(code):
        text = token.group(0)
        if token.group("fn"):  # a fn in a fn's body is named after that fn too (the stack)
            pending_fn = (token.group("fn"), source.position(token.start())[0])
            pending_head = None
            continue
        if token.group("mod"):
            stack.append((token.group("mod"), None))
            pending_fn = pending_head = None
            continue
        if token.group("head"):
            if pending_fn is None:
                pending_head = (token.group("head"), token.start())
            continue
        if text == "{":
            if pending_fn is not None and _declaration_ended(
                code, token.start(), pending_fn, source
            ):
                pending_fn = None
            if pending_fn is not None:
                stack.append((pending_fn[0], pending_fn))
                pending_fn = None
            elif pending_head is not None:
                stack.append((_impl_segment(code, pending_head, token.start()), None))
                pending_head = None
            else:
                stack.append(("", None))
            continue
        # "}"
        if not stack:
            continue
        segment, opened = stack.pop()
        if opened is not None:
            scope: tuple[str, ...] | None = ()
            for outer, _ in stack:
                if outer is None or scope is None:
                    scope = None
                elif outer:
                    scope = (*scope, outer)
            last = source.position(token.start())[0]
            found.setdefault(opened[0], []).append(Definition(opened[0], opened[1], last, scope))
    return found


def _declaration_ended(code: str, brace: int, fn: tuple[str, int], source: SourceFile) -> bool:
    """Whether a `;` ends the pending fn's declaration before this brace (a trait's
    method without a body)."""
    start = source.offset(fn[1], 0) or 0
    depth = 0
    for i in range(start, brace):
        c = code[i]
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == ";" and depth == 0:
            return True
    return False


def _impl_segment(code: str, head: tuple[str, int], brace: int) -> str | None:
    """The path segment an `impl Type {` adds (`Type`); None for what cannot be told from
    the source alone: a trait impl (`<Type as Trait>` needs the trait's path), a trait, a
    macro, or a type spelled with a path."""
    kind, start = head
    if kind != "impl":
        return None
    header = code[start + len("impl") : brace]
    header = re.split(r"\bwhere\b", header)[0]
    header = _without_generics(header).strip()
    if re.search(r"\bfor\b", header) or not re.fullmatch(r"[A-Za-z_]\w*", header):
        return None
    if not re.search(rf"\b(?:struct|enum|union|type)\s+{re.escape(header)}\b", code):
        return None  # a type of another module: its path is not this file's
    return header


def _without_generics(text: str) -> str:
    out: list[str] = []
    depth = 0
    for c in text:
        if c == "<":
            depth += 1
        elif c == ">" and depth:
            depth -= 1
        elif depth == 0:
            out.append(c)
    return "".join(out)


def file_definitions(binary: ElfBinary, path: str) -> dict[str, list[Definition]] | None:
    """`definitions` of the file at `path`, read once per binary; None if unreadable."""
    memo = binary.memo("source.definitions")
    if path not in memo:
        source = read_source(binary, path)
        memo[path] = definitions(source) if source is not None else None
    found: dict[str, list[Definition]] | None = memo[path]
    return found


def module_path(binary: ElfBinary, path: str) -> tuple[str, ...] | None:
    """The crate and modules a source file holds the items of (`("exprkit", "ops")` for
    src/ops.rs of crate exprkit), from the crate roots DWARF names (each unit's
    `<root file>/@/<crate>.<hash>-cgu.<n>`) and the `mod` declarations that lead from a
    root to the file; None when no declared chain of modules reaches it."""
    memo = binary.memo("source.modules")
    if path in memo:
        known: tuple[str, ...] | None = memo[path]
        return known
    found: tuple[str, ...] | None = None
    for root, crate in crate_roots(binary).items():
        if path == root:
            found = (crate,)
            break
        base = os.path.dirname(root)
        relative = os.path.relpath(path, base)
        if relative.startswith(".."):
            continue
        parts = relative[: -len(".rs")].split(os.sep)
        if parts[-1] == "mod":
            parts.pop()
        chain = _declared_chain(binary, root, base, parts)
        if chain:
            found = (crate, *parts)
            break
    memo[path] = found
    return found


def _declared_chain(binary: ElfBinary, root: str, base: str, parts: list[str]) -> bool:
    """Whether `mod parts[0];` is declared in the root, `mod parts[1];` in that module's
    file, and so on."""
    parent = root
    for depth, part in enumerate(parts):
        source = read_source(binary, parent)
        if source is None or not re.search(rf"\bmod\s+{re.escape(part)}\s*;", source.code):
            return False
        directory = os.path.join(base, *parts[: depth + 1])
        parent = directory + ".rs"
        if not os.path.exists(parent):
            parent = os.path.join(directory, "mod.rs")
    return True
