"""Machine code of one function: where it returns, whether it is a leaf, where it tail-calls.

capstone lives here and nowhere else. A leaf (no call, no jump out of its own range) is
the only kind of function that may get a uretprobe: no panic can start or unwind through
its frame, while a uretprobe's trampoline on any other frame turns a panic into an abort.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

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


def call_target(code: bytes, address: int) -> tuple[int | None, int | None]:
    """The callee of the call instruction at `address` (`code` starts there): its address
    for a direct call, else the rip-relative slot it is loaded from (a GOT entry)."""
    for insn in _disassembler().disasm(code, address, 1):
        target = _immediate_target(insn)
        if target is not None:
            return target, None
        operands = insn.operands
        if len(operands) == 1 and operands[0].type == capstone.x86.X86_OP_MEM:
            mem = operands[0].mem
            if mem.base and insn.reg_name(mem.base) == "rip" and not mem.index:
                return None, int(insn.address + insn.size + mem.disp)
    return None, None


def loaded_base(code: bytes, address: int) -> MemoryOperand | None:
    """The memory the instruction at `address` (`code` starts there) reads, when it is
    one `[base + disp]` load with no index (`movzx ecx, byte ptr [r14 + 0x48]`)."""
    for insn in _disassembler().disasm(code, address, 1):
        facts = _Facts()
        _memory_facts(insn, facts)
        loads = facts.loads.get(insn.address, ())
        if len(loads) == 1 and loads[0].index is None and loads[0].base is not None:
            return loads[0]
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


# The integer argument registers of the x86-64 psABI, with their DWARF numbers.
_ARGUMENT_REGISTERS = {"rdi": 5, "rsi": 4, "rdx": 1, "rcx": 2, "r8": 8, "r9": 9}


def spilled_after(code: bytes, start: int, entry: int) -> dict[int, int]:
    """The 8-byte stack words that straight-line code from `start` (the function's first
    instruction) fills only after `entry`, and before its first call, jump or change of
    rsp there, from an argument register nothing wrote since `start`: each as its offset
    from rsp at `entry`, with that register's DWARF number. At `entry` such a word does
    not hold the argument yet; the register does. Words written before `entry`, or first
    written otherwise (another size, another source), are left out; so is everything when
    the code before `entry` calls or jumps."""
    cs = _disassembler()
    x86 = capstone.x86
    written: set[str] = set()
    found: dict[int, int] = {}
    stored: set[int] = set()  # words written so far, as offsets from rsp at `start`
    delta = 0  # rsp now minus rsp at `start`
    at_entry: int | None = None
    for insn in cs.disasm(code, start):
        if insn.address >= entry and at_entry is None:
            at_entry = delta
        if any(insn.group(g) for g in _CONTROL_GROUPS):
            if at_entry is None:
                return {}
            break
        ops = insn.operands
        _, writes = insn.regs_access()
        names = {_family(insn.reg_name(r)) for r in writes}
        if insn.mnemonic == "push" and at_entry is None:
            delta -= 8
            stored.add(delta)
            written |= names - {"rsp"}
            continue
        if (
            insn.mnemonic == "sub"
            and at_entry is None
            and ops[0].type == x86.X86_OP_REG
            and insn.reg_name(ops[0].reg) == "rsp"
            and ops[1].type == x86.X86_OP_IMM
        ):
            delta -= ops[1].imm  # fmt: skip
            continue
        if "rsp" in names:
            if at_entry is None:
                return {}
            break
        if ops and ops[0].type == x86.X86_OP_MEM and insn.reg_name(ops[0].mem.base) == "rsp":
            word, size = delta + ops[0].mem.disp, ops[0].size
            source = insn.reg_name(ops[1].reg) if (
                len(ops) == 2 and ops[1].type == x86.X86_OP_REG) else None  # fmt: skip
            if (at_entry is not None and insn.mnemonic == "mov" and size == 8
                    and ops[0].mem.index == 0 and source in _ARGUMENT_REGISTERS
                    and source not in written and word not in stored):  # fmt: skip
                found[word - at_entry] = _ARGUMENT_REGISTERS[source]
            stored.update(range(word - word % 8, word + size, 8))
        written |= names
    return found


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
class MemoryOperand:
    """`[base + index * scale + disp]`, `size` bytes; registers by name, None when absent
    (a rip-relative operand has base "rip")."""

    base: str | None
    index: str | None
    disp: int
    size: int


@dataclass(frozen=True)
class Flow:
    """The control flow of one function's code, instruction by instruction: what each
    instruction can be reached from (`preds`), and which instructions are padding (`nops`).
    The one control-flow analysis: line probes (dwarf/lines.py) and inlined copies' entries
    (dwarf/entries.py) both read it."""

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
    # address -> the memory its explicit operands write (a push's or a call's slot below
    # the stack pointer is no operand: nothing of the frame lives there).
    stores: dict[int, tuple[MemoryOperand, ...]] = field(default_factory=dict)
    # address -> the memory its explicit operands read (a lea reads none: it computes)
    loads: dict[int, tuple[MemoryOperand, ...]] = field(default_factory=dict)
    # Stores that only copy a register or a constant to memory (`mov [rsp + 8], rax`).
    plain_stores: frozenset[int] = frozenset()
    # Address computations: a `lea`'s operand, or rsp + 0 for a `mov` copying rsp.
    leas: dict[int, MemoryOperand] = field(default_factory=dict)
    # Instructions that copy rsp or rbp into another register: a pointer into the frame.
    frame_copies: frozenset[int] = frozenset()
    tables: dict[int, tuple[int, ...]] = field(default_factory=dict)  # jump -> its targets
    lea_targets: dict[int, str] = field(default_factory=dict)  # lea -> the register it sets
    store_sources: dict[int, str] = field(default_factory=dict)  # plain store -> its register
    registers_written: dict[int, frozenset[str]] = field(default_factory=dict)  # explicitly
    registers_read: dict[int, frozenset[str]] = field(default_factory=dict)  # explicitly
    # Calls through a register or memory (a function pointer, a GOT entry): the compiler
    # could not see what the callee does, so it must assume it reads escaped memory.
    opaque_calls: frozenset[int] = frozenset()

    def next_of(self, address: int) -> int | None:
        i = bisect.bisect_right(self.boundaries, address)
        return self.boundaries[i] if i < len(self.boundaries) else None

    @property
    def start(self) -> int:
        return self.boundaries[0] if self.boundaries else 0

    @cached_property
    def _successors(self) -> dict[int, tuple[int, ...]]:
        inside = set(self.boundaries)
        found: dict[int, tuple[int, ...]] = {}
        for n, address in enumerate(self.boundaries):
            after = []
            if address in self.falls and n + 1 < len(self.boundaries):
                after.append(self.boundaries[n + 1])
            target = self.jumps.get(address)
            if target is not None and target in inside:
                after.append(target)
            found[address] = tuple(after)
        return found

    def successors(self, address: int) -> tuple[int, ...]:
        """Where control goes after `address` inside the function: the next instruction
        (unless it jumps, returns or traps) and a direct jump's target (calls return)."""
        return self._successors.get(address, ())

    def leaves(self, address: int) -> bool:
        """Control may leave the function at `address`: a return, a trap, a jump elsewhere."""
        target = self.jumps.get(address)
        return (address not in self.falls and target is None) or (
            target is not None and target not in self._successors
        )

    def reachable(self, starts: Iterable[int], avoiding: Container[int] = ()) -> set[int]:
        """The instructions control can reach from `starts` (included) without passing
        through `avoiding` (a jump through a register goes where `may_follow` says)."""
        seen: set[int] = set()
        todo = [a for a in starts if a not in avoiding]
        while todo:
            address = todo.pop()
            if address in seen or address not in self._successors:
                continue
            seen.add(address)
            todo.extend(a for a in self.may_follow(address) if a not in avoiding)
        return seen

    @cached_property
    def indirect_set(self) -> frozenset[int]:
        return frozenset(self.indirect_sources)

    def on_a_cycle_avoiding(self, address: int, avoiding: Container[int]) -> bool:
        """Control can leave `address` and come back to it without passing `avoiding`."""
        return address in self.reachable(self.successors(address), avoiding)

    def may_follow(self, address: int) -> tuple[int, ...]:
        """`successors`, and where a jump through a register may go: its jump table's
        targets when the table was read, else anywhere."""
        if address in self.indirect_set:
            return self.tables.get(address) or self.boundaries
        return self._successors.get(address, ())

    def written_on_every_path(
        self,
        target: int,
        written: Mapping[int, int],
        wanted: int,
        calls_into_joins_return: bool = True,
    ) -> bool:
        """Every path from the function's entry to `target` runs instructions that write,
        together, all of `wanted` (bit masks: `written[address]` is what that instruction
        surely writes, of whatever units the caller counts, bytes say). A jump through a
        register may land where `may_follow` says. With `calls_into_joins_return` False, a
        call followed by a jump target is taken for one that does not return (LLVM puts a
        panic's call last in its block, and the next block may be anything)."""
        relevant = tuple(sorted((a, m & wanted) for a, m in written.items() if m & wanted))
        key = (relevant, wanted, calls_into_joins_return)
        known = self.memo.get(key)
        if known is None:
            known = self.memo[key] = self._written_before(dict(relevant), calls_into_joins_return)
        return target in known and known[target] & wanted == wanted

    def after_any(self, addresses: Iterable[int]) -> frozenset[int]:
        """The instructions control can reach after running one of `addresses`."""
        key = ("after", tuple(sorted(addresses)))
        found = self.memo.get(key)
        if found is None:
            starts = [b for a in key[1] for b in self.successors(a)]
            found = self.memo[key] = frozenset(self.reachable(starts))
        return found

    @cached_property
    def memo(self) -> dict[Any, Any]:
        """Results of analyses of this code, kept for the other addresses asked about."""
        return {}

    @cached_property
    def jump_targets(self) -> frozenset[int]:
        """The targets of direct jumps and of the jump tables read."""
        return frozenset(self.jumps.values()) | {t for ts in self.tables.values() for t in ts}

    def _written_before(self, written: dict[int, int], calls_return: bool) -> dict[int, int]:
        """What every path from the entry has written before each reachable instruction."""
        known: dict[int, int] = {self.start: 0}  # written on entry: nothing
        todo = [self.start]
        while todo:
            address = todo.pop()
            after = known[address] | written.get(address, 0)
            following = self.may_follow(address)
            if not calls_return and address in self.calls:
                following = tuple(f for f in following if f not in self.jump_targets)
            for successor in following:
                before = known.get(successor)
                meet = after if before is None else before & after
                if meet != before:
                    known[successor] = meet
                    todo.append(successor)
        return known


