"""One rule decides how a return value is read (plan.return_mode): the plan follows it and
`pytest-uprobe symbols` prints it. No root, no compiler."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_uprobe import code
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
