"""Where an inlined copy of an async body that can suspend is entered at every poll.

A poll of an async body resumes where the previous poll suspended: the code inlined into
the poller dispatches on the state's discriminant (a jump table, or compares) to the
resumption point. A probe at the copy's first source line therefore sees first polls only,
and the plain inlined-copy rule (dwarf/entries.py) cannot count such a copy.

The copy is countable anyway when its code is a single-entry region of its host function:
control comes into its address ranges from outside at one instruction only, and never
jumps back to that instruction from inside. Every execution of the copy (one poll) then
passes that instruction exactly once, on the way in, whatever it resumes. The region is
read from the host function's control flow, jump tables included; a host with a jump
through a register whose targets are unknown could enter anywhere, and is not judged.

Control may also come in at several places, each a copy of the dispatch (an executor's
loop inlined around the body: LLVM duplicated the resume switch for the first poll and
the later ones). Each such place loads the discriminant to jump on it, which only a poll's
start does, so each poll passes one of them once. Several places that do not all load it
may be the caller's code interleaved with the copy's, left and re-entered within one poll:
not judged.

Landing pads (reached by the unwinder: no path from the function's entry leads there) are
not entries: they run inside a poll already under way; nor is the instruction after a call
of a function DWARF marks `DW_AT_noreturn` (a panic), which control never reaches from it.

The state read there is the future's only when the copy loads it from memory: its
discriminant and each argument of its Unresumed variant. A copy that never loads them ran
on a state the compiler knew (a future made and polled in one function), whose memory may
not hold the arguments yet when the copy begins (measured: an argument stored two
instructions after it); such a copy keeps its doubt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from elftools.elf.relocation import RelocationSection

from .. import machine_code as code
from ..elf import ElfBinary
from . import index
from .types import type_of


def poll_entries(
    binary: ElfBinary, ranges: Sequence[tuple[int, int]], origin: int
) -> tuple[int, ...]:
    """Where polls of the inlined async body copy covering `ranges` enter it (the body's
    abstract DIE at .debug_info offset `origin`), each poll at exactly one of them, when
    that can be told from the code and the copy reads its state from memory; () when not."""
    found = outside_entries(binary, ranges)
    if found is None or not found.addresses:
        return ()
    layout = state_layout(binary, origin)  # the costly part (std types read): last
    if layout is None:
        return ()
    if len(found.addresses) > 1 and not all(
        _loads_at(found.flow, a, *layout.discriminant) for a in found.addresses
    ):
        # Control comes in at several places: each is a poll's start only where it loads
        # the discriminant to dispatch on it (an optimizer's duplicate of the resume
        # switch, as in an executor loop inlined around the body); elsewhere it may be code
        # of the caller interleaved with the copy's, left and re-entered in one poll.
        return ()
    if not _loads_state(found.flow, ranges, layout):
        return ()
    return found.addresses


@dataclass(frozen=True)
class StateLayout:
    """Where an async body's state keeps its discriminant and its Unresumed variant's
    fields (the arguments), as (offset, size) from the state's start."""

    discriminant: tuple[int, int]
    arguments: tuple[tuple[int, int], ...]


def state_layout(binary: ElfBinary, origin: int) -> StateLayout | None:
    """The layout of the state the body at `origin` polls (its first parameter is
    `Pin<&mut State>`), from DWARF."""
    try:
        body = binary.dwarf.get_DIE_from_refaddr(origin)
        pinned = next(c for c in body.iter_children() if c.tag == "DW_TAG_formal_parameter")
        pin = type_of(pinned.get_DIE_from_attribute("DW_AT_type"))
        state = pin.fields[0].type.target
    except Exception:  # any other shape than rustc 1.95's
        return None
    if state.discr is None:
        return None
    unresumed = next((v for v in state.variants if v.name == "Unresumed"), None)
    if unresumed is None:
        return None
    arguments: list[tuple[int, int]] = []
    for field in unresumed.fields:
        inner = field.type
        arguments.extend(
            (field.offset + f.offset, f.type.size) for f in inner.fields if f.type.size
        )
        if not inner.fields and inner.size:
            arguments.append((field.offset, inner.size))
    return StateLayout((state.discr.offset, state.discr.type.size), tuple(arguments))


def _loads_state(flow: code.Flow, ranges: Sequence[tuple[int, int]], layout: StateLayout) -> bool:
    """The copy reads its discriminant from memory (the compiler did not know which poll
    it runs: the state in memory is the future's) and each argument too (none of them is
    a constant the compiler folded in and may not have stored yet)."""
    loads = [
        operand
        for address, operands in flow.loads.items()
        if any(lo <= address < hi for lo, hi in ranges)
        for operand in operands
        if operand.index is None and operand.base not in (None, "rip", "rsp")
    ]

    def loaded(offset: int, size: int) -> bool:
        return any(m.disp <= offset and offset + size <= m.disp + m.size for m in loads)

    return all(loaded(o, n) for o, n in (layout.discriminant, *layout.arguments))


@dataclass(frozen=True)
class Entries:
    """Where control comes into a copy's code from outside it, in its host's flow."""

    addresses: tuple[int, ...]
    flow: code.Flow


