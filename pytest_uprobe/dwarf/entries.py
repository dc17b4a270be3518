"""Where an inlined copy starts to run, once per execution, from DWARF and the code's flow.

A `DW_TAG_inlined_subroutine` is one call site in the source, but not one stretch of code:
a loop the optimizer unrolls four times puts four executions of the copy under one DIE
(four ranges, or even several executions inside one range), while scheduling can split
one execution over several ranges, and a range may begin with alignment padding that
nothing runs. Neither "the lowest address" nor "every range start" counts executions.

What does: the copy's first statement. Every instruction of the copy gets the source
line of the copy it belongs to (the call line of a copy nested inside it, else the line
table's line), and the smallest of these lines is the statement the body runs first.
Each execution of the copy runs that statement once, so a probe goes at every place where
control enters a run of that statement's instructions from elsewhere (from outside the
copy, or from the copy's later statements, as in an unrolled loop). Padding (`nop`s) is
transparent: a run is entered through it. A run that the copy's own code jumps back to
(a loop inside the copy around its first statement) would count each iteration: such a
copy is reported, not guessed.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .. import machine_code as code
from ..elf import ElfBinary
from .scan import read_uleb, section_bytes

Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class CopyEntries:
    """The probe addresses of one inlined copy: one hit of any of them is one execution."""

    addresses: tuple[int, ...]
    doubt: str | None = None  # why these addresses may count some executions twice
    # The entries whose first statement does vector arithmetic (`psrlq xmm0, 1`), with that
    # instruction: the loop around them was vectorized, and one execution there may do the
    # work of several calls.
    vectorized: tuple[tuple[int, str], ...] = ()


def die_ranges(binary: ElfBinary, cu: Any, die: Any, *, keep_empty: bool = False) -> Ranges:
    """The [low, high) address ranges of a DIE, from low_pc/high_pc or DW_AT_ranges, in
    DWARF 4 (addresses and .debug_ranges offsets) or DWARF 5 (indexes into .debug_addr
    and .debug_rnglists as well) forms. Empty ranges are left out unless `keep_empty`
    (a linker marks code it dropped by them, as [1, 1), and a copy with no instructions of
    its own has them)."""
    attrs = die.attributes
    low = attrs.get("DW_AT_low_pc")
    high = attrs.get("DW_AT_high_pc")
    if low is not None and high is not None:
        start = _address(binary, cu, low)
        if start is not None:
            end = _address(binary, cu, high) if high.form in _ADDRESS_FORMS else None
            return ((start, end if end is not None else start + int(high.value)),)
    ranges_attr = attrs.get("DW_AT_ranges")
    lists = binary.dwarf.range_lists()
    if ranges_attr is None or lists is None:
        return ()
    offset = int(ranges_attr.value)  # pyelftools resolves DW_FORM_rnglistx to an offset
    base = cu.get_top_DIE().attributes.get("DW_AT_low_pc")
    base_address = (_address(binary, cu, base) or 0) if base is not None else 0
    found: list[tuple[int, int]] = []
    for entry in lists.get_range_list_at_offset(offset, cu=cu):
        if hasattr(entry, "base_address"):
            base_address = entry.base_address
        elif keep_empty or entry.begin_offset != entry.end_offset:
            absolute = getattr(entry, "is_absolute", False)
            shift = 0 if absolute else base_address
            found.append((int(entry.begin_offset + shift), int(entry.end_offset + shift)))
    return tuple(sorted(found))


_ADDRESS_FORMS = frozenset(
    {
        "DW_FORM_addr",
        "DW_FORM_addrx",
        "DW_FORM_addrx1",
        "DW_FORM_addrx2",
        "DW_FORM_addrx3",
        "DW_FORM_addrx4",
        "DW_FORM_GNU_addr_index",
    }
)


def _address(binary: ElfBinary, cu: Any, attr: Any) -> int | None:
    """An address attribute's value (pyelftools resolves DW_FORM_addrx through .debug_addr)."""
    return int(attr.value) if attr.form in _ADDRESS_FORMS else None


