"""Source lines -> the addresses where each execution of the line begins, and the variables
DWARF says are in scope at an address.

A line's code is every address whose line-table row is that line, plus the code of every
call inlined *from* that line (DW_TAG_inlined_subroutine with that DW_AT_call_file and
DW_AT_call_line): `total.wrapping_add(x)` in a dev build is line 33, then core's
`wrapping_add` inlined, then line 33 again, and that is one execution, not two.

An execution of the line starts when control arrives in the line's code from elsewhere:
at an *entry point*, an instruction of the line with a predecessor outside it (the previous
instruction falling through, a direct jump, a call when it is a function's first
instruction; with a jump table in the function, a run of the line no known jump reaches).
One uprobe per entry point counts executions, with these refinements:

- An entry point from which straight-line code (calls allowed, no jump in or out) runs
  into another entry point of the same run always reaches it: only the later one is probed,
  so that path counts once.
- A run of the line with no statement row (`is_stmt`) in it is left out: optimized code
  scatters single instructions of a line, and a debugger never stops there either.
- A run that only jumps on (an unconditional direct `jmp`) is left out: dev builds end
  each branch of an `if` with such a jump, attributed to the `if`'s line, and passing it
  is not another execution of the condition.

- Code no path from the function's entry reaches (padding after a jump) is nobody's
  predecessor.

An entry point that can also be reached from inside the line (a loop written on one line)
counts every arrival there: `LineEntry.loops_back` says so, and `pytest-uprobe lines`
marks it. The scope of variables at an address (`scope_at`) is the second half of this
module.
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from elftools.elf.relocation import RelocationSection

from .. import machine_code as code
from ..elf import ElfBinary, Symbol
from .index import Parameter, attr, referenced, unit_index, unit_offset_at
from .source import file_names, read_source, text_of
from .types import type_of

_TOMBSTONE = 0xFFFF_FFFF_FFFF_FFF0


@dataclass(frozen=True)
class Row:
    """One row of a line table, covering [address, end)."""

    address: int
    end: int
    file: str  # full path
    line: int
    is_stmt: bool
    column: int = 0


@dataclass
class _Unit:
    offset: int
    files: dict[int, str]  # file number -> full path
    rows: list[Row] = field(default_factory=list)
    read: bool = False


def _units(binary: ElfBinary) -> list[_Unit]:
    """Every compile unit with a line table, with its file table (rows are read lazily)."""
    memo: dict[str, list[_Unit]] = binary.memo("line_units")
    found = memo.get("units")
    if found is not None:
        return found
    disk = binary.cache("lines")  # file tables are plain data: kept for the next process
    known = disk.get("units")
    if isinstance(known, list):
        found = [_Unit(offset, dict(files)) for offset, files in known]
        memo["units"] = found
        return found
    found = []
    if binary.has_dwarf:
        dwarf = binary.dwarf
        for cu in dwarf.iter_CUs():
            program = dwarf.line_program_for_CU(cu)
            if program is None:
                continue
            found.append(_Unit(cu.cu_offset, file_names(cu, program)))
    memo["units"] = found
    disk.put("units", [(unit.offset, unit.files) for unit in found])
    return found


def _rows(binary: ElfBinary, unit: _Unit) -> list[Row]:
    if unit.read:
        return unit.rows
    dwarf = binary.dwarf
    program = dwarf.line_program_for_CU(dwarf.get_CU_at(unit.offset))
    rows: list[Row] = []
    previous: Any = None
    for entry in program.get_entries():
        state = entry.state
        if state is None:
            continue
        if previous is not None and state.address > previous.address:
            path = unit.files.get(previous.file)
            if path is not None and 0 < previous.address < _TOMBSTONE:
                rows.append(
                    Row(
                        previous.address,
                        state.address,
                        path,
                        previous.line,
                        previous.is_stmt,
                        previous.column,
                    )
                )
        previous = None if state.end_sequence else state
    rows.sort(key=lambda r: r.address)
    unit.rows, unit.read = rows, True
    return rows


def source_files(binary: ElfBinary) -> list[str]:
    """The full path of every source file some line table names, sorted."""
    return sorted({path for unit in _units(binary) for path in unit.files.values()})


def match_file(binary: ElfBinary, wanted: str) -> list[str]:
    """The source files `wanted` names: equal to it, or ending in `/wanted` (a path
    relative to the crate, or any suffix), the traced crate's own files first. One answer
    means unambiguous: a path relative to the crate (`src/lib.rs`) means the crate's own
    file, not std's, tokio's or hashbrown's `src/lib.rs`."""
    normal = os.path.normpath(wanted)
    files = source_files(binary)
    exact = [f for f in files if f == normal]
    if exact:
        return exact
    found = [f for f in files if f.endswith("/" + normal.lstrip("/"))]
    if len(found) < 2:
        return found
    home = crate_dirs(binary)
    relative = [f for f in found if any(f == os.path.join(d, normal) for d in home)]
    if len(relative) == 1:
        return relative
    own = [f for f in found if not _foreign(f)]
    if len(own) == 1:
        return own
    return sorted(found, key=lambda f: (f not in relative, _foreign(f), f))


def _foreign(path: str) -> bool:
    """A file of the standard library or of a dependency (the cargo registry, Debian's
    librust-*-dev crates, a vendored crate), not of the crate being traced."""
    return path.startswith(("/rustc/", "/rust/")) or any(
        part in path
        for part in ("/.cargo/registry/", "/.cargo/git/", "/usr/share/cargo/registry/", "/vendor/")
    )


def crate_dirs(binary: ElfBinary) -> list[str]:
    """The compile directories (DW_AT_comp_dir) of the traced crate's own units: those of
    the units holding `main` and the program's entry, else every unit whose directory is no
    dependency's."""
    memo: dict[str, list[str]] = binary.memo("crate_dirs")
    found = memo.get("dirs")
    if found is not None:
        return found
    dirs: dict[int, str] = {}
    if binary.has_dwarf:
        for cu in binary.dwarf.iter_CUs():
            comp = cu.get_top_DIE().attributes.get("DW_AT_comp_dir")
            if comp is not None:
                dirs[cu.cu_offset] = text_of(comp.value)
    mains = [s.address for s in binary.functions if s.name == "main" and s.size > 0]
    chosen = []
    for address in mains:
        offset = unit_offset_at(binary, address) if binary.has_dwarf else None
        if offset is not None and offset in dirs and not _foreign(dirs[offset] + "/"):
            chosen.append(dirs[offset])
    if not chosen:
        chosen = sorted({d for d in dirs.values() if not _foreign(d + "/")})
    memo["dirs"] = found = list(dict.fromkeys(chosen))
    return found


