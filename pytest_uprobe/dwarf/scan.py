"""A fast pass over one compile unit's DIEs that keeps only what resolution needs.

pyelftools builds a full object per DIE (about 11 us each); resolving a name in a large
crate must look at every DIE of the crate's units to find the copies inlined into them.
This scanner reads the raw `.debug_info` bytes with each abbreviation's layout worked out
once: DIEs of other tags are skipped by size, and for subprograms, inlined subroutines and
namespaces only a handful of attributes are decoded. The result is plain data (ints and
strings), so it can be cached on disk; DIE objects are re-read through pyelftools only for
the few functions a plan really uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

PARAMETER = "DW_TAG_formal_parameter"
SUBPROGRAM, INLINED, NAMESPACE = (
    "DW_TAG_subprogram",
    "DW_TAG_inlined_subroutine",
    "DW_TAG_namespace",
)
_WANTED_TAGS = (SUBPROGRAM, INLINED, NAMESPACE)
_WANTED_ATTRS = frozenset(
    {
        "DW_AT_low_pc",
        "DW_AT_entry_pc",
        "DW_AT_ranges",
        "DW_AT_inline",
        "DW_AT_linkage_name",
        "DW_AT_MIPS_linkage_name",
        "DW_AT_name",
        "DW_AT_abstract_origin",
        "DW_AT_specification",
        "DW_AT_decl_line",
        "DW_AT_call_file",
        "DW_AT_call_line",
    }
)

# Variable-size forms, by how their size is read.
_ULEB = frozenset(
    {
        "DW_FORM_udata",
        "DW_FORM_sdata",
        "DW_FORM_ref_udata",
        "DW_FORM_strx",
        "DW_FORM_addrx",
        "DW_FORM_loclistx",
        "DW_FORM_rnglistx",
        "DW_FORM_GNU_addr_index",
        "DW_FORM_GNU_str_index",
    }
)
_BLOCKS = {"DW_FORM_block1": 1, "DW_FORM_block2": 2, "DW_FORM_block4": 4}
_ULEB_BLOCKS = frozenset({"DW_FORM_block", "DW_FORM_exprloc"})
_CU_REFS = frozenset(
    {"DW_FORM_ref1", "DW_FORM_ref2", "DW_FORM_ref4", "DW_FORM_ref8", "DW_FORM_ref_udata"}
)
_STRX = frozenset(
    {"DW_FORM_strx", "DW_FORM_strx1", "DW_FORM_strx2", "DW_FORM_strx3", "DW_FORM_strx4"}
)
_ADDRX = frozenset(
    {"DW_FORM_addrx", "DW_FORM_addrx1", "DW_FORM_addrx2", "DW_FORM_addrx3", "DW_FORM_addrx4"}
)

_ADDRESSES = frozenset({"DW_AT_low_pc", "DW_AT_entry_pc"})
_ADDRESS_FORMS = _ADDRX | {"DW_FORM_addr"}


class UnsupportedForm(Exception):
    """A form this scanner does not read (DW_FORM_indirect, split DWARF)."""


class Subprogram(NamedTuple):
    """A DW_TAG_subprogram of a unit, as resolution needs it (offsets: of .debug_info)."""

    parent: int | None  # the enclosing DIE's offset (a namespace, or None)
    low_pc: int | None  # None: no code of its own (abstract, or a declaration)
    inline: bool  # has DW_AT_inline: an abstract origin of inlined copies
    linkage_name: str | None
    name: str | None
    origin: int | None  # the DW_AT_abstract_origin or DW_AT_specification target
    described: bool  # has DW_AT_decl_line


class InlinedCall(NamedTuple):
    """A DW_TAG_inlined_subroutine: one copy of a function inlined into another."""

    offset: int
    origin: int  # the abstract subprogram it is a copy of
    entry: int | None  # DW_AT_entry_pc or DW_AT_low_pc
    ranges: Any  # the raw DW_AT_ranges value (resolved later, for the copies that matter)
    call_file: int | None  # the line table's file number of the call
    call_line: int | None
    caller: int | None  # the innermost enclosing subprogram's offset


@dataclass
class UnitIndex:
    """Plain data about one compile unit (pickled in the on-disk cache as is): offsets are
    .debug_info section offsets.

    subprograms: offset -> Subprogram
    namespaces: offset -> (parent, name)
    params: subprogram offset -> the offsets of its DW_TAG_formal_parameter children
    inlined: every InlinedCall of the unit
    """

    offset: int
    subprograms: dict[int, Subprogram] = field(default_factory=dict)
    namespaces: dict[int, tuple[int | None, str]] = field(default_factory=dict)
    inlined: list[InlinedCall] = field(default_factory=list)
    params: dict[int, list[int]] = field(default_factory=dict)

    def by_low_pc(self) -> dict[int, int]:
        """Out-of-line subprograms' offsets by the address their code starts at."""
        subprograms = self.subprograms.items()
        return {s.low_pc: k for k, s in subprograms if s.low_pc is not None and not s.inline}


