"""Where the in-process engine hooks each site of a plan.

Frida's Interceptor patches a 5-byte jump over the hooked instruction and the ones after
it, so it cannot hook a lone `ret` (or the `jmp` of a tail call) at the end of a function:
nothing follows it to relocate. A uprobe can. Such a site is hooked instead at the first
instruction of the straight-line epilogue that ends in it, when every instruction from
there on leaves the return registers (rax, rdx, xmm0, xmm1) alone, no branch lands inside
the patched bytes, and .eh_frame gives the CFA there: the values read are the values the
`ret` sees, and the frame is the same one.

A uretprobe-style hijack of the return (Frida's onLeave) is used for leaf functions only,
as the plan says: on a function a panic unwinds through, it turns the panic into an abort.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import capstone

from ..dwarf import frames
from ..dwarf.locations import Cfa, Piece
from ..machine_code import _disassembler
from ..plan import RSP, ProbePlan, Site, SiteKind, shape_of
from . import prologue

PATCH_BYTES = 5  # Frida's near jump
RBP = 6  # DWARF's number for rbp
_LIVENESS_STATES = 4096  # red_zone_live_at: more paths than this count as live
# Epilogue instructions that change neither the return registers nor where control goes.
_EPILOGUE = {"pop", "add", "lea", "mov", "leave", "nop", "endbr64"}
_RETURN_REGISTERS = {"rax", "eax", "ax", "al", "rdx", "edx", "dx", "dl", "xmm0", "xmm1"}


@dataclass(frozen=True)
class Hook:
    """One Interceptor attachment: `kind` is "enter", "leave" or "probe"."""

    site: int
    address: int
    kind: str
    cfa: Cfa | None = None  # when moved: the CFA rule at the new address
    pieces: tuple[Piece, ...] | None = None  # when moved: where the same values are there
    returns: int | None = None  # kind "both": the return site hooked by the same listener


class Unhookable(Exception):
    """A site the in-process engine cannot hook: args are (site number, why)."""


class Placement(NamedTuple):
    """The hooks of a plan, and the functions (by index) left out whole because a site of
    theirs cannot be hooked: (that site's number, why)."""

    hooks: list[Hook]
    left_out: dict[int, tuple[int, str]]


def hooks(plan: ProbePlan, record: bool) -> Placement:
    """Every site's hook. A function with a site that cannot be hooked is left out whole
    (none of its sites hooked: a call whose entry is seen but not its return would look
    unwound), as the plan leaves out a site no uprobe can take: its probe's count is then
    a lower bound naming the site (see engine.py)."""
    out = []
    left_out: dict[int, tuple[int, str]] = {}
    for number, site in enumerate(plan.sites):
        if not (record or site.kind.starts_a_call):
            continue
        try:
            out.append(_hook(plan, number, site))
        except Unhookable as exc:
            if site.function >= len(plan.functions):
                continue  # a marker (std::process::exit, abort, rust_panic): only evidence
            left_out.setdefault(site.function, (number, str(exc)))
    for index in list(left_out):
        leave = _leaf_return_hook(plan, index, left_out[index][0])
        if leave is not None:  # its returns through one return hook instead
            del left_out[index]
            out = [h for h in out if not _is_return_of(plan, h.site, index)] + [leave]
    kept = [h for h in out if plan.sites[h.site].function not in left_out]
    for number, why in _tail_calls_into_leave_hooks(plan, kept):
        left_out.setdefault(plan.sites[number].function, (number, why))
    kept = [h for h in kept if plan.sites[h.site].function not in left_out]
    kept = _separate_overlaps(plan, kept, left_out)
    return Placement(_combine_leaf_hooks(plan, kept), left_out)


def _separate_overlaps(
    plan: ProbePlan, planned: list[Hook], left_out: dict[int, tuple[int, str]]
) -> list[Hook]:
    """Two hooks whose patches overlap (a return hook on a leaf's first instruction, its
    entry probe 2 bytes further) break each other: the second patch lands inside the
    first's jump, and the second never fires (measured: a call counted 0 for 1). The later
    one is an entry probe moved to the first instruction when its values can be read back
    there; otherwise its function is left out whole."""
    while True:
        ordered = sorted(planned, key=lambda h: h.address)
        clash = None
        for first, second in zip(ordered, ordered[1:]):
            if first.address < second.address < _window_end(plan, first):
                clash = (first, second)
                break
        if clash is None:
            return planned
        first, second = clash
        site = plan.sites[second.site]
        moved = None
        code = _Code.of(plan, site)
        if site.kind is SiteKind.ENTRY and first.address == code.start and second.kind == "probe":
            try:
                pieces = code.pieces_at_start(site)
                moved = Hook(second.site, code.start, "probe", Cfa(RSP, 8), pieces)
            except Unhookable:
                moved = None
        if moved is not None:
            planned = [moved if h is second else h for h in planned]
            continue
        why = f"its hook at {second.address:#x} overlaps Frida's patch at {first.address:#x}"
        for hook in (first, second):
            index = plan.sites[hook.site].function
            if index < len(plan.functions):
                left_out.setdefault(index, (hook.site, why))
        planned = [h for h in planned if plan.sites[h.site].function not in left_out]
        # a marker overlapping a probe's hook: the probe is left out, the marker kept
        if any(h is first or h is second for h in planned):
            planned = [h for h in planned if h is not first and h is not second]


def _window_end(plan: ProbePlan, hook: Hook) -> int:
    """The end of the instructions Frida's patch at the hook's address overwrites."""
    code = _Code.of(plan, plan.sites[hook.site])
    i = code.index.get(hook.address)
    if i is None:
        return hook.address + PATCH_BYTES
    end = hook.address
    while end < hook.address + PATCH_BYTES and i < len(code.instructions):
        end = code.instructions[i].address + code.instructions[i].size
        i += 1
    return max(end, hook.address + PATCH_BYTES)


def _is_return_of(plan: ProbePlan, number: int, function: int) -> bool:
    site = plan.sites[number]
    return site.function == function and site.kind is SiteKind.RETURN


def _leaf_return_hook(plan: ProbePlan, index: int, failed: int) -> Hook | None:
    """A leaf whose `ret` cannot be hooked (`xor eax, eax; ret`, `lea rax, [rdi + rsi];
    ret`) has its returns seen by one return hook on its first instruction (Frida's onLeave,
    as a uretprobe): allowed on a leaf only, since nothing can unwind through a frame that
    calls nothing. Every return site must read the same values (they all read the return
    registers), and the first instruction must take Frida's patch."""
    function = plan.functions[index]
    shape = function.shape
    if plan.sites[failed].kind is not SiteKind.RETURN or shape is None or not shape.is_leaf:
        return None
    sites = [(n, s) for n, s in enumerate(plan.sites) if s.function == index]
    returns = [(n, s) for n, s in sites if s.kind is SiteKind.RETURN]
    if any(s.kind not in (SiteKind.ENTRY, SiteKind.RETURN) for _, s in sites) or not returns:
        return None
    first = returns[0][1]
    recipe = (first.pieces, first.derefs, first.save_reg, first.load_word)
    if any((s.pieces, s.derefs, s.save_reg, s.load_word) != recipe for _, s in returns):
        return None
    code = _Code.of(plan, first)
    try:
        code.check_window(shape.start)
    except Unhookable:
        return None
    return Hook(returns[0][0], shape.start, "leave")


def _combine_leaf_hooks(plan: ProbePlan, planned: list[Hook]) -> list[Hook]:
    """A leaf whose entry and return hooks share its first instruction gets one function
    listener for both: one trampoline per call instead of two (about half the cost)."""
    entries = {
        (plan.sites[h.site].function, h.address): h
        for h in planned
        if plan.sites[h.site].kind is SiteKind.ENTRY and h.cfa is None and h.pieces is None
    }
    combined: dict[int, Hook] = {}
    for hook in planned:
        if hook.kind != "leave":
            continue
        entry = entries.get((plan.sites[hook.site].function, hook.address))
        if entry is not None:
            combined[entry.site] = Hook(entry.site, hook.address, "both", returns=hook.site)
            combined[hook.site] = combined[entry.site]
    out: list[Hook] = []
    for hook in planned:
        both = combined.get(hook.site)
        if both is None:
            out.append(hook)
        elif both.site == hook.site:
            out.append(both)
    return out


def _tail_calls_into_leave_hooks(plan: ProbePlan, planned: list[Hook]) -> list[tuple[int, str]]:
    """Frida runs no leave hook for a function entered by a jump out of a hooked tail-call
    site (measured: the return is never seen, so the call would look unwound). The leave
    hooks where that can happen: (site number, why), to be left out rather than report
    such a call as unwound."""
    jumps = [plan.sites[h.site] for h in planned if plan.sites[h.site].kind is SiteKind.TAIL_CALL]
    if not jumps:
        return []
    targets = {site.target for site in jumps}
    refused = []
    for hook in planned:
        if hook.kind != "leave":
            continue
        function = plan.function(plan.sites[hook.site].function)
        if function.symbol.address in targets or None in targets:
            refused.append(
                (
                    hook.site,
                    f"a traced tail call may jump into {function.symbol.path}, and Frida runs "
                    "no return hook for a function entered that way",
                )
            )
    return refused


def _reads_red_zone(site: Site, code: _Code) -> bool:
    """A value below rsp: rsp-based, or, in a leaf (the only functions with a red zone),
    below the frame pointer (`push rbp; mov rbp, rsp; mov [rbp - 8], rdi`: C, and Rust
    built with frame pointers), where a leaf without `sub rsp` keeps it below rsp too."""
    return any(
        p.memory and p.offset < 0 and (p.reg == RSP or (p.reg == RBP and code.shape.is_leaf))
        for p in site.pieces
    )


def _hook(plan: ProbePlan, number: int, site: Site) -> Hook:
    code = _Code.of(plan, site)
    if _reads_red_zone(site, code):
        # A leaf keeps values in the red zone below rsp, which Frida's trampoline overwrites
        # before the callback reads it (measured: a pointer read for a u64 argument). At
        # the first instruction they are still in the registers the prologue stores.
        if site.kind is not SiteKind.ENTRY or site.address == code.start:
            raise Unhookable("a value lives below rsp, where Frida's trampoline writes")
        return Hook(number, code.start, "probe", Cfa(RSP, 8), code.pieces_at_start(site))
    if site.kind is not SiteKind.URETPROBE and code.red_zone_live_at(site.address):
        # Values no probe reads (a temporary the leaf spilled below rsp) are overwritten
        # all the same: the program itself would compute something else (measured: a C
        # leaf at -O0 printed a pointer-sized number for 2 * n + 1).
        if site.kind is not SiteKind.ENTRY:
            raise Unhookable(
                "the leaf keeps values below rsp there, which Frida's trampoline overwrites"
            )
        return Hook(number, code.start, "probe", Cfa(RSP, 8), code.pieces_at_start(site))
    if site.kind is SiteKind.URETPROBE:
        code.check_window(site.address)
        return Hook(number, site.address, "leave")
    if site.kind in (SiteKind.ENTRY, SiteKind.INLINED, SiteKind.LINE, SiteKind.USDT):
        # A probe listener, never an onEnter one: Frida hijacks the return of every call
        # through a function listener, which turns an unwinding panic into an abort.
        # A line's first instruction and a USDT probe's nop are hooked as an entry is.
        try:
            code.check_window(site.address)
        except Unhookable:
            if site.kind is not SiteKind.ENTRY or site.address == code.start:
                raise
            pieces = code.pieces_at_start(site)  # the prologue stored them from registers
            return Hook(number, code.start, "probe", Cfa(RSP, 8), pieces)
        return Hook(number, site.address, "probe")
    if site.kind is SiteKind.TAIL_CALL and code.size_at(site.address) >= PATCH_BYTES:
        # A jmp/jcc rel32 is a patch of its own: Frida relocates the jump and nothing else.
        code.check_window(site.address)
        return Hook(number, site.address, "probe")
    if site.condition is not None:
        raise Unhookable(f"a conditional tail call in a {code.size_at(site.address)}-byte jump")
    address, cfa = _epilogue_start(plan, site)
    return Hook(number, address, "probe", cfa)


def _epilogue_start(plan: ProbePlan, site: Site) -> tuple[int, Cfa]:
    function = plan.function(site.function)
    shape = function.shape
    assert shape is not None
    raw = plan.binary.code(shape.start, shape.end - shape.start)
    assert raw is not None
    instructions = list(_disassembler().disasm(raw, shape.start))
    position = next(
        (i for i, insn in enumerate(instructions) if insn.address == site.address), None
    )
    if position is None:
        raise Unhookable(f"no instruction at {site.address:#x}")
    last = instructions[position]
    end = last.address + last.size
    i = position
    while end - instructions[i].address < PATCH_BYTES:
        if i == 0 or not _keeps_return(instructions[i - 1]):
            before = instructions[i - 1] if i else last
            raise Unhookable(
                f"its {last.mnemonic} is too short for Frida's 5-byte patch, and the "
                f"instruction before the patch ({before.mnemonic} {before.op_str}) is no plain "
                "epilogue instruction"
            )
        i -= 1
    inside = [insn.address for insn in instructions[i + 1 : position + 1]]
    if any(address in shape.jump_targets for address in inside):
        raise Unhookable("a branch lands inside the epilogue Frida would patch")
    start = instructions[i].address
    if start == site.address:
        return start, site.cfa
    cfa = frames.cfa_at(plan.binary, start)
    if cfa is None:
        raise Unhookable(f".eh_frame gives no CFA rule at {start:#x}")
    return start, cfa


def _keeps_return(insn: capstone.CsInsn) -> bool:
    if insn.mnemonic not in _EPILOGUE:
        return False
    if insn.mnemonic in ("leave", "nop", "endbr64"):
        return True
    written = insn.op_str.split(",")[0].strip()
    return written not in _RETURN_REGISTERS and not written.startswith(("qword ptr", "dword"))


class _Code:
    """The instructions of the function a site is in."""

    def __init__(self, plan: ProbePlan, start: int, shape: Any) -> None:
        self.start = start
        self.shape = shape
        raw = plan.binary.code(shape.start, shape.end - shape.start)
        assert raw is not None
        self.instructions = list(_disassembler().disasm(raw, shape.start))
        self.index = {insn.address: i for i, insn in enumerate(self.instructions)}

    @classmethod
    def of(cls, plan: ProbePlan, site: Site) -> _Code:
        function = plan.function(site.function)
        symbol = function.symbol
        if function.shape is None:  # an inlined copy: the code of the function it is in
            host = plan.binary.function_containing(site.address)
            if host is None:
                raise Unhookable(f"no function contains {site.address:#x}")
            symbol = host
        known: dict[int, _Code] = plan.binary.memo("placement_codes")  # by function address
        code = known.get(symbol.address)
        if code is None:  # depends on the binary and the function alone, not on the plan
            shape = shape_of(plan.binary, symbol, function.probe)
            code = known[symbol.address] = cls(plan, shape.start, shape)
        return code

    def size_at(self, address: int) -> int:
        return int(self.instructions[self.index[address]].size)

    def check_window(self, address: int) -> None:
        """The instructions Frida's patch relocates must run the same from its trampoline:
        no call among them (its return address would point into the trampoline, where no
        unwinder finds a frame), control flow only as the last one, and no branch landing
        inside."""
        i = self.index.get(address)
        if i is None:
            raise Unhookable(f"{address:#x} is no instruction boundary")
        covered = 0
        while covered < PATCH_BYTES:
            if i >= len(self.instructions):
                raise Unhookable("the function ends inside Frida's 5-byte patch")
            insn = self.instructions[i]
            if covered and insn.address in self.shape.jump_targets:
                raise Unhookable(f"a branch lands at {insn.address:#x}, inside Frida's patch")
            # A jump or ret that ends the patch runs from the trampoline just the same; a
            # call does not (its return address would point into the trampoline).
            ends_patch = covered + insn.size >= PATCH_BYTES
            leaves = insn.mnemonic.startswith("j") or insn.mnemonic == "ret"
            if insn.address in self.shape.control and not (ends_patch and leaves):
                raise Unhookable(
                    f"Frida's 5-byte patch would move the {insn.mnemonic} at "
                    f"{insn.address:#x} into its trampoline, "
                    + (
                        "where the return address it pushes points into the trampoline "
                        "and no unwinder finds a frame"
                        if insn.mnemonic.startswith("call")
                        else "where only the last instruction moved may branch"
                    )
                )
            covered += insn.size
            i += 1

    def red_zone_live_at(self, address: int) -> bool:
        """A leaf (the only functions with a red zone) may read, after `address`, a slot
        below rsp that it wrote before: some path from `address` reads the slot before
        writing it (through rsp, or through a frame pointer in a leaf that never moves rsp
        down: `push rbp; mov rbp, rsp; mov [rbp - 8], rdi`). Unknown jumps count as live."""
        if not self.shape.is_leaf or address == self.start:
            return False
        bases = ["rsp"]
        if not any(i.mnemonic == "sub" and i.op_str.startswith("rsp,") for i in self.instructions):
            bases.append("rbp")
        below = [f"[{base} - " for base in bases]
        seen: set[tuple[int, frozenset[str]]] = set()
        todo = [(self.index[address], frozenset[str]())]
        while todo:
            i, written = todo.pop()
            if (i, written) in seen or i >= len(self.instructions):
                continue
            if len(seen) > _LIVENESS_STATES:
                return True
            seen.add((i, written))
            insn = self.instructions[i]
            operands = [o.strip() for o in insn.op_str.split(",")]
            destination = operands[0]
            stored = insn.mnemonic.startswith("mov") and any(b in destination for b in below)
            sources = operands[1:] if stored else operands
            read = [o[o.index("[") :] for o in sources if any(b in o for b in below)]
            if any(slot not in written for slot in read):
                return True  # read (or its address taken) before being written
            if stored:
                written = written | {destination[destination.index("[") :]}
            mnemonic = insn.mnemonic
            if mnemonic == "ret" or mnemonic.startswith("ud"):
                continue
            if mnemonic.startswith("j"):
                try:
                    target = int(insn.op_str, 16)
                except ValueError:
                    return True  # an indirect jump: anywhere
                if target not in self.index:
                    if mnemonic == "jmp":
                        continue  # a tail jump out of the function: its frame is gone
                else:
                    todo.append((self.index[target], written))
                if mnemonic == "jmp":
                    continue
            todo.append((i + 1, written))
        return False

    def pieces_at_start(self, site: Site) -> tuple[Piece, ...]:
        """The site's pieces as the function's first instruction sees them, read back
        through the straight-line prologue between (prologue.read_back)."""
        self.check_window(self.start)
        inside = [a for a in self.shape.jump_targets if self.start < a < site.address]
        if inside:
            raise Unhookable(f"a branch lands at {min(inside):#x}, inside the prologue")
        before = self.instructions[: self.index[site.address]]
        try:
            return prologue.read_back(before, site.pieces, site.save_reg)
        except prologue.Unreadable as exc:
            raise Unhookable(
                "Frida's patch would move a call, and the prologue before the entry probe "
                f"cannot be read back to the first instruction: {exc}"
            ) from exc