def similar_files(binary: ElfBinary, wanted: str, limit: int = 5) -> list[str]:
    """Files with the same base name, for messages (then any of the binary's own files)."""
    base = os.path.basename(wanted)
    files = source_files(binary)
    same = [f for f in files if os.path.basename(f) == base]
    if same:
        return same[:limit]
    own = [f for f in files if not f.startswith(("/rustc/", "/rust/")) and "/.cargo/" not in f]
    return own[:limit]


def _file_units(binary: ElfBinary, path: str) -> Iterator[tuple[_Unit, set[int]]]:
    for unit in _units(binary):
        numbers = {n for n, f in unit.files.items() if f == path}
        if numbers:
            yield unit, numbers


def line_ranges(binary: ElfBinary, path: str, line: int) -> tuple[list[tuple[int, int]], set[int]]:
    """The code of `path:line` as sorted, merged [start, end) ranges, and the addresses where
    a statement row (is_stmt) of that code begins."""
    ranges: list[tuple[int, int]] = []
    statements: set[int] = set()
    by_line = _file_rows(binary, path)
    for row in by_line.get(line, ()):
        ranges.append((row.address, row.end))
        if row.is_stmt:
            statements.add(row.address)
    for unit, numbers in _file_units(binary, path):
        index = unit_index(binary, unit.offset)
        called = [i for i in index.inlined if i[5] == line and i[4] in numbers]
        if called:
            cu = binary.dwarf.get_CU_at(unit.offset)
            for inlined in called:
                die = cu.get_DIE_from_refaddr(inlined[0])
                for start, end in die_ranges(binary, die):
                    ranges.append((start, end))
                    statements.add(start)
    return _merge(ranges), statements


def _file_rows(binary: ElfBinary, path: str) -> dict[int, list[Row]]:
    """The rows of `path`, by line (read once per binary and file)."""
    known: dict[str, dict[int, list[Row]]] = binary.memo("rows_by_file")
    found = known.get(path)
    if found is None:
        found = {}
        for unit, _ in _file_units(binary, path):
            for row in _rows(binary, unit):
                if row.file == path:
                    found.setdefault(row.line, []).append(row)
        known[path] = found
    return found


def lines_with_code(binary: ElfBinary, path: str) -> dict[int, int]:
    """Line number -> how many line-table rows of `path` hold code for it."""
    found: dict[int, int] = {}
    for unit, _ in _file_units(binary, path):
        for row in _rows(binary, unit):
            if row.file == path and row.line > 0:
                found[row.line] = found.get(row.line, 0) + 1
        index = unit_index(binary, unit.offset)
        numbers = {n for n, f in unit.files.items() if f == path}
        for inlined in index.inlined:
            if inlined[4] in numbers and inlined[5]:
                found.setdefault(int(inlined[5]), 0)
                found[int(inlined[5])] += 1
    return found


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def die_ranges(binary: ElfBinary, die: Any) -> list[tuple[int, int]]:
    """The [start, end) code ranges of a subprogram, lexical block or inlined copy."""
    low = die.attributes.get("DW_AT_low_pc")
    high = die.attributes.get("DW_AT_high_pc")
    if low is not None and high is not None:
        start = int(low.value)
        end = int(high.value) if high.form == "DW_FORM_addr" else start + int(high.value)
        return [(start, end)] if 0 < start < _TOMBSTONE else []
    ranges_attr = die.attributes.get("DW_AT_ranges")
    if ranges_attr is None:
        return []
    cu = die.cu
    base_attr = cu.get_top_DIE().attributes.get("DW_AT_low_pc")
    base = int(base_attr.value) if base_attr is not None else 0
    found: list[tuple[int, int]] = []
    for entry in binary.dwarf.range_lists().get_range_list_at_offset(ranges_attr.value, cu=cu):
        if hasattr(entry, "base_address"):
            base = entry.base_address
            continue
        absolute = getattr(entry, "is_absolute", False)
        start = entry.begin_offset if absolute else base + entry.begin_offset
        end = entry.end_offset if absolute else base + entry.end_offset
        if end > start and 0 < start < _TOMBSTONE:
            found.append((int(start), int(end)))
    return found


@dataclass(frozen=True)
class LineEntry:
    """One address where executions of a line begin."""

    address: int
    host: Symbol  # the function symbol whose code holds it
    loops_back: bool  # also reached from inside the line: every arrival counts
    # A loop written on the line jumps back inside the line's code through a conditional
    # jump no site counts the passes of: the count is a lower bound (one arrival of each
    # execution is counted, not each further pass).
    passes_uncounted: bool = False


def entry_points(binary: ElfBinary, path: str, line: int) -> list[LineEntry]:
    """Where to probe `path:line` to count each execution once (see the module's doc)."""
    ranges, statements = line_ranges(binary, path, line)
    unattributed = _line_zero(binary, path)
    by_host: dict[int, Symbol] = {}
    for start, _ in ranges:
        host = binary.function_containing(start)
        if host is not None:
            by_host[host.address] = host
    found: list[LineEntry] = []
    for host in by_host.values():
        flow = host_flow(binary, host)
        if flow is None:
            continue
        optimized = _optimized(binary, host.address)
        dead_ends = noreturn_calls(binary, flow)
        found.extend(
            _host_entries(host, flow, ranges, unattributed, statements, optimized, dead_ends)
        )
    return sorted(found, key=lambda e: e.address)


def host_flow(binary: ElfBinary, host: Symbol) -> code.Flow | None:
    """The control flow of the function `host` (None: its bytes are not in the file)."""
    known: dict[int, code.Flow | None] = binary.memo("host_flows")
    if host.address not in known:
        raw = binary.code(host.address, host.size)
        found = code.flow(raw, host.address, _reader(binary), memory=True) if raw else None
        known[host.address] = found
    return known[host.address]


