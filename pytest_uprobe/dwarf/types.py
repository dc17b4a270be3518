"""Rust types as DWARF describes them, and how to turn raw little-endian bytes into values.

`type_of` reads a type DIE into a `RustType` tree: scalars, structs, tuples, arrays, enums
(rustc's DW_TAG_variant_part with its discriminant member and DW_AT_discr_value per
variant; the variant without a value is the one that holds the niche), C-like enums,
references and Box (`pointer`), and the fat or owning pointers that need memory copied
from behind them: `&str`, `String`, `&[T]` and `Vec<T>`. What sits behind a pointer (a
pointer's target, a slice's or Vec's element) is read on first use, so a type that reaches
itself through pointers (`struct Ast { children: Vec<Ast> }`) stays finite; reading always
terminates (see `type_of`), and every attribute form DWARF 4 and 5 allow for a constant is
read (`_constant`). Decoding the parts behind pointers is `values.decode_value`'s job; this
module decodes the scalars.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from elftools.dwarf.die import DIE
from elftools.dwarf.dwarf_expr import DWARFExprParser

from ..elf import dwarf_memo
from ..values import Unavailable

# DW_ATE_* encodings of DW_TAG_base_type
_ATE_BOOLEAN = 0x02
_ATE_FLOAT = 0x04
_ATE_SIGNED = 0x05
_ATE_SIGNED_CHAR = 0x06
_ATE_UNSIGNED = 0x07
_ATE_UNSIGNED_CHAR = 0x08
_ATE_UTF = 0x10

SCALARS = frozenset({"int", "bool", "char", "float", "address"})
# Kinds that hold a pointer to follow, at `fields` "ptr" (and "len" for the counted ones).
POINTERS = frozenset(
    {"pointer", "str", "string", "slice", "vec", "deque", "table", "btree", "trait_object"}
)


@dataclass(frozen=True, eq=False)
class Field:
    name: str
    offset: int
    type: RustType


@dataclass(frozen=True, eq=False)
class EnumVariant:
    """One variant of a Rust enum. `discr` None: the variant that holds every other value."""

    name: str
    discr: int | None
    fields: tuple[Field, ...]  # offsets from the start of the enum
    tuple_like: bool


@dataclass(frozen=True, eq=False)
class RustType:
    """A decodable type. `kind` is one of: int, bool, char, float, address (a raw pointer,
    shown as its address), unit, struct, tuple, array, enum, c_enum, pointer (&T, &mut T,
    Box<T>, Rc<T>, Arc<T>: the target's value), str (&str, and the other byte strings
    behind a fat pointer: &OsStr, &Path, &CStr, CString), string (String, OsString,
    PathBuf), slice (&[T]), vec (Vec<T>), deque (VecDeque<T>: ptr, cap, head, len), table
    (hashbrown's RawTable<T>: ctrl, bucket_mask, items), btree (BTreeMap's root: node,
    height, length), unsupported, trait_object. `std` names the std type a value stands
    for, which stdtypes turns into what a Rust programmer means by it."""

    name: str
    kind: str
    size: int
    signed: bool = False
    fields: tuple[Field, ...] = ()
    item: RustType | None = None  # array (and a slice or Vec whose element is known outright)
    count: int = 0  # array length
    variants: tuple[EnumVariant, ...] = ()
    discr: Field | None = None  # enum: where the discriminant lives
    enumerators: tuple[tuple[str, int], ...] = ()  # c_enum
    tuple_like: bool = False  # struct: a tuple struct (fields 0, 1, ...)
    target_die: Any = field(default=None, repr=False)  # pointer: the pointee's DIE
    element_die: Any = field(default=None, repr=False)  # slice, vec, string: the element's DIE
    why: str = ""  # unsupported: the reason
    align: int = 0  # struct, tuple: DW_AT_alignment where DWARF gives it (packed: 1)
    std: str = ""  # a std type shown as what it means (stdtypes.STD_KINDS), else ""
    node: BTreeNode | None = None  # btree: the layout of its nodes
    data_at: int = 0  # str, slice: the bytes from the pointer to the data (Rc<str>'s counts)
    # trait_object: the type that holds the trait object as its unsized tail (Rc<dyn T>'s
    # RcInner<dyn T>, after the counts); None where the pointer points at the value itself
    holder_die: Any = field(default=None, repr=False)

    @property
    def target(self) -> RustType:
        """A pointer's target type, read on first use (recursive types stay finite)."""
        cached = self.__dict__.get("_target")
        if cached is None:
            cached = type_of(self.target_die) if self.target_die is not None else UNIT
            object.__setattr__(self, "_target", cached)
        return cached

    @property
    def implementations(self) -> tuple[Implementation, ...]:
        """A trait object's candidates: every vtable of its trait DWARF describes."""
        cached = self.__dict__.get("_implementations")
        if cached is None:
            trait = _trait_of(self.name)
            cached = (
                ()
                if trait is None or self.target_die is None
                else (_vtables(self.target_die.cu.dwarfinfo, trait))
            )
            object.__setattr__(self, "_implementations", cached)
        return cached

    @property
    def tail(self) -> tuple[TailLevel, ...] | None:
        """A holder trait object's way from its holder to the `dyn` value (see
        TailLevel), read on first use; None where it is not recognised."""
        if "_tail" not in self.__dict__:
            found = None if self.holder_die is None else _unsized_tail(self.holder_die)
            object.__setattr__(self, "_tail", found)
        tail: tuple[TailLevel, ...] | None = self.__dict__["_tail"]
        return tail

    @property
    def element(self) -> RustType | None:
        """The element type of an array, slice, Vec or String; behind a pointer, it is read
        on first use, like `target`."""
        if self.item is not None or self.element_die is None:
            return self.item
        cached = self.__dict__.get("_element")
        if cached is None:
            cached = type_of(self.element_die)
            object.__setattr__(self, "_element", cached)
        return cached

    def part(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    @property
    def float_return(self) -> bool:
        """Returned in xmm0 (a float, or a struct around exactly one float)."""
        if self.kind == "float":
            return True
        sized = [f for f in self.fields if f.type.size]
        return (
            self.kind in ("struct", "tuple")
            and len(sized) == 1
            and (sized[0].type.size == self.size and sized[0].type.float_return)
        )

    def scalars(self, newtypes: bool = True) -> list[tuple[int, RustType]] | None:
        """rustc's Scalar or ScalarPair ABI: the one or two scalars (offset, type) the value
        travels as, in registers of their own; None for an aggregate (its bytes travel
        packed into integer registers, or in memory). Follows rustc's layout rules: newtypes
        unwrap, two non-zero-sized scalar fields make a pair only where their offsets, the
        alignment and the size are those of the pair itself (never in a packed struct), and
        a tagged enum is a pair when every variant holds at most one scalar, all at one
        offset, of one size and class (integers of either sign and pointers mix)."""
        kind = self.kind
        if kind in SCALARS or kind == "c_enum" or kind == "pointer":
            return [(0, self)]
        if kind == "trait_object":  # two pointers, each in a register of its own
            return [(f.offset, f.type) for f in self.fields]
        if kind in ("str", "slice"):
            return _abi_shape([(f.offset, f.type) for f in self.fields], self.size)
        if kind in ("struct", "tuple"):
            sized = [f for f in self.fields if f.type.size]
            if (
                not newtypes
                and kind == "struct"
                and len(sized) == 1
                and (self.std not in _NOT_C_TAGS)
            ):
                inner = sized[0].type.scalars(newtypes)
                if inner is not None and len(inner) == 1:
                    return None  # as #[repr(C)] makes it (DWARF does not record repr)
            found = _flat_scalars(self.fields, newtypes)
            if found and self.align and self.align < max(_scalar_align(t) for _, t in found):
                return None  # packed: rustc passes it as memory, never as scalars
            return _abi_shape(found, self.size)
        if kind == "enum" and self.discr is None and len(self.variants) == 1:
            # One variant, no tag: laid out as a struct of its fields.
            return _abi_shape(_flat_scalars(self.variants[0].fields, newtypes), self.size)
        if kind == "enum" and self.discr is not None and not is_coroutine(self.name):
            tag = (self.discr.offset, self.discr.type)
            if any(v.discr is None for v in self.variants):  # niche: the dataful variant's
                dataful = [v for v in self.variants if any(f.type.size for f in v.fields)]
                if len(dataful) != 1:
                    return None
                return _abi_shape(_flat_scalars(dataful[0].fields, newtypes), self.size)
            common: tuple[int, int, bool] | None = None
            payload: tuple[int, RustType] | None = None
            for variant in self.variants:
                sized = [f for f in variant.fields if f.type.size]
                if not sized:
                    continue
                if len(sized) > 1:
                    return None
                inner = sized[0].type.scalars(newtypes)
                if inner is None or len(inner) != 1:
                    return None
                t = inner[0][1]
                key = (sized[0].offset + inner[0][0], t.size, t.kind == "float")
                if common is not None and key != common:
                    return None
                common, payload = key, (key[0], t)
            if payload is None:
                return _abi_shape([tag], self.size)
            return _abi_shape(sorted([tag, payload], key=lambda p: p[0]), self.size)
        return None

    def decode(self, raw: bytes) -> Any:
        """The value of a scalar (or unit) from its bytes; see values.decode_value for all."""
        if self.kind == "unit":
            return None
        if self.kind in ("unsupported", "trait_object"):
            return Unavailable(self.why or f"values of type {self.name} are not decoded yet")
        raw = raw[: self.size]
        if len(raw) < self.size:
            return Unavailable(f"only {len(raw)} of the {self.size} bytes of {self.name} were read")
        if self.kind in ("int", "address"):
            return int.from_bytes(raw, "little", signed=self.signed)
        if self.kind == "bool":
            return raw[0] != 0
        if self.kind == "char":
            code = int.from_bytes(raw, "little")
            return chr(code) if code <= 0x10FFFF else Unavailable(f"invalid char {code:#x}")
        if self.kind == "float":
            return struct.unpack("<d" if self.size == 8 else "<f", raw)[0]
        raise AssertionError(self.kind)


def is_coroutine(name: str) -> bool:
    """The state of an async fn, async block or coroutine (`{async_fn_env#0}`): rustc lays
    it out in memory whatever its size (never a Scalar or ScalarPair)."""
    return name.startswith("{") and "_env#" in name and not name.startswith("{closure_env#")


def _flat_scalars(
    fields: tuple[Field, ...], newtypes: bool = True
) -> list[tuple[int, RustType]] | None:
    found: list[tuple[int, RustType]] = []
    for f in fields:
        if f.type.size == 0:
            continue
        inner = f.type.scalars(newtypes)
        if inner is None:
            return None
        found.extend((f.offset + offset, t) for offset, t in inner)
        if len(found) > 2:
            return None
    return sorted(found, key=lambda p: p[0])


def _scalar_align(scalar: RustType) -> int:
    return min(scalar.size, 16) if scalar.kind not in ("pointer", "address") else 8


def _abi_shape(
    found: list[tuple[int, RustType]] | None, size: int
) -> list[tuple[int, RustType]] | None:
    """`found` if rustc gives a value of `size` bytes made of these scalars the Scalar or
    ScalarPair ABI: a scalar fills the value; a pair sits where a pair of them would."""
    if not found:
        return None
    if len(found) == 1:
        ((offset, only),) = found
        return found if offset == 0 and only.size == size else None
    if len(found) != 2:
        return None
    (a_off, a), (b_off, b) = found
    a_align, b_align = _scalar_align(a), _scalar_align(b)
    b_at = -(-a.size // b_align) * b_align
    align = max(a_align, b_align)
    whole = -(-(b_at + b.size) // align) * align
    return found if a_off == 0 and b_off == b_at and size == whole else None


UNIT = RustType("()", "unit", 0)
USIZE = RustType("usize", "int", 8)
# Types read inline (fields, variants, array elements) nest at most this deep; real types
# stay far below it (fd and ripgrep: 30), and it keeps reading far from Python's recursion
# limit, which each level uses about five frames of.
MAX_NESTING = 96
_reading: dict[tuple[int, int], None] = {}  # the types being read, outermost first


def type_of(die: Any) -> RustType:
    """The RustType of a type DIE (None means no DW_AT_type: the unit type).

    Always terminates: what sits behind a pointer is read on first use, and a type that
    would contain itself inline (only malformed DWARF can say so) or nests deeper than
    MAX_NESTING reads as an unsupported type saying so. An unexpected exception leaves with
    `dwarf_die` set to the offset of the innermost DIE being read, for the error message."""
    if die is None:
        return UNIT
    key = (id(die.cu.dwarfinfo), die.offset)
    read = dwarf_memo(die.cu.dwarfinfo, "types")  # by DIE offset
    known = read.get(die.offset)
    if known is not None:
        return known
    if key in _reading or len(_reading) >= MAX_NESTING:
        name = _name(die)
        why = (
            f"the type {name or '?'} (DWARF DIE {die.offset:#x}) contains itself"
            if key in _reading
            else f"types nested more than {MAX_NESTING} deep are not decoded"
        )
        return _unsupported(name, _size_or_zero(die), why)  # not cached: depends on the path
    _reading[key] = None
    try:
        known = _read(die)
    except _Unreadable as unreadable:
        known = _unsupported(_name(die), _size_or_zero(die), str(unreadable))
    except Exception as exc:
        if not hasattr(exc, "dwarf_die"):
            exc.dwarf_die = die.offset  # type: ignore[attr-defined]
        raise
    finally:
        del _reading[key]
    read[die.offset] = known
    return known


class _Unreadable(Exception):
    """A type DWARF describes in a way this reader does not decode (the reason)."""


def _read(die: Any) -> RustType:
    name = _name(die)
    tag = die.tag
    if tag in ("DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type"):
        return type_of(_type_die(die))
    size = _size(die)
    if tag == "DW_TAG_base_type" and size == 0:
        return UNIT  # rustc describes () as a zero-sized base type
    if tag == "DW_TAG_base_type":
        encoding = _constant(die.attributes.get("DW_AT_encoding"))
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
        return _unsupported(name, size)
    if tag == "DW_TAG_pointer_type" or tag in ("DW_TAG_reference_type",):
        target = _type_die(die)
        size = size or 8
        if name.startswith(("*const ", "*mut ")) or target is None or not name:
            return RustType(name or "*const ?", "address", size, target_die=target)
        if name.startswith(("&dyn ", "&mut dyn ")):
            return _unsupported(name, size, "trait objects are not decoded")
        return RustType(name, "pointer", size, target_die=target)
    if tag == "DW_TAG_array_type":
        return _array(die, name)
    if tag == "DW_TAG_enumeration_type":
        under = type_of(_type_die(die)) if _type_die(die) is not None else USIZE
        values = tuple(
            (_name(c), _signed(_required(c, "DW_AT_const_value"), size, under.signed))
            for c in die.iter_children()
            if c.tag == "DW_TAG_enumerator"
        )
        return RustType(name, "c_enum", size, signed=under.signed, enumerators=values)
    if tag == "DW_TAG_structure_type":
        return _structure(die, name, size)
    if tag == "DW_TAG_union_type":
        return _unsupported(name, size, "unions are not decoded (which field is live is unknown)")
    return _unsupported(name, size)


def _unsupported(name: str, size: int, why: str = "") -> RustType:
    return RustType(name, "unsupported", size, why=why or f"values of type {name} are not decoded")


def _structure(die: Any, name: str, size: int) -> RustType:
    if name == "()":
        return UNIT
    children = list(die.iter_children())
    part = next((c for c in children if c.tag == "DW_TAG_variant_part"), None)
    if part is not None:
        made = _enum(die, name, size, part)
        if name.startswith("Cow<") and _qualified(die, "Cow") == "alloc::borrow::Cow":
            made = replace(made, std="cow")  # the value it holds, borrowed or owned
        return made
    fields = tuple(_members(children))
    names = [f.name for f in fields]
    std = _std_type(die, name, size, names, fields, children)
    if std is not None:
        return std
    if names == ["pointer", "vtable"]:  # `&dyn Trait`, `Box<dyn Trait>`: a fat pointer
        trait = _trait_of(name)
        why = f"no implementation of {trait or 'the trait'} has a vtable in DWARF"
        parts = (Field("ptr", fields[0].offset, fields[0].type),
                 Field("vtable", fields[1].offset, fields[1].type))  # fmt: skip
        holder = None
        if not _points_at_dyn(name):  # `Rc<dyn T>`'s RcInner: the value after the counts
            holder = _type_die(_type_die(_member_die(children, "pointer")))
            if holder is None:
                return _unsupported(name, size, "the type a trait object's pointer points "
                                    "to is not in DWARF")  # fmt: skip
        return RustType(name, "trait_object", size, fields=parts, why=why, target_die=die,
                        holder_die=holder)  # fmt: skip
    if name in ("&str", "&mut str") and names == ["data_ptr", "length"]:
        return RustType(name, "str", size, fields=_fat(fields))
    if name.startswith(("&[", "&mut [")) and names == ["data_ptr", "length"]:
        data_ptr = type_of(_type_die(_member_die(children, "data_ptr")))
        element = data_ptr.target_die
        unknown = _unsupported("?", 0) if element is None else None
        return RustType(name, "slice", size, fields=_fat(fields), item=unknown, element_die=element)
    if name == "String" and names == ["vec"]:
        vec = fields[0].type
        if vec.kind == "vec":
            shifted = tuple(Field(f.name, fields[0].offset + f.offset, f.type) for f in vec.fields)
            return RustType(
                name, "string", size, fields=shifted, item=vec.item, element_die=vec.element_die
            )
    if name.startswith("Vec<") and {"buf", "len"} <= set(names):
        item = _template_param(children, "T")
        pointer = _first_pointer(die.cu, _member_die(children, "buf"), 0)
        if item is not None and pointer is not None:
            length = next(f for f in fields if f.name == "len")
            ptr = Field("ptr", pointer, RustType("*const T", "address", 8))
            return RustType(name, "vec", size, fields=(ptr, length), element_die=item)
    given = die.attributes.get("DW_AT_alignment")
    align = int(given.value) if given is not None and isinstance(given.value, int) else 0
    if name.startswith("(") and all(n == f"__{i}" for i, n in enumerate(names)):
        return RustType(name, "tuple", size, fields=tuple(_renamed(fields)), align=align)
    if names and all(n == f"__{i}" for i, n in enumerate(names)):
        return RustType(
            name, "struct", size, fields=tuple(_renamed(fields)), tuple_like=True, align=align
        )
    return RustType(name, "struct", size, fields=fields, align=align)


# Fat pointers to bytes that std shows as text: the `std` tag says how (stdtypes).
_BYTE_POINTERS = {
    "std::path::Path": "path",
    "std::ffi::os_str::OsStr": "os",
    "core::ffi::c_str::CStr": "cstr",
}
# Structs that std shows as what they hold, by their path without generic arguments.
_WRAPPERS = {
    "core::cell::Cell": "cell",
    "core::cell::RefCell": "refcell",
    "core::cell::UnsafeCell": "unsafecell",
    "core::num::nonzero::NonZero": "nonzero",
    "core::time::Duration": "duration",
    "std::collections::hash::map::HashMap": "hashmap",
    "std::collections::hash::set::HashSet": "hashset",
    "alloc::collections::btree::set::BTreeSet": "btreeset",
}
_BTREE_CAPACITY = 11  # keys per node (B = 6): alloc::collections::btree::node::CAPACITY


@dataclass(frozen=True, eq=False)
class BTreeNode:
    """The layout of one BTreeMap's nodes: a LeafNode (`leaf_size` bytes: `len` at
    `len_at`, keys at `keys_at`, values at `vals_at`) and, in an internal node, the child
    pointers at `edges_at` after it."""

    leaf_size: int
    len_at: int
    keys_at: int
    vals_at: int
    edges_at: int
    key: RustType
    value: RustType
    capacity: int = _BTREE_CAPACITY


def _std_type(
    die: Any,
    name: str,
    size: int,
    names: list[str],
    fields: tuple[Field, ...],
    children: list[Any],
) -> RustType | None:
    """A std type shown as what it means (see stdtypes), or None for any other struct.
    Only types in std's own modules qualify: a user's `Duration` stays a struct."""
    if names == ["data_ptr", "length"]:
        bare = name.removeprefix("&mut ").removeprefix("&")
        if bare in _BYTE_POINTERS and name != bare:
            return RustType(name, "str", size, fields=_fat(fields), std=_BYTE_POINTERS[bare])
        owned = name.removeprefix("alloc::boxed::Box<").rsplit(",", 1)[0]
        if name.startswith("alloc::boxed::Box<") and (owned == "str" or owned in _BYTE_POINTERS):
            # Box<str>, Box<Path>, Box<OsStr>, Box<CStr>: the bytes they own
            return RustType(name, "str", size, fields=_fat(fields),
                            std=_BYTE_POINTERS.get(owned, ""))  # fmt: skip
        if name.startswith("alloc::boxed::Box<["):  # Box<[T]>: a slice it owns
            data_ptr = type_of(_type_die(_member_die(children, "data_ptr")))
            if data_ptr.target_die is not None:
                return RustType(name, "slice", size, fields=_fat(fields),
                                element_die=data_ptr.target_die)  # fmt: skip
        return None
    short = name.split("<", 1)[0]
    if short not in _STD_SHORT_NAMES and not short.endswith("Inner"):
        return None
    path = _qualified(die, short)
    if path in _NOT_REPR_C or path.startswith("core::num::niche_types::"):
        # known to be no #[repr(C)] struct: passed as its field
        return RustType(name, "struct", size, fields=tuple(_renamed(fields)), std="newtype",
                        tuple_like=True)  # fmt: skip
    if path in _WRAPPERS:
        return RustType(name, "struct", size, fields=fields, std=_WRAPPERS[path],
                        tuple_like=bool(names) and names[0] == "__0")  # fmt: skip
    if path in ("std::ffi::os_str::OsString", "std::path::PathBuf") and names == ["inner"]:
        inner = fields[0].type
        if inner.kind == "string" or (
            inner.kind == "struct" and len(inner.fields) == 1 and inner.fields[0].type.kind == "vec"
        ):
            vec = inner if inner.kind == "string" else inner.fields[0].type
            base = fields[0].offset + (0 if inner.kind == "string" else inner.fields[0].offset)
            shifted = tuple(Field(f.name, base + f.offset, f.type) for f in vec.fields)
            tag = "path" if short == "PathBuf" else "os"
            return RustType(name, "string", size, fields=shifted, std=tag,
                            element_die=vec.element_die, item=vec.item)  # fmt: skip
        return None
    if path == "alloc::ffi::c_str::CString" and names == ["inner"]:
        boxed = fields[0].type
        if boxed.kind == "slice":
            base = fields[0].offset
            shifted = tuple(Field(f.name, base + f.offset, f.type) for f in boxed.fields)
            return RustType(name, "str", size, fields=shifted, std="cstr")
        return None
    if path in ("alloc::rc::Rc", "alloc::sync::Arc") and size == 8 and "ptr" in names:
        inner = _pointer_target(_member_die(children, "ptr"))
        if inner is not None:
            return RustType(name, "pointer", 8, target_die=inner, std=short.lower())
        return None
    if path in ("alloc::rc::Rc", "alloc::sync::Arc") and size == 16 and "ptr" in names:
        return _shared_unsized(name, short, fields) or _shared_dyn(name, short.lower(), fields)
    if path in ("alloc::rc::Weak", "alloc::sync::Weak") and size == 8 and "ptr" in names:
        inner = _pointer_target(_member_die(children, "ptr"))
        if inner is not None:  # the value if alive (decode.py: not when dangling)
            return RustType(name, "pointer", 8, target_die=inner, std="weak")
        return None
    if path in ("alloc::rc::Weak", "alloc::sync::Weak") and size == 16 and "ptr" in names:
        return _shared_dyn(name, "weak", fields)
    if path == "core::pin::Pin" and len(fields) == 1:
        return RustType(name, "struct", size, fields=fields, std="pin")
    if path == "core::cell::once::OnceCell" and names == ["inner"]:
        return RustType(name, "struct", size, fields=fields, std="oncecell")
    if path.startswith("std::sync::") and short == "OnceLock" and {"once", "value"} <= set(names):
        return _once_lock(name, size, fields, children)
    if path.startswith("std::sync::") and short in ("Mutex", "RwLock") and "data" in names:
        return RustType(name, "struct", size, fields=fields, std=short.lower())
    if path == "alloc::collections::vec_deque::VecDeque" and {"head", "len", "buf"} <= set(names):
        return _deque(die, name, size, fields, children)
    if path == "hashbrown::raw::RawTable" and "table" in names:
        return _table(name, size, fields, children)
    if path == "alloc::collections::btree::map::BTreeMap" and {"root", "length"} <= set(names):
        return _btree(name, size, fields)
    return None


# One-field std structs that are no #[repr(C)] (so rustc passes them as their field),
# which DWARF cannot tell: Duration's nanoseconds.
_NOT_REPR_C = frozenset({"core::num::niche_types::Nanoseconds"})
# std tags of one-field structs that are #[repr(transparent)] or plain Rust (never C)
_NOT_C_TAGS = frozenset({"newtype", "nonzero", "cell", "unsafecell", "pin"})
_STD_SHORT_NAMES = frozenset(
    {p.rsplit("::", 1)[1] for p in (*_WRAPPERS, *_NOT_REPR_C)}
    | {"OsString", "PathBuf", "CString", "Rc", "Arc", "Mutex", "RwLock", "VecDeque",
       "RawTable", "BTreeMap", "Weak", "Pin", "OnceCell", "OnceLock"}
)  # fmt: skip


def _shared_unsized(name: str, short: str, fields: tuple[Field, ...]) -> RustType | None:
    """Rc<str>, Arc<str>, Rc<[T]>, Arc<[T]>: a fat pointer to the RcInner/ArcInner
    (strong, weak, then the data at `data_at`), read as the str or slice it holds."""
    whole = RustType(name, "struct", 16, fields=fields)
    data_ptr, length = _find(whole, "data_ptr"), _find(whole, "length")
    if data_ptr is None or length is None or data_ptr.type.target_die is None:
        return None
    inner = data_ptr.type.target_die
    members = [c for c in inner.iter_children() if c.tag == "DW_TAG_member"]
    value = next((c for c in members if _name(c) in ("value", "data")), None)  # Rc's, Arc's
    if value is None or _type_die(value) is None:
        return None
    parts = (Field("ptr", data_ptr.offset, data_ptr.type), Field("len", length.offset, length.type))
    text = name.startswith(f"{short}<str")
    return RustType(name, "str" if text else "slice", 16, fields=parts,
                    element_die=None if text else _type_die(value),
                    std=f"{short.lower()}dst", data_at=_offset(value))  # fmt: skip


def _shared_dyn(name: str, std: str, fields: tuple[Field, ...]) -> RustType | None:
    """Rc<dyn T>, Arc<dyn T>, Weak<dyn T> (and Rc<RefCell<dyn T>>, ...): the fat pointer to
    the RcInner/ArcInner that holds the trait object after the counts, read as a trait
    object whose holder is that inner type (decode.py finds the value in it)."""
    pointer = _find(RustType(name, "struct", 16, fields=fields), "pointer")
    if pointer is None or pointer.type.kind != "trait_object" or pointer.type.holder_die is None:
        return None
    shifted = tuple(Field(f.name, pointer.offset + f.offset, f.type) for f in pointer.type.fields)
    return replace(pointer.type, name=name, fields=shifted, std=std)


def _once_lock(name: str, size: int, fields: tuple[Field, ...], children: list[Any]) -> Any:
    """OnceLock<T>: its Once's state word, and the T in its MaybeUninit (set when the
    state says complete)."""
    item = _template_param(children, "T")
    once = next(f for f in fields if f.name == "once")
    state = _find(once.type, "state_and_queued", once.offset)
    value = next(f for f in fields if f.name == "value")
    if item is None or state is None:
        return None
    parts = (state, Field("value", value.offset, type_of(item)))
    return RustType(name, "struct", size, fields=parts, std="oncelock")


def _qualified(die: Any, short: str) -> str:
    """`short` with the namespaces around `die` (`core::time::Duration`)."""
    parts = [short]
    parent = die.get_parent()
    while parent is not None and parent.tag == "DW_TAG_namespace":
        parts.append(_name(parent))
        parent = parent.get_parent()
    return "::".join(reversed(parts))


def _pointer_target(member: Any, depth: int = 0) -> Any:
    """The DIE a pointer-like member (NonNull<T>, Unique<T>, *const T) points to."""
    target = _type_die(member)
    while depth < 8 and target is not None:
        if target.tag in ("DW_TAG_pointer_type", "DW_TAG_reference_type"):
            return _type_die(target)
        if target.tag != "DW_TAG_structure_type":
            return None
        members = [c for c in target.iter_children() if c.tag == "DW_TAG_member"]
        if len(members) != 1 and not any(_name(c) == "pointer" for c in members):
            return None
        inner = next((c for c in members if _name(c) == "pointer"), members[0])
        target = _type_die(inner)
        depth += 1
    return None


def _find(rust_type: RustType, name: str, base: int = 0, depth: int = 0) -> Field | None:
    """The first field called `name` inside `rust_type` (depth first), at its offset."""
    for f in rust_type.fields:
        if f.name == name:
            return Field(name, base + f.offset, f.type)
    if depth >= 6:
        return None
    for f in rust_type.fields:
        if f.type.kind in ("struct", "tuple"):
            found = _find(f.type, name, base + f.offset, depth + 1)
            if found is not None:
                return found
    return None


_WORD = RustType("usize", "int", 8)


def _deque(die: Any, name: str, size: int, fields: tuple[Field, ...], children: list[Any]) -> Any:
    item = _template_param(children, "T")
    buf = next(f for f in fields if f.name == "buf")
    pointer = _first_pointer(die.cu, _member_die(children, "buf"), 0)
    cap = _find(buf.type, "cap", buf.offset)
    if item is None or pointer is None or cap is None or cap.type.size != 8:
        return None
    head = next(f for f in fields if f.name == "head")
    length = next(f for f in fields if f.name == "len")
    parts = (
        Field("ptr", pointer, RustType("*const T", "address", 8)),
        Field("cap", cap.offset, _WORD),
        Field("head", head.offset, _WORD),
        Field("len", length.offset, _WORD),
    )
    return RustType(name, "deque", size, fields=parts, element_die=item, std="vecdeque")


def _table(name: str, size: int, fields: tuple[Field, ...], children: list[Any]) -> Any:
    item = _template_param(children, "T")
    table = next(f for f in fields if f.name == "table")
    found = [_find(table.type, part, table.offset) for part in ("ctrl", "bucket_mask", "items")]
    if item is None or any(f is None for f in found):
        return None
    ctrl, mask, items = found
    assert ctrl is not None and mask is not None and items is not None
    ptr = _find(ctrl.type, "pointer", ctrl.offset) if ctrl.type.kind == "struct" else ctrl
    if ptr is None:
        return None
    parts = (
        Field("ptr", ptr.offset, RustType("*const u8", "address", 8)),
        Field("len", mask.offset, _WORD),  # bucket_mask: the buckets, less one
        Field("items", items.offset, _WORD),
    )
    return RustType(name, "table", size, fields=parts, element_die=item)


def _btree(name: str, size: int, fields: tuple[Field, ...]) -> Any:
    root = next(f for f in fields if f.name == "root")
    length = next(f for f in fields if f.name == "length")
    some = next((v for v in root.type.variants if v.name == "Some"), None)
    if root.type.kind != "enum" or some is None or len(some.fields) != 1:
        return None
    node_ref = some.fields[0]
    height = _find(node_ref.type, "height", root.offset + node_ref.offset)
    node = _find(node_ref.type, "node", root.offset + node_ref.offset)
    if height is None or node is None or node.type.kind != "struct":
        return None
    pointer = _find(node.type, "pointer", node.offset)
    if pointer is None or pointer.type.target_die is None:
        return None
    leaf = type_of(pointer.type.target_die)
    parts = {f.name: f for f in leaf.fields}
    if not {"len", "keys", "vals", "parent"} <= set(parts):
        return None
    keys, vals = parts["keys"].type, parts["vals"].type
    if keys.kind != "array" or vals.kind != "array" or keys.count != _BTREE_CAPACITY:
        return None
    leaf_children = list(pointer.type.target_die.iter_children())
    key = _maybe_uninit(_type_die(_member_die(leaf_children, "keys")))
    value = _maybe_uninit(_type_die(_member_die(leaf_children, "vals")))
    if key is None or value is None:
        return None
    # InternalNode { data: LeafNode, edges: [BoxedNode; 12] }: edges follow the leaf part,
    # aligned to a pointer.
    edges_at = -(-leaf.size // 8) * 8
    layout = BTreeNode(leaf.size, parts["len"].offset, parts["keys"].offset,
                       parts["vals"].offset, edges_at, key, value)  # fmt: skip
    words = (
        Field("ptr", pointer.offset, RustType("*const LeafNode", "address", 8)),
        Field("height", height.offset, _WORD),
        Field("len", length.offset, _WORD),
    )
    return RustType(name, "btree", size, fields=words, node=layout, std="btreemap")


def _maybe_uninit(array: Any) -> RustType | None:
    """T of an array of MaybeUninit<T> (a union of `uninit: ()` and `value:
    ManuallyDrop<T>`, where ManuallyDrop<T> is a struct of one field `value`)."""
    union = _type_die(array) if array is not None and array.tag == "DW_TAG_array_type" else None
    if union is None or union.tag != "DW_TAG_union_type":
        return None
    members = [c for c in union.iter_children() if c.tag == "DW_TAG_member"]
    manually = next((c for c in members if _name(c) == "value"), None)
    if manually is None:
        return None
    wrapper = type_of(_type_die(manually))
    if wrapper.kind == "unit":
        return wrapper
    if wrapper.kind != "struct" or [f.name for f in wrapper.fields] != ["value"]:
        return None
    inner = wrapper.fields[0].type
    if inner.name.startswith("MaybeDangling<") and len(inner.fields) == 1:
        inner = inner.fields[0].type  # ManuallyDrop<T> { value: MaybeDangling<T>(T) }
    return inner


@dataclass(frozen=True, eq=False)
class Implementation:
    """One vtable of a trait: `<type as trait>::{vtable}` at file address `vtable`."""

    name: str
    vtable: int
    die: Any = field(repr=False)

    @property
    def type(self) -> RustType:
        return type_of(self.die)

    @property
    def align(self) -> int:
        """The concrete type's alignment: DW_AT_alignment, or a scalar's size; 0 if
        DWARF does not say."""
        given = _constant(self.die.attributes.get("DW_AT_alignment"))
        if given:
            return given
        concrete = self.type
        scalar = concrete.kind in SCALARS or concrete.kind == "pointer"
        return concrete.size if scalar and concrete.size in (1, 2, 4, 8, 16) else 0


class TailLevel(NamedTuple):
    """One type on the way from a trait object's holder to the `dyn` value, its unsized
    tail (RcInner<RefCell<dyn T>>: the RcInner, then the RefCell). `holder` holds the
    rest in its field `field`, which DWARF places at `offset` (where a value aligned to 1
    would sit); `align` is that field's type's alignment, the `dyn` aside (1 for the
    `dyn` itself)."""

    holder: RustType
    field: str
    offset: int
    align: int


def tail_offsets(levels: tuple[TailLevel, ...], align: int) -> list[int]:
    """Where each level's holder starts, and last where the `dyn` value starts, for a
    concrete type aligned to `align`: each unsized field sits at its offset rounded up
    to its alignment at run time (its own, or the value's where that is larger)."""
    at = [0]
    for level in levels:
        step = max(level.align, align, 1)
        at.append(at[-1] + -(-level.offset // step) * step)
    return at


_MAX_TAIL = 8  # types nested around a trait object (RcInner<Mutex<UnsafeCell<dyn T>>>: 3)


def _is_dyn(die: Any) -> bool:
    return die.tag == "DW_TAG_structure_type" and _name(die).lstrip("(").startswith("dyn ")


def _holds_dyn(die: Any, depth: int = 0) -> bool:
    """Whether the type `die` is a `dyn` value or a struct whose unsized tail is one."""
    if die is None or die.tag != "DW_TAG_structure_type" or depth > _MAX_TAIL:
        return False
    return _is_dyn(die) or any(
        _holds_dyn(_type_die(c), depth + 1) for c in die.iter_children()
        if c.tag == "DW_TAG_member"
    )  # fmt: skip


def _unsized_tail(die: Any) -> tuple[TailLevel, ...] | None:
    """The levels from the holder `die` (RcInner<dyn T>) down to its `dyn` value; None if
    the layout is not one of structs with DWARF alignments around the `dyn`."""
    levels: list[TailLevel] = []
    while len(levels) < _MAX_TAIL and die is not None and die.tag == "DW_TAG_structure_type":
        if _is_dyn(die):
            return tuple(levels) or None
        member = next((c for c in die.iter_children()
                       if c.tag == "DW_TAG_member" and _holds_dyn(_type_die(c))), None)  # fmt: skip
        if member is None:
            return None
        inner = _type_die(member)
        holder = type_of(die)
        at, inner_type = _offset(member), type_of(inner)
        tail = next((f for f in holder.fields if f.offset == at and f.type is inner_type), None)
        align = 1 if _is_dyn(inner) else _constant(inner.attributes.get("DW_AT_alignment"))
        if tail is None or not align or holder.kind not in ("struct", "tuple"):
            return None
        levels.append(TailLevel(holder, tail.name, tail.offset, align))
        die = inner
    return None


# What a fat pointer's name may wrap its `dyn` in and still point at the value itself.
_DYN_WRAPPERS = (
    "alloc::boxed::Box<",
    "core::ptr::non_null::NonNull<",
    "core::ptr::unique::Unique<",
)


def _points_at_dyn(name: str) -> bool:
    """Whether a fat pointer named `name` points at the trait object's value itself
    (`&dyn T`, `*const (dyn T + Send)`, `Box<dyn T, A>`), not at a type holding it
    (`NonNull<RcInner<dyn T>>`, whose value sits after the counts)."""
    for sigil in ("&mut ", "&", "*const ", "*mut "):
        if name.startswith(sigil):
            name = name[len(sigil) :]
            break
    for wrapper in _DYN_WRAPPERS:
        if name.startswith(wrapper):
            name = name[len(wrapper) :]
            break
    return name.lstrip("(").startswith("dyn ")


def _trait_of(name: str) -> str | None:
    """The trait of a trait object's type name (`&dyn a::T`, `Box<dyn a::T + Send, ..>`,
    `&(dyn a::T + Sync)`), without auto traits."""
    at = name.find("dyn ")
    if at < 0:
        return None
    depth = 0
    for end in range(at + 4, len(name)):
        c = name[end]
        if c == "<":
            depth += 1
        elif c == ">" and depth:
            depth -= 1
        elif depth == 0 and (c in ",)>" or name.startswith(" +", end)):
            return name[at + 4 : end]
    return name[at + 4 :]


def _vtables(dwarf: Any, trait: str) -> tuple[Implementation, ...]:
    """Every `<T as trait>::{vtable}` variable DWARF has, found fast: the names are looked up
    in .debug_str, then the DIEs that name them through DW_FORM_strp."""
    by_trait = dwarf.__dict__.setdefault("_pytest_uprobe_vtables", {})  # lives with its DWARF
    known = by_trait.get(trait)
    if known is not None:
        return known
    from .scan import section_bytes  # the raw bytes of a section, shared with the scanner

    strings = section_bytes(dwarf.debug_str_sec)
    info = section_bytes(dwarf.debug_info_sec)
    suffix = f" as {trait}>::{{vtable}}\0".encode()
    found: list[Implementation] = []
    seen: set[int] = set()
    at = strings.find(suffix)
    while at >= 0:
        start = strings.rfind(b"\0", 0, at) + 1
        found += _vtables_named(dwarf, info, start, seen)
        at = strings.find(suffix, at + 1)
    if strings.find(suffix) >= 0:  # the name exists: in a DWARF 5 unit, as a string index?
        found += _vtables_dwarf5(dwarf, suffix[:-1].decode(), seen)
    result = tuple(found)
    by_trait[trait] = result
    return result


def _vtables_dwarf5(dwarf: Any, suffix: str, seen: set[int]) -> list[Implementation]:
    """The vtables in DWARF 5 units (`-C dwarf-version=5`), whose names are string indexes
    (DW_FORM_strx), not .debug_str offsets: their variables, found by walking those units
    (a crate's own; std's units stay DWARF 4)."""
    found = []
    for cu in dwarf.iter_CUs():
        if cu["version"] < 5:
            continue
        for die in cu.iter_DIEs():
            if die.tag != "DW_TAG_variable" or die.offset in seen:
                continue
            name = die.attributes.get("DW_AT_name")
            if name is None or name.form == "DW_FORM_strp":
                continue  # a strp name was found by the scan of .debug_str
            if not _name(die).endswith(suffix):
                continue
            implementation = _vtable_of(die)
            if implementation is not None:
                seen.add(die.offset)
                found.append(implementation)
    return found


def _vtable_of(die: Any) -> Implementation | None:
    """The implementation a `<T as Trait>::{vtable}` variable describes: T from its type's
    DW_AT_containing_type, its address from DW_OP_addr (or DW_OP_addrx under DWARF 5)."""
    location = die.attributes.get("DW_AT_location")
    if location is None or location.form != "DW_FORM_exprloc" or "DW_AT_type" not in die.attributes:
        return None
    try:
        vtable_type = die.get_DIE_from_attribute("DW_AT_type")
        if not _name(vtable_type).endswith("::{vtable_type}"):
            return None
        concrete = vtable_type.get_DIE_from_attribute("DW_AT_containing_type")
    except Exception:  # no such attribute, or a reference pyelftools cannot follow
        return None
    ops = DWARFExprParser(die.cu.structs).parse_expr(location.value)
    if len(ops) != 1:
        return None
    if ops[0].op_name == "DW_OP_addr":
        address = ops[0].args[0]
    elif ops[0].op_name in ("DW_OP_addrx", "DW_OP_GNU_addr_index"):
        address = die.dwarfinfo.get_addr(die.cu, ops[0].args[0])
    else:
        return None
    return Implementation(_name(die).removesuffix("::{vtable}"), address, concrete)


def _vtables_named(dwarf: Any, info: bytes, string: int, seen: set[int]) -> list[Implementation]:
    pattern = string.to_bytes(4, "little")
    found = []
    at = info.find(pattern)
    while at >= 0:
        for back in (1, 2, 3):  # the abbreviation code before DW_AT_name, as a ULEB128
            offset = at - back
            if offset in seen:
                continue
            implementation = _vtable_at(dwarf, info, offset, back)
            if implementation is not None:
                seen.add(offset)
                found.append(implementation)
                break
        at = info.find(pattern, at + 1)
    return found


def _vtable_at(dwarf: Any, info: bytes, offset: int, back: int) -> Implementation | None:
    """The vtable variable whose DIE starts at `offset`, if one does: its abbreviation
    (the ULEB128 of `back` bytes there) must be a variable's whose first attribute is a
    DW_FORM_strp name, before pyelftools parses anything there."""
    code, shift, pos = 0, 0, offset
    while pos < offset + back:
        code |= (info[pos] & 0x7F) << shift
        shift += 7
        if not info[pos] & 0x80:
            break
        pos += 1
    if pos != offset + back - 1 or code == 0:
        return None
    try:
        cu = dwarf.get_CU_containing(offset)
        abbrev = cu.get_abbrev_table().get_abbrev(code)
    except Exception:  # no unit there, or no such abbreviation: not a DIE's start
        return None
    specs = list(abbrev.iter_attr_specs())
    if (
        abbrev["tag"] != "DW_TAG_variable"
        or not specs
        or tuple(specs[0][:2]) != ("DW_AT_name", "DW_FORM_strp")
    ):
        return None
    try:
        # Parsed apart from pyelftools' DIE cache: a false match must leave no DIE behind.
        die = DIE(cu, dwarf.debug_info_sec.stream, offset)
        if not _name(die).endswith("::{vtable}"):
            return None
        location = die.attributes.get("DW_AT_location")
        kind = die.attributes.get("DW_AT_type")
        if kind is None or kind.form not in ("DW_FORM_ref4", "DW_FORM_ref8"):
            return None
        at = cu.cu_offset + kind.value
        if not cu.cu_offset < at < cu.cu_offset + cu.size:
            return None
        vtable_type = DIE(cu, dwarf.debug_info_sec.stream, at)
        if vtable_type.tag != "DW_TAG_structure_type" or not _name(vtable_type).endswith(
            "::{vtable_type}"
        ):
            return None
        vtable_type = cu.get_DIE_from_refaddr(at)  # a real DIE: cached like any other
        concrete = (
            vtable_type.get_DIE_from_attribute("DW_AT_containing_type")
            if ("DW_AT_containing_type" in vtable_type.attributes)
            else None
        )
    except Exception:  # not a DIE's start after all: the bytes only looked like one
        return None
    if location is None or concrete is None or location.form != "DW_FORM_exprloc":
        return None
    ops = list(location.value)
    if len(ops) != 9 or ops[0] != 0x03:  # DW_OP_addr <8 bytes>
        return None
    name = _name(die).removesuffix("::{vtable}")
    return Implementation(name, int.from_bytes(bytes(ops[1:]), "little"), concrete)


def _fat(fields: tuple[Field, ...]) -> tuple[Field, ...]:
    ptr, length = fields
    return (Field("ptr", ptr.offset, ptr.type), Field("len", length.offset, length.type))


def _renamed(fields: tuple[Field, ...]) -> list[Field]:
    return [Field(f.name[2:], f.offset, f.type) for f in fields]


def _enum(die: Any, name: str, size: int, part: Any) -> RustType:
    discr: Field | None = None
    if "DW_AT_discr" in part.attributes:
        member = part.get_DIE_from_attribute("DW_AT_discr")
        discr = Field("<discriminant>", _offset(member), type_of(_type_die(member)))
    variants: list[EnumVariant] = []
    for child in part.iter_children():
        if child.tag != "DW_TAG_variant":
            continue
        if "DW_AT_discr_list" in child.attributes:
            return _unsupported(name, size, "enums with discriminant ranges are not decoded")
        value = child.attributes.get("DW_AT_discr_value")
        member = next((c for c in child.iter_children() if c.tag == "DW_TAG_member"), None)
        if member is None:
            continue
        base = _offset(member)
        payload = _type_die(member)
        inner = list(payload.iter_children()) if payload is not None else []
        fields = tuple(Field(f.name, base + f.offset, f.type) for f in _members(inner))
        tuple_like = bool(fields) and all(f.name == f"__{i}" for i, f in enumerate(fields))
        if tuple_like:
            fields = tuple(_renamed(fields))
        discr_value = _constant(value) if value is not None else None
        if value is not None and discr_value is None:
            raise _Unreadable(f"a discriminant of {name} is in the unexpected form {value.form}")
        label = _name(member)
        if label.isdigit() and payload is not None and is_coroutine(name):
            # A coroutine's states are members "0", "1", ... of types named for the state:
            # `...::{async_fn_env#0}::Unresumed`, `Returned`, `Panicked`, `Suspend0`.
            label = _name(payload).rsplit("::", 1)[-1] or label
        variants.append(EnumVariant(label, discr_value, fields, tuple_like))
    return RustType(name, "enum", size, variants=tuple(variants), discr=discr)


def _members(children: list[Any]) -> list[Field]:
    return [
        Field(_name(c), _offset(c), type_of(_type_die(c)))
        for c in children
        if c.tag == "DW_TAG_member" and "DW_AT_artificial" not in c.attributes
    ]


def _member_die(children: list[Any], name: str) -> Any:
    return next(c for c in children if c.tag == "DW_TAG_member" and _name(c) == name)


def _template_param(children: list[Any], name: str) -> Any:
    """The DIE of the type a template parameter stands for (read lazily by the caller)."""
    for child in children:
        if child.tag == "DW_TAG_template_type_param" and _name(child) == name:
            return _type_die(child)
    return None


def _first_pointer(cu: Any, member: Any, base: int, depth: int = 0) -> int | None:
    """The offset of the first pointer inside `member` (Vec's buf -> RawVec -> ... -> ptr)."""
    if depth > 8:
        return None
    target = _type_die(member)
    offset = base + _offset(member)
    if target is None:
        return None
    if target.tag == "DW_TAG_pointer_type":
        return offset
    if target.tag != "DW_TAG_structure_type":
        return None
    members = [c for c in target.iter_children() if c.tag == "DW_TAG_member"]
    for child in sorted(members, key=lambda c: 0 if _name(c) in ("ptr", "pointer", "inner") else 1):
        found = _first_pointer(cu, child, offset, depth + 1)
        if found is not None:
            return found
    return None


def _array(die: Any, name: str) -> RustType:
    element = type_of(_type_die(die))
    count = 0
    for child in die.iter_children():
        if child.tag != "DW_TAG_subrange_type":
            continue
        if "DW_AT_count" in child.attributes:
            count = _required(child, "DW_AT_count")
        elif "DW_AT_upper_bound" in child.attributes:
            lower = child.attributes.get("DW_AT_lower_bound")
            first = _required(child, "DW_AT_lower_bound") if lower is not None else 0
            count = _required(child, "DW_AT_upper_bound") - first + 1
        break
    label = name or f"[{element.name}; {count}]"
    return RustType(label, "array", element.size * count, item=element, count=count)


def _type_die(die: Any) -> Any:
    if die is None or "DW_AT_type" not in die.attributes:
        return None
    return die.get_DIE_from_attribute("DW_AT_type")


def _size(die: Any) -> int:
    return _required(die, "DW_AT_byte_size") if "DW_AT_byte_size" in die.attributes else 0


def _size_or_zero(die: Any) -> int:
    """The byte size when it is a constant, for messages about types that cannot be read."""
    size = _constant(die.attributes.get("DW_AT_byte_size"))
    return size if size is not None and size >= 0 else 0


def _offset(die: Any) -> int:
    """A member's offset: a constant, or (DWARF 2 style) an expression that adds one to
    the structure's address."""
    attr = die.attributes.get("DW_AT_data_member_location")
    if attr is None:
        return 0
    if attr.form in _BLOCK_FORMS or attr.form == "DW_FORM_exprloc":  # here, an expression
        ops = DWARFExprParser(die.cu.structs).parse_expr(list(attr.value))
        if len(ops) == 1 and ops[0].op_name in ("DW_OP_plus_uconst", "DW_OP_constu"):
            return int(ops[0].args[0])
    else:
        offset = _constant(attr)
        if offset is not None:
            return offset
    raise _Unreadable(
        f"the offset of member {_name(die) or '?'} (DWARF DIE {die.offset:#x}) is given in "
        f"the form {attr.form}, which is not decoded"
    )


def _name(die: Any) -> str:
    attr = die.attributes.get("DW_AT_name")
    if attr is None:
        return ""
    if isinstance(attr.value, bytes):
        return attr.value.decode("utf-8", "replace")
    return attr.value if isinstance(attr.value, str) else ""


# The forms of DWARF's constant class (DWARF 5, section 7.5.5); data16 and the blocks hold
# the number's little-endian bytes (rustc writes 128-bit discriminants so).
_INT_FORMS = frozenset(
    {
        "DW_FORM_data1", "DW_FORM_data2", "DW_FORM_data4", "DW_FORM_data8",
        "DW_FORM_sdata", "DW_FORM_udata", "DW_FORM_implicit_const",
    }
)  # fmt: skip
_BLOCK_FORMS = frozenset({"DW_FORM_block", "DW_FORM_block1", "DW_FORM_block2", "DW_FORM_block4"})


def _constant(attr: Any) -> int | None:
    """The integer an attribute of the constant class holds, in any form DWARF 4 or 5
    allows for one; None for another class (a reference, an expression, a string)."""
    if attr is None:
        return None
    value = attr.value
    if attr.form in _INT_FORMS and isinstance(value, int):
        return value
    blocks = attr.form == "DW_FORM_data16" or attr.form in _BLOCK_FORMS
    if blocks and isinstance(value, (bytes, list)) and len(value) <= 16:
        return int.from_bytes(bytes(value), "little")
    return None


def _required(die: Any, name: str) -> int:
    """An attribute that must be an integer constant for the type to be decoded."""
    attr = die.attributes[name]
    value = _constant(attr)
    if value is None:
        raise _Unreadable(
            f"{name} of DWARF DIE {die.offset:#x} is given in the form {attr.form}, which is "
            "not a constant (a length or size computed at run time is not decoded)"
        )
    return value


def _signed(value: int, size: int, signed: bool) -> int:
    """A constant read as unsigned bytes, as the signed type it belongs to sees it."""
    bits = 8 * size
    if signed and size and value >= 1 << (bits - 1) and value < 1 << bits:
        return value - (1 << bits)
    return value
