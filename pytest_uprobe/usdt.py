"""USDT probes: the `.note.stapsdt` notes that `sys/sdt.h` (and Rust's `probe` crate) write.

Each note names a provider and a probe, the address of the probe's `nop`, an optional
semaphore (a 2-byte counter, by convention in the `.probes` section, that tracers
increment while attached so the program can skip preparing arguments nobody reads) and
one argument spec per argument: `SIZE@OPERAND` in AT&T syntax, `SIZE` negative for a
signed value (`8@%rdi`, `-4@-12(%rbp)`, `8@$5`, `-8@8(%rax,%rdx,8)`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from .dwarf.locations import Piece
from .values import Unavailable

NT_STAPSDT = 3
PREFIX = "usdt:"

# x86-64 register names as AT&T operands spell them -> DWARF register numbers (the order of
# dwarf.locations.REGISTER_NAMES), for every width: a narrower name is the register's low bytes.
_WIDTHS = {
    0: ("rax", "eax", "ax", "al"),
    1: ("rdx", "edx", "dx", "dl"),
    2: ("rcx", "ecx", "cx", "cl"),
    3: ("rbx", "ebx", "bx", "bl"),
    4: ("rsi", "esi", "si", "sil"),
    5: ("rdi", "edi", "di", "dil"),
    6: ("rbp", "ebp", "bp", "bpl"),
    7: ("rsp", "esp", "sp", "spl"),
}
REGISTERS: dict[str, int] = {name: reg for reg, names in _WIDTHS.items() for name in names}
for _n in range(8, 16):
    for _suffix in ("", "d", "w", "b"):
        REGISTERS[f"r{_n}{_suffix}"] = _n
REGISTERS["rip"] = 16
HIGH_BYTES = frozenset({"ah", "bh", "ch", "dh"})


class Argument(NamedTuple):
    """One argument of a USDT probe: `size` bytes, `signed`, read from `location` (one
    Piece, or the value itself when the spec is a constant, or why it cannot be read)."""

    spec: str
    size: int
    signed: bool
    location: Piece | int | Unavailable


@dataclass(frozen=True)
class UsdtProbe:
    provider: str
    name: str
    address: int  # of the probe's nop, adjusted for prelinking through .stapsdt.base
    semaphore: int  # virtual address of the semaphore, 0 for none
    arguments: tuple[Argument, ...]

    @property
    def full_name(self) -> str:
        return f"{PREFIX}{self.provider}:{self.name}"


def is_usdt(probe: str) -> bool:
    return probe.startswith(PREFIX)


_SPEC = re.compile(r"^(?:(-?\d+)@)?(.+)$")
_MEMORY = re.compile(r"^(-?(?:0x[0-9a-fA-F]+|\d+))?\(%(\w+)\)$")
_INDEXED = re.compile(r"^(-?(?:0x[0-9a-fA-F]+|\d+))?\(%(\w+),%(\w+)(?:,(\d+))?\)$")


def parse_argument(spec: str) -> Argument:
    """One `SIZE@OPERAND` spec -> where its value is at the probe's nop."""
    match = _SPEC.match(spec)
    if match is None:
        return Argument(spec, 8, False, Unavailable(f"the argument spec {spec!r} is malformed"))
    size_text, operand = match.groups()
    size = int(size_text) if size_text is not None else 8  # no size: a long, as in SDT v1
    signed = size < 0
    size = abs(size)
    if size not in (1, 2, 4, 8):
        return Argument(spec, 8, signed, Unavailable(f"an argument of {size} bytes ({spec!r})"))

    def unavailable(why: str) -> Argument:
        return Argument(spec, size, signed, Unavailable(why))

    if operand.startswith("$"):
        try:
            return Argument(spec, size, signed, int(operand[1:], 0))
        except ValueError:
            return unavailable(f"the constant {operand!r} is not a number ({spec!r})")
    if operand.startswith("%"):
        name = operand[1:]
        if name in HIGH_BYTES:
            return unavailable(f"{operand} is a high-byte register, not read yet ({spec!r})")
        if name not in REGISTERS or name == "rip":
            return unavailable(f"{operand} is not a general-purpose register ({spec!r})")
        return Argument(spec, size, signed, Piece(REGISTERS[name], 0, size, memory=False))
    memory = _MEMORY.match(operand)
    if memory is not None:
        offset_text, base = memory.groups()
        if base not in REGISTERS or REGISTERS[base] == 16:
            return unavailable(f"memory relative to %{base} is not supported ({spec!r})")
        offset = int(offset_text, 0) if offset_text else 0
        return Argument(spec, size, signed, Piece(REGISTERS[base], offset, size, memory=True))
    if _INDEXED.match(operand):
        return unavailable(
            f"base + index * scale addressing ({spec!r}) is not supported yet: one event copies "
            "register-relative memory only"
        )
    return unavailable(f"the operand {operand!r} ({spec!r}) is not supported (a symbol?)")


def probes_of(binary: Any) -> list[UsdtProbe]:
    """Every USDT probe of an ElfBinary (pyelftools' ELFFile is `binary.elf`)."""
    elf = binary.elf
    notes = elf.get_section_by_name(".note.stapsdt")
    if notes is None:
        return []
    base_section = elf.get_section_by_name(".stapsdt.base")
    actual_base = base_section["sh_addr"] if base_section is not None else None
    return parse_notes(notes.data(), actual_base)


def parse_notes(data: bytes, actual_base: int | None) -> list[UsdtProbe]:
    """The probes in the raw bytes of a .note.stapsdt section. `actual_base`: the address of
    the .stapsdt.base section, if any; a note whose recorded base differs was prelinked, and
    its addresses move by the difference (as libbpf and systemtap do)."""
    found: list[UsdtProbe] = []
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, kind = (_u32(data, pos + i) for i in (0, 4, 8))
        name_start = pos + 12
        desc_start = name_start + _align4(namesz)
        pos = desc_start + _align4(descsz)
        owner = data[name_start : name_start + namesz].rstrip(b"\0")
        if owner != b"stapsdt" or kind != NT_STAPSDT or descsz < 24:
            continue
        desc = data[desc_start : desc_start + descsz]
        pc, base, semaphore = (int.from_bytes(desc[i : i + 8], "little") for i in (0, 8, 16))
        strings = desc[24:].split(b"\0")
        if len(strings) < 3:
            continue
        provider, name, args = (s.decode("utf-8", "replace") for s in strings[:3])
        if actual_base is not None and base != 0:
            pc += actual_base - base
            if semaphore:
                semaphore += actual_base - base
        arguments = tuple(parse_argument(spec) for spec in args.split()) if args else ()
        found.append(UsdtProbe(provider, name, pc, semaphore, arguments))
    return found


def _u32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "little")


def _align4(n: int) -> int:
    return (n + 3) & ~3


def split_name(probe: str) -> tuple[str, str] | None:
    """`usdt:provider:name` -> (provider, name); None when it is not spelled so."""
    parts = probe[len(PREFIX) :].split(":")
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0], parts[1]
