"""DWARF location expressions and lists -> where a value lives at one code address.

The answer is a tuple of `Piece`s the BPF side can copy: the low bytes of a register,
or bytes of memory at a register plus an offset. The canonical frame address (CFA) is
itself "register + offset" at a given address, so CFA-relative places reduce to the same form.
"""

from __future__ import annotations

from collections.abc import Sequence
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
# a run-time address, a value computed from copied words, or why not.
Location = Union[tuple[Piece, ...], bytes, Indirect, "Computed", Unavailable]


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
    """Evaluate a DWARF location expression (DWARF 5, section 2.5 and 2.6) for a `size`-byte
    value: one place (a register, memory at a register plus an offset, a constant), a
    run-time address to follow (DW_OP_deref), a composite of DW_OP_piece parts mixing
    registers, memory and constants, or a value computed from registers and memory words
    (`Computed`, decoded after the event). A value made of constants only comes back as its
    bytes. The DWARF stack is run symbolically: each entry is a `Term` over what a probe
    can copy (registers, memory at a register plus an offset)."""
    machine = _Machine(ops, die, frame_base, cfa)
    parts = machine.run()
    if isinstance(parts, Unavailable):
        return parts
    if len(parts) == 1 and parts[0].length is None:
        return _whole(parts[0], size)
    built: list[tuple[int, _Segment | None]] = []  # None: padding, given as zeros
    described = 0
    for part in parts:
        length = part.length if part.length is not None else size
        if part.empty:
            if not padding.issuperset(range(described, described + length)):
                return Unavailable(f"part of the value ({length} bytes) is optimized out")
            built.append((length, None))  # padding: no field's bytes
        else:
            built.append((length, part))
        described += length
    if described < size and padding.issuperset(range(described, size)):
        built.append((size - described, None))  # only padding is left undescribed
        described = size
    if described < size:
        return Unavailable(
            f"only {described} of its {size} bytes are described (the rest is optimized out)"
        )
    pieces: list[Piece] = []
    computed = False
    for length, segment in built:
        if segment is None:
            pieces.append(_padding_piece(length))
            continue
        where = _segment(segment, length, constant_address_is_value=True)
        if isinstance(where, Unavailable):
            return where
        if isinstance(where, Indirect):
            return Unavailable("a part of the value is behind a pointer, not supported yet")
        if isinstance(where, _Formula):
            computed = True
            continue
        if isinstance(where, bytes):
            pieces.append(Piece(CONSTANT_REG, 0, length, False, where))
        else:
            pieces.extend(where)
    if computed:
        segments = [(length, seg) for length, seg in built if seg is not None]
        if len(segments) < len(built):
            return Unavailable("a value computed from registers around padding, not supported yet")
        return _computed(segments)
    if all(p.value is not None for p in pieces):
        return b"".join(p.value for p in pieces if p.value is not None)
    return tuple(pieces)


# -- the DWARF stack, run on terms ----------------------------------------------------------------


@dataclass(frozen=True)
class Reg:
    """The value of a register (DW_OP_breg<n>, DW_OP_bregx), as a generic 64-bit value."""

    reg: int


@dataclass(frozen=True)
class Mem:
    """`size` bytes of memory, zero-extended, at the address `address` computes (DW_OP_deref)."""

    address: Term
    size: int


@dataclass(frozen=True)
class Const:
    value: int  # 0 <= value < 2**64, as the DWARF stack's generic type holds it


@dataclass(frozen=True)
class Apply:
    """An operator applied to terms (`param`: a conversion's bits and signedness)."""

    op: str
    args: tuple[Term, ...]
    param: tuple[int, bool] | None = None


Term = Union[Reg, Mem, Const, Apply]
_MASK = (1 << 64) - 1


