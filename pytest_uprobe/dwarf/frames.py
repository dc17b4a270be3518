"""Call frame information: the CFA rule at one code address, from .eh_frame (or .debug_frame).

Only the one FDE that covers the address is decoded: `.eh_frame_hdr`'s sorted table (the
one the unwinder itself searches) gives its offset by binary search. Without that table
(or with an encoding it does not use in practice) every FDE is read once, as a fallback.
"""

from __future__ import annotations

import bisect
import struct
from typing import Any

from elftools.dwarf.callframe import FDE, CallFrameInfo

from ..elf import ElfBinary
from .locations import Cfa

DW_EH_PE_omit = 0xFF
DW_EH_PE_datarel_sdata4 = 0x3B  # what every linker writes for the search table
_ENCODED = {  # the low nibble of a DW_EH_PE encoding: struct format
    0x03: "<I",  # udata4
    0x0B: "<i",  # sdata4
    0x04: "<Q",  # udata8
    0x0C: "<q",  # sdata8
}
_PCREL, _DATAREL = 0x10, 0x30


class _SearchTable:
    """`.eh_frame_hdr`'s (initial location, FDE address) pairs, kept as raw bytes."""

    def __init__(self, binary: ElfBinary) -> None:
        elf = binary.elf
        hdr = elf.get_section_by_name(".eh_frame_hdr")
        dwarf = binary.dwarf
        section = dwarf.eh_frame_sec if dwarf.has_EH_CFI() else None
        if hdr is None or section is None:
            raise LookupError("no .eh_frame_hdr")
        data = hdr.data()
        version, ptr_enc, count_enc, table_enc = data[:4]
        if version != 1 or table_enc != DW_EH_PE_datarel_sdata4 or count_enc == DW_EH_PE_omit:
            raise LookupError("no binary-search table")
        self.base = hdr["sh_addr"]
        pos = 4
        _, pos = _read_encoded(data, pos, ptr_enc, self.base)
        count, pos = _read_encoded(data, pos, count_enc, self.base)
        pairs = memoryview(data[pos : pos + 8 * count]).cast("i")
        if len(pairs) != 2 * count:
            raise LookupError("truncated .eh_frame_hdr")
        self.starts = pairs[0::2]  # relative to .eh_frame_hdr, sorted
        self.fdes = pairs[1::2]
        self.eh_frame_address = section.address
        self.cfi = CallFrameInfo(
            stream=section.stream,
            size=section.size,
            address=section.address,
            base_structs=dwarf.structs,
            for_eh_frame=True,
        )

    def fde_at(self, address: int) -> Any:
        index = bisect.bisect_right(self.starts, address - self.base) - 1
        if index < 0:
            return None
        offset = self.base + self.fdes[index] - self.eh_frame_address
        entry = self.cfi._parse_entry_at(offset)
        return entry if isinstance(entry, FDE) else None


class _AllEntries:
    """The fallback: every FDE of the section, sorted by start."""

    def __init__(self, binary: ElfBinary) -> None:
        dwarf = binary.dwarf
        entries = dwarf.EH_CFI_entries() if dwarf.has_EH_CFI() else dwarf.CFI_entries()
        fdes = sorted(
            (e for e in entries if isinstance(e, FDE)), key=lambda f: f.header["initial_location"]
        )
        self.starts = [f.header["initial_location"] for f in fdes]
        self.fdes = fdes

    def fde_at(self, address: int) -> Any:
        index = bisect.bisect_right(self.starts, address) - 1
        return self.fdes[index] if index >= 0 else None


def _read_encoded(data: bytes, pos: int, encoding: int, base: int) -> tuple[int, int]:
    fmt = _ENCODED.get(encoding & 0x0F)
    if fmt is None or encoding & 0x70 not in (0, _PCREL, _DATAREL):
        raise LookupError(f"pointer encoding {encoding:#x}")
    (value,) = struct.unpack_from(fmt, data, pos)
    if encoding & 0x70 == _PCREL:
        value += base + pos
    elif encoding & 0x70 == _DATAREL:
        value += base
    return value, pos + struct.calcsize(fmt)


def _table(binary: ElfBinary) -> _SearchTable | _AllEntries:
    memo = binary.memo("frames")
    table = memo.get("table")
    if table is None:
        try:
            table = _SearchTable(binary)
        except LookupError:
            table = _AllEntries(binary)
        memo["table"] = table
    return table


def cfa_at(binary: ElfBinary, address: int) -> Cfa | None:
    """The CFA as `register + offset` at `address`, or None if no FDE covers it."""
    fde = _table(binary).fde_at(address)
    if fde is None:
        return None
    start = fde.header["initial_location"]
    if not start <= address < start + fde.header["address_range"]:
        return None
    try:
        rows = fde.get_decoded().table
    except Exception:  # an opcode pyelftools cannot decode: no rule, the caller falls back
        return None
    rule = None
    for row in rows:
        if row["pc"] > address:
            break
        rule = row["cfa"]
    if rule is None or rule.reg is None:
        return None
    return Cfa(rule.reg, rule.offset)
