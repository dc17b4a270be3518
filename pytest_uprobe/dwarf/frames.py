"""Call frame information: the CFA rule at one code address, from .eh_frame (or .debug_frame)."""

from __future__ import annotations

import bisect
from typing import Any

from elftools.dwarf.callframe import FDE

from ..elf import ElfBinary
from .locations import Cfa

_tables: dict[object, tuple[list[int], list[Any]]] = {}


def _fde_table(binary: ElfBinary) -> tuple[list[int], list[Any]]:
    key = binary.identity
    table = _tables.get(key)
    if table is None:
        dwarf = binary.dwarf
        entries = dwarf.EH_CFI_entries() if dwarf.has_EH_CFI() else dwarf.CFI_entries()
        fdes = sorted(
            (e for e in entries if isinstance(e, FDE)), key=lambda f: f.header["initial_location"]
        )
        table = ([f.header["initial_location"] for f in fdes], fdes)
        _tables[key] = table
    return table


def cfa_at(binary: ElfBinary, address: int) -> Cfa | None:
    """The CFA as `register + offset` at `address`, or None if no FDE covers it."""
    starts, fdes = _fde_table(binary)
    index = bisect.bisect_right(starts, address) - 1
    if index < 0:
        return None
    fde = fdes[index]
    if address >= fde.header["initial_location"] + fde.header["address_range"]:
        return None
    rule = None
    for row in fde.get_decoded().table:
        if row["pc"] > address:
            break
        rule = row["cfa"]
    if rule is None or rule.reg is None:
        return None
    return Cfa(rule.reg, rule.offset)