def outside_entries(binary: ElfBinary, ranges: Sequence[tuple[int, int]]) -> Entries | None:
    """The addresses where control enters the code in `ranges` (inside one function
    symbol) from outside; None when that cannot be told (a jump through a register whose
    targets are unknown) or when a jump inside the copy comes back to one of them."""
    if not ranges:
        return None
    host = binary.function_containing(min(lo for lo, _ in ranges))
    if host is None or any(
        not (host.address <= lo and hi <= host.address + host.size) for lo, hi in ranges
    ):
        return None
    flow = _host_flow(binary, host.address, host.size)
    if flow is None:
        return None
    if any(jump not in flow.tables for jump in flow.indirect_sources):
        return None  # a jump whose targets are unknown may enter the copy anywhere

    def inside(address: int) -> bool:
        return any(lo <= address < hi for lo, hi in ranges)

    preds: dict[int, list[int]] = {a: list(found) for a, found in flow.preds.items()}
    for jump, targets in flow.tables.items():
        for target in targets:
            preds.setdefault(target, []).append(jump)
    # Code reached only by unwinding (landing pads and what follows them) runs inside a
    # poll under way, whichever path it takes into the copy.
    normal = flow.reachable([host.address])

    def comes_in(pred: int) -> bool:
        return not inside(pred) and pred in normal and not _never_returns(binary, flow, pred)

    entries: list[int] = []
    for address in flow.boundaries:
        if not inside(address) or address not in normal:
            continue
        if any(comes_in(p) for p in preds.get(address, ())):
            entries.append(address)
    for entry in entries:
        if any(inside(p) for p in preds.get(entry, ())):
            return None  # a loop inside the copy comes back to it: one poll, several hits
    return Entries(tuple(entries), flow)


def _loads_at(flow: code.Flow, address: int, offset: int, size: int) -> bool:
    return any(
        m.disp == offset and m.size == size and m.index is None for m in flow.loads.get(address, ())
    )


def _never_returns(binary: ElfBinary, flow: code.Flow, address: int) -> bool:
    """`address` is a call of a function DWARF marks noreturn."""
    if address not in flow.calls:
        return False
    raw = binary.code(address, 16)
    if raw is None:
        return False
    target, slot = code.call_target(raw, address)
    if target is None and slot is not None:
        target = _slot_target(binary, slot)
    if target is None:
        return False
    info = index.function_at(binary, target)
    holder = None if info is None else index.origin_holder(info.die, "DW_AT_noreturn")
    return holder is not None and "DW_AT_noreturn" in holder.attributes


def _slot_target(binary: ElfBinary, slot: int) -> int | None:
    """The function a GOT slot holds, from its R_X86_64_RELATIVE relocation."""
    memo = binary.memo("coroutine_entry_sections")
    slots = memo.get("relative")
    if slots is None:
        slots = memo["relative"] = {
            r["r_offset"]: r["r_addend"]
            for section in binary.elf.iter_sections()
            if isinstance(section, RelocationSection) and section["sh_type"] == "SHT_RELA"
            for r in section.iter_relocations()
            if r["r_info_type"] == _R_X86_64_RELATIVE
        }
    target = slots.get(slot)
    return int(target) if target else None


_R_X86_64_RELATIVE = 8


def _host_flow(binary: ElfBinary, address: int, size: int) -> code.Flow | None:
    known: dict[int, code.Flow | None] = binary.memo("coroutine_entry_flows")
    if address not in known:
        raw = binary.code(address, size)
        if raw is None:
            known[address] = None
            return None
        # Which tables the function uses, then each read up to where the next one begins:
        # reading on into the next table would add targets that are that table's.
        tables: list[int] = []
        read = _data_reader(binary)

        def record(table: int, size: int) -> bytes | None:
            tables.append(table)
            return None

        code.flow(raw, address, read=record)  # without memory facts: 3 times cheaper
        starts = sorted(set(tables))

        def bounded(table: int, size: int) -> bytes | None:
            later = [t for t in starts if t > table]
            if later:
                size = min(size, later[0] - table)
            data = read(table, size)
            if data is None or not later or len(data) < later[0] - table:
                return data
            # An offset that lands on no instruction ends the table where the next begins.
            return data + (-table).to_bytes(4, "little", signed=True)

        known[address] = code.flow(raw, address, read=bounded, memory=True)
    return known[address]


def _data_reader(binary: ElfBinary) -> code.Reader:
    """Bytes of the loaded sections (jump tables live in .rodata, not with the code), up
    to the end of the section holding the address."""
    memo = binary.memo("coroutine_entry_sections")
    sections = memo.get("loaded")
    if sections is None:
        sections = memo["loaded"] = [
            (s["sh_addr"], s.data())
            for s in binary.elf.iter_sections()
            if s["sh_flags"] & 0x2 and s["sh_type"] != "SHT_NOBITS" and s["sh_addr"]
        ]

    def read(address: int, size: int) -> bytes | None:
        for start, data in sections:
            if start <= address < start + len(data):
                return bytes(data[address - start : address - start + size])
        return None

    return read
