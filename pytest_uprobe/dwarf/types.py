"""Rust types as DWARF describes them, and how to turn raw little-endian bytes into values."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from ..values import Unavailable

# DW_ATE_* encodings of DW_TAG_base_type
_ATE_BOOLEAN = 0x02
_ATE_FLOAT = 0x04
_ATE_SIGNED = 0x05
_ATE_SIGNED_CHAR = 0x06
_ATE_UNSIGNED = 0x07
_ATE_UNSIGNED_CHAR = 0x08
_ATE_UTF = 0x10


@dataclass(frozen=True)
class RustType:
    """A decodable type: `kind` is one of int, bool, char, float, unit, unsupported."""

    name: str
    kind: str
    size: int
    signed: bool = False

    def decode(self, raw: bytes) -> Any:
        if self.kind == "unit":
            return None
        if self.kind == "unsupported":
            return Unavailable(f"values of type {self.name} are not decoded yet")
        raw = raw[: self.size]
        if len(raw) < self.size:
            return Unavailable(f"only {len(raw)} of the {self.size} bytes of {self.name} were read")
        if self.kind == "int":
            return int.from_bytes(raw, "little", signed=self.signed)
        if self.kind == "bool":
            return raw[0] != 0
        if self.kind == "char":
            code = int.from_bytes(raw, "little")
            return chr(code) if code <= 0x10FFFF else Unavailable(f"invalid char {code:#x}")
        if self.kind == "float":
            return struct.unpack("<d" if self.size == 8 else "<f", raw)[0]
        raise AssertionError(self.kind)


UNIT = RustType("()", "unit", 0)


def type_of(die: Any) -> RustType:
    """The RustType of a type DIE (None means no DW_AT_type: the unit type)."""
    if die is None:
        return UNIT
    name = _name(die)
    if die.tag == "DW_TAG_base_type":
        encoding = die.attributes["DW_AT_encoding"].value
        size = die.attributes["DW_AT_byte_size"].value
        if encoding in (_ATE_SIGNED, _ATE_SIGNED_CHAR):
            return RustType(name, "int", size, signed=True)
        if encoding in (_ATE_UNSIGNED, _ATE_UNSIGNED_CHAR):
            return RustType(name, "int", size)
        if encoding == _ATE_BOOLEAN:
            return RustType(name, "bool", size)
        if encoding == _ATE_UTF:
            return RustType(name, "char", size)
        if encoding == _ATE_FLOAT:
            return RustType(name, "float", size)
    if die.tag == "DW_TAG_structure_type" and name == "()":
        return UNIT
    size_attr = die.attributes.get("DW_AT_byte_size")
    return RustType(name, "unsupported", size_attr.value if size_attr else 0)


def _name(die: Any) -> str:
    attr = die.attributes.get("DW_AT_name")
    return attr.value.decode("utf-8", "replace") if attr else die.tag.removeprefix("DW_TAG_")