def copy_entries(
    binary: ElfBinary, cu: Any, die: Any, ranges: Ranges, declared_at: tuple[str, int] | None = None
) -> CopyEntries:
    """Where to probe the inlined copy `die` (of compile unit `cu`) covering `ranges`.
    `declared_at`: the file and `fn` line of its function where DWARF does not say (line
    tables only; dwarf/unnamed.py read them from the source)."""
    live = tuple((lo, hi) for lo, hi in ranges if 0 < lo < _TOMBSTONE)
    if not live:
        return CopyEntries(())
    nested = list(_nested_copies(binary, cu, die))
    rows = _line_rows(binary, cu)
    # Rows of other files belong to functions inlined deeper whose DIEs do not cover
    # them (the optimizer moved the code): their line says nothing about the copy's own.
    own_file = _decl_file(binary, die) or (declared_at[0] if declared_at else None)
    own_numbers = _own_files(binary, cu, own_file, rows[2])
    hosts = {f[0]: f for f in (_flow_of(binary, lo) for lo, _ in live) if f is not None}
    flows = list(hosts.values())
    if not flows:
        return CopyEntries(tuple(lo for lo, _ in live[:1]))

    covered: set[int] = set()
    for lo, hi in live:
        for _, flow in flows:
            first_at = bisect.bisect_left(flow.boundaries, lo)
            last_at = bisect.bisect_left(flow.boundaries, hi)
            covered.update(flow.boundaries[first_at:last_at])

    def inside(address: int) -> bool:
        return address in covered

    def nested_at(address: int) -> int | None:
        """Which copy inlined into this one holds `address` (None: the copy's own code)."""
        for number, (nested_ranges, _) in enumerate(nested):
            if any(lo <= address < hi for lo, hi in nested_ranges):
                return number
        return None

    def line_of(address: int) -> int | None:
        number = nested_at(address)
        if number is not None:
            return nested[number][1]
        i = bisect.bisect_right(rows[0], address) - 1
        # Line 0: code the compiler made up (no source line of its own).
        return (rows[1][i] or None) if i >= 0 and rows[2][i] in own_numbers else None

    lines: dict[int, int | None] = {}
    owner: dict[int, tuple[int, code.Flow]] = {}
    for start, flow in flows:
        for address in flow.boundaries:
            if address in covered and address not in flow.nops:
                lines[address] = line_of(address)
                owner[address] = (start, flow)
    known = [line for line in lines.values() if line]
    if not known:
        return _range_starts(live, lines, owner, inside)
    # The signature's own line is no statement of the body: a dev build gives it to code
    # that moves arguments or results about, anywhere in the copy. A body written on that
    # same line (a one-line fn) has nothing after it, and keeps it.
    declared = _decl_line(die) or (declared_at[1] if declared_at else None)
    body = [line for line in known if declared is None or line > declared]
    first = min(body or known)

    def is_first(address: int) -> bool:
        return lines.get(address) == first

    def unplaced(address: int) -> bool:
        return lines.get(address, 0) is None

    entries: list[int] = []
    doubts: list[int] = []
    # The instructions that began the runs counted so far, with the call they belong to.
    heads: set[tuple[str, int | None]] = set()
    for address in sorted(lines):
        if lines[address] != first:
            continue
        start, flow = owner[address]
        origins = _origins(flow, start, address, inside, is_first, unplaced)
        text = flow.texts.get(address, "")
        if not origins - {_LOOPS}:
            continue  # nothing reaches it but a loop of its own: dead code
        # The statement's first instruction again, from the same call inside it (or from
        # the copy's own code): `lock inc [COUNTER]` three times where a vectorized loop put
        # the first statements of several executions side by side, one more execution each.
        # Not the same instruction from another call of the statement (two allocations in
        # one line both begin `call [shim]`): one execution goes on.
        head = (text, nested_at(address))
        repeated = head in heads
        if _CONTINUES in origins and (_FRESH not in origins or repeated):
            if repeated:
                entries.append(address)
            continue  # the same statement goes on (after caller code scheduled into it)
        if _CONTINUES in origins:
            doubts.append(address)  # reached both while the statement runs and afresh
            continue
        heads.add(head)
        if _closes_a_loop(flow, address, inside, is_first):
            continue  # a rotated loop's latch inside the copy: one more iteration
        if _LOOPS not in origins:
            entries.append(address)
            continue
        preds = _preds(flow, address, start)
        # A loop inside the copy jumps back to its first statement: count the ways in from
        # outside instead, where each is an instruction that always goes on to it.
        ways_in = [p for p in preds if p is None or not inside(p)]
        if ways_in and all(_always_into(flow, p, address) for p in ways_in):
            entries.extend(p for p in ways_in if p is not None)
        else:
            doubts.append(address)
    if len(live) == 1 and len(entries) > 1:
        entries = _forward_continuations_dropped(entries, owner, lines, live[0])
    vectorized = tuple(
        (address, found)
        for address in entries
        if address in owner  # not a way in from outside the copy
        and (found := _vector_work(owner[address][1], address, inside, is_first)) is not None
    )
    doubt = None
    if doubts:
        doubt = (
            f"the copy's own code jumps back to its first statement at {doubts[0]:#x} "
            "(a loop inside the copy), so a probe there would count its iterations"
        )
    return CopyEntries(tuple(entries), doubt, vectorized)


