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

import capstone

from ..code import _disassembler
from ..dwarf import frames
from ..dwarf.locations import Cfa
from ..plan import ProbePlan, Site, SiteKind

PATCH_BYTES = 5  # Frida's near jump
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


class Unhookable(Exception):
    """A site the in-process engine cannot hook: args are (site number, why)."""


def hooks(plan: ProbePlan, record: bool) -> list[Hook]:
    out = []
    for number, site in enumerate(plan.sites):
        if not (record or site.kind.starts_a_call):
            continue
        try:
            out.append(_hook(plan, number, site))
        except Unhookable as exc:
            raise Unhookable(number, str(exc)) from None
    return out


def _hook(plan: ProbePlan, number: int, site: Site) -> Hook:
    if site.kind is SiteKind.URETPROBE:
        return Hook(number, site.address, "leave")
    if site.kind is SiteKind.ENTRY:
        return Hook(number, site.address, "enter")
    if site.kind is SiteKind.INLINED:
        return Hook(number, site.address, "probe")
    if site.condition is not None:
        raise Unhookable(
            "a conditional tail call: Frida's CPU context has no flags register, so whether "
            "the jump is taken cannot be read"
        )
    address, cfa = _epilogue_start(plan, site)
    return Hook(number, address, "probe", cfa)


def _epilogue_start(plan: ProbePlan, site: Site) -> tuple[int, Cfa]:
    function = plan.functions[site.function]
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