_RIP_RELATIVE = re.compile(r"rip ([+-]) 0x([0-9a-f]+)")


def _text(insn: capstone.CsInsn) -> str:
    end = insn.address + insn.size

    def absolute(found: re.Match[str]) -> str:
        shift = int(found.group(2), 16)
        return hex(end + shift if found.group(1) == "+" else end - shift)

    return f"{insn.mnemonic} {_RIP_RELATIVE.sub(absolute, insn.op_str)}"


def flow(code: bytes, start: int, read: Reader | None = None, memory: bool = False) -> Flow:
    """Who reaches each instruction of [start, start + len(code)): the instruction before
    it (unless that one is a jmp, a ret or a trap) and every direct jump to it. With `read`
    (the binary's bytes at an address), the targets of LLVM's jump tables too (`tables`);
    with `memory`, what each instruction does to memory and registers (`stores`, `loads`,
    `leas`...: three times the work, which only stack-slot questions need)."""
    cs = _disassembler()
    recent: list[capstone.CsInsn] = []
    table_jumps: dict[int, int] = {}  # indirect jump -> its table's address
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
    facts = _Facts()
    for insn in cs.disasm(code, start):
        boundaries.append(insn.address)
        texts[insn.address] = _text(insn)
        if memory:
            _memory_facts(insn, facts)
        if read is not None:
            recent = recent[-7:] + [insn]
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
                table = _jump_table(recent) if recent else None
                if table is not None:
                    table_jumps[insn.address] = table
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
        stores=facts.stores,
        loads=facts.loads,
        plain_stores=frozenset(facts.plain),
        leas=facts.leas,
        frame_copies=frozenset(facts.copies),
        lea_targets=facts.lea_targets,
        store_sources=facts.store_sources,
        registers_written=facts.registers_written,
        registers_read=facts.registers_read,
        opaque_calls=frozenset(facts.opaque_calls),
        tables=_table_targets(table_jumps, frozenset(boundaries), read),
    )