# Packed (SIMD) arithmetic: several lanes at once. Moves and the zeroing idioms are left out:
# scalar code copies structs with `movups` and zeroes registers with `pxor`.
_PACKED = re.compile(
    r"^v?(p(add|sub|mul|sr|sl|and|or|max|min|cmp|abs|avg|madd|sad|sign|hadd|hsub)\w*"
    r"|(add|sub|mul|div|max|min|sqrt|hadd|hsub|rcp|rsqrt|round|fmadd\w*|fmsub\w*)p[sdh]"
    r"|cvt\w*p[sdi]\w*)\s"
)


def _vector_work(flow: code.Flow, entry: int, inside: Any, is_first: Any) -> str | None:
    """The packed instruction in the run of first-statement instructions that starts at
    `entry` (`psrlq xmm0, 1 at 0x2580d`), if any."""
    at: int | None = entry
    while at is not None and inside(at) and (is_first(at) or at in flow.nops):
        text = flow.texts.get(at, "")
        if _PACKED.match(text) and "mm" in text:
            return f"`{text}` at {at:#x}"
        if at not in flow.falls:
            break
        at = flow.next_of(at)
    return None


_TOMBSTONE = 0xFFFF_FFFF_FFFF_FFF0


def _forward_continuations_dropped(
    entries: list[int],
    owner: dict[int, tuple[int, code.Flow]],
    lines: dict[int, int | None],
    span: tuple[int, int],
) -> list[int]:
    """In one contiguous range, a later entry that only the copy's own earlier code reaches
    (forward, as when a dev build splits the first statement around calls) continues the
    execution that the earlier entry began; one reached by a jump back (a loop around the
    copy), from the caller's code or from outside the range starts another."""
    lo, hi = span
    kept = [entries[0]]
    for address in entries[1:]:
        if address not in owner or not lo <= address < hi:
            kept.append(address)  # a way into the copy from outside it
            continue
        _, flow = owner[address]
        preds = flow.preds.get(address, ())
        if not preds or any(not lo <= p < hi or p >= address or not lines.get(p) for p in preds):
            kept.append(address)
    return kept


def _range_starts(
    live: Ranges,
    lines: dict[int, int | None],
    owner: dict[int, tuple[int, code.Flow]],
    inside: Any,
) -> CopyEntries:
    """Without line information: the first instruction of each range that is reached from
    outside the copy (ranges reached only from the copy's other ranges continue it)."""
    entries: list[int] = []
    for lo, hi in live:
        first = next((a for a in sorted(lines) if lo <= a < hi), None)
        if first is None:
            continue
        start, flow = owner[first]
        preds = _preds(flow, first, start)
        if not preds or any(p is None or not inside(p) for p in preds):
            entries.append(first)
    return CopyEntries(tuple(entries))


_FRESH, _CONTINUES, _LOOPS = "fresh", "continues", "loops"


def _origins(
    flow: code.Flow, start: int, address: int, inside: Any, is_first: Any, unplaced: Any
) -> set[str]:
    """How control can arrive at `address`, a first-statement instruction of the copy,
    looking back through the caller's code in between (and padding) to the copy's own
    instruction it comes from: `_FRESH` from the function's callers, from a later statement
    of the copy (the next body of an unrolled loop), or around a loop of the caller (a
    backward jump on the way); `_CONTINUES` straight on from a first-statement instruction
    (the statement resumes after caller code the scheduler put in between, or through a
    jump table); `_LOOPS` by a jump back from the copy's own code (a loop inside it)."""
    found: set[str] = set()
    seen: set[tuple[int, bool]] = set()
    stack = [(address, False)]
    while stack:
        at, looped = stack.pop()
        if at == start:
            found.add(_FRESH)
        preds = flow.preds.get(at)
        if not preds and at != start:
            preds = flow.indirect_sources  # a jump table's target, perhaps
        if preds and len(preds) > 1:
            # A block that is jumped to and also follows a call: the call is most likely
            # one that never returns (a panic), placed before the block by the layout.
            jumped = [p for p in preds if p not in flow.calls]
            preds = tuple(jumped) if jumped else preds
        for pred in preds or ():
            if at == address and pred >= at and inside(pred) and pred not in flow.nops:
                found.add(_LOOPS)
                continue
            back = looped or pred >= at
            if (pred, back) in seen:
                continue
            seen.add((pred, back))
            if pred in flow.nops or not inside(pred) or unplaced(pred):
                stack.append((pred, back))  # caller code, padding, or code of no known line
            elif is_first(pred) and not back:
                found.add(_CONTINUES)
            else:
                found.add(_FRESH)
    return found