def _reader(binary: ElfBinary) -> code.Reader:
    """The bytes of the file at a virtual address (through the PT_LOAD segments), as many
    of the `size` asked for as the segment holds."""
    segments = [
        (int(s["p_vaddr"]), int(s["p_filesz"]), int(s["p_offset"]))
        for s in binary.elf.iter_segments()
        if s["p_type"] == "PT_LOAD"
    ]
    stream = binary.elf.stream

    def read(address: int, size: int) -> bytes | None:
        for start, length, offset in segments:
            if start <= address < start + length:
                stream.seek(offset + address - start)
                return bytes(stream.read(min(size, start + length - address)))
        return None

    return read


def _line_zero(binary: ElfBinary, path: str) -> list[tuple[int, int]]:
    """Code the line tables of `path`'s units attribute to no line (line 0)."""
    known: dict[str, list[tuple[int, int]]] = binary.memo("line_zero_by_file")
    found = known.get(path)
    if found is None:
        found = []
        for unit, _ in _file_units(binary, path):
            found.extend((r.address, r.end) for r in _rows(binary, unit) if r.line == 0)
        found = _merge(found)
        known[path] = found
    return found


def _within(ranges: list[tuple[int, int]], address: int) -> bool:
    i = bisect.bisect_right(ranges, (address, _TOMBSTONE)) - 1
    return i >= 0 and ranges[i][0] <= address < ranges[i][1]


def _host_entries(
    host: Symbol,
    flow: code.Flow,
    ranges: list[tuple[int, int]],
    unattributed: list[tuple[int, int]],
    statements: set[int],
    optimized: bool = False,
    dead_ends: frozenset[int] = frozenset(),
) -> list[LineEntry]:
    """The entry points of a line in one function. Code of no line (line 0) reached only
    from the line is part of it (the greatest such set, by fixpoint). In `optimized` code,
    stores sunk out of a loop are no execution (_without_sunk_stores)."""
    addresses = list(flow.boundaries)
    indirect = bool(flow.indirect_sources)
    live = flow.reachable([host.address]) if not indirect else set(addresses)
    preds: dict[int, list[int]] = {a: [] for a in addresses}
    previous: int | None = None
    for address in addresses:
        # Padding after a jump (a `nop` before a loop head) never runs: it is no predecessor.
        if (
            previous is not None
            and previous in flow.falls
            and previous in live
            and previous not in dead_ends
        ):
            preds[address].append(previous)
        target = flow.jumps.get(address)
        if target is not None and target in preds and address in live:
            preds[target].append(address)
        previous = address
    entry = -1  # a caller: outside everything
    preds.setdefault(host.address, []).append(entry)
    own = {a for a in addresses if _within(ranges, a)}
    zero = {a for a in addresses if a not in own and _within(unattributed, a)}
    no_line = set(zero)  # code of line 0, whether or not only the line reaches it
    changed = True
    while changed:
        changed = False
        for address in list(zero):
            if not preds[address] or any(p not in own and p not in zero for p in preds[address]):
                zero.discard(address)
                changed = True
    member = own | zero
    runs: list[list[int]] = []
    run: list[int] = []
    for n, address in enumerate(addresses + [host.end]):
        # A run ends at an instruction that does not go on to the next (a `jmp`): dev
        # builds end an `if`'s else-branch with a jump attributed to the `if` line, placed
        # right before the then-branch's first instruction, also of the `if` line.
        joined = not run or (addresses[n - 1] == run[-1] and run[-1] in flow.falls)
        if address in member and joined:
            run.append(address)
            continue
        if run:
            runs.append(run)
        run = [address] if address in member else []
    runs_of_jumps = [r for r in runs if all(a in flow.jumps and a not in flow.falls for a in r)]
    # Optimized code scatters single instructions of a line (no statement row: debuggers
    # never stop there). Unoptimized code does not, and a run without one can still be where
    # a loop comes back: a dev `for` over an array re-enters its header at `next()` (rows
    # with is_stmt false) behind an instruction of no line that the body's jump reaches.
    if optimized:
        runs = [r for r in runs if any(a in statements for a in r)]
    if optimized:
        runs = _without_sunk_stores(flow, runs)
    found: list[tuple[LineEntry, frozenset[int]]] = []
    for run in runs:
        found.extend(_run_entries(host, flow, addresses, run, preds, member, indirect))
    entries = _joined_by_jumps(flow, found, member)
    if not optimized:
        entries = _joined_through_line_zero(flow, entries, member | no_line)
    entries += _latches(host, flow, runs_of_jumps, preds, member)
    return entries + _inner_passes(host, flow, addresses, entries, preds, member)


def _inner_passes(
    host: Symbol,
    flow: code.Flow,
    addresses: list[int],
    entries: list[LineEntry],
    preds: dict[int, list[int]],
    member: set[int],
) -> list[LineEntry]:
    """Sites for the passes of a loop written on the line whose jump back lands on the
    line's own code where no entry point is: a dev `for x in v { s += x; }` on one line
    enters at `into_iter`, and its body's `jmp` back to `next()` stays inside the line.
    Each pass is one more execution (gcov's count: n + 1 for n items), so the jump itself
    counts them, unless the way back passes an entry point, which counts the pass already.
    A conditional jump back cannot be counted by a probe on it (it runs on the way out
    too): the line's first entry point is marked `passes_uncounted` instead."""
    counted = {e.address for e in entries}
    outside = set(addresses) - member
    found: list[LineEntry] = []
    uncounted = False
    for jump in sorted(member):
        target = flow.jumps.get(jump)
        if target is None or target not in member or target > jump or jump in counted:
            continue
        if target in counted or any(p not in member for p in preds.get(target, ())):
            continue  # the target is an entry point: it counts each pass
        if jump not in flow.reachable([target], counted | outside):
            continue  # the way back passes an entry point, which counts each pass
        if jump in flow.falls:
            uncounted = True
        else:
            found.append(LineEntry(jump, host, False))
    if uncounted and entries:
        first = min(entries, key=lambda e: e.address)
        entries[entries.index(first)] = LineEntry(first.address, host, first.loops_back, True)
    return found