Reader = Callable[[int, int], "bytes | None"]
_MAX_TABLE = 4096


def _jump_table(recent: list[capstone.CsInsn]) -> int | None:
    """The address of the table an indirect `jmp` (the last of `recent`) reads, when the
    instructions before it are LLVM's position-independent jump table: a `lea` of the
    table into one register, a `movsxd` of a 4-byte offset from it into another, an `add`
    of the two and a `jmp` to the sum (`lea rcx, [rip + T]; movsxd rax, dword ptr
    [rcx + rax*4]; add rax, rcx; jmp rax`, or with the roles of the registers swapped)."""
    jump = recent[-1]
    if len(jump.operands) != 1 or jump.operands[0].type != capstone.x86.X86_OP_REG:
        return None
    target = jump.reg_name(jump.operands[0].reg)
    pair: set[str] | None = None
    base: str | None = None
    for insn in reversed(recent[:-1]):
        ops = insn.operands
        names = [insn.reg_name(o.reg) for o in ops if o.type == capstone.x86.X86_OP_REG]
        if pair is None:
            if insn.mnemonic != "add" or len(names) != 2 or names[0] != target:
                return None
            pair = set(names)
        elif base is None:
            if insn.mnemonic != "movsxd" or len(names) != 1 or names[0] not in pair:
                return None
            mem = ops[1].mem
            base = insn.reg_name(mem.base) if mem.base else None
            index = insn.reg_name(mem.index) if mem.index else None
            if base not in pair or base == names[0] or index in (None, base):
                return None
            if mem.scale != 4 or mem.disp != 0:
                return None
        elif insn.mnemonic == "lea" and names == [base]:
            mem = ops[1].mem
            if insn.reg_name(mem.base) != "rip" or mem.index:
                return None
            return int(insn.address + insn.size + mem.disp)
        elif base in names or insn.group(capstone.CS_GRP_JUMP):
            return None  # the base changes some other way
    return None


