"""Machine code of one function: where it returns, whether it is a leaf, where it tail-calls.

capstone lives here and nowhere else. A leaf (no call, no jump out of its own range) is
the only kind of function that may get a uretprobe: no panic can start or unwind through
its frame, while a uretprobe's trampoline on any other frame turns a panic into an abort.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
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
# The opcodes arch/x86/kernel/uprobes.c will single-step in 64-bit code (good_insns_64 and
# good_2byte_insns, one string of 16 flags per row of 16 opcodes). Anything else is
# accepted by perf_event_open and then never fires. The kernel checks a VEX or EVEX
# instruction's opcode byte against the one-byte table whatever its opcode map, and
# three-byte opcodes (0f 38 .., 0f 3a ..) against none. Measured on this kernel: uprobes on
# `vmovdqu` (c5 .. 6f), `vpaddq` (c5 .. d4) and the EVEX `vpcmpnleuq` (62 .. 1e) never fire,
# ones on `vpshufd` (c5 .. 70), `vmovq` (c4 .. 7e), `kmovd` (c5 .. 93) do.
_GOOD_64 = (
    "1111110011111100" "1111110011111100" "1111110011111100" "1111110011111100"
    "0000000000000000" "1111111111111111" "0001110011110000" "1111111111111111"
    "1101111111111111" "1111111111111111" "1111111111111111" "1111111111111111"
    "1111001111110000" "1111000111111111" "1111000011110000" "0011011111001111"
)  # fmt: skip
_GOOD_2BYTE = (
    "0000000000000011" "1111111101111111" "1111000011111111" "0111000000000000"
    "1111111111111111" "1111111111111111" "1111111111111111" "1111111100000011"
    "1111111111111111" "1111111111111111" "1111110011111101" "1111111101111111"
    "1111111111111111" "0111111111111111" "1111111111111111" "0111111111111110"
)  # fmt: skip
_LEGACY_PREFIXES = frozenset({0x66, 0x67, 0xF2, 0xF3, 0xF0, 0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65})


def refused_by_uprobes(raw: bytes) -> bool:
    """Whether the kernel refuses a uprobe on the x86-64 instruction `raw` (silently: the
    probe is accepted and never fires). Mirrors uprobe_init_insn: bad prefixes, then the
    tables of instructions it knows how to single-step out of line."""
    i = 0
    while i < len(raw) and raw[i] in _LEGACY_PREFIXES:
        if raw[i] == _LOCK or raw[i] in _BAD_SEGMENTS:
            return True
        i += 1
    if i < len(raw) and 0x40 <= raw[i] <= 0x4F:
        i += 1  # REX
    if i >= len(raw):
        return True
    first = raw[i]
    vex_opcode_at = {0xC5: 2, 0xC4: 3, 0x62: 4}.get(first)
    if vex_opcode_at is not None:
        at = i + vex_opcode_at
        return at >= len(raw) or _GOOD_64[raw[at]] != "1"
    if first != 0x0F:
        return _GOOD_64[first] != "1"
    if i + 1 >= len(raw) or raw[i + 1] in (0x38, 0x3A):
        return True  # a three-byte opcode: in neither table
    return _GOOD_2BYTE[raw[i + 1]] != "1"


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
        if refused_by_uprobes(bytes(insn.bytes)):
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


def _family(name: str) -> str:
    """The 64-bit register a register name is part of (`edi`, `dil` -> `rdi`)."""
    for full, parts in _FAMILIES.items():
        if name == full or name in parts:
            return full
    return name


_FAMILIES = {
    "rax": ("eax", "ax", "al", "ah"), "rbx": ("ebx", "bx", "bl", "bh"),
    "rcx": ("ecx", "cx", "cl", "ch"), "rdx": ("edx", "dx", "dl", "dh"),
    "rsi": ("esi", "si", "sil"), "rdi": ("edi", "di", "dil"), "rbp": ("ebp", "bp", "bpl"),
    "rsp": ("esp", "sp", "spl"),
    **{f"r{n}": (f"r{n}d", f"r{n}w", f"r{n}b") for n in range(8, 16)},
}  # fmt: skip


def rdi_slot(code: bytes, start: int) -> int | None:
    """Where the caller's rdi (a hidden return pointer, say) is at the end of `code`
    (straight-line code from `start`, the function's first instruction) when the code
    spilled it to the stack: the offset from rsp at the end of a slot that holds it, else
    None. Follows 64-bit register-to-register and register/stack-slot moves, `sub $n, %rsp`
    and `push`; gives up (None) at a call or jump, any other change of rsp, or a memory
    write through anything but rsp (it could reach the slot)."""
    cs = _disassembler()
    holders = {"rdi"}  # registers that hold the value
    slots: set[int] = set()  # stack slots that hold it, as offsets from rsp at `start`
    delta = 0  # rsp now minus rsp at `start`
    x86 = capstone.x86
    for insn in cs.disasm(code, start):
        if any(insn.group(g) for g in _CONTROL_GROUPS):
            return None  # a call, or code that is not straight-line
        ops = insn.operands
        if (
            insn.mnemonic == "sub"
            and ops[0].type == x86.X86_OP_REG
            and insn.reg_name(ops[0].reg) == "rsp"
            and ops[1].type == x86.X86_OP_IMM
        ):
            delta -= ops[1].imm
            continue
        if insn.mnemonic == "push" and ops[0].type == x86.X86_OP_REG and ops[0].size == 8:
            delta -= 8
            slots.discard(delta)
            if insn.reg_name(ops[0].reg) in holders:
                slots.add(delta)
            continue
        if insn.mnemonic == "mov" and len(ops) == 2 and ops[0].size == ops[1].size == 8:
            dst, src = ops
            if dst.type == x86.X86_OP_REG and src.type == x86.X86_OP_REG:
                name = insn.reg_name(dst.reg)
                if name != "rsp":
                    holders.discard(name)
                    if insn.reg_name(src.reg) in holders:
                        holders.add(name)
                    continue
            stack = src if src.type == x86.X86_OP_MEM else dst
            if (
                stack.type == x86.X86_OP_MEM
                and stack.mem.segment == 0
                and insn.reg_name(stack.mem.base) == "rsp"
                and stack.mem.index == 0
            ):
                where = delta + stack.mem.disp
                other = dst if stack is src else src
                if other.type == x86.X86_OP_REG and insn.reg_name(other.reg) != "rsp":
                    name = insn.reg_name(other.reg)
                    if stack is dst:  # a spill: the slot now holds the register
                        slots -= set(range(where - 7, where + 8))
                        if name in holders:
                            slots.add(where)
                    else:  # a reload
                        holders.discard(name)
                        if where in slots:
                            holders.add(name)
                    continue
        # Anything else: what it writes no longer holds the value.
        _, written = insn.regs_access()
        names = {_family(insn.reg_name(r)) for r in written}
        if "rsp" in names:
            return None
        holders -= names
        for op in ops:
            if op.type == x86.X86_OP_MEM and op.access & capstone.CS_AC_WRITE:
                if insn.reg_name(op.mem.base) != "rsp" or op.mem.index != 0:
                    return None
                where = delta + op.mem.disp
                slots -= set(range(where - 7, where + op.size))
    return min(slots) - delta if slots else None


@dataclass(frozen=True)
class Step:
    """How control leaves one instruction: `falls_through` to the next one, and/or jumps
    to `target` (None: no jump, or an indirect one)."""

    address: int
    size: int
    falls_through: bool
    target: int | None
    indirect: bool = False


def steps(code: bytes, start: int) -> list[Step]:
    """Every instruction of straight or branching code from `start`, with where it goes
    next (a call returns to the next instruction: it falls through)."""
    cs = _disassembler()
    found: list[Step] = []
    for insn in cs.disasm(code, start):
        groups = set(insn.groups)
        target = None
        falls = True
        indirect = False
        if capstone.CS_GRP_RET in groups or insn.mnemonic in ("ud2", "hlt", "int3"):
            falls = False
        elif capstone.CS_GRP_JUMP in groups:
            target = _immediate_target(insn)
            indirect = target is None
            falls = insn.mnemonic != "jmp"
        found.append(Step(insn.address, insn.size, falls, target, indirect))
    return found


@dataclass(frozen=True)
class Flow:
    """The control flow of one function's code, instruction by instruction: what each
    instruction can be reached from (`preds`), and which instructions are padding (`nops`)."""

    boundaries: tuple[int, ...]
    preds: dict[int, tuple[int, ...]]  # address -> the instructions that fall or jump into it
    nops: frozenset[int]
    indirect_jumps: int  # jumps through a register or memory: targets unknown
    # address -> the instruction as text, rip-relative operands made absolute: two equal
    # texts do the same thing (`lock inc qword ptr [0x57910]`).
    texts: dict[int, str] = field(default_factory=dict)
    jumps: dict[int, int] = field(default_factory=dict)  # direct jump -> its target
    indirect_sources: tuple[int, ...] = ()  # the jumps through a register or memory
    calls: frozenset[int] = frozenset()  # call instructions
    falls: frozenset[int] = frozenset()  # instructions that may go on to the next one

    def next_of(self, address: int) -> int | None:
        i = bisect.bisect_right(self.boundaries, address)
        return self.boundaries[i] if i < len(self.boundaries) else None


_RIP_RELATIVE = re.compile(r"rip ([+-]) 0x([0-9a-f]+)")


def _text(insn: capstone.CsInsn) -> str:
    end = insn.address + insn.size

    def absolute(found: re.Match[str]) -> str:
        shift = int(found.group(2), 16)
        return hex(end + shift if found.group(1) == "+" else end - shift)

    return f"{insn.mnemonic} {_RIP_RELATIVE.sub(absolute, insn.op_str)}"


def flow(code: bytes, start: int) -> Flow:
    """Who reaches each instruction of [start, start + len(code)): the instruction before
    it (unless that one is a jmp, a ret or a trap) and every direct jump to it."""
    cs = _disassembler()
    boundaries: list[int] = []
    preds: dict[int, list[int]] = {}
    nops: set[int] = set()
    indirect = 0
    falls: int | None = None
    texts: dict[int, str] = {}
    jumps: dict[int, int] = {}
    falling: set[int] = set()
    sources: list[int] = []
    call_sites: set[int] = set()
    for insn in cs.disasm(code, start):
        boundaries.append(insn.address)
        texts[insn.address] = _text(insn)
        if falls is not None:
            preds.setdefault(insn.address, []).append(falls)
        mnemonic = insn.mnemonic
        if mnemonic.startswith("nop"):  # `nopl`, `cs nopw` and the like: padding
            nops.add(insn.address)
        groups = set(insn.groups)
        falls = insn.address
        if capstone.CS_GRP_RET in groups or mnemonic in ("jmp", "ud2", "int3", "hlt"):
            falls = None
        else:
            falling.add(insn.address)
        if capstone.CS_GRP_CALL in groups:
            call_sites.add(insn.address)
        if capstone.CS_GRP_JUMP in groups:
            target = _immediate_target(insn)
            if target is None:
                indirect += 1
                sources.append(insn.address)
            else:
                preds.setdefault(target, []).append(insn.address)
                jumps[insn.address] = target
    return Flow(
        tuple(boundaries),
        {k: tuple(v) for k, v in preds.items()},
        frozenset(nops),
        indirect,
        texts,
        jumps,
        indirect_sources=tuple(sources),
        falls=frozenset(falling),
        calls=frozenset(call_sites),
    )
def written_before_returns(
    code: bytes, start: int, shape: CodeShape, registers: tuple[frozenset[str], ...]
) -> bool:
    """Every `ret` of the function is preceded, in its own straight-line block and after its
    last call, by instructions that write each of `registers` (each a set of names of one
    register and its parts): the values there were computed for the return, not left over
    from a callee."""
    return all(all(row) for row in written_at_returns(code, start, shape, registers))


def written_at_returns(
    code: bytes, start: int, shape: CodeShape, registers: tuple[frozenset[str], ...]
) -> list[list[bool]]:
    """For each `ret`, whether each of `registers` is written in the straight-line block
    before it, after the last call (see written_before_returns)."""
    insns = list(_disassembler().disasm(code, start))
    rows = []
    for i, insn in enumerate(insns):
        if insn.address not in shape.returns:
            continue
        missing = set(range(len(registers)))
        for prev in reversed(insns[:i]):
            if prev.address in shape.control:
                break
            _, written = prev.regs_access()
            names = {prev.reg_name(r) for r in written}
            missing = {m for m in missing if not (registers[m] & names)}
            if not missing or prev.address in shape.jump_targets:
                break
        rows.append([m not in missing for m in range(len(registers))])
    return rows