def _joined_by_jumps(
    flow: code.Flow, found: list[tuple[LineEntry, frozenset[int]]], member: set[int]
) -> list[LineEntry]:
    """The entries less those whose executions always jump on to another entry of the line
    through the line's own code: dev code for `for x in items {` calls `into_iter`, then
    jumps to the loop's `next()`, also reached by the body's jump back when that jump
    carries the body's line (when it carries the header's, `_latches` counts it). Counting
    both entries would count the first arrival twice (n + 2 for n iterations); the one
    jumped to counts it, and the jump is no pass of a loop there."""
    by_address = {entry.address: (entry, inside) for entry, inside in found}
    stops = set(by_address) | set(flow.jump_targets)
    dropped: set[int] = set()
    for entry, _ in found:
        arrival = _jumps_on(flow, entry.address, stops, member)
        if arrival is None or arrival[1] not in by_address or arrival[1] in dropped:
            continue
        jump, target = arrival
        joined, inside = by_address[target]
        inside = inside - {jump}
        by_address[target] = (
            LineEntry(joined.address, joined.host, entry.loops_back or bool(inside)),
            inside | ({entry.address} if entry.loops_back else set()),
        )
        dropped.add(entry.address)
    return [by_address[a][0] for a in sorted(by_address) if a not in dropped]


def _joined_through_line_zero(
    flow: code.Flow, entries: list[LineEntry], passable: set[int]
) -> list[LineEntry]:
    """The entries less those from which control always goes on to another entry of the
    line through the line's own code and code of no line (line 0), falling through,
    returning from calls and taking unconditional jumps only: that entry counts the same
    arrival. Dev code for `for code in [100, 335, 7] {` calls `into_iter`, then falls
    through a line-0 `lea` into `next()`, which the body's jump back reaches at that
    `lea`: both entries counted the first arrival (n + 2 for n items)."""
    starts = {e.address for e in entries}
    dropped: set[int] = set()
    for entry in entries:
        address: int | None = entry.address
        for _ in range(4096):
            if address is None or address not in passable or address in flow.indirect_set:
                break
            if address != entry.address and address in starts - dropped:
                dropped.add(entry.address)
                break
            target = flow.jumps.get(address)
            if target is not None:
                if address in flow.falls:
                    break  # a conditional jump: the way on depends on the run
                address = target
            elif address in flow.falls:
                address = flow.next_of(address)
            else:
                break  # a return or a trap
    return [e for e in entries if e.address not in dropped]


def _jumps_on(
    flow: code.Flow, start: int, stops: set[int], member: set[int]
) -> tuple[int, int] | None:
    """(the jump, its target) when control entering at `start` always runs the line's own
    instructions (calls return) into one unconditional direct jump, passing no jump target
    and no other entry on the way; else None."""
    address: int | None = start
    for _ in range(4096):
        if address is None or address not in member or address in flow.indirect_set:
            return None
        if address != start and address in stops:
            return None
        target = flow.jumps.get(address)
        if target is not None:
            unconditional = address not in flow.falls
            return (address, target) if unconditional and target != start else None
        if address not in flow.falls:
            return None  # a return or a trap
        address = flow.next_of(address)
    return None


def _latches(
    host: Symbol,
    flow: code.Flow,
    jump_runs: list[list[int]],
    preds: dict[int, list[int]],
    member: set[int],
) -> list[LineEntry]:
    """The jumps of a line that only jump back into the line's own code from another line:
    a dev build's `for` or `while` loop ends its body with a `jmp` attributed to the loop's
    header, back to the header's `next()` call or test. Each pass through it is one more
    execution of the header (a loop of n iterations runs its header n + 1 times, as gcov
    and llvm-cov count it), and its target is reached from inside the line, so the jump
    itself is the site that counts it."""
    found = []
    for run in jump_runs:
        jump = run[-1]
        target = flow.jumps[jump]
        if target not in member or target in run:
            continue
        if any(p not in member for p in preds.get(target, ())):
            continue  # the target is an entry point already: it counts this arrival too
        if any(p not in member for p in preds.get(run[0], ())):
            found.append(LineEntry(run[0], host, False))
    return found


def noreturn_calls(binary: ElfBinary, flow: code.Flow) -> frozenset[int]:
    """The calls of `flow` to functions that never return (a panic, an abort): the
    instruction after one is no successor of it. A dev build places the block after an
    overflow check's panic call right behind it, and its code is reached only by a jump."""
    found = set()
    for address in flow.calls:
        target = _call_target(binary, flow.texts.get(address, ""))
        if target is not None and _never_returns(binary, target):
            found.add(address)
    return frozenset(found)


_DIRECT_CALL = re.compile(r"^call (0x[0-9a-f]+)$")
_SLOT_CALL = re.compile(r"^call qword ptr \[(0x[0-9a-f]+)\]$")
_NORETURN = re.compile(
    r"^(core|std)::panicking::|^core::(option|result)::(unwrap|expect)_failed$"
    r"|^(core|std)::(panic|process)::(abort|exit|begin_panic|panic_any)"
    r"|^alloc::(alloc::handle_alloc_error|raw_vec::capacity_overflow|raw_vec::handle_error)"
    r"|^core::slice::index::.*_fail$|^core::(hint::)?unreachable|^std::rt::lang_start_internal::"
)


def _call_target(binary: ElfBinary, text: str) -> int | None:
    direct = _DIRECT_CALL.match(text)
    if direct:
        return int(direct.group(1), 16)
    slot = _SLOT_CALL.match(text)
    if slot:
        return _got_slots(binary).get(int(slot.group(1), 16))
    return None


def _got_slots(binary: ElfBinary) -> dict[int, int]:
    """GOT slot -> the address of the function the dynamic loader writes there (relative
    relocations of the binary's own functions)."""
    memo: dict[str, dict[int, int]] = binary.memo("got_slots")
    found = memo.get("slots")
    if found is None:
        found = {}
        for section in binary.elf.iter_sections():
            if not isinstance(section, RelocationSection) or section["sh_type"] != "SHT_RELA":
                continue
            for relocation in section.iter_relocations():
                if relocation["r_info_type"] == 8:  # R_X86_64_RELATIVE
                    found[int(relocation["r_offset"])] = int(relocation["r_addend"])
        memo["slots"] = found
    return found


