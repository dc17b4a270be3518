"""Whether a variable's stack slot holds its value at one address of optimized code.

rustc describes a variable whose address is taken (`println!("{acc}")` borrows it) with one
DW_OP_fbreg expression for its whole scope: "in this stack slot". At opt-level 0 that is
true at every statement. Optimized code keeps such a variable in a register wherever no one
reads the slot, and writes the slot only where it must: a loop's accumulator lives in rax
through the loop and reaches its slot once, after it. A probe in the loop body reading the
slot then reads a stale value (or bytes never written), and DWARF does not say so.

So, in optimized code, a slot is trusted at an address only when the machine code proves
it holds the variable there:

- every path from the function's entry to the address writes all of the slot's bytes (a
  store the CFA rules place on it: `mov [rsp + 8], rax` with the CFA at rsp + 0x68 is the
  slot CFA - 0x60; or a call given a pointer to it, which fills it or reads it), so it
  holds no bytes of before the variable's life, and
- every path on from the address *reads* the slot before anything may write it and before
  the function returns: a load of it (`add rax, [rsp]`), or a call the compiler could not
  see into (through a register or the GOT) once a pointer to the slot escaped to it (in an
  argument register, or stored to memory as into `fmt::Arguments`): the compiler had to
  put the current value there first. A read sees the variable's value; no write in
  between means the slot held that value already at the address, and a write of the
  source between the two would have had to reach the slot before the read. A direct call
  proves nothing: LLVM infers which functions of the crate read no memory.

A "write" is a store on the slot, a store through another register where a pointer to it
may exist (after a `lea` of it or a copy of rsp), or a call where a pointer to it may have
escaped; a path that leaves the function proves nothing, and an unread jump table may go
anywhere. The rule is a sufficient condition, not a necessary one: a slot it cannot prove
is `Unavailable`, never a guess. It cannot see a store the scheduler moved above the
address from a later line with no read in between; no such reordering is known from
rustc's output.

At opt-level 0 every statement writes its result to its slot, so only the first condition
applies: it catches a function's first line, which runs before the prologue stores the
arguments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

from .. import machine_code as code
from ..elf import ElfBinary
from . import frames
from .locations import Cfa, Piece

RBP, RSP = 6, 7
_FRAME_REGISTERS = {"rsp": RSP, "rbp": RBP}

STALE_SLOT = (
    "DWARF gives one stack slot for the whole function; at this line the value may live in "
    "a register ({why}): build with opt-level 0 (a debug profile) to read it"
)


NOT_YET = (
    "not yet in its stack slot at this line (the code does not write the slot on every "
    "path to it: at a function's first line its arguments are still in registers): probe "
    "a later line, or the function itself for its arguments"
)


def unsettled(
    binary: ElfBinary,
    flow: code.Flow,
    address: int,
    pieces: tuple[Piece, ...],
    optimized: bool = True,
) -> str | None:
    """Why the frame slots `pieces` (as located at `address`) may not hold the variable's
    value there, or None when the code proves they do (see the module's doc). Code built
    at opt-level 0 needs the first condition only: it writes every statement's result."""
    known: dict[str, _CfaRules] = binary.memo("cfa_rules")
    rules = known.get("rules")
    if rules is None:
        rules = known["rules"] = _CfaRules(lambda at: frames.cfa_at(binary, at))
    return unsettled_with(flow, address, pieces, rules.at, optimized)


def unsettled_with(
    flow: code.Flow,
    address: int,
    pieces: tuple[Piece, ...],
    cfa_at: Callable[[int], Cfa | None],
    optimized: bool = True,
) -> str | None:
    """`unsettled`, with the CFA rule of each address from `cfa_at`."""
    cfa = cfa_at(address)
    slots = [p for p in pieces if p.memory and p.value is None]
    if not slots:
        return None
    if cfa is None or any(p.reg != cfa.reg for p in slots):
        if not optimized:
            return None  # opt-level 0 writes every statement's result; not checked here
        return STALE_SLOT.format(why="its slot cannot be related to the frame's CFA rules")
    # The slot's bytes, relative to the CFA (which stays put while rsp moves), as bits.
    slot = _Slot(cfa_at, {b for p in slots for b in range(p.offset, p.offset + p.size)}, cfa)
    facts = flow.memo.get(("slot", slot.low, slot.all))
    if facts is None:
        facts = flow.memo[("slot", slot.low, slot.all)] = _slot_facts(flow, slot)
    surely, escapes, receiving_calls, pointer, escaped = facts
    if not optimized:
        # Only the hazard opt-level 0 has: a line run before the prologue stored the
        # arguments (a function's or closure's first line). A panic's call falling into
        # the next block is no path there.
        return None if flow.written_on_every_path(address, surely, slot.all, False) else NOT_YET
    if not flow.written_on_every_path(address, surely, slot.all):
        return STALE_SLOT.format(why="the code does not write the slot on every path to it")
    reading_calls = receiving_calls & flow.opaque_calls

    def may_write(at: int) -> bool:
        for store in flow.stores.get(at, ()):
            bits = slot.bits(at, store)
            if bits is None and (store.base in _FRAME_REGISTERS or at in pointer):
                return True
            if bits:
                return True
        return at in escaped and at in flow.calls

    def reads(at: int) -> bool:
        return any(slot.bits(at, m) for m in flow.loads.get(at, ()))

    made = flow.written_on_every_path(address, dict.fromkeys(escapes, 1), 1)

    def pins(at: int, after_escape: bool) -> bool:
        return reads(at) or at in reading_calls or (after_escape and at in flow.opaque_calls)

    unpinned = _first_unpinned(flow, address, made, pins, escapes.__contains__, may_write)
    if unpinned is not None:
        return STALE_SLOT.format(why=f"no read of the slot proves it, {unpinned}")
    return None


class _SlotFacts(NamedTuple):
    """What the code of one function does with one slot, wherever the line is."""

    surely: dict[int, int]  # instruction -> the slot's bytes it surely writes
    escapes: set[int]  # where a pointer to it surely escapes (see _escapes)
    receiving_calls: set[int]  # calls given a pointer to it
    pointer: frozenset[int]  # where a pointer to it may be in a register
    escaped: frozenset[int]  # where a callee may hold a pointer to it


def _slot_facts(flow: code.Flow, slot: _Slot) -> _SlotFacts:
    # A `mov rax, rsp` is in `leas` as rsp + 0: a pointer to the object there.
    makers = [at for at, operand in flow.leas.items() if slot.pointed(at, operand)]
    escapes, unclear, receiving_calls = _escapes(flow, slot)
    surely = {at: slot.covered(at, stores) for at, stores in flow.stores.items()}
    # A call given a pointer to the slot writes it (a value returned through a hidden
    # pointer, a memcpy) or reads it, which needs it written before.
    surely.update(dict.fromkeys(receiving_calls, slot.all))
    return _SlotFacts(
        surely,
        escapes,
        receiving_calls,
        flow.after_any(makers),
        flow.after_any(escapes | unclear) | receiving_calls,
    )


class _Slot:
    """Bytes of the frame relative to the CFA, and which of them an operand covers."""

    def __init__(self, cfa_at: Callable[[int], Cfa | None], offsets: set[int], cfa: Cfa):
        self._cfa_at = cfa_at
        self.low = min(offsets) - cfa.offset
        self.all = sum(1 << (o - cfa.offset - self.low) for o in offsets)

    def bits(self, at: int, operand: code.MemoryOperand) -> int | None:
        """The slot's bytes `operand` of the instruction at `at` covers (a mask, maybe 0);
        None when its address is not rsp or rbp plus a constant the CFA rule relates."""
        base = _FRAME_REGISTERS.get(operand.base or "")
        cfa = self._cfa_at(at) if base is not None else None
        if cfa is None or operand.index is not None or cfa.reg != base:
            return None
        start = operand.disp - cfa.offset - self.low
        span = (
            ((1 << operand.size) - 1) << start
            if start >= 0
            else (1 << max(0, operand.size + start)) - 1
        )
        return span & self.all

    def covered(self, at: int, operands: tuple[code.MemoryOperand, ...]) -> int:
        return sum(self.bits(at, o) or 0 for o in operands) & self.all

    def pointed(self, at: int, operand: code.MemoryOperand) -> bool:
        """A `lea` of `operand` may point into the slot (or somewhere in the frame no CFA
        rule relates)."""
        if operand.base not in _FRAME_REGISTERS:
            return False
        bits = self.bits(at, code.MemoryOperand(operand.base, operand.index, operand.disp, 1))
        return bits is None or bits != 0


_ARGUMENT_REGISTERS = frozenset({"rdi", "rsi", "rdx", "rcx", "r8", "r9"})
_SCAN = 24  # instructions followed after a `lea` to see where the pointer goes


_CALLER_SAVED = _ARGUMENT_REGISTERS | {"rax", "r10", "r11"}


class _Escapes(NamedTuple):
    """Where pointers to a slot go (see `_escapes`)."""

    proven: set[int]  # instructions after which some callee may hold a pointer to the slot
    unclear: set[int]  # `lea`s whose pointer was not followed to its end: it may escape
    receiving_calls: set[int]  # calls given a pointer to the slot in an argument register


def _escapes(flow: code.Flow, slot: _Slot) -> _Escapes:
    """Follow each `lea` of the slot (or copy of rsp onto it) through straight-line code:
    the pointer escapes where its register is stored to memory (into `fmt::Arguments`,
    say) or passed to a call in an argument register. Where its fate is not clear before
    the register is overwritten or dies in a call (copied to another register, live past
    a branch or a call, followed too far), the `lea` is `unclear`: it may escape there."""
    points: set[int] = set()
    unclear: set[int] = set()
    receiving: set[int] = set()
    for lea, operand in flow.leas.items():
        register = flow.lea_targets.get(lea)
        if register is None or not slot.bits(lea, dataclasses.replace(operand, size=1)):
            continue
        at, settled = lea, False
        for _ in range(_SCAN):
            following = flow.successors(at)
            if len(following) != 1 or at in flow.jumps or (at != lea and at in flow.calls):
                break
            at = following[0]
            if at in flow.calls:
                if register in _ARGUMENT_REGISTERS:
                    points.add(at)
                    receiving.add(at)
                settled = register in _CALLER_SAVED  # else it survives the call: unknown
                break
            if flow.store_sources.get(at) == register:
                points.add(at)
            elif register in flow.registers_read.get(at, ()):
                break  # copied or changed: followed no further
            if register in flow.registers_written.get(at, ()):
                settled = True
                break
        if not settled:
            unclear.add(lea)
    return _Escapes(points, unclear, receiving)


def _first_unpinned(
    flow: code.Flow,
    address: int,
    escaped: bool,
    pins: Callable[[int, bool], bool],
    escapes_here: Callable[[int], bool],
    may_write: Callable[[int], bool],
) -> str | None:
    """Walk every path from `address` until the slot is read (see the module's doc); say
    where a path instead writes it or leaves, or None when every path reads it first.
    `escaped`: a pointer to the slot escaped on every path to `address`."""
    seen: set[tuple[int, bool]] = set()
    todo = [(address, escaped)]
    while todo:
        at, escaped = todo.pop()
        if (at, escaped) in seen:
            continue
        seen.add((at, escaped))
        if pins(at, escaped):
            continue  # read here: this path proves the value
        if may_write(at):
            return f"a path may write it first, at {at:#x}"
        if flow.leaves(at):
            return f"a path leaves the function first, at {at:#x}"
        escaped = escaped or escapes_here(at)
        todo.extend((after, escaped) for after in flow.may_follow(at))
    return None


class _CfaRules:
    """The CFA rule of each address of one binary, memoized."""

    def __init__(self, cfa_at: Callable[[int], Cfa | None]) -> None:
        self._cfa_at = cfa_at
        self._known: dict[int, Cfa | None] = {}

    def at(self, address: int) -> Cfa | None:
        if address not in self._known:
            self._known[address] = self._cfa_at(address)
        return self._known[address]
