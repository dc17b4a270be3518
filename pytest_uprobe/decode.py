"""Values behind pointers: what the BPF program copies from memory for one site, and how the
copied bytes turn back into Python values.

An event carries an *area* of bytes: first one 8-byte word per piece (registers and stack
slots, `plan.Piece`), then, in a big event, data copied from behind pointers. A `Deref` tells
the BPF program to read a u64 address from the area (at `addr_at`), add `add`, and copy `size`
bytes from there into the area at `dst`; or, for a counted copy (a `&str`, a slice, a Vec),
`count * scale` bytes at most `size`, with the count read from the area at `len_at`. A copy
whose `guard_at` is set runs only when the u64 there is above `guard_min` (element i of a
collection is followed only when its length is more than i). The program runs the derefs in
order, so a later one can take its address from the bytes an earlier one copied: that is how
a `&[String]` reaches each string's bytes.

Paths name every place a pointer can be followed, so planning (which must cover every
variant and element) and decoding (which follows the one the value holds) meet:
`(i,)` is parameter i, `("return",)` the return value, then field names, variant names,
array indexes, `"*"` for "behind the pointer", then element indexes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Union

from .dwarf.types import POINTERS, SCALARS, RustType
from .values import BadUtf8, Struct, Truncated, Unavailable, Variant

MAX_PIECES = 16  # words one event carries; the BPF program is built for this many
WORDS = 8 * MAX_PIECES  # area bytes the pieces fill
AREA = 8192  # a big event's area: the words, then data copied from behind pointers
HALF = AREA // 2  # every copy starts below HALF and is at most HALF long (the verifier's bound)
MAX_DEREFS = 32  # copies per event (each one's failure is a bit of a u32)
MAX_DEPTH = 3  # pointers followed one behind another (&Vec<String>: three)
NO_SLOT = 0xFFFFFFFF

Path = tuple[Any, ...]
Segments = tuple[tuple[int, int], ...]  # (area offset, length) of a value's bytes, in order
CONSTANT_SEGMENT = -1  # a segment DWARF gives as a constant: no area word holds it


@dataclass(frozen=True)
class Deref:
    """One copy the BPF program makes (see the module docstring)."""

    addr_at: int
    add: int
    size: int
    dst: int
    len_at: int = NO_SLOT
    scale: int = 1
    guard_at: int = NO_SLOT
    guard_min: int = 0


@dataclass(frozen=True)
class Copy:
    """Where the decoder finds the bytes of one Deref: `index` is its bit in the event's
    `failed` mask (-1: nothing to copy, a zero-sized target)."""

    index: int
    dst: int
    size: int
    scale: int
    counted: bool


Planned = Union[Copy, Unavailable]
NOTHING = Copy(-1, WORDS, 0, 1, False)
U8 = RustType("u8", "int", 1)


class Layout:
    """The copies of one site, placed in order within the event's area."""

    def __init__(self, max_string: int, max_elements: int) -> None:
        self.max_string = max_string
        self.max_elements = max_elements
        self.derefs: list[Deref] = []
        self.copies: dict[Path, Planned] = {}
        self.next_dst = WORDS

    @property
    def used(self) -> int:
        """Bytes of the area this site's events use."""
        return self.next_dst if self.derefs else WORDS

    def add(
        self,
        path: Path,
        addr_at: int,
        add: int,
        size: int,
        *,
        len_at: int = NO_SLOT,
        scale: int = 1,
        guard: tuple[int, int] | None = None,
    ) -> Planned:
        counted = len_at != NO_SLOT
        room = min(HALF, AREA - self.next_dst) if self.next_dst < HALF else 0
        fits = min(size, room)
        if counted:
            fits -= fits % scale
        if len(self.derefs) >= MAX_DEREFS:
            planned: Planned = Unavailable(
                f"not copied: one event follows at most {MAX_DEREFS} pointers"
            )
        elif fits <= 0 or (not counted and fits < size):
            planned = Unavailable(
                f"not copied: {size} more bytes do not fit in the event's {AREA}-byte area"
                " (lower max_string or max_elements)"
            )
        else:
            guard_at, guard_min = guard if guard is not None else (NO_SLOT, 0)
            dst = self.next_dst
            self.derefs.append(Deref(addr_at, add, fits, dst, len_at, scale, guard_at, guard_min))
            self.next_dst = (dst + fits + 7) & ~7
            planned = Copy(len(self.derefs) - 1, dst, fits, scale, counted)
        self.copies[path] = planned
        return planned

    def follow(self, roots: list[tuple[RustType, Segments, Path]]) -> None:
        """Plan a copy for every pointer inside the roots, breadth first: the pointers of
        the values themselves get room before the pointers behind pointers."""
        queue: deque[tuple[RustType, Segments, Path, tuple[int, int] | None, int]] = deque(
            (t, segments, path, None, 0) for t, segments, path in roots
        )
        while queue:
            value, segments, path, guard, depth = queue.popleft()
            for pointer, offset, at in inline_pointers(value, 0, path, self.max_elements):
                behind = at + ("*",)
                if depth >= MAX_DEPTH:
                    self.copies[behind] = Unavailable(
                        f"not followed: behind more than {MAX_DEPTH} pointers"
                    )
                    continue
                ptr_offset = 0 if pointer.kind == "pointer" else pointer.part("ptr").offset
                addr_at = _area_offset(segments, offset + ptr_offset)
                if addr_at is None:
                    self.copies[behind] = Unavailable(
                        "the pointer is not in one register or stack slot (split across "
                        "registers, or a constant), so what it points to is not copied"
                    )
                    continue
                if pointer.kind == "pointer":
                    target = pointer.target
                    if target.size == 0 or target.kind == "unsupported":
                        self.copies[behind] = NOTHING
                        continue
                    planned = self.add(behind, addr_at, 0, target.size, guard=guard)
                    if isinstance(planned, Copy) and has_pointers(target):
                        queue.append(
                            (target, ((planned.dst, target.size),), behind, guard, depth + 1)
                        )
                    continue
                len_at = _area_offset(segments, offset + pointer.part("len").offset)
                if len_at is None:
                    self.copies[behind] = Unavailable(
                        "the length is not in one register or stack slot, so what the pointer "
                        "points to is not copied"
                    )
                    continue
                element = U8 if pointer.kind in ("str", "string") else pointer.element
                assert element is not None
                if element.size == 0:
                    self.copies[behind] = NOTHING
                    continue
                cap = (
                    self.max_string
                    if pointer.kind in ("str", "string")
                    else self.max_elements * element.size
                )
                planned = self.add(
                    behind, addr_at, 0, cap, len_at=len_at, scale=element.size, guard=guard
                )
                if isinstance(planned, Copy) and has_pointers(element):
                    for i in range(planned.size // element.size):
                        start = planned.dst + i * element.size
                        queue.append(
                            (element, ((start, element.size),), behind + (i,), (len_at, i),
                             depth + 1)
                        )  # fmt: skip


def _area_offset(segments: Segments, offset: int) -> int | None:
    """The area offset of the 8 bytes at `offset` in a value, if they sit in one segment."""
    start = 0
    for where, length in segments:
        if start <= offset and offset + 8 <= start + length:
            return where + offset - start if where != CONSTANT_SEGMENT else None
        start += length
    return None


_has_pointers: dict[RustType, bool] = {}  # RustTypes hash by identity


def has_pointers(value: RustType) -> bool:
    known = _has_pointers.get(value)
    if known is None:
        known = next(inline_pointers(value, 0, (), 1), None) is not None
        _has_pointers[value] = known
    return known


def inline_pointers(
    value: RustType, offset: int, path: Path, max_elements: int
) -> Iterator[tuple[RustType, int, Path]]:
    """Every pointer stored inside `value` itself (not behind another pointer): its type,
    offset and path. Every variant of an enum counts; arrays up to `max_elements`."""
    kind = value.kind
    if kind in POINTERS:
        yield value, offset, path
    elif kind in ("struct", "tuple"):
        for f in value.fields:
            yield from inline_pointers(f.type, offset + f.offset, path + (f.name,), max_elements)
    elif kind == "array" and value.element is not None and value.element.size:
        for i in range(min(value.count, max_elements)):
            yield from inline_pointers(
                value.element, offset + i * value.element.size, path + (i,), max_elements
            )
    elif kind == "enum":
        for variant in value.variants:
            for f in variant.fields:
                yield from inline_pointers(
                    f.type, offset + f.offset, path + (variant.name, f.name), max_elements
                )


class Reader:
    """The copied bytes of one event, by path."""

    def __init__(self, data: bytes, failed: int, copies: Mapping[Path, Planned]) -> None:
        self.data = data
        self.failed = failed
        self.copies = copies

    def fetch(self, path: Path, address: int, count: int | None = None) -> bytes | Unavailable:
        planned = self.copies.get(path)
        if planned is None:
            return Unavailable("not followed: beyond max_elements")
        if isinstance(planned, Unavailable):
            return planned
        if planned.index < 0:
            return b""
        if self.failed >> planned.index & 1:
            return Unavailable(f"the memory at {address:#x} could not be read")
        size = planned.size
        if planned.counted:
            assert count is not None
            size = min(min(count, planned.size) * planned.scale, planned.size)
        start = planned.dst - WORDS
        chunk = self.data[start : start + size]
        if len(chunk) < size:
            return Unavailable("the event holds fewer bytes than planned")
        return chunk


class _ConstantReader(Reader):
    """For values DWARF gives as constants: nothing behind their pointers was copied."""

    def fetch(self, path: Path, address: int, count: int | None = None) -> bytes | Unavailable:
        return Unavailable(
            f"DWARF gives this value as a constant; the memory at {address:#x} it points to "
            "is not copied"
        )


NO_READER = _ConstantReader(b"", 0, {})


def decode_value(value: RustType, raw: bytes, reader: Reader, path: Path) -> Any:
    """The Python value of `value`'s bytes `raw`, following pointers through `reader`."""
    kind = value.kind
    if kind in SCALARS or kind in ("unit", "unsupported", "trait_object"):
        return value.decode(raw)
    if len(raw) < value.size:
        return Unavailable(f"only {len(raw)} of the {value.size} bytes of {value.name} were read")
    if kind in ("struct", "tuple"):
        fields = {
            f.name: decode_value(f.type, raw[f.offset : f.offset + f.type.size], reader,
                                 path + (f.name,))
            for f in value.fields
        }  # fmt: skip
        if kind == "tuple":
            return tuple(fields.values())
        return Struct(value.name, fields, value.tuple_like)
    if kind == "array":
        element = value.element
        assert element is not None
        return [
            decode_value(element, raw[i * element.size : (i + 1) * element.size], reader,
                         path + (i,))
            for i in range(value.count)
        ]  # fmt: skip
    if kind == "c_enum":
        number = int.from_bytes(raw[: value.size], "little", signed=value.signed)
        for name, known in value.enumerators:
            if known == number:
                return Variant(name, None, value.name)
        return Unavailable(f"{number} is no variant of {value.name}")
    if kind == "enum":
        return _enum(value, raw, reader, path)
    address = int.from_bytes(raw[:8], "little")
    if kind == "pointer":
        if address == 0:
            return Unavailable("a null pointer")
        target = value.target
        if target.kind == "unsupported":
            return target.decode(b"")
        if target.size == 0:
            return decode_value(target, b"", reader, path + ("*",))
        data = reader.fetch(path + ("*",), address)
        if isinstance(data, Unavailable):
            return data
        return decode_value(target, data, reader, path + ("*",))
    length = int.from_bytes(raw[value.part("len").offset :][:8], "little")
    address = int.from_bytes(raw[value.part("ptr").offset :][:8], "little")
    if length == 0:  # nothing behind the pointer to copy (it may be dangling)
        return "" if kind in ("str", "string") else []
    data = reader.fetch(path + ("*",), address, length)
    if isinstance(data, Unavailable):
        return data
    if kind in ("str", "string"):
        return _text(data, length)
    element = value.element
    assert element is not None
    size = element.size
    copied = length if size == 0 else min(length, len(data) // size)
    items = [
        decode_value(element, data[i * size : (i + 1) * size], reader, path + ("*", i))
        for i in range(copied)
    ]
    return items if copied == length else Truncated(items, length)


def _text(data: bytes, length: int) -> str | Truncated:
    if len(data) < length:
        prefix = data.decode("utf-8", "ignore") if _cut_utf8(data) else BadUtf8(data)
        return Truncated(prefix, length)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return BadUtf8(data)


def _cut_utf8(data: bytes) -> bool:
    """Valid UTF-8 apart from a character cut at the end."""
    for cut in range(4):
        try:
            data[: len(data) - cut].decode("utf-8")
            return True
        except UnicodeDecodeError:
            continue
    return False


def _payload_may_be_none(some: Any) -> bool:
    sized = [f for f in some.fields]
    if len(sized) != 1:
        return False
    target = sized[0].type
    for _ in range(MAX_DEPTH + 1):
        if target.kind != "pointer":
            break
        target = target.target
    return target.kind == "unit" or (
        target.kind == "enum"
        and target.name.startswith("Option<")
        and {v.name for v in target.variants} == {"None", "Some"}
    )


def _enum(value: RustType, raw: bytes, reader: Reader, path: Path) -> Any:
    chosen = None
    if value.discr is None:
        if len(value.variants) == 1:
            chosen = value.variants[0]
    else:
        where = value.discr
        size = where.type.size
        number = int.from_bytes(raw[where.offset : where.offset + size], "little")
        mask = (1 << (8 * size)) - 1
        chosen = next(
            (v for v in value.variants if v.discr is not None and v.discr & mask == number),
            None,
        ) or next((v for v in value.variants if v.discr is None), None)
        if chosen is None:
            return Unavailable(f"discriminant {number} names no variant of {value.name}")
    if chosen is None:
        return Unavailable(f"which variant of {value.name} this is is not recorded")
    fields = {
        f.name: decode_value(f.type, raw[f.offset : f.offset + f.type.size], reader,
                             path + (chosen.name, f.name))
        for f in chosen.fields
    }  # fmt: skip
    if chosen.tuple_like:
        payload: Any = next(iter(fields.values())) if len(fields) == 1 else tuple(fields.values())
    elif fields:
        payload = Struct(chosen.name, fields)
    else:
        payload = None
    if value.name.startswith("Option<") and {v.name for v in value.variants} == {"None", "Some"}:
        if chosen.name == "None":
            return None
        # The payload itself, unless its type can read as None too (Option<()>,
        # Option<Option<T>>, Option<&Option<T>>): then always Variant("Some", payload), so
        # Some(None) never looks like None, nor Some(Some(())) like Some(None).
        return Variant("Some", payload, value.name) if _payload_may_be_none(chosen) else payload
    return Variant(chosen.name, payload, value.name)