def _never_returns(binary: ElfBinary, address: int) -> bool:
    memo: dict[int, bool] = binary.memo("never_returns")
    known = memo.get(address)
    if known is None:
        symbols = binary.functions_by_address.get(address, [])
        known = bool(symbols) and all(_NORETURN.search(s.path or s.name) for s in symbols)
        memo[address] = known
    return known


def _without_sunk_stores(flow: code.Flow, runs: list[list[int]]) -> list[list[int]]:
    """The runs of a line in optimized code, less those that only store registers or
    constants to memory outside a loop that holds the line's other code: LLVM keeps a
    variable a loop changes in a register and stores it once after the loop (LICM), and that
    store carries the line's number although no execution of the line begins there (a loop
    body ran 18 times and was counted 21)."""
    stores = [all(a in flow.plain_stores or a in flow.nops for a in run) for run in runs]
    working = [
        run[0]
        for run, only_stores in zip(runs, stores)
        if not only_stores and not all(a in flow.jumps and a not in flow.falls for a in run)
    ]
    kept = []
    for run, only_stores in zip(runs, stores):
        if only_stores and any(flow.on_a_cycle_avoiding(w, set(run)) for w in working):
            continue
        kept.append(run)
    return kept


def _optimized(binary: ElfBinary, address: int) -> bool:
    """Whether the compile unit holding `address` was optimized: most variables of its
    crate's units have location lists. rustc at opt-level 0 keeps nearly every variable in
    its stack slot for the whole scope (one DW_OP_fbreg expression each); optimized code
    moves values between registers and the stack, which LLVM describes with location
    lists (60-70% of the variables with a location in the example crates' release units).
    rustc 1.95 at opt-level 0 still writes a few (a closure's parameter kept in a
    register: 2 of 3 variables in one small dev unit, under 10% over a dev crate's units),
    so the share is taken over all units of one crate compilation (same DW_AT_comp_dir and
    root file), which share one opt-level. Without debug info: optimized (the careful
    answer)."""
    offset = unit_offset_at(binary, address) if binary.has_dwarf else None
    if offset is None:
        return True
    known: dict[int, bool] = binary.memo("optimized_units")
    found = known.get(offset)
    if found is None:
        groups: dict[tuple[str, str], list[Any]] = {}
        for cu in binary.dwarf.iter_CUs():
            groups.setdefault(_crate_compilation(cu), []).append(cu)
        (members,) = [g for g in groups.values() if any(cu.cu_offset == offset for cu in g)]
        shares = [_location_lists(cu) for cu in members]
        lists, located = sum(n for n, _ in shares), sum(n for _, n in shares)
        for cu in members:
            known[cu.cu_offset] = located > 0 and lists >= _OPTIMIZED_SHARE * located
        found = known[offset]
    return found


# Location lists per variable with a location above which a crate's units count as
# optimized: measured under 10% in dev crates, over 60% in release ones.
_OPTIMIZED_SHARE = 0.3


def _crate_compilation(cu: Any) -> tuple[str, str]:
    """(DW_AT_comp_dir, the root file) of a unit: rustc names each codegen unit of a crate
    `src/main.rs/@/<cgu>`."""
    top = cu.get_top_DIE()
    comp = top.attributes.get("DW_AT_comp_dir")
    name = top.attributes.get("DW_AT_name")
    root = text_of(name.value).split("/@/", 1)[0] if name is not None else ""
    return (text_of(comp.value) if comp is not None else "", root)


def _location_lists(cu: Any) -> tuple[int, int]:
    """(variables with a location list, variables with any location) of a unit."""
    lists = located = 0
    for die in cu.iter_DIEs():
        if die.tag not in ("DW_TAG_variable", "DW_TAG_formal_parameter"):
            continue
        location = die.attributes.get("DW_AT_location")
        if location is None:
            continue
        located += 1
        lists += location.form in _LOCATION_LIST_FORMS
    return lists, located


_LOCATION_LIST_FORMS = frozenset({"DW_FORM_sec_offset", "DW_FORM_loclistx", "DW_FORM_data4"})


def optimized(binary: ElfBinary, address: int) -> bool:
    """Whether the code at `address` was compiled with optimizations (see _optimized)."""
    return _optimized(binary, address)


def _run_entries(
    host: Symbol,
    flow: code.Flow,
    addresses: list[int],
    run: list[int],
    preds: dict[int, list[int]],
    member: set[int],
    indirect: bool,
) -> list[tuple[LineEntry, frozenset[int]]]:
    """The entry points of one run of consecutive instructions of the line, each with its
    predecessors inside the line that make it loop back."""
    if all(a in flow.jumps and a not in flow.falls for a in run):
        return []  # only jumps on: the join after an `if`'s branches, which does no work
    points = [a for a in run if any(p not in member for p in preds.get(a, ()))]
    if not points and not preds.get(run[0]) and indirect:
        points = [run[0]]  # reached only through a jump table (or by unwinding)
    targets = set(flow.jumps.values()) | set(points)
    final: list[tuple[LineEntry, frozenset[int]]] = []
    merged: set[int] = set()
    for n, point in enumerate(points):
        following = points[n + 1] if n + 1 < len(points) else None
        if following is not None and _straight(flow, addresses, point, following, targets):
            merged.add(following)
            continue
        inside = [p for p in preds.get(point, ()) if p in member]
        if point in merged:  # the fallthrough from the entry merged into this one is not a loop
            inside = [p for p in inside if p != _previous(addresses, point)]
        final.append((LineEntry(point, host, bool(inside)), frozenset(inside)))
    return final


def _previous(addresses: list[int], address: int) -> int | None:
    i = bisect.bisect_left(addresses, address)
    return addresses[i - 1] if i > 0 else None


def _straight(
    flow: code.Flow, addresses: list[int], start: int, stop: int, targets: set[int]
) -> bool:
    """Control entering at `start` always reaches `stop` (calls return; no jump leaves, none
    lands in between)."""
    i = bisect.bisect_left(addresses, start)
    while i < len(addresses) and addresses[i] < stop:
        address = addresses[i]
        if address != start and address in targets:
            return False
        if address not in flow.falls or address in flow.jumps or address in flow.indirect_set:
            return False
        i += 1
    return i < len(addresses) and addresses[i] == stop