def _signed(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


def _divide(a: int, b: int) -> int | None:
    if b == 0:
        return None
    sa, sb = _signed(a), _signed(b)
    quotient = abs(sa) // abs(sb)
    return (-quotient if (sa < 0) != (sb < 0) else quotient) & _MASK


# DWARF 5 section 2.5.1.4 (arithmetic and logical) and 2.5.1.5 (relational): the binary ones
# take (second entry, top entry). None: the operation is undefined (a division by zero).
_BINARY: dict[str, Any] = {
    "DW_OP_and": lambda a, b: a & b,
    "DW_OP_or": lambda a, b: a | b,
    "DW_OP_xor": lambda a, b: a ^ b,
    "DW_OP_plus": lambda a, b: (a + b) & _MASK,
    "DW_OP_minus": lambda a, b: (a - b) & _MASK,
    "DW_OP_mul": lambda a, b: (a * b) & _MASK,
    "DW_OP_div": _divide,  # signed, as the standard says
    "DW_OP_mod": lambda a, b: a % b if b else None,
    "DW_OP_shl": lambda a, b: (a << b) & _MASK if b < 64 else 0,
    "DW_OP_shr": lambda a, b: a >> b if b < 64 else 0,
    "DW_OP_shra": lambda a, b: (_signed(a) >> min(b, 63)) & _MASK,
    "DW_OP_eq": lambda a, b: int(a == b),
    "DW_OP_ne": lambda a, b: int(a != b),
    "DW_OP_lt": lambda a, b: int(_signed(a) < _signed(b)),
    "DW_OP_gt": lambda a, b: int(_signed(a) > _signed(b)),
    "DW_OP_le": lambda a, b: int(_signed(a) <= _signed(b)),
    "DW_OP_ge": lambda a, b: int(_signed(a) >= _signed(b)),
}
_UNARY: dict[str, Any] = {
    "DW_OP_abs": lambda a: abs(_signed(a)) & _MASK,
    "DW_OP_neg": lambda a: (-a) & _MASK,
    "DW_OP_not": lambda a: ~a & _MASK,
}
_SYMBOLS = {
    "DW_OP_and": "&", "DW_OP_or": "|", "DW_OP_xor": "^", "DW_OP_plus": "+",
    "DW_OP_minus": "-", "DW_OP_mul": "*", "DW_OP_div": "/", "DW_OP_mod": "%",
    "DW_OP_shl": "<<", "DW_OP_shr": ">>", "DW_OP_shra": ">>>", "DW_OP_eq": "==",
    "DW_OP_ne": "!=", "DW_OP_lt": "<", "DW_OP_gt": ">", "DW_OP_le": "<=", "DW_OP_ge": ">=",
}  # fmt: skip
_NOT_READ = {
    "DW_OP_addr": "lives at a static address (DW_OP_addr)",
    "DW_OP_addrx": "lives at a static address (DW_OP_addrx)",
    "DW_OP_constx": "is a relocated constant (DW_OP_constx)",
    "DW_OP_GNU_addr_index": "lives at a static address",
    "DW_OP_GNU_const_index": "is a relocated constant",
    "DW_OP_form_tls_address": "lives in thread-local storage",
    "DW_OP_GNU_push_tls_address": "lives in thread-local storage",
    "DW_OP_push_object_address": "needs the address of the object being described",
    "DW_OP_xderef": "is in another address space (DW_OP_xderef)",
    "DW_OP_xderef_size": "is in another address space (DW_OP_xderef_size)",
    "DW_OP_xderef_type": "is in another address space (DW_OP_xderef_type)",
    "DW_OP_call2": "calls another DIE's expression (DW_OP_call2)",
    "DW_OP_call4": "calls another DIE's expression (DW_OP_call4)",
    "DW_OP_call_ref": "calls another DIE's expression (DW_OP_call_ref)",
    "DW_OP_implicit_pointer": (
        "points to a value that has no address (optimized into registers or constants)"
    ),
    "DW_OP_GNU_implicit_pointer": (
        "points to a value that has no address (optimized into registers or constants)"
    ),
    "DW_OP_entry_value": (
        "is the value a register held when the function was entered (DW_OP_entry_value), "
        "which is gone here"
    ),
    "DW_OP_GNU_entry_value": (
        "is the value a register held when the function was entered, which is gone here"
    ),
    "DW_OP_GNU_parameter_ref": "refers to a parameter of the caller",
}


def _apply(op: str, args: tuple[Term, ...], param: tuple[int, bool] | None = None) -> Term:
    """`op` on `args`, folded to a constant when every argument is one."""
    if all(isinstance(a, Const) for a in args):
        values = [a.value for a in args if isinstance(a, Const)]
        result = _compute_op(op, values, param)
        if result is not None:
            return Const(result)
    return Apply(op, args, param)


def _compute_op(op: str, values: list[int], param: tuple[int, bool] | None) -> int | None:
    if op == "convert" and param is not None:
        bits, signed = param
        value = values[0] & ((1 << bits) - 1)
        if signed and value >> (bits - 1):
            value -= 1 << bits
        return value & _MASK
    if op in _UNARY:
        return int(_UNARY[op](values[0]))
    result = _BINARY[op](values[0], values[1])
    return None if result is None else int(result)


def _plus(term: Term, add: int) -> Term:
    return _apply("DW_OP_plus", (term, Const(add & _MASK))) if add else term


def _split(term: Term) -> tuple[Term | None, int]:
    """`term` as a base (a register or a memory word; None: a constant) plus an offset."""
    if isinstance(term, Const):
        return None, _signed(term.value)
    if isinstance(term, Apply) and term.op in ("DW_OP_plus", "DW_OP_minus"):
        (a, a_off), (b, b_off) = _split(term.args[0]), _split(term.args[1])
        if term.op == "DW_OP_plus" and (a is None or b is None):
            return (a if b is None else b), a_off + b_off
        if term.op == "DW_OP_minus" and b is None:
            return a, a_off - b_off
    return term, 0


@dataclass
class _Segment:
    """What the expression says about one piece (or the whole value): the term on top of the
    stack, and how to read it."""

    top: Term | None = None
    register: int | None = None  # DW_OP_reg<n>: the value is in this register
    value: bool = False  # DW_OP_stack_value: `top` is the value itself, not its address
    implicit: bytes | None = None  # DW_OP_implicit_value
    length: int | None = None  # the DW_OP_piece's size; None: the whole value

    @property
    def empty(self) -> bool:
        return self.top is None and self.register is None and self.implicit is None


class _Machine:
    """The DWARF expression stack machine, over terms."""

    def __init__(self, ops: list[Any], die: Any, frame_base: Location | None, cfa: Cfa | None):
        self.ops = ops
        self.die = die
        self.frame_base = frame_base
        self.cfa = cfa

    def run(self) -> list[_Segment] | Unavailable:
        ops = self.ops
        at_offset = {getattr(op, "offset", None): i for i, op in enumerate(ops)}
        parts: list[_Segment] = []
        stack: list[Term] = []
        segment = _Segment()
        i = steps = 0
        while i < len(ops):
            steps += 1
            if steps > 10_000:
                return Unavailable("its location expression does not terminate")
            op = ops[i]
            name = op.op_name
            args = tuple(getattr(op, "args", ()))
            i += 1
            placed = segment.register is not None or segment.implicit is not None
            if placed and name not in ("DW_OP_piece", "DW_OP_bit_piece"):
                return Unavailable(f"its location uses {name} after a register, not valid")
            if name in ("DW_OP_piece", "DW_OP_bit_piece"):
                length = int(args[0])
                if name == "DW_OP_bit_piece":
                    if length % 8 or int(args[1]):
                        return Unavailable("its location uses bit pieces, not supported yet")
                    length //= 8
                segment.top = stack[-1] if stack else None
                segment.length = length
                parts.append(segment)
                segment, stack = _Segment(), []
                continue
            if name in ("DW_OP_skip", "DW_OP_bra"):
                if name == "DW_OP_bra":
                    if not stack:
                        return Unavailable("its location expression is malformed (bra)")
                    condition = stack.pop()
                    if not isinstance(condition, Const):
                        return Unavailable("its location branches on a run-time value")
                    if not condition.value:
                        continue
                offset = getattr(op, "offset", None)
                if offset is None:
                    return Unavailable(f"its location uses {name}, whose target is unknown")
                target = offset + 3 + int(args[0])  # 1 byte of opcode, 2 of offset
                if target in at_offset:
                    i = at_offset[target]
                elif target > max(o for o in at_offset if o is not None):
                    i = len(ops)
                else:
                    return Unavailable(f"its location's {name} lands inside an operation")
                continue
            failed = self.step(name, args, stack, segment)
            if failed is not None:
                return failed
        if stack or not segment.empty:
            if stack:
                segment.top = stack[-1]
            parts.append(segment)
        elif not parts:
            parts.append(segment)
        return parts

    def step(
        self, name: str, args: tuple[Any, ...], stack: list[Term], segment: _Segment
    ) -> Unavailable | None:
        """One operation on `stack`; an Unavailable when it cannot be followed."""
        needs = _ARITY.get(name, 0)
        if len(stack) < needs:
            return Unavailable(f"its location expression is malformed ({name})")
        if name.startswith("DW_OP_lit") and name[len("DW_OP_lit") :].isdigit():
            stack.append(Const(int(name[len("DW_OP_lit") :])))
        elif name in ("DW_OP_constu", "DW_OP_consts") or (
            name.startswith("DW_OP_const") and name[-1] in "us" and name[-2].isdigit()
        ):
            stack.append(Const(int(args[0]) & _MASK))
        elif name == "DW_OP_const_type":
            stack.append(Const(int.from_bytes(bytes(args[-1]), "little") & _MASK))
        elif name.startswith("DW_OP_breg") and name != "DW_OP_bregx":
            stack.append(_plus(Reg(int(name[len("DW_OP_breg") :])), int(args[0])))
        elif name == "DW_OP_bregx":
            stack.append(_plus(Reg(int(args[0])), int(args[1])))
        elif name == "DW_OP_regval_type":
            stack.append(Reg(int(args[0])))
        elif name.startswith("DW_OP_reg") and name != "DW_OP_regx":
            segment.register = int(name[len("DW_OP_reg") :])
        elif name == "DW_OP_regx":
            segment.register = int(args[0])
        elif name == "DW_OP_implicit_value":
            segment.implicit = bytes(args[-1])
        elif name == "DW_OP_stack_value":
            segment.value = True
        elif name == "DW_OP_fbreg":
            base = self.frame_base
            if base is None:
                return Unavailable("the location needs a frame base the function does not give")
            if isinstance(base, Unavailable):
                return base
            if not isinstance(base, tuple) or len(base) != 1:
                return Unavailable("the frame base is not a single register")
            (fb,) = base
            if fb.memory:
                return Unavailable("the frame base is itself in memory")
            stack.append(_plus(Reg(fb.reg), fb.offset + int(args[0])))
        elif name == "DW_OP_call_frame_cfa":
            if self.cfa is None:
                return Unavailable("the location is relative to the CFA, which is unknown here")
            stack.append(_plus(Reg(self.cfa.reg), self.cfa.offset))
        elif name in ("DW_OP_deref", "DW_OP_deref_size", "DW_OP_deref_type"):
            size = 8 if name == "DW_OP_deref" else int(args[0])
            if not 0 < size <= 8:
                return Unavailable(f"its location reads {size} bytes at once (DW_OP_deref)")
            stack.append(Mem(stack.pop(), size))
        elif name == "DW_OP_plus_uconst":
            stack.append(_plus(stack.pop(), int(args[0])))
        elif name in _BINARY:
            b, a = stack.pop(), stack.pop()
            stack.append(_apply(name, (a, b)))
        elif name in _UNARY:
            stack.append(_apply(name, (stack.pop(),)))
        elif name in ("DW_OP_convert", "DW_OP_reinterpret", "DW_OP_GNU_convert"):
            converted = self._convert(name, int(args[0]), stack.pop())
            if isinstance(converted, Unavailable):
                return converted
            stack.append(converted)
        elif name == "DW_OP_dup":
            stack.append(stack[-1])
        elif name == "DW_OP_drop":
            stack.pop()
        elif name == "DW_OP_over":
            stack.append(stack[-2])
        elif name == "DW_OP_pick":
            index = int(args[0])
            if index >= len(stack):
                return Unavailable("its location expression is malformed (DW_OP_pick)")
            stack.append(stack[-1 - index])
        elif name == "DW_OP_swap":
            stack[-1], stack[-2] = stack[-2], stack[-1]
        elif name == "DW_OP_rot":
            stack[-3], stack[-2], stack[-1] = stack[-1], stack[-3], stack[-2]
        elif name == "DW_OP_nop":
            pass
        elif name in _NOT_READ:
            return Unavailable(f"it {_NOT_READ[name]}, which this tool does not read")
        else:
            return Unavailable(f"its location uses {name}, which is not supported yet")
        return None

    def _convert(self, name: str, type_offset: int, term: Term) -> Term | Unavailable:
        """DW_OP_convert/reinterpret to the base type at `type_offset` in the unit (0: the
        generic type): truncated to its size, sign-extended if signed (not on reinterpret)."""
        if type_offset == 0:
            return term
        if self.die is None:
            return Unavailable(f"its location uses {name} with a type this tool cannot read")
        cu = self.die.cu
        base = cu.get_DIE_from_refaddr(cu.cu_offset + type_offset)
        size = base.attributes.get("DW_AT_byte_size")
        encoding = base.attributes.get("DW_AT_encoding")
        if size is None or encoding is None or encoding.value not in _INTEGER_ENCODINGS:
            return Unavailable(f"its location converts to a non-integer type ({name})")
        bits = 8 * int(size.value)
        if bits > 64:
            return Unavailable(f"its location converts to a {bits}-bit type")
        signed = encoding.value in _SIGNED_ENCODINGS and name != "DW_OP_reinterpret"
        return _apply("convert", (term,), (bits, signed))


_INTEGER_ENCODINGS = frozenset({0x2, 0x5, 0x6, 0x7, 0x8, 0x10})  # bool, (un)signed, chars, UTF
_SIGNED_ENCODINGS = frozenset({0x5, 0x6})
_ARITY = {
    **dict.fromkeys(_BINARY, 2),
    **dict.fromkeys(_UNARY, 1),
    **dict.fromkeys(("DW_OP_deref", "DW_OP_deref_size", "DW_OP_deref_type"), 1),
    **dict.fromkeys(("DW_OP_convert", "DW_OP_reinterpret", "DW_OP_GNU_convert"), 1),
    "DW_OP_plus_uconst": 1,
    "DW_OP_dup": 1,
    "DW_OP_drop": 1,
    "DW_OP_over": 2,
    "DW_OP_swap": 2,
    "DW_OP_rot": 3,
}


class _Formula:
    """A segment whose bytes must be computed after the event (see `Computed`)."""


_FORMULA = _Formula()


def _whole(segment: _Segment, size: int) -> Location:
    """The location of a value described without pieces."""
    if segment.empty:
        return Unavailable("optimized out")
    where = _segment(segment, size, constant_address_is_value=True)
    if isinstance(where, _Formula):
        return _computed([(size, segment)])
    return where


def _segment(
    segment: _Segment, size: int, constant_address_is_value: bool
) -> tuple[Piece, ...] | bytes | Indirect | Unavailable | _Formula:
    """Where `size` bytes described by `segment` are: pieces to copy, constant bytes, memory
    behind a copied address, or a value to compute after the event (`_FORMULA`)."""
    if segment.register is not None:
        return _pieces(segment.register, 0, False, size)
    if segment.implicit is not None:
        return segment.implicit[:size].ljust(size, b"\0")
    top = segment.top
    assert top is not None
    if isinstance(top, Const) and (segment.value or constant_address_is_value):
        # A constant (LLVM writes `DW_OP_lit1; DW_OP_piece 4` for the constant 1 too).
        return _literal_bytes(_signed(top.value), size, masked=segment.length is not None)
    if segment.value:
        if isinstance(top, Reg):
            return _pieces(top.reg, 0, False, size)
        if isinstance(top, Mem) and top.size >= size:
            base, offset = _split(top.address)
            if isinstance(base, Reg):
                return _pieces(base.reg, offset, True, size)
        return (
            _FORMULA
            if size <= MAX_PIECE
            else Unavailable(
                f"its value is computed, and {size} bytes do not fit the DWARF stack's 8"
            )
        )
    base, offset = _split(top)
    if isinstance(base, Reg):
        return _pieces(base.reg, offset, True, size)
    if isinstance(base, Mem) and base.size == 8:
        address, at = _split(base.address)
        if isinstance(address, Reg):
            if address.reg >= len(REGISTER_NAMES):
                return Unavailable(f"its address is in DWARF register {address.reg}")
            return Indirect(Piece(address.reg, at, 8, memory=True), offset)
        return Unavailable("its address is read from memory at a computed address")
    return Unavailable(
        f"it lives at an address computed as {_describe(top)}, which a probe cannot follow"
    )


@dataclass(frozen=True)
class Computed:
    """A value DWARF computes from run-time words (arithmetic ending in DW_OP_stack_value):
    the probe copies each of `inputs` (a register, or memory at a register plus an offset)
    as one word, and `compute` builds the value's bytes from them after the event, one
    (size, term) part after the other."""

    inputs: tuple[Piece, ...]
    parts: tuple[tuple[int, Term], ...]

    def compute(self, words: Sequence[int]) -> bytes | Unavailable:
        values = {leaf: words[i] for i, leaf in enumerate(self._leaves())}
        out = b""
        for size, term in self.parts:
            value = _value_of(term, values)
            if value is None:
                return Unavailable(f"its value, {_describe(term)}, divides by zero")
            out += _masked(value, size)
        return out

    def _leaves(self) -> list[Term]:
        found: list[Term] = []
        for _, term in self.parts:
            for leaf in _leaves_of(term):
                if leaf not in found:
                    found.append(leaf)
        return found

    def describe(self) -> str:
        return ", ".join(_describe(term) for _, term in self.parts)

    def word_plus(self) -> tuple[int, int] | None:
        """(input, constant) when the value is one copied word plus a constant (a pointer
        into a frame, or to an array's element at a fixed index): the probe can copy what
        it points to, at that word plus the constant."""
        if len(self.parts) != 1 or self.parts[0][0] != 8:
            return None
        base, offset = _split(self.parts[0][1])
        leaves = self._leaves()
        if base is None or leaves != [base] or (isinstance(base, Mem) and base.size != 8):
            return None
        return 0, offset


def _computed(parts: list[tuple[int, _Segment]]) -> Computed | Unavailable:
    terms: list[tuple[int, Term]] = []
    for size, segment in parts:
        term = _as_term(segment, size)
        if isinstance(term, Unavailable):
            return term
        terms.append((size, term))
    leaves: list[Term] = []
    for _, term in terms:
        for leaf in _leaves_of(term):
            if leaf not in leaves:
                leaves.append(leaf)
    inputs: list[Piece] = []
    for leaf in leaves:
        if isinstance(leaf, Reg):
            if leaf.reg >= len(REGISTER_NAMES):
                return Unavailable(
                    f"it is computed from DWARF register {leaf.reg}, which a uprobe cannot read"
                )
            inputs.append(Piece(leaf.reg, 0, 8, memory=False))
        else:
            assert isinstance(leaf, Mem)
            base, offset = _split(leaf.address)
            if not isinstance(base, Reg) or base.reg >= len(REGISTER_NAMES):
                return Unavailable(
                    f"it is computed from memory at {_describe(leaf.address)}, an address "
                    "a probe cannot follow"
                )
            inputs.append(Piece(base.reg, offset, leaf.size, memory=True))
    return Computed(tuple(inputs), tuple(terms))


def _as_term(segment: _Segment, size: int) -> Term | Unavailable:
    """One part of a computed value as a term: what it reads, or the value it computes."""
    if segment.register is not None:
        if size > MAX_PIECE:
            return Unavailable(f"{size} bytes cannot live in one register")
        return Reg(segment.register)
    if segment.implicit is not None:
        return Const(int.from_bytes(segment.implicit[:size].ljust(size, b"\0"), "little"))
    top = segment.top
    assert top is not None
    if segment.value or isinstance(top, Const):
        return top
    if size > MAX_PIECE:
        return Unavailable("a part of a computed value is more than one word of memory")
    return Mem(top, size)


def _leaves_of(term: Term) -> list[Term]:
    """The words a term reads: registers, and memory at a register plus an offset (whose
    address is computed by the probe, not here)."""
    if isinstance(term, Reg):
        return [term]
    if isinstance(term, Mem):
        return [term]
    if isinstance(term, Apply):
        return [leaf for arg in term.args for leaf in _leaves_of(arg)]
    return []


def _value_of(term: Term, values: dict[Term, int]) -> int | None:
    if isinstance(term, Const):
        return term.value
    if isinstance(term, (Reg, Mem)):
        raw = values[term]
        return raw & ((1 << (8 * term.size)) - 1) if isinstance(term, Mem) else raw
    args = [_value_of(arg, values) for arg in term.args]
    if any(a is None for a in args):
        return None
    return _compute_op(term.op, [a for a in args if a is not None], term.param)


def _describe(term: Term) -> str:
    if isinstance(term, Const):
        value = _signed(term.value)
        return str(value) if -4096 < value < 4096 else hex(term.value)
    if isinstance(term, Reg):
        return REGISTER_NAMES[term.reg] if term.reg < len(REGISTER_NAMES) else f"reg{term.reg}"
    if isinstance(term, Mem):
        return f"[{_describe(term.address)}]" + ("" if term.size == 8 else f":{term.size}")
    if term.op == "convert" and term.param is not None:
        bits, signed = term.param
        return f"{'i' if signed else 'u'}{bits}({_describe(term.args[0])})"
    if term.op in _UNARY:
        symbol = {"DW_OP_abs": "abs", "DW_OP_neg": "-", "DW_OP_not": "~"}[term.op]
        return f"{symbol}({_describe(term.args[0])})"
    a, b = term.args
    return f"({_describe(a)} {_SYMBOLS[term.op]} {_describe(b)})"


def _masked(value: int, size: int) -> bytes:
    return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def _literal_bytes(value: int, size: int, masked: bool = False) -> bytes | Unavailable:
    if masked:  # a constant piece: its low bytes
        return _masked(value, size)
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


def _padding_piece(size: int) -> Piece:
    """Padding bytes: no field reads them, so they are given as zeros."""
    return Piece(CONSTANT_REG, 0, size, False, b"\0" * size)
