"""Machine code of one function: where it returns, whether it is a leaf, where it tail-calls.

capstone lives here and nowhere else. A leaf (no call, no jump out of its own range) is
the only kind of function that may get a uretprobe: no panic can start or unwind through
its frame, while a uretprobe's trampoline on any other frame turns a panic into an abort.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import capstone


@dataclass(frozen=True)
class TailCall:
    address: int  # of the jmp
    target: int | None  # None for an indirect jump
    # A conditional tail call (`jg other_fn`): the jcc mnemonic. The probe on it fires
    # whether or not the jump is taken, so the event must say which (see `branch_taken`).
    condition: str | None = None


@dataclass(frozen=True)
class CodeShape:
    start: int
    end: int
    returns: tuple[int, ...]  # addresses of ret instructions
    tail_calls: tuple[TailCall, ...]
    calls: int  # call instructions, direct or indirect
    indirect_jumps: int  # jmp through a register or memory (jump tables included)
    branches_out: int  # conditional branches out of the range that are no tail call we can read
    jump_targets: frozenset[int]  # branch targets inside [start, end)
    boundaries: tuple[int, ...] = ()  # the address of every instruction, in order
    unprobeable: frozenset[int] = frozenset()  # instructions the kernel will not uprobe
    control: frozenset[int] = frozenset()  # calls, jumps and returns

    def probe_point(self, address: int) -> int | None:
        """An instruction near `address` that a uprobe can take and that runs exactly as
        often as `address` does, or None. x86 uprobes refuse LOCK- and segment-prefixed
        instructions (an atomic `lock inc`, the `cs nopw` padding before a loop head).

        First the nearest one after it in straight-line code (no jump lands in between),
        else the nearest one before it whose execution always falls through to it.
        """
        i = bisect.bisect_left(self.boundaries, address)
        if i == len(self.boundaries) or self.boundaries[i] != address:
            return None  # not an instruction boundary
        for at in self.boundaries[i:]:
            if at != address and at in self.jump_targets:
                break
            if at not in self.unprobeable:
                return at
            if at in self.control:
                break
        # Backwards: each step must fall through into the next, and nothing may jump into
        # the run, or the earlier instruction would run a different number of times.
        for j in range(i - 1, -1, -1):
            after = self.boundaries[j + 1]
            at = self.boundaries[j]
            if after in self.jump_targets or at in self.control:
                return None
            if at not in self.unprobeable:
                return at
        return None

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


# The prefixes arch/x86/kernel/uprobes.c refuses (is_prefix_bad): LOCK, and the ES, CS, DS
# and SS segment overrides. A probe there is accepted by perf_event_open but never fires.
_LOCK = 0xF0
_BAD_SEGMENTS = frozenset({0x26, 0x2E, 0x36, 0x3E})
_CONTROL_GROUPS = frozenset({capstone.CS_GRP_JUMP, capstone.CS_GRP_CALL, capstone.CS_GRP_RET})


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
    boundaries: list[int] = []
    unprobeable: set[int] = set()
    control: set[int] = set()
    for insn in cs.disasm(code, start):
        position = insn.address + insn.size
        boundaries.append(insn.address)
        if insn.prefix[0] == _LOCK or insn.prefix[1] in _BAD_SEGMENTS:
            unprobeable.add(insn.address)
        groups = set(insn.groups)
        if groups & _CONTROL_GROUPS:
            control.add(insn.address)
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
            elif insn.mnemonic in _CONDITIONS:
                tail_calls.append(TailCall(insn.address, target, insn.mnemonic))
            else:  # jrcxz, loop...: their condition is not in the flags
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
        tuple(boundaries),
        frozenset(unprobeable),
        frozenset(control),
    )


_CF, _PF, _ZF, _SF, _OF = 1 << 0, 1 << 2, 1 << 6, 1 << 7, 1 << 11

# The jcc mnemonics capstone prints, and whether each jumps given RFLAGS.
_CONDITIONS: dict[str, Callable[[int], bool]] = {
    "jo": lambda f: bool(f & _OF),
    "jno": lambda f: not f & _OF,
    "jb": lambda f: bool(f & _CF),
    "jae": lambda f: not f & _CF,
    "je": lambda f: bool(f & _ZF),
    "jne": lambda f: not f & _ZF,
    "jbe": lambda f: bool(f & (_CF | _ZF)),
    "ja": lambda f: not f & (_CF | _ZF),
    "js": lambda f: bool(f & _SF),
    "jns": lambda f: not f & _SF,
    "jp": lambda f: bool(f & _PF),
    "jnp": lambda f: not f & _PF,
    "jl": lambda f: bool(f & _SF) != bool(f & _OF),
    "jge": lambda f: bool(f & _SF) == bool(f & _OF),
    "jle": lambda f: bool(f & _ZF) or bool(f & _SF) != bool(f & _OF),
    "jg": lambda f: not f & _ZF and bool(f & _SF) == bool(f & _OF),
}


def branch_taken(condition: str, flags: int) -> bool:
    """Whether the conditional jump `condition` (a jcc mnemonic) jumps, given RFLAGS."""
    return _CONDITIONS[condition](flags)


def _immediate_target(insn: capstone.CsInsn) -> int | None:
    operands = insn.operands
    if len(operands) == 1 and operands[0].type == capstone.x86.X86_OP_IMM:
        return int(operands[0].imm)
    return None


_RDI_NAMES = frozenset({"rdi", "edi", "di", "dil"})


def keeps_rdi(code: bytes, start: int) -> bool:
    """No instruction of `code` (straight-line code from `start`) writes rdi or a part of
    it, nor calls anything: rdi still holds what the caller passed (a hidden return
    pointer, say) at the end of the range."""
    cs = _disassembler()
    for insn in cs.disasm(code, start):
        if insn.group(capstone.CS_GRP_CALL):
            return False
        _, written = insn.regs_access()
        if any(insn.reg_name(r) in _RDI_NAMES for r in written):
            return False
    return True


def written_before_returns(
    code: bytes, start: int, shape: CodeShape, registers: tuple[frozenset[str], ...]
) -> bool:
    """Every `ret` of the function is preceded, in its own straight-line block and after its
    last call, by instructions that write each of `registers` (each a set of names of one
    register and its parts): the values there were computed for the return, not left over
    from a callee."""
    insns = list(_disassembler().disasm(code, start))
    for i, insn in enumerate(insns):
        if insn.address not in shape.returns:
            continue
        needed = list(registers)
        for prev in reversed(insns[:i]):
            if prev.address in shape.control:
                break
            _, written = prev.regs_access()
            names = {prev.reg_name(r) for r in written}
            needed = [r for r in needed if not (r & names)]
            if not needed or prev.address in shape.jump_targets:
                break
        if needed:
            return False
    return True