# -- how far a line's count can be trusted -------------------------------------------


@dataclass(frozen=True)
class CountShape:
    """Why a line's count (one per arrival at its entry points) may differ from its number
    of executions: `may_be_more` (executions no arrival counted) and `may_be_fewer`
    (arrivals that are no new execution). Both empty: the count is exact."""

    may_be_more: tuple[str, ...] = ()
    may_be_fewer: tuple[str, ...] = ()
    shapes: tuple[str, ...] = ()  # the shapes named, in a word or two each (for listings)

    @property
    def exact(self) -> bool:
        return not self.may_be_more and not self.may_be_fewer


_LOOP_HEADER = re.compile(r"^(?:'\w+\s*:\s*)?(?:for|while|loop)\b")


def count_shape(binary: ElfBinary, path: str, line: int, entries: list[LineEntry]) -> CountShape:
    """Whether counting arrivals at `entries` counts `path:line`'s executions exactly.

    One execution of a line is one arrival of control at the line's code from code of
    another line, or one more pass of a loop written on the line (gcov's and llvm-cov's
    count: a `for` header runs n + 1 times for n iterations). Counting arrivals at the
    entry points is exact when each instance of the line (the function's own code, or one
    inlined copy) has one entry point that every execution passes once and no path comes
    back into the line without passing it again. Unoptimized code keeps each line's code
    in source order, and that holds for its lines. In optimized code it is proven only for
    a line with one entry point per instance, outside every loop of its function and not
    looping itself; for any other line the count is neither a lower nor an upper bound,
    and the reasons name the line's shape:
    - pieces: several entry points in one instance, with other lines' code between them
      (each piece of one execution counts), or copies of the line that unrolling made
      (one arrival may run several copies);
    - a loop header: LLVM rotates loops, testing the condition at the end of the body in
      code that carries the body's line, and unrolls them;
    - inside a loop: the optimizer may unroll the loop, run two iterations' copies of the
      line as one stretch of code, or move the line's code across iterations;
    - a loop within the line (`(loops)`): every pass through it counts."""
    where = f"{os.path.basename(path)}:{line}"
    more: list[str] = []
    fewer: list[str] = []
    shapes: list[str] = []

    def neither(shape: str, why: str) -> None:
        shapes.append(shape)
        more.append(f"{where} {why}")
        fewer.append(f"{where}: the same ({shape}), either way")

    by_instance: dict[tuple[int, int | None], list[LineEntry]] = {}
    for entry in entries:
        if not _optimized(binary, entry.address):
            continue
        key = (entry.host.address, _instance_of(binary, entry.address, path, line))
        by_instance.setdefault(key, []).append(entry)
    if not by_instance:
        return CountShape()
    source = read_source(binary, path)
    text = source.line_text(line) if source is not None and line <= len(source.line_starts) else ""
    if _LOOP_HEADER.match(text):
        neither(
            "loop header",
            "is a loop header in optimized code: LLVM rotates loops (the test at the end of "
            "each iteration carries another line's number) and unrolls them, so its arrivals "
            "are not its n + 1 executions",
        )
    points = {e.address for e in entries}
    split = [group for group in by_instance.values() if _one_arrival_reaches(binary, group, points)]
    if split:
        most = max(len(group) for group in split)
        neither(
            "pieces",
            f"is optimized code in {most} pieces in one function, and control can pass from "
            "one piece to another without arriving at the line again (each piece of one "
            "execution is counted; copies of the line that unrolling made may run several "
            "executions in one arrival)",
        )
    if any(entry.loops_back for group in by_instance.values() for entry in group):
        neither("loops", "loops back into itself in optimized code: every pass is counted")
    ranges, _ = line_ranges(binary, path, line)
    duplicates = _duplicated_calls(binary, path, line) + _repeated_statements(binary, path, line)
    if any(_copies_in_one_arrival(binary, copies, points) for copies in duplicates):
        neither(
            "copies",
            "is optimized code with two or more copies of one call inlined from it in one "
            "function: the optimizer unrolled or duplicated it, and one arrival may run "
            "several executions",
        )
    if _CLOSURE.search(_code_text(source, line)) or text.startswith((".", "#[", "?")):
        neither(
            "closure or chain",
            "shares its line with a closure or continues a method chain (or is an "
            "attribute's generated code) in optimized code: the optimizer inlines, merges "
            "or drops the pieces a dev build runs there one by one",
        )
    looping = []
    for group in by_instance.values():
        flow = host_flow(binary, group[0].host)
        if flow is None:
            continue
        own = [
            a for a in flow.boundaries if _within(ranges, a) and a not in {e.address for e in group}
        ]
        avoid = {e.address for e in group}
        if any(flow.on_a_cycle_avoiding(a, avoid) for a in own):
            looping.append(group[0])
    if looping and "loops" not in shapes:
        neither(
            "loop inside",
            "holds a loop in optimized code that does not pass the line's entry point (an "
            "iterator chain, a closure called in a loop, a loop written on one line): each "
            "pass may or may not be an execution",
        )
    missing = _copies_without_line(binary, path, line, entries)
    if missing:
        shapes.append("copies without the line")
        more.append(
            f"{where}: {missing} of the inlined or out-of-line copies of its function hold "
            "no code of this line (the optimizer dropped or merged it there): their "
            "executions are not counted"
        )
    return CountShape(tuple(more), tuple(fewer), tuple(dict.fromkeys(shapes)))


# A closure's parameter list: `|x|`, `|(a, b)|`, `move |x: u64|`, `||` after `(`, `,` or `=`.
_CLOSURE = re.compile(r"(?:^|[(,=]\s*|\bmove\s+)\|[^|\n]*\|")


def _origin_key(binary: ElfBinary, die: Any) -> tuple[str, str, int] | None:
    """What names a function across compile units: its linkage name, or its name and
    declaration line (a generic instance inlined in another unit copies its own abstract
    DIE there, at another offset)."""
    memo: dict[int, tuple[str, str, int] | None] = binary.memo("origin_keys")
    offset = int(die.offset)
    if offset in memo:
        return memo[offset]
    found = _origin(die)
    linkage = found.attributes.get("DW_AT_linkage_name")
    name = found.attributes.get("DW_AT_name")
    line = found.attributes.get("DW_AT_decl_line")
    key = (
        (_text(linkage.value), "", 0)
        if linkage is not None
        else (_text(name.value), "", int(line.value))
        if name is not None and line is not None
        else None
    )
    memo[offset] = key
    return key


