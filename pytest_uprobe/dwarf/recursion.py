"""Calls of a function to itself that an optimized build turned into a loop (or into
arithmetic), so that no probe on the function sees them.

LLVM's tail-recursion elimination turns `return f(x)`, and `acc + f(x)` with an
associative operator, into a jump back to the start of the function's body: `fib(n - 1) +
fib(n - 2)` keeps the first call and loops for the second; `gcd(b, a % b)` is a loop with
no call left; `n + sum_to(n - 1)` can end as a closed formula with no loop either. Each
call the loop stands for runs the body again without entering the function.

Two kinds of evidence, either of which makes the count a lower bound (see bounds.py):

1. The source: a call the body makes of itself (`fib(..)`, `Self::fib(..)`, `self.walk(..)`
   in a method) whose line and column have neither a call instruction of the function, nor
   a call of some other function, nor an inlined copy in the function's code: the call is
   not in the machine code as a call.
2. The machine code: a function that calls itself and has a loop (a jump back) whose body
   runs the code of the function's first statement again (the same source position and,
   for inlined code, the same function inlined there). Ordinary loops do not run a
   function's first statement again, unless that statement is in (or heads) a loop of the
   source, which is checked when the source can be read; without it, such a recursive
   function is flagged: a bound where the count was exact, never the other way round.

The first needs the source file (DWARF's path to it); the second finds loops that keep
one call of the function. A check that fails with an error it did not expect answers a
lower bound naming the error (`how == "unchecked"`), never "no evidence", which would
leave the count exact. A release build whose source is gone and whose recursion is
left without any call of the function (pure tail recursion) is not detected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .. import machine_code as code
from ..elf import ElfBinary, Symbol
from ..names import crate_of, strip_generics
from . import index, source
from .index import function_at, origin_holder
from .lines import die_ranges

_VERSION = 4  # of how the answer kept on disk is found: bump when that changes


@dataclass(frozen=True)
class LoopedRecursion:
    """Why calls of a function to itself are not all seen: where (`where`, a source
    position) and what the source shows there (`text`)."""

    function: str
    where: str
    text: str
    how: str  # "no call", "loops back", or "unchecked" (`where`: the error the check met)

    def __str__(self) -> str:
        if self.how == "unchecked":
            return (
                f"whether the optimizer turned calls of {self.function} to itself into a "
                f"loop could not be checked ({self.where}), so calls of it to itself may "
                "have run without entering it and not be counted (a bug in pytest-uprobe: "
                "please report it with this message; a dev build has no such loops)"
            )
        place = f"{self.where}: `{self.text}`" if self.text else self.where
        if self.how == "no call":
            what = f"its call of itself at {place} has no call instruction in the machine code"
        else:
            what = (
                f"its first statement ({place}) runs again in a loop that also calls it, "
                "with no call in between"
            )
        return (
            f"the optimizer turned calls of {self.function} to itself into a loop (or "
            f"arithmetic): {what}, so the calls that loop stands for run without entering "
            "the function and are not counted (fix: trace a dev build, or keep the "
            "recursive call from being the function's last act, e.g. "
            "`std::hint::black_box(f(..))`, in the build you trace)"
        )


def looped_recursion(binary: ElfBinary, symbol: Symbol) -> LoopedRecursion | None:
    """Why calls of `symbol` to itself may not all enter it, or None when every call of
    itself in its source has a call instruction and no loop re-runs its body."""
    try:
        memo = binary.memo("recursion")
        if symbol.address in memo:
            known: LoopedRecursion | None = memo[symbol.address]
            return known
        disk = binary.cache("counts")  # the answer, for the next process (plain data)
        key = ("recursion", _VERSION, symbol.address)
        stored = disk.get(key)
        if isinstance(stored, tuple):
            found = LoopedRecursion(*stored) if stored else None
        else:
            found = _find(binary, symbol)
            disk.put(key, tuple(vars(found).values()) if found else ())
        memo[symbol.address] = found
    except Exception as error:  # any error: the answer is unknown, and said so
        return _unchecked(symbol.path, error)
    return found


def _unchecked(function: str, error: Exception) -> LoopedRecursion:
    """The answer when the check itself failed: not "no evidence" (an exact count) but a
    lower bound that names the error."""
    detail = f"{type(error).__name__}: {error}".strip()
    if len(detail) > 200:
        detail = detail[:200] + "..."
    return LoopedRecursion(function, detail, "", "unchecked")


@dataclass(frozen=True)
class _Place:
    file: str
    line: int
    column: int
    callee: str = ""  # for code inlined there: the function inlined (a `for` line's
    # iterator set-up and its `next()` share the line and column, not the callee)


def looped_recursion_inlined(
    binary: ElfBinary, path: str, origin: Any, entry: int
) -> LoopedRecursion | None:
    """The same question for a copy of `path` inlined at `entry` (`origin`: its abstract
    subprogram DIE): a recursive function whose calls of itself all became a loop has no
    out-of-line code left to call, and is inlined whole. Answered from the source: a call
    of itself with no call at its line and column in the code of the function it was
    inlined into."""
    try:
        host = binary.function_containing(entry)
        if host is None or origin is None or not binary.has_dwarf:
            return None
        memo = binary.memo("recursion.inlined")
        key = (path, host.address)
        if key not in memo:
            memo[key] = _find_inlined(binary, path, origin, host)
        found: LoopedRecursion | None = memo[key]
    except Exception as error:  # any error: the answer is unknown, and said so
        return _unchecked(path, error)
    return found


def _find_inlined(
    binary: ElfBinary, path: str, origin: Any, host: Symbol
) -> LoopedRecursion | None:
    name = strip_generics(path).rsplit("::", 1)[-1]
    text, sites, _ = _sites_in_source(binary, path, name, origin)
    info = function_at(binary, host.address)
    raw = binary.code(host.address, host.size)
    if text is None or not sites or info is None or raw is None:
        return None
    steps = code.steps(raw, host.address)
    calls = _calls_out(raw, host, steps)
    inlined = _inlined_calls(binary, info.die, nested=True)
    return _call_without_instruction(binary, path, host.address, text, sites, calls, steps, inlined)


def _calls_out(raw: bytes, symbol: Symbol, steps: list[code.Step]) -> set[int]:
    """Calls out of the function: call instructions, tail calls, jumps through a register."""
    found: set[int] = set()
    for step in steps:
        target = _target(raw, symbol.address, step)
        instruction = raw[step.address - symbol.address :][: step.size]
        leaves = target is not None and not symbol.address <= target < symbol.end
        if step.indirect or leaves or source.is_call(instruction):
            found.add(step.address)
    return found


def _find(binary: ElfBinary, symbol: Symbol) -> LoopedRecursion | None:
    if not binary.has_dwarf or symbol.size <= 0:
        return None
    info = function_at(binary, symbol.address)
    raw = binary.code(symbol.address, symbol.size)
    if info is None or raw is None:
        return None
    steps = code.steps(raw, symbol.address)
    targets = {s.address: _target(raw, symbol.address, s) for s in steps}
    self_calls = [a for a, t in targets.items() if t == symbol.address]
    name = strip_generics(symbol.path).rsplit("::", 1)[-1]
    text, sites, body_start = _sites_in_source(binary, symbol.path, name, info.die)
    if not sites and not self_calls:
        return None  # the common case, decided without the line table
    inlined = _inlined_calls(binary, info.die)
    if text is not None and sites:
        calls = _calls_out(raw, symbol, steps)
        found = _call_without_instruction(
            binary, symbol.path, symbol.address, text, sites, calls, steps, inlined
        )
        if found is not None:
            return found
    if self_calls:
        start = info.prologue_end or symbol.address
        return _loop_rerunning_start(
            binary, symbol, start, steps, inlined, text, body_start, self_calls
        )
    return None


@dataclass(frozen=True)
class _Site:
    """A call of the function by itself in its source: its line and the columns the line
    table may give it (the name's, and the expression's start)."""

    line: int
    columns: frozenset[int]


def _sites_in_source(
    binary: ElfBinary, path: str, name: str, die: Any
) -> tuple[source.SourceFile | None, list[_Site], int | None]:
    """The function's source file (None when unreadable), the calls its body makes of a
    function of its own name that can be itself, and where its body starts."""
    holder = origin_holder(die, "DW_AT_decl_file")
    line_holder = origin_holder(die, "DW_AT_decl_line")
    if holder is None or line_holder is None or not name.isidentifier():
        return None, [], None
    files = _decl_files(binary, holder)
    file = files.get(holder.attributes["DW_AT_decl_file"].value)
    text = source.read_source(binary, file) if file is not None else None
    if text is None:
        return None, [], None
    decl_line = int(line_holder.attributes["DW_AT_decl_line"].value)
    body = source.function_body(text, name, decl_line)
    if body is None:
        return text, [], None
    start, end, signature = body
    is_method = re.search(r"\(\s*(?:&\s*(?:'\w+\s+)?)?(?:mut\s+)?self\b", signature) is not None
    qualifiers = {"Self", "crate", "self", "super"} | set(
        re.findall(r"[A-Za-z_]\w*", strip_generics(path).rsplit("::", 1)[0])
    )
    sites: list[_Site] = []
    for call in source.calls_named(text, name, start, end):
        if call.kind == "method" and not is_method:
            continue  # `x.len()` in a free function `len` is some type's method
        if call.kind == "path":
            last = re.sub(r"<.*>", "", call.qualifier).rstrip(":").rsplit("::", 1)[-1]
            if last not in qualifiers:
                continue  # `Vec::new()` in `Tree::new`
        line, column = text.position(call.name_offset)
        sites.append(_Site(line, frozenset({column, text.position(call.expression_offset)[1]})))
    return text, sites, start


def _target(raw: bytes, start: int, step: code.Step) -> int | None:
    """The target of a direct call (E8 rel32) or jump at `step`, else None."""
    if step.target is not None:
        return step.target
    at = step.address - start
    if step.size == 5 and raw[at] == 0xE8:
        return step.address + 5 + int.from_bytes(raw[at + 1 : at + 5], "little", signed=True)
    return None


@dataclass(frozen=True)
class _Inlined:
    ranges: tuple[tuple[int, int], ...]
    call: _Place | None
    origin: str


def _inlined_calls(binary: ElfBinary, die: Any, nested: bool = False) -> list[_Inlined]:
    """The outermost inlined copies in a function's code (with `nested`, every one), with
    the call each stands for."""
    found: list[_Inlined] = []
    files = _decl_files(binary, die)
    stack = list(die.iter_children())
    while stack:
        child = stack.pop()
        if child.tag == "DW_TAG_inlined_subroutine":
            attrs = child.attributes
            line = attrs.get("DW_AT_call_line")
            column = attrs.get("DW_AT_call_column")
            number = attrs.get("DW_AT_call_file")
            call = None
            if line is not None and number is not None and number.value in files:
                call = _Place(files[number.value], line.value, column.value if column else 0)
            found.append(_Inlined(tuple(die_ranges(binary, child)), call, _origin_name(child)))
            if nested:
                stack.extend(child.iter_children())
        elif child.tag == "DW_TAG_lexical_block":
            stack.extend(child.iter_children())
    return found


def _origin_name(die: Any) -> str:
    for _ in range(4):
        name = die.attributes.get("DW_AT_name")
        if name is not None:
            return source.text_of(name.value)
        link = die.attributes.get("DW_AT_abstract_origin") or die.attributes.get(
            "DW_AT_specification"
        )
        if link is None:
            return ""
        die = die.get_DIE_from_attribute(link.name)
    return ""


def _decl_files(binary: ElfBinary, die: Any) -> dict[int, str]:
    """The file table of the DIE's unit (DW_AT_decl_file, DW_AT_call_file numbers)."""
    memo = binary.memo("recursion.files")
    found: dict[int, str] | None = memo.get(die.cu.cu_offset)
    if found is None:
        program = binary.dwarf.line_program_for_CU(die.cu)
        found = source.file_names(die.cu, program) if program is not None else {}
        memo[die.cu.cu_offset] = found
    return found