def _table_targets(
    jumps: dict[int, int], boundaries: frozenset[int], read: Reader | None
) -> dict[int, tuple[int, ...]]:
    """The instructions each jump table sends control to: its 4-byte offsets from the
    table's start, read until one lands on no instruction of the function (the table has
    ended: reading past it only adds targets, which is safe)."""
    found: dict[int, tuple[int, ...]] = {}
    for jump, table in jumps.items() if read is not None else ():
        raw = read(table, 4 * _MAX_TABLE) if read is not None else None
        if raw is None:
            continue
        targets: list[int] = []
        for n in range(0, len(raw) - 3, 4):
            target = table + int.from_bytes(raw[n : n + 4], "little", signed=True)
            if target not in boundaries:
                break
            targets.append(target)
        else:
            continue  # no end in sight: unknown
        if targets:
            found[jump] = tuple(sorted(set(targets)))
    return found


_FRAME_REGISTERS = frozenset({"rsp", "rbp"})


def _memory(insn: capstone.CsInsn, operand: Any) -> MemoryOperand:
    mem = operand.mem
    return MemoryOperand(
        insn.reg_name(mem.base) if mem.base else None,
        insn.reg_name(mem.index) if mem.index else None,
        int(mem.disp),
        int(operand.size),
    )


@dataclass
class _Facts:
    """What flow() gathers about memory and registers, instruction by instruction."""

    stores: dict[int, tuple[MemoryOperand, ...]] = field(default_factory=dict)
    loads: dict[int, tuple[MemoryOperand, ...]] = field(default_factory=dict)
    plain: set[int] = field(default_factory=set)
    leas: dict[int, MemoryOperand] = field(default_factory=dict)
    lea_targets: dict[int, str] = field(default_factory=dict)
    copies: set[int] = field(default_factory=set)
    store_sources: dict[int, str] = field(default_factory=dict)
    registers_written: dict[int, frozenset[str]] = field(default_factory=dict)
    registers_read: dict[int, frozenset[str]] = field(default_factory=dict)
    opaque_calls: set[int] = field(default_factory=set)