def _fixed_size(form: str, addr_size: int, offset_size: int, version: int) -> int | None:
    if form in ("DW_FORM_flag_present", "DW_FORM_implicit_const"):
        return 0
    if form in ("DW_FORM_data1", "DW_FORM_ref1", "DW_FORM_flag", "DW_FORM_strx1", "DW_FORM_addrx1"):
        return 1
    if form in ("DW_FORM_data2", "DW_FORM_ref2", "DW_FORM_strx2", "DW_FORM_addrx2"):
        return 2
    if form in ("DW_FORM_strx3", "DW_FORM_addrx3"):
        return 3
    if form in (
        "DW_FORM_data4",
        "DW_FORM_ref4",
        "DW_FORM_strx4",
        "DW_FORM_addrx4",
        "DW_FORM_ref_sup4",
    ):
        return 4
    if form in ("DW_FORM_data8", "DW_FORM_ref8", "DW_FORM_ref_sig8", "DW_FORM_ref_sup8"):
        return 8
    if form == "DW_FORM_data16":
        return 16
    if form == "DW_FORM_addr":
        return addr_size
    if form == "DW_FORM_ref_addr":
        return addr_size if version == 2 else offset_size
    if form in (
        "DW_FORM_strp",
        "DW_FORM_line_strp",
        "DW_FORM_sec_offset",
        "DW_FORM_strp_sup",
        "DW_FORM_GNU_ref_alt",
        "DW_FORM_GNU_strp_alt",
    ):
        return offset_size
    return None