def _place(binary: ElfBinary, address: int, inlined: list[_Inlined]) -> _Place | None:
    """The source position of `address` in the function's own terms: the call site of the
    inlined copy holding it, else its line-table row."""
    for copy in inlined:
        if copy.call is not None and any(s <= address < e for s, e in copy.ranges):
            return _Place(copy.call.file, copy.call.line, copy.call.column, copy.origin)
    row = source.row_at(binary, address)
    if row is None or row.line == 0:
        return None
    return _Place(row.file, row.line, row.column)


def _call_without_instruction(
    binary: ElfBinary,
    path: str,
    unit_address: int,
    text: source.SourceFile,
    sites: list[_Site],
    calls: set[int],
    steps: list[code.Step],
    inlined: list[_Inlined],
) -> LoopedRecursion | None:
    """The first call of itself in the source with no call at its line and column."""
    placed: dict[tuple[int, int], list[int]] = {}
    for step in steps:
        row = source.row_at(binary, step.address)
        if row is not None and row.file == text.path:
            placed.setdefault((row.line, row.column), []).append(step.address)
    inlined_at = {
        (c.call.line, c.call.column)
        for c in inlined
        if c.call is not None and c.call.file == text.path
    }
    for site in sites:
        seen = any(
            (site.line, col) in inlined_at
            or any(a in calls for a in placed.get((site.line, col), ()))
            for col in site.columns
        )
        if not seen:  # a closure's call, compiled into the closure or where it was inlined
            seen = any(
                source.calls_at(binary, address, text.path, site.line, set(site.columns))
                for address in _closure_units(binary, path, unit_address)
            )
        if not seen:
            column = min(site.columns)
            return LoopedRecursion(
                path,
                f"{text.path}:{site.line}:{column}",
                text.line_text(site.line),
                "no call",
            )
    return None