def _closes_a_loop(flow: code.Flow, address: int, inside: Any, in_run: Any) -> bool:
    """The run of first-statement instructions from `address` jumps back into the copy, to
    `address` or before: it is the test at the bottom of a loop inside the copy."""
    at: int | None = address
    while at is not None and inside(at) and (at == address or in_run(at) or at in flow.nops):
        target = flow.jumps.get(at)
        if target is not None and inside(target) and target <= address:
            return True
        if at not in flow.falls:
            return False
        at = flow.next_of(at)
    return False


def _always_into(flow: code.Flow, pred: int | None, address: int) -> bool:
    """`pred` runs exactly as often as control goes from it to `address`: an instruction
    that falls through to it and jumps nowhere, or an unconditional jump to it. Not one a
    uprobe refuses (LOCK-prefixed): the probe would move onto `address` itself."""
    if pred is None or flow.texts.get(pred, "").startswith("lock"):
        return False
    target = flow.jumps.get(pred)
    if target is None:
        return pred in flow.falls and _lands_on(flow, pred, address)
    return target == address and pred not in flow.falls


def _lands_on(flow: code.Flow, pred: int, address: int) -> bool:
    """Falling from `pred` reaches `address`, through padding only."""
    at = flow.next_of(pred)
    while at is not None and at != address and at in flow.nops:
        at = flow.next_of(at)
    return at == address


def _preds(flow: code.Flow, address: int, start: int) -> list[int | None]:
    """What reaches `address`, through any padding before it; None: the function's callers."""
    found: list[int | None] = []
    seen: set[int] = set()
    stack = [address]
    while stack:
        at = stack.pop()
        if at in seen:
            continue
        seen.add(at)
        if at == start:
            found.append(None)
        for pred in flow.preds.get(at, ()):
            if pred in flow.nops:
                stack.append(pred)
            else:
                found.append(pred)
    return found


def _own_files(binary: ElfBinary, cu: Any, own: str | None, numbers: list[int]) -> frozenset[int]:
    """The file numbers of `cu`'s line table that name the file `own` (all without it)."""
    known: dict[tuple[int, str | None], frozenset[int]] = binary.memo("own_file_numbers")
    key = (cu.cu_offset, own)
    found = known.get(key)
    if found is None:
        found = frozenset(n for n in set(numbers) if own is None or file_name(binary, cu, n) == own)
        known[key] = found
    return found


def _decl_file(binary: ElfBinary, die: Any) -> str | None:
    """The file the copy's function is declared in, by its abstract origin."""
    origin_attr = die.attributes.get("DW_AT_abstract_origin")
    if origin_attr is None:
        return None
    origin = die.get_DIE_from_attribute("DW_AT_abstract_origin")
    number = origin.attributes.get("DW_AT_decl_file")
    return file_name(binary, origin.cu, number.value) if number is not None else None


def _decl_line(die: Any) -> int | None:
    """The line the copy's function is declared on (its signature), by its abstract origin."""
    if die.attributes.get("DW_AT_abstract_origin") is None:
        return None
    origin = die.get_DIE_from_attribute("DW_AT_abstract_origin")
    line = origin.attributes.get("DW_AT_decl_line")
    return int(line.value) if line is not None and isinstance(line.value, int) else None


def _nested_copies(binary: ElfBinary, cu: Any, die: Any) -> Iterator[tuple[Ranges, int]]:
    """The copies inlined directly into `die` (inside its lexical blocks too), with the line
    of `die`'s body that calls each."""
    stack = list(die.iter_children())
    while stack:
        child = stack.pop()
        if child.tag == "DW_TAG_inlined_subroutine":
            line = child.attributes.get("DW_AT_call_line")
            if line is not None and line.value:
                yield die_ranges(binary, cu, child), int(line.value)
        elif child.tag == "DW_TAG_lexical_block":
            stack.extend(child.iter_children())


def _line_rows(binary: ElfBinary, cu: Any) -> tuple[list[int], list[int | None], list[int]]:
    """The unit's line table as sorted (addresses, lines, file numbers); None after a
    sequence ends."""
    known: dict[int, tuple[list[int], list[int | None], list[int]]] = binary.memo("line_rows")
    found = known.get(cu.cu_offset)
    if found is not None:
        return found
    disk = binary.cache("main")
    stored = disk.get(("line_rows", 2, cu.cu_offset))
    if stored is None:
        rows: list[tuple[int, int | None, int]] = []
        program = binary.dwarf.line_program_for_CU(cu)
        if program is not None:
            data = _line_section(binary)
            rows = decode_line_rows(
                data, program.program_start_offset, program.program_end_offset, program.header
            )
        rows.sort(key=lambda r: r[0])
        stored = ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
        disk.put(("line_rows", 2, cu.cu_offset), stored)
    known[cu.cu_offset] = stored
    return stored


