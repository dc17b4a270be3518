"""DWARF location expressions and lists -> where a value lives at one code address.

The answer is a tuple of `Piece`s the BPF side can copy: the low bytes of a register,
or bytes of memory at a register plus an offset. The canonical frame address (CFA) is
itself "register + offset" at a given address, so CFA-relative places reduce to the same form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from elftools.dwarf.dwarf_expr import DWARFExprParser
from elftools.dwarf.locationlists import BaseAddressEntry, LocationEntry, LocationParser

from ..values import Unavailable

REGISTER_NAMES = (
    "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip",
)  # fmt: skip
RSP = 7
MAX_PIECE = 8  # the BPF side copies at most one machine word per piece
MAX_PADDED = 1024  # padding_of looks at values up to this size (a piece-wise value is small)


CONSTANT_REG = 0x1001  # not a register: the BPF side reads 0; the decoder uses `value`


@dataclass(frozen=True)
class Piece:
    """`size` bytes: at memory `reg + offset` if `memory`, else the low bytes of `reg`; or,
    for a piece DWARF gives as a constant (`value` set, `reg` CONSTANT_REG), those bytes."""

    reg: int
    offset: int
    size: int
    memory: bool
    value: bytes | None = None


@dataclass(frozen=True)
class Cfa:
    """The canonical frame address at one code address: `reg + offset`."""

    reg: int
    offset: int


@dataclass(frozen=True)
class Indirect:
    """A value in memory at an address that is itself a run-time value: the word `address`
    (one piece) plus `add`. DWARF's `DW_OP_deref` (a dev build's by-reference argument), a
    return value through a hidden pointer, and values too large for pieces."""

    address: Piece
    add: int = 0


# Pieces to copy at run time, the value's bytes when DWARF gives a constant, memory behind
# a run-time address, or why not.
Location = Union[tuple[Piece, ...], bytes, Indirect, Unavailable]


def constant(attr: Any, size: int, signed: bool) -> bytes | Unavailable:
    """The bytes of a DW_AT_const_value."""
    value = attr.value
    if isinstance(value, list):  # a block form: the bytes themselves
        return bytes(value)[:size].ljust(size, b"\0")
    if isinstance(value, bytes):
        return value[:size].ljust(size, b"\0")
    try:
        return int(value).to_bytes(size, "little", signed=signed or int(value) < 0)
    except OverflowError:
        return Unavailable(f"its constant {value} does not fit in {size} bytes")


def locate(
    attr: Any,
    die: Any,
    address: int,
    size: int,
    frame_base: Any,
    cfa: Cfa | None,
    padding: frozenset[int] = frozenset(),
) -> Location:
    """Where the `size`-byte value described by location attribute `attr` is at `address`.
    `padding`: the byte offsets no field covers (see `padding_of`), which the location
    may leave undescribed."""
    expr = expression_at(attr, die, address)
    if isinstance(expr, Unavailable):
        return expr
    base: Location | None = None
    if frame_base is not None:
        fb_expr = expression_at(frame_base, die, address)
        base = fb_expr if isinstance(fb_expr, Unavailable) else _frame_base(fb_expr, die, cfa)
    return evaluate(expr, die, size, base, cfa, padding)


def padding_of(rust_type: Any) -> frozenset[int]:
    """The byte offsets of a value of `rust_type` that belong to no field, at any depth (in
    no variant, for an enum): padding, which a compiler need not keep, so a location that
    leaves them out still describes the whole value. A type whose layout is not known field
    by field counts as all fields (no padding), and so does one too large for DW_OP_pieces
    to describe in registers and slots (no value over MAX_PADDED bytes)."""
    if rust_type.size > MAX_PADDED:
        return frozenset()
    used: set[int] = set()
    _field_bytes(rust_type, 0, used)
    return frozenset(range(rust_type.size)) - used


def _field_bytes(t: Any, base: int, used: set[int]) -> None:
    kind = t.kind
    if kind in ("struct", "tuple") and (t.fields or not t.size):
        for f in t.fields:
            _field_bytes(f.type, base + f.offset, used)
    elif kind == "array" and t.item is not None and t.item.size * t.count == t.size:
        for i in range(t.count):
            _field_bytes(t.item, base + i * t.item.size, used)
    elif kind == "enum" and t.variants and not t.name.startswith("{"):
        if t.discr is not None:
            _field_bytes(t.discr.type, base + t.discr.offset, used)
        for variant in t.variants:
            for f in variant.fields:  # offsets from the start of the enum
                _field_bytes(f.type, base + f.offset, used)
    else:  # a scalar, a pointer, or a layout not known field by field: every byte
        used.update(range(base, base + t.size))


def expression_at(attr: Any, die: Any, address: int) -> list[Any] | Unavailable:
    """The location expression of `attr` that holds at `address` (DWARF ops, parsed)."""
    cu = die.cu
    dwarf = cu.dwarfinfo
    parser = LocationParser(dwarf.location_lists())
    parsed = parser.parse_from_attribute(attr, cu.header["version"], die)
    if hasattr(parsed, "loc_expr"):
        return _parse_ops(parsed.loc_expr, die)
    base = _cu_base(cu)
    for entry in parsed:
        if isinstance(entry, BaseAddressEntry):
            base = entry.base_address
        elif isinstance(entry, LocationEntry):
            begin = entry.begin_offset if entry.is_absolute else base + entry.begin_offset
            end = entry.end_offset if entry.is_absolute else base + entry.end_offset
            if begin <= address < end:
                return _parse_ops(entry.loc_expr, die)
    return Unavailable("optimized out at this point")


def _cu_base(cu: Any) -> int:
    top = cu.get_top_DIE()
    low = top.attributes.get("DW_AT_low_pc")
    return int(low.value) if low else 0


def _parse_ops(raw: list[int], die: Any) -> list[Any]:
    return list(DWARFExprParser(die.cu.structs).parse_expr(raw))


def _frame_base(ops: list[Any], die: Any, cfa: Cfa | None) -> Location:
    if ops and ops[0].op_name == "DW_OP_call_frame_cfa":
        if cfa is None:
            return Unavailable("the frame base is the CFA, which is unknown here")
        if len(ops) == 1:
            return (Piece(cfa.reg, cfa.offset, 8, memory=False),)
        # A large frame's base: CFA plus a constant (DW_OP_consts -4192; DW_OP_plus).
        names = [op.op_name for op in ops[1:]]
        constant = names[0] in ("DW_OP_consts", "DW_OP_constu")
        if len(ops) == 3 and names[1] == "DW_OP_plus" and constant:
            return (Piece(cfa.reg, cfa.offset + int(ops[1].args[0]), 8, memory=False),)
        if len(ops) == 2 and names[0] == "DW_OP_plus_uconst":
            return (Piece(cfa.reg, cfa.offset + int(ops[1].args[0]), 8, memory=False),)
        return Unavailable(f"the frame base uses {', '.join(names)}, not supported yet")
    return evaluate(ops, die, 8, None, cfa)


def evaluate(
    ops: list[Any],
    die: Any,
    size: int,
    frame_base: Location | None,
    cfa: Cfa | None,
    padding: frozenset[int] = frozenset(),
) -> Location:
    """Evaluate the subset of DWARF expressions compilers use for variables: one place (a
    register, memory at a register plus an offset, a constant), a run-time address to
    follow (DW_OP_deref), or a composite of DW_OP_piece parts mixing registers, memory and
    constants. A value made of constants only comes back as its bytes."""
    pieces: list[Piece] = []
    pending: tuple[int, int, bool] | None = None  # reg, offset, memory
    literal: int | None = None
    indirect: Indirect | None = None
    for op in ops:
        name = op.op_name
        if indirect is not None:
            if name == "DW_OP_plus_uconst":
                indirect = Indirect(indirect.address, indirect.add + op.args[0])
                continue
            return Unavailable(f"its location uses {name} after DW_OP_deref, not supported yet")
        if name == "DW_OP_deref":
            if pending is None or not pending[2] or pieces:
                return Unavailable("its location dereferences something other than memory")
            if pending[0] >= len(REGISTER_NAMES):
                return Unavailable(f"its address is in DWARF register {pending[0]}")
            indirect = Indirect(Piece(pending[0], pending[1], 8, memory=True))
            pending = None
        elif name.startswith("DW_OP_lit") and name[len("DW_OP_lit") :].isdigit():
            literal = int(name[len("DW_OP_lit") :])
        elif name in ("DW_OP_constu", "DW_OP_consts") or (
            name.startswith("DW_OP_const") and name[-1] in "us" and name[-2].isdigit()
        ):
            literal = int(op.args[0])
        elif name == "DW_OP_stack_value":
            # The expression computed the value itself, not where it lives.
            if literal is not None:
                continue  # a constant: taken at the next DW_OP_piece or at the end
            if pending is not None and pending[2] and pending[1] == 0:
                pending = (pending[0], 0, False)  # breg<N> 0: the register's value
                continue
            return Unavailable("its value is computed by an expression not supported yet")
        elif name == "DW_OP_plus_uconst" and pending is not None and pending[2]:
            pending = (pending[0], pending[1] + int(op.args[0]), True)
        elif name == "DW_OP_plus" and literal is not None and pending is not None and pending[2]:
            pending = (pending[0], pending[1] + literal, True)
            literal = None
        elif name.startswith("DW_OP_reg") and name != "DW_OP_regx":
            pending = (int(name[len("DW_OP_reg") :]), 0, False)
        elif name == "DW_OP_regx":
            pending = (op.args[0], 0, False)
        elif name.startswith("DW_OP_breg") and name != "DW_OP_bregx":
            pending = (int(name[len("DW_OP_breg") :]), op.args[0], True)
        elif name == "DW_OP_bregx":
            pending = (op.args[0], op.args[1], True)
        elif name == "DW_OP_fbreg":
            if frame_base is None:
                return Unavailable("the location needs a frame base the function does not give")
            if isinstance(frame_base, Unavailable):
                return frame_base
            if not isinstance(frame_base, tuple) or len(frame_base) != 1:
                return Unavailable("the frame base is not a single register")
            (fb,) = frame_base
            if fb.memory:
                return Unavailable("the frame base is itself in memory")
            pending = (fb.reg, fb.offset + op.args[0], True)
        elif name == "DW_OP_call_frame_cfa":
            if cfa is None:
                return Unavailable("the location is relative to the CFA, which is unknown here")
            pending = (cfa.reg, cfa.offset, True)
        elif name == "DW_OP_piece":
            length = int(op.args[0])
            if literal is not None:
                # A constant part (LLVM writes `DW_OP_lit1; DW_OP_piece 4` and the
                # DW_OP_stack_value form alike).
                pieces.append(Piece(CONSTANT_REG, 0, length, False, _masked(literal, length)))
            elif pending is not None:
                built = _pieces(*pending, length)
                if isinstance(built, Unavailable):
                    return built
                pieces.extend(built)
            else:
                done = sum(p.size for p in pieces)
                if not padding.issuperset(range(done, done + length)):
                    return Unavailable(f"part of the value ({length} bytes) is optimized out")
                pieces.append(_padding_piece(length))  # padding: no field's bytes
            pending = None
            literal = None
        else:
            return Unavailable(f"its location uses {name}, which is not supported yet")
    if indirect is not None:
        return indirect
    if literal is not None and not pieces:
        return _literal_bytes(literal, size)
    if pending is not None:
        built = _pieces(*pending, size)
        if isinstance(built, Unavailable):
            return built
        pieces.extend(built)
    if not pieces:
        return Unavailable("optimized out")
    done = sum(p.size for p in pieces)
    if done < size and padding.issuperset(range(done, size)):
        pieces.append(_padding_piece(size - done))  # only padding is left undescribed
    if sum(p.size for p in pieces) < size:
        return Unavailable(
            f"only {sum(p.size for p in pieces)} of its {size} bytes are described (the rest "
            "is optimized out)"
        )
    if all(p.value is not None for p in pieces):
        return b"".join(p.value for p in pieces if p.value is not None)
    return tuple(pieces)


def _padding_piece(size: int) -> Piece:
    """Padding bytes: no field reads them, so they are given as zeros."""
    return Piece(CONSTANT_REG, 0, size, False, b"\0" * size)


def _masked(value: int, size: int) -> bytes:
    return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def _literal_bytes(value: int, size: int) -> bytes | Unavailable:
    try:
        return value.to_bytes(size, "little", signed=value < 0)
    except OverflowError:
        return Unavailable(f"its constant {value} does not fit in {size} bytes")


def _pieces(reg: int, offset: int, memory: bool, size: int) -> tuple[Piece, ...] | Unavailable:
    if reg >= len(REGISTER_NAMES):
        return Unavailable(f"it lives in DWARF register {reg}, which a uprobe cannot read")
    if not memory:
        if size > MAX_PIECE:
            return Unavailable(f"{size} bytes cannot live in one register")
        return (Piece(reg, 0, size, memory=False),)
    return tuple(
        Piece(reg, offset + start, min(MAX_PIECE, size - start), memory=True)
        for start in range(0, size, MAX_PIECE)
    )