def read_uleb(data: bytes, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 number at `pos`, and the position after it."""
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _skip(form: str, data: bytes, pos: int) -> int:
    """The position after a variable-size value of `form` at `pos`."""
    if form in _ULEB:
        while data[pos] & 0x80:
            pos += 1
        return pos + 1
    if form in _ULEB_BLOCKS:
        length, pos = read_uleb(data, pos)
        return pos + length
    if form == "DW_FORM_string":
        return data.index(b"\0", pos) + 1
    width = _BLOCKS.get(form)
    if width is not None:
        return pos + width + int.from_bytes(data[pos : pos + width], "little")
    raise UnsupportedForm(form)


def _layout(decl: Any, addr_size: int, offset_size: int, version: int) -> tuple[Any, ...]:
    """Skipping steps for one abbreviation: ints (bytes to skip) merged where they follow
    each other, and form names for variable-size values."""
    steps: list[Any] = []
    for _, form in decl.iter_attr_specs():
        size = _fixed_size(form, addr_size, offset_size, version)
        if size is None:
            if form == "DW_FORM_indirect":
                raise UnsupportedForm(form)
            steps.append(form)
        elif steps and isinstance(steps[-1], int):
            steps[-1] += size
        else:
            steps.append(size)
    if len(steps) == 1 and isinstance(steps[0], int):
        return (steps[0],)
    return tuple(s for s in steps if s != 0)


class _Reader:
    """Decodes attribute values of one unit."""

    def __init__(self, dwarf: Any, cu: Any, data: bytes) -> None:
        self.data = data
        self.cu_offset = cu.cu_offset
        self.addr_size = cu["address_size"]
        self.offset_size = 8 if cu.dwarf_format() == 64 else 4
        self.version = cu["version"]
        self.strings = section_bytes(dwarf.debug_str_sec)
        self.line_strings = section_bytes(getattr(dwarf, "debug_line_str_sec", None))
        self._str_offsets: bytes | None = None
        self._addrs: bytes | None = None
        self._dwarf = dwarf
        self._cu = cu

    def value(self, form: str, pos: int, implicit: Any) -> tuple[Any, int]:
        data = self.data
        size = _fixed_size(form, self.addr_size, self.offset_size, self.version)
        if size is not None:
            if form == "DW_FORM_implicit_const":
                return implicit, pos
            if form == "DW_FORM_flag_present":
                return True, pos
            raw = int.from_bytes(data[pos : pos + size], "little")
            end = pos + size
            if form in _CU_REFS:
                return raw + self.cu_offset, end
            if form == "DW_FORM_strp":
                return _cstring(self.strings, raw), end
            if form == "DW_FORM_line_strp":
                return _cstring(self.line_strings, raw), end
            if form in _STRX:
                return self._strx(raw), end
            if form in _ADDRX:
                return self._addrx(raw), end
            if form in ("DW_FORM_strp_sup", "DW_FORM_GNU_strp_alt", "DW_FORM_GNU_ref_alt"):
                raise UnsupportedForm(form)
            return raw, end
        if form in (
            "DW_FORM_udata",
            "DW_FORM_ref_udata",
            "DW_FORM_strx",
            "DW_FORM_addrx",
            "DW_FORM_rnglistx",
            "DW_FORM_loclistx",
        ):
            raw, end = read_uleb(data, pos)
            if form == "DW_FORM_ref_udata":
                return raw + self.cu_offset, end
            if form == "DW_FORM_strx":
                return self._strx(raw), end
            if form == "DW_FORM_addrx":
                return self._addrx(raw), end
            if form == "DW_FORM_rnglistx":
                return ("rnglistx", raw), end
            return raw, end
        if form == "DW_FORM_sdata":
            raw, end = read_uleb(data, pos)
            bits = 7 * (end - pos)
            if raw & (1 << (bits - 1)):
                raw -= 1 << bits
            return raw, end
        if form == "DW_FORM_string":
            end = data.index(b"\0", pos)
            return data[pos:end].decode("utf-8", "replace"), end + 1
        return None, _skip(form, data, pos)

    def _base(self, name: str) -> int:
        attr = self._cu.get_top_DIE().attributes.get(name)
        return int(attr.value) if attr is not None else 0

    def _strx(self, index: int) -> str:
        if self._str_offsets is None:
            self._str_offsets = section_bytes(getattr(self._dwarf, "debug_str_offsets_sec", None))
            self._str_base = self._base("DW_AT_str_offsets_base")
        at = self._str_base + index * self.offset_size
        offset = int.from_bytes(self._str_offsets[at : at + self.offset_size], "little")
        return _cstring(self.strings, offset)

    def _addrx(self, index: int) -> int:
        if self._addrs is None:
            self._addrs = section_bytes(getattr(self._dwarf, "debug_addr_sec", None))
            self._addr_base = self._base("DW_AT_addr_base")
        at = self._addr_base + index * self.addr_size
        return int.from_bytes(self._addrs[at : at + self.addr_size], "little")


def section_bytes(section: Any) -> bytes:
    if section is None:
        return b""
    stream = section.stream
    getvalue = getattr(stream, "getvalue", None)
    if getvalue is not None:
        return bytes(getvalue())
    stream.seek(0)
    return bytes(stream.read())


def _cstring(data: bytes, offset: int) -> str:
    end = data.find(b"\0", offset)
    return data[offset : end if end >= 0 else len(data)].decode("utf-8", "replace")


def scan_unit(dwarf: Any, cu: Any, info: bytes | None = None) -> UnitIndex:
    """The UnitIndex of `cu` (a pyelftools CompileUnit), read in one pass over its bytes;
    `info`: the whole .debug_info section, if the caller keeps it (read anew if not)."""
    data = info if info is not None else section_bytes(dwarf.debug_info_sec)
    reader = _Reader(dwarf, cu, data)
    table = cu.get_abbrev_table()
    addr_size, offset_size, version = reader.addr_size, reader.offset_size, reader.version
    # code -> (tag or None when uninteresting, has_children, skip steps, specs)
    abbrevs: dict[int, tuple[str | None, bool, tuple[Any, ...], list[tuple[str, str, Any]]]] = {}
    for code, decl in table._abbrev_map.items():
        tag = decl["tag"]
        wanted = tag if tag in _WANTED_TAGS else PARAMETER if tag == PARAMETER else None
        specs = []
        if wanted is not None:
            specs = [
                (spec.name, spec.form, getattr(spec, "value", None)) for spec in decl["attr_spec"]
            ]
        abbrevs[code] = (
            wanted,
            decl.has_children(),
            _layout(decl, addr_size, offset_size, version),
            specs,
        )

    unit = UnitIndex(cu.cu_offset)
    end = cu.cu_offset + cu.size
    pos = cu.cu_die_offset
    # The enclosing DIEs: (offset, tag) for each open parent; "" for uninteresting tags.
    parents: list[tuple[int, str | None]] = []
    subprograms = unit.subprograms
    namespaces = unit.namespaces
    inlined = unit.inlined
    params = unit.params
    callers: list[int] = []  # offsets of the open subprograms
    while pos < end:
        offset = pos
        code = data[pos]
        pos += 1
        if code >= 0x80:
            code, pos = read_uleb(data, pos - 1)
        if code == 0:
            if parents:
                _, tag = parents.pop()
                if tag == SUBPROGRAM:
                    callers.pop()
            continue
        tag, children, steps, specs = abbrevs[code]
        if tag is PARAMETER:
            if parents and parents[-1][1] == SUBPROGRAM:
                params.setdefault(parents[-1][0], []).append(offset)
            tag = None
        if tag is None:
            for step in steps:
                if step.__class__ is int:
                    pos += step
                else:
                    pos = _skip(step, data, pos)
        else:
            values: dict[str, Any] = {}
            for name, form, implicit in specs:
                if name in _WANTED_ATTRS:
                    value, pos = reader.value(form, pos, implicit)
                    if name in _ADDRESSES and form not in _ADDRESS_FORMS:
                        continue  # DWARF 5's entry_pc as an offset: use low_pc
                    values[name] = value
                else:
                    size = _fixed_size(form, addr_size, offset_size, version)
                    pos = pos + size if size is not None else _skip(form, data, pos)
            parent = parents[-1][0] if parents else None
            if tag == SUBPROGRAM:
                low = values.get("DW_AT_low_pc")
                subprograms[offset] = Subprogram(
                    parent,
                    low if isinstance(low, int) else None,
                    "DW_AT_inline" in values,
                    values.get("DW_AT_linkage_name") or values.get("DW_AT_MIPS_linkage_name"),
                    values.get("DW_AT_name"),
                    values.get("DW_AT_abstract_origin") or values.get("DW_AT_specification"),
                    "DW_AT_decl_line" in values,
                )
            elif tag == NAMESPACE:
                namespaces[offset] = (parent, str(values.get("DW_AT_name") or ""))
            elif "DW_AT_abstract_origin" in values:
                entry = values.get("DW_AT_entry_pc", values.get("DW_AT_low_pc"))
                inlined.append(
                    InlinedCall(
                        offset,
                        values["DW_AT_abstract_origin"],
                        entry if isinstance(entry, int) else None,
                        values.get("DW_AT_ranges"),
                        values.get("DW_AT_call_file"),
                        values.get("DW_AT_call_line"),
                        callers[-1] if callers else None,
                    )
                )
        if children:
            parents.append((offset, tag))
            if tag == SUBPROGRAM:
                callers.append(offset)
    return unit