def _line_section(binary: ElfBinary) -> bytes:
    known: dict[str, bytes] = binary.memo("line_section")
    found = known.get("bytes")
    if found is None:
        found = known["bytes"] = section_bytes(binary.dwarf.debug_line_sec)
    return found


def decode_line_rows(
    data: bytes, start: int, end: int, header: Any
) -> list[tuple[int, int | None, int]]:
    """The rows (address, line, file number) of one line program, `data[start:end]`, decoded
    in one pass over its bytes (pyelftools builds an object per row: seconds for std's large
    units). A row of None ends a sequence."""
    unit = header["minimum_instruction_length"]
    line_base = header["line_base"]
    line_range = header["line_range"]
    opcode_base = header["opcode_base"]
    lengths = header["standard_opcode_lengths"]
    rows: list[tuple[int, int | None, int]] = []
    address, line, file = 0, 1, 1
    pos = start
    while pos < end:
        op = data[pos]
        pos += 1
        if op >= opcode_base:
            step = op - opcode_base
            address += (step // line_range) * unit
            line += line_base + step % line_range
            rows.append((address, line, file))
        elif op == 0:  # extended: length, sub-opcode, operands
            length, pos = read_uleb(data, pos)
            sub = data[pos] if length else 0
            if sub == 1:  # end_sequence
                rows.append((address, None, file))
                address, line, file = 0, 1, 1
            elif sub == 2:  # set_address
                address = int.from_bytes(data[pos + 1 : pos + length], "little")
            pos += length
        elif op == 1:  # copy
            rows.append((address, line, file))
        elif op == 2:  # advance_pc
            step, pos = read_uleb(data, pos)
            address += step * unit
        elif op == 3:  # advance_line
            step, pos = _sleb(data, pos)
            line += step
        elif op == 4:  # set_file
            file, pos = read_uleb(data, pos)
        elif op == 8:  # const_add_pc
            address += ((255 - opcode_base) // line_range) * unit
        elif op == 9:  # fixed_advance_pc
            address += int.from_bytes(data[pos : pos + 2], "little")
            pos += 2
        else:  # set_column, negate_stmt, basic_block, prologue_end, ...: operands skipped
            for _ in range(lengths[op - 1]):
                _, pos = read_uleb(data, pos)
    return rows


def _sleb(data: bytes, pos: int) -> tuple[int, int]:
    result, end = read_uleb(data, pos)
    bits = 7 * (end - pos)
    if result & (1 << (bits - 1)):
        result -= 1 << bits
    return result, end


def _flow_of(binary: ElfBinary, address: int) -> tuple[int, code.Flow] | None:
    """The control flow of the function symbol holding `address`, and that function's start."""
    host = binary.function_containing(address)
    if host is None:
        return None
    known: dict[int, tuple[int, code.Flow] | None] = binary.memo("entry_flows")
    if host.address not in known:
        raw = binary.code(host.address, host.size)
        flow = (host.address, code.flow(raw, host.address)) if raw is not None else None
        known[host.address] = flow
    return known[host.address]


def file_name(binary: ElfBinary, cu: Any, index: int | None) -> str | None:
    """The path of file number `index` of `cu`'s line table (DW_AT_decl_file, call_file)."""
    if index is None:
        return None
    known: dict[int, tuple[bool, list[str]]] = binary.memo("file_tables")
    files = known.get(cu.cu_offset)
    if files is None:
        files = known[cu.cu_offset] = _file_table(binary, cu)
    v5, names = files
    position = index if v5 else index - 1
    return names[position] if 0 <= position < len(names) else None


def _file_table(binary: ElfBinary, cu: Any) -> tuple[bool, list[str]]:
    """Whether file numbers count from 0 (DWARF 5), and the unit's files by number."""
    program = binary.dwarf.line_program_for_CU(cu)
    if program is None:
        return False, []
    directories = program.header.include_directory
    v5 = program.header.version >= 5
    files: list[str] = []
    for entry in program.header.file_entry:
        name = _text(entry.name)
        directory = entry.dir_index if v5 else entry.dir_index - 1
        if name.startswith("/") or not 0 <= directory < len(directories):
            files.append(name)
        else:
            files.append(f"{_text(directories[directory])}/{name}")
    return v5, files


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
