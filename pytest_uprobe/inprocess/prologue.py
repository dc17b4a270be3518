"""Reading a dev build's prologue back to the function's first instruction.

An entry probe sits after the prologue. When Frida cannot hook it there (its 5-byte patch
would move a `call` into the trampoline), the in-process engine hooks the first instruction
instead, and must read there the values the entry probe would have read. This module runs
the straight-line prologue symbolically over a small x86-64 subset: what each register and
each stack slot of the new frame holds, in terms of the registers and the caller's stack at
the first instruction. A dev build's prologue spills its arguments and reloads some of them
(`mov dword ptr [rsp], edx; ...; mov esi, dword ptr [rsp]`), so a value at the entry probe
is often a register, or a slot, filled from a start register.

Anything outside the subset makes the values it touches unknown, and a value the site reads
that is unknown (or only partly known) is refused, naming the instruction: never a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import capstone
from capstone import x86_const

from ..dwarf.locations import CONSTANT_REG, RSP, Piece
from ..plan import RIP, SAVE_WORD

_GPR = [
    ("rax", "eax", "ax", "al"), ("rdx", "edx", "dx", "dl"), ("rcx", "ecx", "cx", "cl"),
    ("rbx", "ebx", "bx", "bl"), ("rsi", "esi", "si", "sil"), ("rdi", "edi", "di", "dil"),
    ("rbp", "ebp", "bp", "bpl"), ("rsp", "esp", "sp", "spl"),
] + [(f"r{n}", f"r{n}d", f"r{n}w", f"r{n}b") for n in range(8, 16)]  # fmt: skip
# Register name -> (DWARF number, bytes written). A 32-bit write zero-extends, an 8- or
# 16-bit one keeps the upper bytes: either way only the written bytes are known.
_REGISTERS = {
    name: (number, width)
    for number, names in enumerate(_GPR)
    for name, width in zip(names, (8, 4, 2, 1), strict=True)
}
_REGISTERS.update({f"xmm{i}": (17 + i, 16) for i in range(16)})
_MOVES = {
    "mov", "movd", "movq", "movss", "movsd", "movaps", "movups", "movapd", "movupd",
    "movdqa", "movdqu", "movzx", "movsx", "movsxd",
}  # fmt: skip
_SCALAR = {"movss": 4, "movsd": 8}  # between xmm registers, only the low lane moves
_BRANCHES = (
    x86_const.X86_GRP_JUMP, x86_const.X86_GRP_CALL, x86_const.X86_GRP_RET,
    x86_const.X86_GRP_INT, x86_const.X86_GRP_IRET,
)  # fmt: skip
_FLAGS_ONLY = {"test", "cmp", "nop", "endbr64"}


class StartRegister(NamedTuple):
    """The low `size` bytes of register `reg` as the first instruction sees it."""

    reg: int
    size: int


class StartMemory(NamedTuple):
    """`size` bytes at the first instruction's rsp + `offset` (>= 0: the caller's frame,
    which the prologue never writes)."""

    offset: int
    size: int


class StackAddress(NamedTuple):
    """The address rsp + `offset`, rsp as the first instruction sees it."""

    offset: int


class Unknown(NamedTuple):
    """A value the subset does not follow: `why` names the instruction."""

    why: str


Value = StartRegister | StartMemory | StackAddress | Unknown


class Unreadable(Exception):
    """The prologue cannot be read back: args are (why)."""


class _Slot(NamedTuple):
    """What the prologue stored at a stack offset: `size` bytes of `value`."""

    value: Value
    size: int


def _narrowed(value: Value, size: int) -> Value:
    """The low `size` bytes of `value`."""
    if isinstance(value, StartRegister):
        return StartRegister(value.reg, min(value.size, size))
    if isinstance(value, StartMemory):
        return StartMemory(value.offset, min(value.size, size))
    if isinstance(value, StackAddress) and size < 8:
        return Unknown("a stack address cut to fewer than 8 bytes")
    return value


class _Frame:
    """The registers and the new frame's stack slots after each instruction."""

    def __init__(self) -> None:
        self.registers: dict[int, Value] = {
            number: StartRegister(number, 16 if number >= 17 else 8)
            for number, _ in _REGISTERS.values()
        }
        self.registers[RSP] = StackAddress(0)
        self.slots: dict[int, _Slot] = {}  # by offset from the first instruction's rsp

    def run(self, insn: capstone.CsInsn) -> None:
        text = f"`{insn.mnemonic} {insn.op_str}` at {insn.address:#x}"
        mnemonic, operands = insn.mnemonic, list(insn.operands)
        if any(insn.group(g) for g in _BRANCHES):
            raise Unreadable(f"its prologue branches ({text})")
        if mnemonic in _FLAGS_ONLY:
            return
        if mnemonic == "push" and len(operands) == 1:
            value = self._read(insn, operands[0], 8, text)
            self._move_rsp(-8, text)
            self._store(self._rsp(text), 8, value, text)
            return
        if mnemonic in ("sub", "add") and _is_rsp(insn, operands[0]):
            if operands[1].type != x86_const.X86_OP_IMM:
                raise Unreadable(f"its prologue moves rsp by a register ({text})")
            self._move_rsp(operands[1].imm if mnemonic == "add" else -operands[1].imm, text)
            return
        if (
            mnemonic == "xor"
            and operands[0].type == operands[1].type == x86_const.X86_OP_REG
            and operands[0].reg == operands[1].reg
        ):
            self._write_register(insn, operands[0], Unknown(f"zeroed by {text}"), text)
            return
        if mnemonic in _MOVES and len(operands) == 2:
            # movzx, movsx and a 32-bit write: only the source's bytes are the start's
            size = min(operands[0].size, operands[1].size, _SCALAR.get(mnemonic, 16))
            value = _narrowed(self._read(insn, operands[1], size, text), size)
            self._write(insn, operands[0], value, text)
            return
        if mnemonic == "lea" and len(operands) == 2:
            self._write(insn, operands[0], self._address(insn, operands[1], text), text)
            return
        self._other(insn, text)

    def _other(self, insn: capstone.CsInsn, text: str) -> None:
        """An instruction outside the subset: the registers it writes become unknown; one
        that writes memory or rsp cannot be followed at all."""
        if any(op.type == x86_const.X86_OP_MEM and op.access & capstone.CS_AC_WRITE
               for op in insn.operands):  # fmt: skip
            raise Unreadable(f"its prologue writes memory the reader does not follow ({text})")
        _, written = insn.regs_access()
        for reg in written:
            name = insn.reg_name(reg)
            if name in ("rflags", "eflags"):
                continue
            known = _REGISTERS.get(name)
            if known is None or known[0] == RSP:
                raise Unreadable(f"its prologue writes {name} ({text})")
            self.registers[known[0]] = Unknown(f"{name} computed by {text}")

    def _rsp(self, text: str) -> int:
        rsp = self.registers[RSP]
        if not isinstance(rsp, StackAddress):
            raise Unreadable(f"rsp no longer follows from the first instruction's ({text})")
        return rsp.offset

    def _move_rsp(self, by: int, text: str) -> None:
        self.registers[RSP] = StackAddress(self._rsp(text) + by)

    def _address(self, insn: capstone.CsInsn, operand: capstone.x86.X86Op, text: str) -> Value:
        """The address a memory operand names, when it is on the stack."""
        memory = operand.mem
        if memory.index != 0 or memory.segment != 0 or memory.base == 0:
            return Unknown(f"an address other than a stack slot in {text}")
        base = _register(insn, memory.base)
        if base is None or base[1] != 8:
            return Unknown(f"an address other than a stack slot in {text}")
        value = self.registers.get(base[0])
        if not isinstance(value, StackAddress):
            return Unknown(f"an address other than a stack slot in {text}")
        return StackAddress(value.offset + memory.disp)

    def _read(self, insn: capstone.CsInsn, operand: capstone.x86.X86Op, size: int, text: str
              ) -> Value:  # fmt: skip
        if operand.type == x86_const.X86_OP_IMM:
            return Unknown(f"a constant ({text})")
        if operand.type == x86_const.X86_OP_REG:
            known = _register(insn, operand.reg)
            if known is None:
                return Unknown(f"{insn.reg_name(operand.reg)} read by {text}")
            value = self.registers.get(known[0], Unknown(f"{text} reads an unfollowed register"))
            return _narrowed(value, known[1])
        address = self._address(insn, operand, text)
        if not isinstance(address, StackAddress):
            return address
        if address.offset >= 0:  # the caller's frame, as it was at the first instruction
            return StartMemory(address.offset, size)
        slot = self.slots.get(address.offset)
        if slot is None or slot.size < size:
            return Unknown(f"the stack slot rsp{address.offset:+d} the prologue did not fill "
                           f"whole before {text}")  # fmt: skip
        return _narrowed(slot.value, size)

    def _write(self, insn: capstone.CsInsn, operand: capstone.x86.X86Op, value: Value, text: str
               ) -> None:  # fmt: skip
        if operand.type == x86_const.X86_OP_REG:
            self._write_register(insn, operand, value, text)
            return
        address = self._address(insn, operand, text)
        if not isinstance(address, StackAddress):
            raise Unreadable(f"its prologue writes memory outside its frame ({text})")
        self._store(address.offset, operand.size, value, text)

    def _write_register(self, insn: capstone.CsInsn, operand: capstone.x86.X86Op, value: Value,
                        text: str) -> None:  # fmt: skip
        known = _register(insn, operand.reg)
        if known is None:
            raise Unreadable(f"its prologue writes {insn.reg_name(operand.reg)} ({text})")
        if known[0] == RSP:
            raise Unreadable(f"its prologue sets rsp ({text})")
        self.registers[known[0]] = _narrowed(value, known[1])

    def _store(self, offset: int, size: int, value: Value, text: str) -> None:
        if offset + size > 0:
            raise Unreadable(f"its prologue writes the caller's frame ({text})")
        for start in [s for s, slot in self.slots.items() if s < offset + size
                      and offset < s + slot.size]:  # fmt: skip
            del self.slots[start]  # overwritten, whole or in part
        self.slots[offset] = _Slot(_narrowed(value, size), size)