def _code_text(source: Any, line: int) -> str:
    """The line's code with comments and literals blanked ("" when unknown)."""
    if source is None or not 0 < line <= len(source.line_starts):
        return ""
    start = source.line_starts[line - 1]
    end = source.code.find("\n", start)
    return str(source.code[start : end if end >= 0 else len(source.code)]).strip()


def _copies_without_line(binary: ElfBinary, path: str, line: int, entries: list[LineEntry]) -> int:
    """How many copies (inlined, or the out-of-line one) of the functions whose code holds
    `path:line` at `entries` have code but no entry point of the line: in optimized code
    the line's code may be folded away or merged into another line in some copies while
    their executions still run it."""
    holding: set[int] = set()
    origins: set[tuple[str, str, int] | None] = set()
    for entry in entries:
        if not _optimized(binary, entry.address):
            continue
        chain = _scope_chain(binary, entry.address, path, line)
        die = _line_function(binary, chain, path)
        if die is None:
            continue
        holding.add(int(die.offset))
        origins.add(_origin_key(binary, die))
    origins.discard(None)
    if not origins:
        return 0
    missing = 0
    for unit, _ in _file_units(binary, path):
        index = unit_index(binary, unit.offset)
        cu = None
        for copy in index.inlined:
            if copy[0] in holding:
                continue
            cu = cu or binary.dwarf.get_CU_at(unit.offset)
            copy_die = cu.get_DIE_from_refaddr(copy[0])
            if _origin_key(binary, copy_die) in origins and die_ranges(binary, copy_die):
                missing += 1
    return missing


def _one_arrival_reaches(binary: ElfBinary, group: list[LineEntry], points: set[int]) -> bool:
    """Whether control arriving at one entry point of `group` (one instance of a line) can
    reach another without passing an entry point first: then one execution may count at
    both. Entry points on paths that exclude each other (each execution passes one) do not."""
    if len(group) < 2:
        return False
    flow = host_flow(binary, group[0].host)
    if flow is None:
        return True
    for entry in group:
        reach = flow.reachable(flow.successors(entry.address), points) | {entry.address}
        for other in group:
            if other is not entry and any(p in reach for p in flow.preds.get(other.address, ())):
                return True
    return False


def _copies_in_one_arrival(binary: ElfBinary, copies: list[int], points: set[int]) -> bool:
    """Whether one arrival at the line can run two of `copies` (addresses in one function
    where duplicated code of the line starts): one reaches another that is no entry point
    of its own without passing an entry point."""
    host = binary.function_containing(copies[0])
    flow = host_flow(binary, host) if host is not None else None
    if flow is None:
        return True
    for copy in copies:
        reach = flow.reachable(flow.successors(copy), points)
        if any(other != copy and other not in points and other in reach for other in copies):
            return True
    return False


def _repeated_statements(binary: ElfBinary, path: str, line: int) -> list[list[int]]:
    """Two statement rows of `path:line` at one column in one function or inlined copy of
    optimized code, with other rows between them: the line's code was duplicated (a loop
    unrolled into straight code starts the same statement once per copy). Returns the
    start addresses of each such set of copies."""
    seen: dict[tuple[int, int | None, int, str], list[int]] = {}
    for row in _file_rows(binary, path).get(line, ()):
        if not row.is_stmt or not _optimized(binary, row.address):
            continue
        host = binary.function_containing(row.address)
        flow = host_flow(binary, host) if host is not None else None
        # Copies start with the same instruction; a line resumed after a call inlined from
        # it (the same column again) goes on with another.
        text = flow.texts.get(row.address, "") if flow is not None else ""
        key = (
            host.address if host is not None else 0,
            _instance_of(binary, row.address, path, line),
            row.column,
            text.split(" ", 1)[0],
        )
        seen.setdefault(key, []).append(row.address)
    return [found for found in seen.values() if len(found) > 1]


def _duplicated_calls(binary: ElfBinary, path: str, line: int) -> list[list[int]]:
    """Two inlined copies of one function called from the same column of `path:line` in
    one function or inlined copy: code the optimizer duplicated (loop unrolling, or a path
    duplicated for each way into it). Returns the entry addresses of each such set."""
    seen: dict[tuple[int, int, int | None, int], list[int]] = {}
    for unit, numbers in _file_units(binary, path):
        index = unit_index(binary, unit.offset)
        called = [i for i in index.inlined if i[5] == line and i[4] in numbers]
        if len(called) < 2:
            continue
        cu = binary.dwarf.get_CU_at(unit.offset)
        for inlined in called:
            die = cu.get_DIE_from_refaddr(inlined[0])
            spans = die_ranges(binary, die)
            if not spans or not _optimized(binary, spans[0][0]):
                continue
            host = binary.function_containing(spans[0][0])
            column = die.attributes.get("DW_AT_call_column")
            key = (
                host.address if host is not None else 0,
                int(inlined[1]),
                _instance_of(binary, spans[0][0], path, line),
                int(column.value) if column is not None else 0,
            )
            seen.setdefault(key, []).append(min(start for start, _ in spans))
    return [found for found in seen.values() if len(found) > 1]


def _instance_of(binary: ElfBinary, address: int, path: str, line: int) -> int | None:
    """The DIE offset of the function or inlined copy whose code of `path:line` holds
    `address` (calls inlined from the line itself are part of the line)."""
    die = _line_function(binary, _scope_chain(binary, address, path, line), path)
    return int(die.offset) if die is not None else None


def _line_function(binary: ElfBinary, chain: list[Any], path: str) -> Any:
    """The innermost function or inlined copy of `chain` declared in `path`: optimized
    code schedules a line's instructions into the range of a copy inlined from another
    line (a function's first line inside an inlined `alloc`), which is not the line's."""
    functions = [d for d in chain if d.tag in ("DW_TAG_subprogram", "DW_TAG_inlined_subroutine")]
    for die in reversed(functions):
        if _declared_in(binary, die) in (path, None):
            return die
    return functions[-1] if functions else None


