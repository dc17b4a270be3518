"""ABI snapshots: how each function of a binary is called, as DWARF and the planner see it.

`abi(exe, "mycrate::api::*")` reads, for every function the glob names: its signature
(parameter names and Rust types, return type, as DWARF gives them), where each parameter
lives at the function's entry (registers, stack slots relative to the CFA, memory behind a
register for a value passed by reference, several places for a value split across
registers, a constant, optimized out), how the value returns (rax/rdx, a hidden return
pointer, SSE, nothing), the size and alignment of each type, the layout of the structs
that travel by value, and whether the function exists out of line, inlined, or both.
Nothing runs and nothing needs privileges.

Locations come from the planner's own rules (plan._entry_point, plan._locate,
plan._return_value): the snapshot says what a probe would read. Nothing in the text
depends on addresses, so a snapshot changes only when the function itself does.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from . import plan as planner
from .dwarf import frames, index, locations
from .dwarf.closures import LEGACY_CLOSURE, closure_aliases
from .dwarf.inlined import InlinedSite
from .dwarf.locations import REGISTER_NAMES, Cfa, Computed, Indirect, Location, Piece
from .dwarf.types import SCALARS, RustType, type_of
from .elf import ElfBinary, Symbol
from .errors import UsageError
from .names import crate_of
from .options import MAX_FUNCTIONS
from .snapshot import Report
from .values import Unavailable

RSP = 7
SSE_REGISTERS = range(17, 33)  # DWARF's numbers for xmm0..xmm15 on x86-64
DW_CC_NOCALL = 0x3
NO_DWARF = "the binary has no debug info (DWARF): build it with `debug = true` in its Cargo profile"
LIMITED = (
    "limited debug info (`debug = 1` or line tables only): DWARF keeps this function's name "
    "but no parameters or types; build with `debug = true` to see its signature"
)
INLINED_ONLY = "none: inlined only, each copy's arguments live where its caller left them"


@dataclass(frozen=True)
class TypeLayout:
    """A type as DWARF names it, with its size and alignment in bytes."""

    name: str
    size: int
    align: int | None  # None: DWARF does not say

    def text(self) -> str:
        align = "align unknown" if self.align is None else f"align {self.align}"
        return f"{self.name} ({_bytes(self.size)}, {align})"


def _bytes(size: int) -> str:
    return "1 byte" if size == 1 else f"{size} bytes"


@dataclass(frozen=True)
class ParamAbi:
    name: str
    type: TypeLayout
    location: str | None  # at the entry; None for a function that exists only inlined


@dataclass(frozen=True)
class ReturnAbi:
    type: TypeLayout | None  # None: the unit type, nothing returns
    location: str | None  # None for a function that exists only inlined


@dataclass(frozen=True)
class FieldLayout:
    name: str
    type: str
    offset: int


@dataclass(frozen=True)
class StructLayout:
    """A struct or tuple that travels by value: its fields at their offsets."""

    name: str
    size: int
    align: int | None
    fields: tuple[FieldLayout, ...]

    def lines(self) -> list[str]:
        align = "align unknown" if self.align is None else f"align {self.align}"
        head = f"type {self.name}: {_bytes(self.size)}, {align}"
        return [head] + [f"  field {f.name}: {f.type} at {f.offset}" for f in self.fields]


@dataclass(frozen=True)
class FunctionAbi:
    """What calling one function involves. `unknown` says why the rest is missing."""

    path: str
    out_of_line: bool
    inlined: bool
    params: tuple[ParamAbi, ...] = ()
    returns: ReturnAbi | None = None
    unknown: str | None = None
    notes: tuple[str, ...] = ()  # facts about the convention itself (DW_CC_nocall, ...)
    layouts: tuple[StructLayout, ...] = ()  # of the structs among its types

    @property
    def key(self) -> str:
        return self.path

    @property
    def exists(self) -> str:
        if self.out_of_line and self.inlined:
            return "out of line and inlined"
        return "out of line" if self.out_of_line else "inlined only"

    @property
    def signature(self) -> str | None:
        """`fn(a: u64, text: &str) -> usize`, or None when DWARF cannot say."""
        if self.unknown is not None or self.returns is None:
            return None
        params = ", ".join(f"{p.name}: {p.type.name}" for p in self.params)
        out = "" if self.returns.type is None else f" -> {self.returns.type.name}"
        return f"fn({params}){out}"

    def lines(self) -> list[str]:
        lines = [self.path, f"  exists: {self.exists}"]
        if self.unknown is not None:
            return [*lines, f"  unknown: {self.unknown}"]
        lines.append(f"  signature: {self.signature}")
        lines += [f"  {note}" for note in self.notes]
        for param in self.params:
            where = "" if param.location is None else f": {param.location}"
            lines.append(f"  param {param.name}: {param.type.text()}{where}")
        if self.returns is not None and self.returns.type is None:
            lines.append("  returns: nothing")
        elif self.returns is not None and self.returns.type is not None:
            where = "" if self.returns.location is None else f": {self.returns.location}"
            lines.append(f"  returns: {self.returns.type.text()}{where}")
        return lines


class AbiReport(Report[FunctionAbi]):
    """`FunctionAbi` records by path, then the layouts of the structs they pass by value;
    `repr()` is the snapshot text."""

    title = "abi"

    def __init__(self, records: Sequence[FunctionAbi]) -> None:
        layouts = {layout.name: layout for record in records for layout in record.layouts}
        trailer = [line for name in sorted(layouts) for line in layouts[name].lines()]
        super().__init__(records, trailer)
        self.layouts = tuple(layouts[name] for name in sorted(layouts))


def abi(
    executable: str | os.PathLike[str],
    glob: str,
    *,
    max_functions: int = MAX_FUNCTIONS.default,
) -> AbiReport:
    """The ABI of every function `glob` names (a probe name or glob such as
    'mycrate::api::*'), out of line or inlined. Raises the probe-name errors a trace would."""
    if not isinstance(glob, str):
        raise UsageError(f"the glob must be a str such as 'mycrate::*', got {glob!r}")
    binary = ElfBinary.open(executable)
    sites = planner.find_sites(binary, glob, max_functions=max_functions)
    named = display_paths(binary, glob, sites.out_of_line)
    copies = copies_by_path(binary, named, sites.inlined)
    records = [_out_of_line(binary, symbol, path, inlined=path in copies) for symbol, path in named]
    shown = {path for _, path in named}
    for path, found in copies.items():
        if path not in shown:
            records.append(_inlined_only(binary, path, found[0]))
    return AbiReport(_unique(records))


def copies_by_path(
    binary: ElfBinary, named: Sequence[tuple[Symbol, str]], inlined: Iterable[InlinedSite]
) -> dict[str, list[InlinedSite]]:
    """Inlined copies by the path a report shows: that of the out-of-line instance whose
    DWARF entry shares the copy's abstract origin (so numbered closures and generic
    instances, which legacy mangling names alike, keep their own copies), else the path
    DWARF gives the copy (another unit's abstract entry of the same function, say)."""
    by_origin: dict[int, str] = {}
    for symbol, path in named:
        origin = _abstract_origin(binary, symbol)
        if origin is not None:
            by_origin[origin] = path
    grouped: dict[str, list[InlinedSite]] = {}
    for copy in inlined:
        shown = by_origin.get(copy.origin.offset) if copy.origin is not None else None
        grouped.setdefault(shown or copy.path, []).append(copy)
    return grouped


def _abstract_origin(binary: ElfBinary, symbol: Symbol) -> int | None:
    info = index.function_at(binary, symbol.address) if binary.has_dwarf else None
    if info is None or "DW_AT_abstract_origin" not in info.die.attributes:
        return None
    return int(info.die.get_DIE_from_attribute("DW_AT_abstract_origin").offset)


def _unique(records: list[FunctionAbi]) -> list[FunctionAbi]:
    """Records whose paths nothing else tells apart, numbered in the order of their text."""
    by_path: dict[str, list[FunctionAbi]] = {}
    for record in records:
        by_path.setdefault(record.path, []).append(record)
    out = []
    for path, group in by_path.items():
        if len(group) == 1:
            out.extend(group)
            continue
        ordered = sorted(group, key=lambda r: "\n".join(r.lines()))
        out += [replace(r, path=f"{path} [{n}]") for n, r in enumerate(ordered, 1)]
    return out


def display_paths(
    binary: ElfBinary, glob: str, symbols: Iterable[Symbol], *, generics: bool = True
) -> list[tuple[Symbol, str]]:
    """Each symbol with the path a report shows: a legacy `{{closure}}` with its number
    from DWARF, and (with `generics`) the generic arguments DWARF names when several
    instances share one path (legacy mangling drops them)."""
    crate = crate_of(glob)
    aliases = closure_aliases(binary, crate) if crate is not None else {}
    named = []
    for symbol in symbols:
        path = symbol.path
        if LEGACY_CLOSURE in path:
            path = aliases.get(symbol.address, path)
        named.append((symbol, path))
    if not generics:
        return named
    counts: dict[str, int] = {}
    for _, path in named:
        counts[path] = counts.get(path, 0) + 1
    out = []
    for symbol, path in named:
        if counts[path] > 1:
            path = _with_generics(binary, symbol, path)
        out.append((symbol, path))
    return out


def _with_generics(binary: ElfBinary, symbol: Symbol, path: str) -> str:
    info = index.function_at(binary, symbol.address) if binary.has_dwarf else None
    name = index.attr(info.die, "DW_AT_name") if info is not None else None
    text = name.value.decode("utf-8", "replace") if name is not None else ""
    cut = text.find("<")
    if cut > 0 and path.endswith(f"::{text[:cut]}"):
        return f"{path}::{text[cut:]}"
    return path  # nothing tells them apart: _unique numbers them


def _out_of_line(binary: ElfBinary, symbol: Symbol, path: str, *, inlined: bool) -> FunctionAbi:
    head = FunctionAbi(path, out_of_line=True, inlined=inlined)
    if not binary.has_dwarf:
        return replace(head, unknown=NO_DWARF)
    info = index.function_at(binary, symbol.address)
    if info is None:
        why = "DWARF describes no function at its address (code built without debug info)"
        return replace(head, unknown=why)
    if _limited(binary, info):
        return replace(head, unknown=LIMITED)
    shape = planner.shape_of(binary, symbol, path)
    at = planner._entry_point(info, shape)
    cfa = Cfa(RSP, 8) if at == shape.start else frames.cfa_at(binary, at)
    if cfa is None:
        why = "no call frame information (.eh_frame) covers the point where DWARF places them"
        return replace(head, unknown=f"the arguments' places: {why}")
    notes = []
    places = [_param_location(p, at, info, cfa) for p in info.params]
    if at != shape.start:
        # The planner reads after the prologue where DWARF's places hold only from there
        # (debug builds spill arguments to stack slots the prologue fills). Registers that
        # DWARF gives for the whole function are the entry's too: no note for those.
        first = [_param_location(p, shape.start, info, Cfa(RSP, 8)) for p in info.params]
        if first != places or any(_in_memory(p, at, info, cfa) for p in info.params):
            notes.append("arguments: where they are after the prologue (DWARF says no earlier)")
    convention = index.attr(info.die, "DW_AT_calling_convention")
    if convention is not None and convention.value == DW_CC_NOCALL:
        notes.append(
            "calling convention: DW_CC_nocall (the optimizer rewrote it; only the binary's "
            "own callers know it)"
        )
    params = tuple(
        ParamAbi(p.name, _layout(p.type, _type_die(p.die)), where)
        for p, where in zip(info.params, places)
    )
    return_die = index.referenced(info.die, "DW_AT_type")
    returns = ReturnAbi(
        None if info.return_type.kind == "unit" else _layout(info.return_type, return_die),
        _return_location(info.return_type),
    )
    layouts = _struct_layouts([(p.type, _type_die(p.die)) for p in info.params])
    layouts += _struct_layouts([(info.return_type, return_die)])
    return replace(head, params=params, returns=returns, notes=tuple(notes), layouts=layouts)


def _inlined_only(binary: ElfBinary, path: str, copy: InlinedSite) -> FunctionAbi:
    head = FunctionAbi(path, out_of_line=False, inlined=True)
    if not copy.params_known or copy.origin is None:
        return replace(head, unknown=LIMITED)
    return_die = index.referenced(copy.origin, "DW_AT_type")
    if not copy.params and return_die is None and _no_parameters_in(binary, copy.origin.cu):
        return replace(head, unknown=LIMITED)
    return_type = type_of(return_die)
    params = tuple(ParamAbi(p.name, _layout(p.type, _type_die(p.die)), None) for p in copy.params)
    returns = ReturnAbi(
        None if return_type.kind == "unit" else _layout(return_type, return_die), None
    )
    notes = (f"calling convention: {INLINED_ONLY}",)
    layouts = _struct_layouts([(p.type, _type_die(p.die)) for p in copy.params])
    layouts += _struct_layouts([(return_type, return_die)])
    return replace(head, params=params, returns=returns, notes=notes, layouts=layouts)


def _limited(binary: ElfBinary, info: index.FunctionInfo) -> bool:
    """No parameters and no return type, in a unit where no function has a parameter:
    limited debug info, where "no parameters" and "parameters unknown" look alike."""
    if info.params or index.referenced(info.die, "DW_AT_type") is not None:
        return False
    return _no_parameters_in(binary, info.die.cu)


def _no_parameters_in(binary: ElfBinary, unit: Any) -> bool:
    return not any(index.unit_index(binary, unit.cu_offset).params.values())


def _type_die(die: Any) -> Any:
    return index.referenced(die, "DW_AT_type")


# -- where a value lives ------------------------------------------------------------------


def _param_location(param: index.Parameter, at: int, info: index.FunctionInfo, cfa: Cfa) -> str:
    if param.type.kind == "unsupported" and param.type.size:
        # A type the decoder cannot show still has a place: locate it by its size.
        param = replace(param, type=RustType(param.type.name, "struct", param.type.size))
    where = planner._locate(param, at, info.frame_base, cfa)
    if isinstance(where, Unavailable):
        sse = _sse_location(param, at)
        return sse if sse is not None else _unavailable(where)
    return describe(where, param.type, cfa)


def _in_memory(param: index.Parameter, at: int, info: index.FunctionInfo, cfa: Cfa) -> bool:
    where = planner._locate(param, at, info.frame_base, cfa)
    if isinstance(where, Indirect):
        return True
    return isinstance(where, tuple) and any(piece.memory for piece in where)


def describe(where: Location, rust_type: RustType, cfa: Cfa | None) -> str:
    """A location in words, relative to the CFA where it is on the stack."""
    if isinstance(where, Unavailable):
        return _unavailable(where)
    if isinstance(where, bytes):
        if not where:
            return "zero-sized: nothing passed"
        if rust_type.kind in SCALARS and rust_type.kind != "float":
            return f"constant {rust_type.decode(where)!r}"
        return f"constant 0x{where[::-1].hex()}"
    if isinstance(where, Computed):
        return f"computed: {where.describe()}"
    if isinstance(where, Indirect):
        address = where.address
        plus = f", plus {where.add}" if where.add else ""
        if address.memory:
            return f"by reference: its address is stored at {_memory(address, cfa)}{plus}"
        return f"by reference: its address is in {_register(address.reg)}{plus}"
    parts = _merged(where)
    if len(parts) == 1:
        (piece,) = parts
        if not piece.memory:
            return f"in {_register(piece.reg)}"
        if cfa is not None and piece.reg == cfa.reg:
            return f"on the stack at {_memory(piece, cfa)}"
        return f"by reference: memory at {_memory(piece, cfa)}"
    start = 0
    words = []
    for piece in parts:
        place = _memory(piece, cfa) if piece.memory else _register(piece.reg)
        words.append(f"{place} (bytes {start}..{start + piece.size})")
        start += piece.size
    return "split: " + ", ".join(words)


def _merged(pieces: Sequence[Piece]) -> list[Piece]:
    """Contiguous memory pieces (the planner copies a word at a time) as one."""
    out: list[Piece] = []
    for piece in pieces:
        last = out[-1] if out else None
        if (
            last is not None
            and piece.memory
            and last.memory
            and piece.reg == last.reg
            and piece.offset == last.offset + last.size
        ):
            out[-1] = Piece(last.reg, last.offset, last.size + piece.size, memory=True)
        else:
            out.append(piece)
    return out


def _register(number: int) -> str:
    if number < len(REGISTER_NAMES):
        return REGISTER_NAMES[number]
    if number in SSE_REGISTERS:
        return f"xmm{number - SSE_REGISTERS.start}"
    return f"DWARF register {number}"


def _memory(piece: Piece, cfa: Cfa | None) -> str:
    if cfa is not None and piece.reg == cfa.reg:
        relative = f"CFA{piece.offset - cfa.offset:+d}"
        return f"{relative} ({_register(piece.reg)}{piece.offset:+d})"
    return f"{_register(piece.reg)}{piece.offset:+d}"


def _unavailable(why: Unavailable) -> str:
    reason = why.reason
    if reason.startswith("optimized out"):
        return reason.replace("at this point", "at the entry")
    return f"unknown: {reason}"


def _sse_location(param: index.Parameter, at: int) -> str | None:
    """`in xmm0` for a value DWARF places in SSE registers, which the planner refuses
    (a uprobe cannot read them) but an ABI snapshot states."""
    attr = param.die.attributes.get("DW_AT_location")
    if attr is None:
        return None
    ops = locations.expression_at(attr, param.die, at)
    if isinstance(ops, Unavailable):
        return None
    registers = []
    for op in ops:
        name = op.op_name
        if name.startswith("DW_OP_reg") and name[len("DW_OP_reg") :].isdigit():
            number = int(name[len("DW_OP_reg") :])
        elif name == "DW_OP_regx":
            number = int(op.args[0])
        elif name == "DW_OP_piece":
            continue
        else:
            return None
        if number not in SSE_REGISTERS:
            return None
        registers.append(_register(number))
    if not registers:
        return None
    return f"in {registers[0]}" if len(registers) == 1 else "split: " + ", ".join(registers)


def _return_location(rust_type: RustType) -> str:
    """By the planner's rule (plan._return_value), with SSE registers named."""
    if rust_type.kind == "unit":
        return "nothing"
    if rust_type.size == 0:
        return "zero-sized: nothing returned"
    if rust_type.float_return:
        return "in xmm0"
    by_size = rust_type.kind == "unsupported"
    if by_size:  # the decoder's limit, not the ABI's: place it by its size
        rust_type = RustType(rust_type.name, "struct", rust_type.size)
    sse = _sse_pair(rust_type)
    if sse is not None:
        return sse
    value = planner._return_value(rust_type, (1, 1))
    if value is None:
        return "nothing"
    where = value.location
    if planner._hidden_pointer(value):
        text = "through a hidden pointer (the caller's buffer; its address arrives in rdi)"
    else:
        text = describe(where, rust_type, None)
    return f"{text} (by its size: its fields are not decoded)" if by_size else text


def _sse_pair(rust_type: RustType) -> str | None:
    """A pair of scalars with a float among them: integers take rax then rdx, floats
    xmm0 then xmm1, each scalar a register of its own."""
    pair = rust_type.scalars() if rust_type.size <= 16 else None
    if pair is None or len(pair) != 2 or all(t.kind != "float" for _, t in pair):
        return None
    integers, floats = iter(("rax", "rdx")), iter(("xmm0", "xmm1"))
    words = []
    for offset, part in pair:
        register = next(floats) if part.kind == "float" else next(integers)
        words.append(f"{register} (bytes {offset}..{offset + part.size})")
    return "split: " + ", ".join(words)


# -- sizes and alignments -------------------------------------------------------------------


def _layout(rust_type: RustType, die: Any) -> TypeLayout:
    return TypeLayout(rust_type.name or "?", rust_type.size, alignment(die, rust_type))


def alignment(die: Any, rust_type: RustType | None = None, depth: int = 0) -> int | None:
    """A type's alignment: DW_AT_alignment where rustc gives it; otherwise a scalar's own
    size (x86-64 aligns integers, floats and pointers, u128 included, to their size), an
    array's element's, or a struct's largest member's."""
    if die is None:
        return 1 if rust_type is not None and rust_type.kind == "unit" else None
    if depth > 8:
        return None
    given = die.attributes.get("DW_AT_alignment")
    if given is not None:
        return int(given.value)
    tag = die.tag
    if tag in ("DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type", "DW_TAG_array_type"):
        return alignment(_type_die(die), None, depth + 1)
    if tag in ("DW_TAG_pointer_type", "DW_TAG_reference_type"):
        return 8
    size_attr = die.attributes.get("DW_AT_byte_size")
    size = int(size_attr.value) if size_attr is not None else None
    if tag in ("DW_TAG_base_type", "DW_TAG_enumeration_type"):
        if size == 0:
            return 1
        return size if size in (1, 2, 4, 8, 16) else None
    if tag in ("DW_TAG_structure_type", "DW_TAG_union_type"):
        members = [c for c in die.iter_children() if c.tag == "DW_TAG_member"]
        found = [
            int(m.attributes["DW_AT_alignment"].value)
            if "DW_AT_alignment" in m.attributes
            else alignment(_type_die(m), None, depth + 1)
            for m in members
        ]
        if not members:
            return 1 if size == 0 else None
        known = [a for a in found if a is not None]
        return max(known) if len(known) == len(found) else None
    return None


def _struct_layouts(types: Iterable[tuple[RustType, Any]]) -> tuple[StructLayout, ...]:
    """The structs and tuples among `types` (by value, with fields), named in full."""
    out = []
    for rust_type, die in types:
        if rust_type.kind not in ("struct", "tuple") or not rust_type.fields or die is None:
            continue
        while die is not None and die.tag in ("DW_TAG_typedef", "DW_TAG_const_type"):
            die = _type_die(die)
        fields = tuple(FieldLayout(f.name, f.type.name, f.offset) for f in rust_type.fields)
        out.append(
            StructLayout(
                qualified_name(die) or rust_type.name,
                rust_type.size,
                alignment(die, rust_type),
                fields,
            )
        )
    return tuple(out)


def qualified_name(die: Any) -> str | None:
    """`abi_demo::api::Rect` for the DIE of `Rect`: its name in its namespaces."""
    if die is None or "DW_AT_name" not in die.attributes:
        return None
    segments = [die.attributes["DW_AT_name"].value.decode("utf-8", "replace")]
    parent = die.get_parent()
    while parent is not None and parent.tag in ("DW_TAG_namespace", "DW_TAG_structure_type"):
        name = parent.attributes.get("DW_AT_name")
        if name is None:
            break
        segments.append(name.value.decode("utf-8", "replace"))
        parent = parent.get_parent()
    return "::".join(reversed(segments))