def _closure_units(binary: ElfBinary, path: str, address: int) -> list[int]:
    """An address in each compile unit that holds the function's code (at `address`), a
    closure of it (a dev build may put a closure in a unit of its own) or the crate's
    code."""
    units = {index.unit_offset_at(binary, address): address}
    inner = f"{strip_generics(path)}::"
    crate = crate_of(path)
    crate_units = set(index.crate_unit_offsets(binary, crate)) if crate is not None else set()
    for other in binary.functions:
        unit = index.unit_offset_at(binary, other.address)
        # Its closures' code, and std's generic code instantiated in the crate's units
        # (`Vec::from_iter` with the closure inlined).
        if other.path.startswith(inner) or unit in crate_units:
            units.setdefault(unit, other.address)
    return [address for unit, address in units.items() if unit is not None]


def _loop_rerunning_start(
    binary: ElfBinary,
    symbol: Symbol,
    start: int,
    steps: list[code.Step],
    inlined: list[_Inlined],
    text: source.SourceFile | None,
    body_start: int | None,
    self_calls: list[int],
) -> LoopedRecursion | None:
    loops = [
        (step.target, step.address)
        for step in steps
        if step.target is not None
        and symbol.address <= step.target <= step.address  # a jump back
        and any(step.target <= call <= step.address for call in self_calls)
    ]
    if not loops:
        return None  # no loop calls the function: decided without the line table
    entry = _place(binary, start, inlined)
    if entry is None:
        return None
    if text is not None and body_start is not None and entry.file == text.path:
        offset = text.offset(entry.line, entry.column)
        if offset is not None and source.inside_loop(text, body_start, offset):
            return None  # the source's own loop runs the first statement again
    addresses = [s.address for s in steps]
    for target, back in loops:
        for address in addresses:
            if target <= address <= back and (
                address == start or _place(binary, address, inlined) == entry
            ):
                shown = text.line_text(entry.line) if text is not None else ""
                return LoopedRecursion(
                    symbol.path, f"{entry.file}:{entry.line}:{entry.column}", shown, "loops back"
                )
    return None