def _memory_facts(insn: capstone.CsInsn, facts: _Facts) -> None:
    """What one instruction reads from and writes to memory, which address it computes
    (lea), which registers it writes, whether it copies the stack or frame pointer into
    another register, and whether it calls through a register or memory."""
    at = insn.address
    operands = list(insn.operands)
    if insn.mnemonic != "lea" and not insn.mnemonic.startswith("nop"):
        read = [
            _memory(insn, o)
            for o in operands
            if o.type == capstone.x86.X86_OP_MEM and o.access & capstone.CS_AC_READ
        ]
        if read:
            facts.loads[at] = tuple(read)
    written = [
        _memory(insn, o)
        for o in operands
        if o.type == capstone.x86.X86_OP_MEM and o.access & capstone.CS_AC_WRITE
    ]
    registers = frozenset(
        insn.reg_name(o.reg)
        for o in operands
        if o.type == capstone.x86.X86_OP_REG and o.access & capstone.CS_AC_WRITE
    )
    if registers:
        facts.registers_written[at] = registers
    read_registers = frozenset(
        insn.reg_name(o.reg)
        for o in operands
        if o.type == capstone.x86.X86_OP_REG and o.access & capstone.CS_AC_READ
    )
    if read_registers:
        facts.registers_read[at] = read_registers
    if written:
        facts.stores[at] = tuple(written)
        if insn.mnemonic.startswith(("mov", "vmov")) and len(operands) == 2:
            facts.plain.add(at)
            if operands[1].type == capstone.x86.X86_OP_REG:
                facts.store_sources[at] = insn.reg_name(operands[1].reg)
    called = operands[0].type if insn.group(capstone.CS_GRP_CALL) and operands else None
    if called is not None and called != capstone.x86.X86_OP_IMM:
        facts.opaque_calls.add(at)
    if insn.mnemonic == "lea" and len(operands) == 2:
        facts.leas[at] = _memory(insn, operands[1])
        facts.lea_targets[at] = insn.reg_name(operands[0].reg)
    elif insn.mnemonic.startswith("mov") and len(operands) == 2:
        source, target = operands[1], operands[0]
        if (
            source.type == capstone.x86.X86_OP_REG
            and insn.reg_name(source.reg) in _FRAME_REGISTERS
            and target.type == capstone.x86.X86_OP_REG
        ):
            facts.copies.add(at)
            # `mov rax, rsp` computes the address rsp + 0, as `lea rax, [rsp]` would.
            facts.leas[at] = MemoryOperand(insn.reg_name(source.reg), None, 0, 8)
            facts.lea_targets[at] = insn.reg_name(target.reg)


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
