"""Machine code of one function: where it returns, whether it is a leaf, where it tail-calls.

capstone lives here and nowhere else. A leaf (no call, no jump out of its own range) is
the only kind of function that may get a uretprobe: no panic can start or unwind through
its frame, while a uretprobe's trampoline on any other frame turns a panic into an abort.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import capstone


@dataclass(frozen=True)
class TailCall:
    address: int  # of the jmp
    target: int | None  # None for an indirect jump


@dataclass(frozen=True)
class CodeShape:
    start: int
    end: int
    returns: tuple[int, ...]  # addresses of ret instructions
    tail_calls: tuple[TailCall, ...]
    calls: int  # call instructions, direct or indirect
    indirect_jumps: int  # jmp through a register or memory (jump tables included)
    branches_out: int  # conditional branches that leave the range
    jump_targets: frozenset[int]  # branch targets inside [start, end)

    @property
    def is_leaf(self) -> bool:
        """True when nothing can unwind through the frame: no call, no jump out of the range."""
        return (
            self.calls == 0
            and not self.tail_calls
            and self.indirect_jumps == 0
            and self.branches_out == 0
        )


class UndecodableCode(Exception):
    """The bytes do not decode as x86-64 instructions up to the end of the range."""


@lru_cache(maxsize=1)
def _disassembler() -> capstone.Cs:
    cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    cs.detail = True
    return cs


def analyze(code: bytes, start: int) -> CodeShape:
    """Classify the instructions of one function's range [start, start + len(code))."""
    end = start + len(code)
    cs = _disassembler()
    returns: list[int] = []
    tail_calls: list[TailCall] = []
    targets: set[int] = set()
    calls = indirect = branches_out = 0
    position = start
    for insn in cs.disasm(code, start):
        position = insn.address + insn.size
        groups = set(insn.groups)
        if capstone.CS_GRP_RET in groups:
            returns.append(insn.address)
        elif capstone.CS_GRP_CALL in groups:
            calls += 1
        elif capstone.CS_GRP_JUMP in groups:
            target = _immediate_target(insn)
            if target is None:
                if insn.mnemonic == "jmp":
                    indirect += 1
            elif start <= target < end:
                targets.add(target)
            elif insn.mnemonic == "jmp":
                tail_calls.append(TailCall(insn.address, target))
            else:
                branches_out += 1
    if position != end:
        raise UndecodableCode(f"decoding stopped at {position:#x}, before the end at {end:#x}")
    return CodeShape(
        start,
        end,
        tuple(returns),
        tuple(tail_calls),
        calls,
        indirect,
        branches_out,
        frozenset(targets),
    )


def _immediate_target(insn: capstone.CsInsn) -> int | None:
    operands = insn.operands
    if len(operands) == 1 and operands[0].type == capstone.x86.X86_OP_IMM:
        return int(operands[0].imm)
    return None