def _is_rsp(insn: capstone.CsInsn, operand: capstone.x86.X86Op) -> bool:
    return operand.type == x86_const.X86_OP_REG and _register(insn, operand.reg) == (RSP, 8)


def _register(insn: capstone.CsInsn, reg: int) -> tuple[int, int] | None:
    """(DWARF number, bytes) of a capstone register, None for one the reader does not name
    (ah, segment registers, ymm...)."""
    return _REGISTERS.get(insn.reg_name(reg))


def read_back(
    prologue: Sequence[capstone.CsInsn], pieces: Sequence[Piece], save_reg: int | None = None
) -> tuple[Piece, ...]:
    """`pieces`, as located after the straight-line `prologue`, located at its first
    instruction instead. Raises Unreadable naming what stops it: an instruction the reader
    cannot follow, or a value the prologue computed, or filled only in part."""
    frame = _Frame()
    for insn in prologue:
        frame.run(insn)
    if save_reg is not None and save_reg < SAVE_WORD:
        kept = frame.registers.get(save_reg)
        if kept != StartRegister(save_reg, 8):
            raise Unreadable(f"the register saved for the return is changed: {_why(kept)}")
    return tuple(_located(frame, piece) for piece in pieces)


def _located(frame: _Frame, piece: Piece) -> Piece:
    if piece.reg == CONSTANT_REG or piece.value is not None or (piece.reg == RIP):
        return piece  # a constant; the instruction pointer, which names the hooked address
    if piece.memory:
        base = frame.registers.get(piece.reg)
        if isinstance(base, StackAddress):
            offset = base.offset + piece.offset
            if offset >= 0:
                return Piece(RSP, offset, piece.size, memory=True)
            slot = frame.slots.get(offset)
            value: Value | None = _narrowed(slot.value, piece.size) if slot else None
            if slot is None or slot.size < piece.size:
                raise Unreadable(f"the prologue did not fill the stack slot rsp{offset:+d} whole")
        elif isinstance(base, StartRegister) and base.size == 8:
            # memory elsewhere: the prologue writes its own frame only
            return Piece(base.reg, piece.offset, piece.size, memory=True)
        else:
            raise Unreadable(f"a value's address is computed by the prologue: {_why(base)}")
    else:
        value = frame.registers.get(piece.reg)
    if isinstance(value, StartRegister) and value.size >= piece.size:
        return Piece(value.reg, 0, piece.size, memory=False)
    if isinstance(value, StartMemory) and value.size >= piece.size:
        return Piece(RSP, value.offset, piece.size, memory=True)
    raise Unreadable(f"a value the entry probe reads is not the first instruction's: {_why(value)}")


def _why(value: Value | None) -> str:
    if isinstance(value, Unknown):
        return value.why
    if isinstance(value, StackAddress):
        return f"the stack address rsp{value.offset:+d}"
    if isinstance(value, (StartRegister, StartMemory)):
        return f"only {value.size} bytes of it are known"
    return "a register the reader does not follow"
