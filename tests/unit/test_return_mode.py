"""One rule decides how a return value is read (plan.return_mode): the plan follows it and
`pytest-uprobe symbols` prints it. No root, no compiler."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_uprobe import machine_code as code
from pytest_uprobe.cli import symbol_rows
from pytest_uprobe.elf import ElfBinary
from pytest_uprobe.errors import UprobeError
from pytest_uprobe.plan import ReturnMode, build_plan, return_mode

TINY = Path(__file__).resolve().parent.parent / "data" / "tiny"


@pytest.mark.parametrize(
    ("machine_code", "ret_sites_only", "expected"),
    [
        ("4889f8c3", False, ReturnMode.URETPROBE),  # mov rax, rdi; ret: a leaf
        ("4889f8c3", True, ReturnMode.RET_SITES),
        ("c3", True, ReturnMode.URETPROBE),  # a lone ret: a leaf whatever the option says
        # lock inc [rdi]; ret: a leaf whose first instruction takes no uprobe, so no
        # uretprobe either (it would sit there)
        ("f048ff07c3", False, ReturnMode.RET_SITES),
        ("e800000000c3", False, ReturnMode.RET_SITES),  # call; ret: not a leaf
    ],
)
def test_the_rule(machine_code: str, ret_sites_only: bool, expected: ReturnMode) -> None:
    shape = code.analyze(bytes.fromhex(machine_code), 0x1000)
    assert return_mode(shape, ret_sites_only=ret_sites_only) is expected


@pytest.mark.parametrize("name", ["tiny-O0-dwarf4", "tiny-O1-dwarf4", "tiny-O1-dwarf5"])
def test_symbols_prints_the_mode_the_plan_uses(name: str) -> None:
    binary = ElfBinary.open(TINY / name)
    compared = 0
    for row in symbol_rows(binary):
        try:
            plan = build_plan(binary, [row.path], inlined=False)
        except UprobeError:
            continue  # not plannable by that name (shared, refused): nothing to compare
        modes = {f.return_mode.value for f in plan.functions if f.symbol.address == row.address}
        if modes:
            assert modes == {row.return_mode}, row
            compared += 1
    assert compared >= 3


# A dev build's prologue (jobsched::make_job, rustc 1.95 -C opt-level=0): rdi, the hidden
# return pointer, goes to rax, then to 0x38(%rsp); then dil and rax are overwritten.
SUB = bytes.fromhex("4881ecc8010000")  # sub $0x1c8, %rsp
SPILL = bytes.fromhex("4889f8") + bytes.fromhex("4889442438")  # mov %rdi,%rax; mov %rax,0x38(%rsp)
CLOBBER = bytes.fromhex("4488cf") + bytes.fromhex("488b8424d0010000")  # mov %r9b,%dil; reload rax


def test_the_hidden_pointer_spilled_in_the_prologue_is_found_in_its_slot():
    assert not code.keeps_rdi(SUB + SPILL + CLOBBER, 0x1000)
    assert code.rdi_slot(SUB + SPILL + CLOBBER, 0x1000) == 0x38
    # a push moves rsp: the slot is 8 bytes further from it
    assert code.rdi_slot(SUB + SPILL + CLOBBER + bytes.fromhex("53"), 0x1000) == 0x40
    # spilled, reloaded into rcx, spilled again elsewhere: the lowest slot that holds it
    again = bytes.fromhex("488b4c2438") + bytes.fromhex("48894c2410")  # rcx <- 0x38; 0x10 <- rcx
    assert code.rdi_slot(SUB + SPILL + CLOBBER + again, 0x1000) == 0x10


@pytest.mark.parametrize(
    "after",
    [
        bytes.fromhex("48894c2438"),  # mov %rcx,0x38(%rsp): the slot overwritten
        bytes.fromhex("894c243c"),  # mov %ecx,0x3c(%rsp): half of it
        bytes.fromhex("488932"),  # mov %rsi,(%rdx): a write that could reach the slot
        bytes.fromhex("e800000000"),  # a call
        bytes.fromhex("4883c408"),  # add $8, %rsp
    ],
)
def test_no_slot_where_the_prologue_may_have_lost_it(after):
    assert code.rdi_slot(SUB + SPILL + CLOBBER + after, 0x1000) is None