def _origin(die: Any) -> Any:
    """The DIE that holds a function's names and declaration: through DW_AT_abstract_origin
    and DW_AT_specification links (a few at most)."""
    found = die
    for _ in range(4):
        link = found.attributes.get("DW_AT_abstract_origin") or found.attributes.get(
            "DW_AT_specification"
        )
        if link is None:
            break
        found = found.get_DIE_from_attribute(link.name)
    return found


def _declared_in(binary: ElfBinary, die: Any) -> str | None:
    """The file a function DIE (through its abstract origin) is declared in, if known."""
    found = _origin(die)
    number = found.attributes.get("DW_AT_decl_file")
    if number is None:
        return None
    for unit in _units(binary):
        if unit.offset == found.cu.cu_offset:
            return unit.files.get(int(number.value))
    return None


# -- variables in scope at an address ---------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """The variables in scope at one address, innermost first shadowing outer ones, and the
    frame base of the out-of-line function that holds the address."""

    variables: tuple[Parameter, ...]
    frame_base: Any
    function: str | None  # the innermost function's DW_AT_name (inlined copies included)


def scope_at(
    binary: ElfBinary, address: int, path: str | None = None, line: int | None = None
) -> Scope | None:
    """What DWARF says is in scope at `address`: the formal parameters and variables of
    the lexical blocks and function (or inlined copy) around it, up to the nearest function
    boundary (an inlined copy's variables are its own, not its caller's). With `path` and
    `line`: the scopes of that line, so a call inlined from the line (whose code runs
    there) does not count as a scope of its own."""
    if not binary.has_dwarf:
        return None
    offset = unit_offset_at(binary, address)
    if offset is None:
        return None
    chain = _scope_chain(binary, address, path, line)
    if not chain:
        return None
    subprogram = next(d for d in chain if d.tag == "DW_TAG_subprogram")
    innermost_function = next(
        d for d in reversed(chain) if d.tag in ("DW_TAG_subprogram", "DW_TAG_inlined_subroutine")
    )
    start = chain.index(innermost_function)
    seen: set[str] = set()
    per_scope: list[list[Parameter]] = []
    for scope in reversed(chain[start:]):  # innermost first: inner names shadow outer ones
        own: list[Parameter] = []
        for child in scope.iter_children():
            if child.tag not in ("DW_TAG_variable", "DW_TAG_formal_parameter"):
                continue
            name_attr = attr(child, "DW_AT_name")
            if name_attr is None:
                continue
            name = _text(name_attr.value)
            if name in seen:
                continue
            seen.add(name)
            own.append(Parameter(name, type_of(referenced(child, "DW_AT_type")), child))
        per_scope.append(own)
    variables = [v for own in reversed(per_scope) for v in own]  # declaration order
    name_attr = attr(innermost_function, "DW_AT_name")
    return Scope(
        tuple(variables),
        subprogram.attributes.get("DW_AT_frame_base"),
        _text(name_attr.value) if name_attr is not None else None,
    )


def _scope_chain(
    binary: ElfBinary, address: int, path: str | None = None, line: int | None = None
) -> list[Any]:
    """The scopes holding `address`, outermost first; with `path` and `line`, cut before
    the first copy inlined from that line (its code is the line's own)."""
    offset = unit_offset_at(binary, address) if binary.has_dwarf else None
    if offset is None:
        return []
    cu = binary.dwarf.get_CU_at(offset)
    chain = _chain(binary, cu.get_top_DIE(), address)
    if path is None or line is None:
        return chain
    numbers = {
        n for u in _units(binary) if u.offset == offset for n, f in u.files.items() if f == path
    }
    for k, die in enumerate(chain):
        if die.tag != "DW_TAG_inlined_subroutine":
            continue
        call_file = die.attributes.get("DW_AT_call_file")
        call_line = die.attributes.get("DW_AT_call_line")
        if (
            call_line is not None
            and call_line.value == line
            and call_file is not None
            and call_file.value in numbers
        ):
            return chain[:k]
    return chain


_SCOPES = frozenset({"DW_TAG_subprogram", "DW_TAG_lexical_block", "DW_TAG_inlined_subroutine"})
_CONTAINERS = frozenset(
    {"DW_TAG_namespace", "DW_TAG_structure_type", "DW_TAG_enumeration_type", "DW_TAG_union_type"}
)


def _chain(binary: ElfBinary, top: Any, address: int) -> list[Any]:
    """The scopes holding `address`, outermost first: the out-of-line subprogram, then the
    lexical blocks and inlined copies inside it."""
    stack = [top]
    while stack:
        die = stack.pop()
        for child in die.iter_children():
            if child.tag in _CONTAINERS:
                stack.append(child)
            elif child.tag == "DW_TAG_subprogram" and _covers(binary, child, address):
                return _descend(binary, child, address)
    return []


def _descend(binary: ElfBinary, die: Any, address: int) -> list[Any]:
    chain = [die]
    while True:
        for child in die.iter_children():
            scope = child.tag in _SCOPES and child.tag != "DW_TAG_subprogram"
            if scope and _covers(binary, child, address):
                chain.append(child)
                die = child
                break
        else:
            return chain


def _covers(binary: ElfBinary, die: Any, address: int) -> bool:
    return any(start <= address < end for start, end in die_ranges(binary, die))


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def lines_in_range(binary: ElfBinary, start: int, end: int) -> set[tuple[str, int]]:
    """The (file, line) pairs of the line-table rows in [start, end): a function's lines,
    those of the code inlined into it included."""
    offset = unit_offset_at(binary, start)
    found: set[tuple[str, int]] = set()
    for unit in _units(binary):
        if unit.offset != offset:
            continue
        for row in _rows(binary, unit):
            if start <= row.address < end and row.line > 0:
                found.add((row.file, row.line))
        cu = binary.dwarf.get_CU_at(unit.offset)
        for inlined in unit_index(binary, unit.offset).inlined:
            path = unit.files.get(inlined[4]) if inlined[4] is not None else None
            if path is None or not inlined[5]:
                continue
            die = cu.get_DIE_from_refaddr(inlined[0])
            if any(start <= low < end for low, _ in die_ranges(binary, die)):
                found.add((path, int(inlined[5])))  # a line whose code is all inlined
    return found
