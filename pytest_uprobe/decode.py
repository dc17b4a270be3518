"""Values behind pointers: what the BPF program copies from memory for one site, and how the
copied bytes turn back into Python values.

An event carries an *area* of bytes: first one 8-byte word per piece (registers and stack
slots, `plan.Piece`), then, in a big event, a table of where each copy landed and the data
copied from behind pointers. A `Deref` tells the BPF program to read a u64 address from the
area (at `addr_at`), add `add`, and copy `size` bytes from there; or, for a counted copy (a
`&str`, a slice, a Vec), `count * scale` bytes at most `size`, with the count read from the
area at `len_at`. A copy whose `guard_at` is set runs only when the u64 there is above
`guard_min` (element i of a collection is followed only when its length is more than i),
or, with `guard_min` BUCKET, when the byte there has its top bit clear (a hashbrown bucket is
followed only when its control byte says it is full). A counted copy larger than one copy
may take (MAX_COPY) is planned as several chunks, each skipping the elements of the ones
before (`skip`): a Vec of 300 structs arrives in five copies that the decoder joins.

Copies are placed one after another as they run, each taking the bytes its run-time length
needs (not its cap), so the room a value takes follows the value: the table (`TABLE`, one
u32 per deref of the site: offset / 8 | bytes << 19, or NOT_RUN / FAILED / FULL) says where
each landed, and the first lands right after it.
`addr_at`, `len_at` and `guard_at` are *references* into the area: offset | source << 16,
where source 0 is the area itself (the words) and source k + 1 the bytes copy k landed in.
The program runs the derefs in order, so a later one can take its address from the bytes an
earlier one copied: that is how a `&[String]` reaches each string's bytes.

Paths name every place a pointer can be followed, so planning (which must cover every
variant and element) and decoding (which follows the one the value holds) meet:
`(i,)` is parameter i, `("return",)` the return value, then field names, variant names,
array indexes, `"*"` for "behind the pointer", then element indexes.
"""

from __future__ import annotations

import heapq
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, NamedTuple, Union

from . import stdtypes
from .dwarf.types import (
    POINTERS,
    SCALARS,
    BTreeNode,
    Implementation,
    RustType,
    TailLevel,
    tail_offsets,
)
from .values import BadUtf8, Inside, Missing, Struct, Truncated, Unavailable, Variant

MAX_PIECES = 16  # words one event carries; the BPF program is built for this many
WORDS = 8 * MAX_PIECES  # area bytes the pieces fill
AREA = 131072  # a big event's area: the words, the table, then data copied behind pointers
MAX_COPY = 4096  # bytes one copy takes at most
START_LIMIT = AREA - MAX_COPY  # every copy starts below it (the verifier's bound)
MAX_DEREFS = 4096  # copies per event (a power of two: the BPF side masks indexes with it)
# The in-process engine builds its events on the target's stack: a smaller area, and its
# site table keeps fewer derefs per site.
IN_PROCESS_AREA = 65536
IN_PROCESS_DEREFS = 4096
# Event.failed: the copies stopped before the site's last (STOPPED | the copies run): the
# BPF program runs 256 per program, in at most 34 programs (33 tail calls).
STOPPED = 1 << 31
TABLE = WORDS  # where the table of placements starts in the area
DATA = TABLE + 4 * MAX_DEREFS  # copied data starts here at the latest (after the site's entries)
NOT_RUN, FULL, FAILED = 0, 0xFFFFFFFE, 0xFFFFFFFF  # table entries other than a placement
SOURCE = 1 << 16  # a reference's source unit: copy k's bytes are source k + 1
MAX_DEPTH = 4  # pointers followed one behind another (&(usize, &Box<dyn T>) with a Vec in T: four)
NO_SLOT = 0xFFFFFFFF
EXHAUSTED = ("<exhausted>",)  # Layout.copies: why what was left unplanned is (MAX_DEREFS)

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
    flags: int = 0  # BELOW, PLUS_ONE
    skip: int = 0  # a counted copy's chunk: the elements the chunks before it copy


# Deref.flags. BELOW: copy the bytes that end at the address instead of those that start
# there, and place them so that they end where the copy's room ends (hashbrown keeps its
# buckets below the control bytes, bucket i at ctrl - (i + 1) * size). PLUS_ONE: the
# count is the u64 at len_at plus one (hashbrown's bucket_mask is the buckets less one).
BELOW = 1
PLUS_ONE = 2
BUCKET = 2**64 - 1  # Deref.guard_min: run when the byte at guard_at has its top bit clear
SHORT = 1 << 62  # Deref.guard_min: SHORT | n runs when the u16 at guard_at is above n
MAX_LEVELS = 5  # a BTreeMap's levels below the root whose nodes are planned


@dataclass(frozen=True)
class Copy:
    """Where the decoder finds the bytes of one Deref: `index` is its bit in the event's
    `failed` mask (-1: nothing to copy, a zero-sized target). `more`: the chunks after this
    one, for a counted copy larger than MAX_COPY (each a Copy, or why it was not planned)."""

    index: int
    dst: int
    size: int
    scale: int
    counted: bool
    flags: int = 0
    more: tuple[Any, ...] = ()
    limit: int = 0  # a BTreeMap's root: the entries to decode at most (max_elements)

    @property
    def elements(self) -> int:
        """How many elements (bytes for a string) the chunks planned hold."""
        planned = [self, *(c for c in self.more if isinstance(c, Copy))]
        return sum(c.size for c in planned) // self.scale

    def element(self, i: int, size: int) -> int:
        """The reference to the first byte of element i (of `size` bytes); BELOW: counted
        from the end, as hashbrown's buckets are."""
        per = self.size // size
        chunk = self if i < per else self.more[i // per - 1]
        j = i % per
        if self.flags & BELOW:
            return int(chunk.dst + chunk.size - (j + 1) * size)
        return int(chunk.dst + j * size)


Planned = Union[Copy, Unavailable]
NOTHING = Copy(-1, 0, 0, 1, False)
U8 = RustType("u8", "int", 1)


class Layout:
    """The copies of one site, in the order the program runs them. Where each lands is
    decided at run time; a Copy's `dst` is the reference to its first byte."""

    def __init__(self, max_string: int, max_elements: int) -> None:
        self.max_string = max_string
        self.max_elements = max_elements
        self.derefs: list[Deref] = []
        self.copies: dict[Path, Planned] = {}
        self.later: list[Callable[[], None]] = []  # planned once the queue is empty
        self.queue: _Queue | None = None  # what follow() has still to plan

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
        flags: int = 0,
        skip: int = 0,
        depth: int | None = None,
        each: Callable[[int, int], None] | None = None,
    ) -> Planned:
        """Plan one copy. A counted one larger than MAX_COPY comes in chunks; given the
        `depth` of the value it is in, the chunks after the first are planned when its
        elements at their index would be (see _Queue). `each(i, start)`: called for every
        element planned, with the reference to its first byte."""
        counted = len_at != NO_SLOT
        if counted and size > MAX_COPY and scale <= MAX_COPY:
            return self._chunks(path, addr_at, add, size, len_at, scale, guard, flags, depth,
                                each)  # fmt: skip
        fits = min(size, MAX_COPY)
        if counted:
            fits -= fits % scale
        if len(self.derefs) >= MAX_DEREFS:
            planned: Planned = self._exhausted()
            self.copies.setdefault(EXHAUSTED, planned)
        elif fits <= 0 or (not counted and fits < size):
            planned = Unavailable(
                f"not copied: {size} bytes, more than one copy takes ({MAX_COPY} bytes)"
            )
        else:
            guard_at, guard_min = guard if guard is not None else (NO_SLOT, 0)
            index = len(self.derefs)
            self.derefs.append(
                Deref(addr_at, add, fits, 0, len_at, scale, guard_at, guard_min, flags, skip)
            )
            planned = Copy(index, (index + 1) * SOURCE, fits, scale, counted, flags)
        self.copies[path] = planned
        if each is not None and isinstance(planned, Copy):
            self._each(planned, path, skip, scale, depth, each)
        return planned

    def _each(self, planned: Copy, path: Path, skip: int, scale: int, depth: int | None,
              each: Callable[[int, int], None]) -> None:  # fmt: skip
        """Call `each` for every element of a copy: one after another where its element at
        each index is planned (see _Queue), so that the queue holds one pending element
        per collection, not every element of every collection up to max_elements."""

        def step(i: int) -> None:
            each(skip + i, planned.element(i, scale))
            if i + 1 < planned.elements:
                assert self.queue is not None and depth is not None
                self.queue.task(depth + 1, path + (skip + i + 1,),
                                _Task(lambda: step(i + 1), always=False))  # fmt: skip

        if self.queue is None or depth is None:
            for i in range(planned.elements):
                each(skip + i, planned.element(i, scale))
        elif planned.elements:
            step(0)

    @staticmethod
    def _exhausted() -> Unavailable:
        return Unavailable(
            f"not copied: one call follows at most {MAX_DEREFS} pointers, and the values "
            "before it (planned up to max_elements each) took them all; lower max_elements"
        )

    def _chunks(
        self,
        path: Path,
        addr_at: int,
        add: int,
        size: int,
        len_at: int,
        scale: int,
        guard: tuple[int, int] | None,
        flags: int,
        depth: int | None,
        each: Callable[[int, int], None] | None,
    ) -> Planned:
        """A counted copy of more than MAX_COPY bytes, as chunks of whole elements, chunk j
        skipping the elements before it (BELOW: the bytes below the chunk before)."""
        per = MAX_COPY // scale
        count = size // scale
        chunks: list[Planned] = []

        def chunk(j: int) -> None:
            step = j * per * scale
            planned = self.add(path, addr_at, add - step if flags & BELOW else add + step,
                               min(per, count - j * per) * scale, len_at=len_at, scale=scale,
                               guard=guard, flags=flags, skip=j * per, depth=depth,
                               each=each)  # fmt: skip
            chunks.append(planned)
            first = chunks[0]
            self.copies[path] = replace(first, more=tuple(chunks[1:])) if isinstance(
                first, Copy) else first  # fmt: skip

        chunk(0)
        # A collection inside another (the tags of each book) gets its later chunks where
        # its elements at their index go: after the first elements of all the others.
        inner = any(isinstance(i, int) for i in path[1:])
        for j in range(1, -(-count // per)):
            if depth is None or self.queue is None or not inner:
                chunk(j)
            else:
                self.queue.task(depth + 1, path + (j * per,), _Task(partial(chunk, j), True))
        return self.copies[path]

    def follow(self, roots: list[tuple[RustType, Segments, Path]]) -> None:
        """Plan a copy for every pointer inside the roots, breadth first: the pointers of
        the values themselves get room before the pointers behind pointers."""
        queue = self.queue = _Queue()
        for rust_type, segments, path in roots:
            queue.append((rust_type, segments, path, None, 0))
        while queue or self.later:
            if not queue:
                later = self.later.pop(0)
                if len(self.derefs) < MAX_DEREFS:
                    later()
                else:
                    self.copies.setdefault(EXHAUSTED, self._exhausted())
                continue
            item = queue.popleft()
            if isinstance(item, _Task):  # a later chunk (always: it records why not), or
                if item.always or len(self.derefs) < MAX_DEREFS:  # the next element
                    item.run()
                else:
                    self.copies.setdefault(EXHAUSTED, self._exhausted())
                continue
            if len(self.derefs) >= MAX_DEREFS:  # spent: what is left is not followed
                self.copies.setdefault(EXHAUSTED, self._exhausted())
                continue
            value, segments, path, guard, depth = item
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
                if pointer.kind == "trait_object":
                    self._follow_dyn(pointer, segments, offset, at, addr_at, guard, depth, queue)
                    continue
                if pointer.kind in ("table", "btree"):
                    self._follow_collection(pointer, segments, offset, at, addr_at, guard, depth,
                                            queue)  # fmt: skip
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
                # A VecDeque's ring: every slot up to its capacity (head and len say which
                # are live), read in logical order by the decoder.
                count = "cap" if pointer.kind == "deque" else "len"
                len_at = _area_offset(segments, offset + pointer.part(count).offset)
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
                each = None
                if has_pointers(element):

                    def each(i: int, start: int, element: RustType = element,
                             behind: Path = behind, len_at: int = len_at,
                             depth: int = depth) -> None:  # fmt: skip
                        queue.append((element, ((start, element.size),), behind + (i,),
                                      (len_at, i), depth + 1))  # fmt: skip

                self.add(behind, addr_at, pointer.data_at, cap, len_at=len_at,
                         scale=element.size, guard=guard, depth=depth, each=each)  # fmt: skip
                if pointer.std in ("rcdst", "arcdst"):  # the strong and weak counts
                    self.add(at + ("counts",), addr_at, 0, 16, guard=guard)

    def _follow_collection(
        self,
        value: RustType,
        segments: Segments,
        offset: int,
        at: Path,
        addr_at: int,
        guard: tuple[int, int] | None,
        depth: int,
        queue: _Queue,
    ) -> None:
        """A hashbrown table (its control bytes and the buckets below them) or a BTreeMap
        (its root node and, for a tree of height 1, the children the first max_elements
        entries need)."""
        behind = at + ("*",)
        counter = "len" if value.kind == "table" else "height"
        count_at = _area_offset(segments, offset + value.part(counter).offset)
        if count_at is None:
            self.copies[behind] = Unavailable(
                f"the {counter} of {value.name} is not in one register or stack slot, so "
                "what it points to is not copied"
            )
            return
        if value.kind == "table":
            element = value.element
            assert element is not None
            if element.size == 0:
                self.copies[behind] = NOTHING
                return
            # enough for max_elements entries at hashbrown's load factor (7/8)
            buckets = max(4, 1 << (-(-self.max_elements * 8 // 7) - 1).bit_length())
            ctrl = self.add(at + ("ctrl",), addr_at, 0, buckets, len_at=count_at, guard=guard,
                            flags=PLUS_ONE)  # fmt: skip
            if isinstance(ctrl, Unavailable):
                self.copies[behind] = ctrl
                return
            each = None
            if has_pointers(element):

                def each(i: int, start: int) -> None:
                    assert isinstance(ctrl, Copy) and element is not None
                    if i < ctrl.elements:  # only a full bucket's pointers
                        queue.append((element, ((start, element.size),), behind + (i,),
                                      (ctrl.element(i, 1), BUCKET), depth + 1))  # fmt: skip

            self.add(behind, addr_at, 0, buckets * element.size, len_at=count_at,
                     scale=element.size, guard=guard, flags=PLUS_ONE | BELOW, depth=depth,
                     each=each)  # fmt: skip
            return
        node = value.node
        assert node is not None
        root = self.add(behind, addr_at, 0, node.leaf_size, guard=guard)
        self._node_entries(node, behind, root, depth, queue)
        if not isinstance(root, Copy):
            return
        self.copies[behind] = replace(root, limit=self.max_elements)
        # The nodes of each level below the root, left to right, as many as the first
        # max_elements entries in key order can reach: at most max_elements / 5 + 2 of a
        # level (every node but the root holds 5 keys or more, a parent 6 children or
        # more: twice that in slots, 12 a parent). Planned after everything else, level by
        # level, since most maps have height 0.
        slots = 2 * (self.max_elements // 5 + 2) + node.capacity + 1
        level: list[tuple[Path, int, Copy]] = [(behind, addr_at, root)]

        def next_level(below: int) -> None:
            nonlocal level
            children: list[tuple[Path, int, Copy]] = []
            for parent, parent_at, copy in level:
                if len(children) >= slots:
                    break
                # a leaf has no edges: copied only while the tree is taller than this
                edges = self.add(parent + ("edges",), parent_at, node.edges_at,
                                 8 * (node.capacity + 1), guard=(count_at, below - 1))  # fmt: skip
                if not isinstance(edges, Copy):
                    return
                for j in range(node.capacity + 1):
                    live = (copy.dst + node.len_at, SHORT | (j - 1)) if j else None
                    child = self.add(parent + ("edges", j), edges.dst + 8 * j, 0,
                                     node.leaf_size, guard=live)  # fmt: skip
                    if not isinstance(child, Copy):
                        return
                    self._node_entries(node, parent + ("edges", j), child, depth, queue)
                    children.append((parent + ("edges", j), edges.dst + 8 * j, child))
            level = children
            if below < MAX_LEVELS:
                self.later.append(lambda: next_level(below + 1))

        self.later.append(lambda: next_level(1))

    def _follow_dyn(
        self,
        value: RustType,
        segments: Segments,
        offset: int,
        at: Path,
        addr_at: int,
        guard: tuple[int, int] | None,
        depth: int,
        queue: _Queue,
    ) -> None:
        """A trait object: its vtable's size and alignment words, and the bytes of the value
        as large as the largest implementation, which the decoder picks by the vtable."""
        behind = at + ("*",)
        implementations = value.implementations
        if not implementations:
            self.copies[behind] = value.decode(b"")
            return
        vtable_at = _area_offset(segments, offset + value.part("vtable").offset)
        if vtable_at is None:
            self.copies[behind] = Unavailable(
                "the vtable pointer is not in one register or stack slot"
            )
            return
        words = self.add(at + ("vtable",), vtable_at, 0, 24, guard=guard)
        if isinstance(words, Unavailable):
            self.copies[behind] = words
            return
        # Where each implementation's value starts: at the pointer, or in a holder (the
        # RcInner of an Rc<dyn T>) after its other fields, at an offset its alignment sets.
        starts = [0] * len(implementations)
        size = max(i.type.size for i in implementations)
        if value.holder_die is not None:
            levels = value.tail
            why = _unheld(value, levels)
            if why is not None or levels is None:
                self.copies[behind] = Unavailable(why or "")
                return
            starts = [tail_offsets(levels, _planned_align(i))[-1] for i in implementations]
            size = max(levels[0].holder.size,
                       *(at + i.type.size for at, i in zip(starts, implementations)))  # fmt: skip
        if size == 0:
            self.copies[behind] = NOTHING
            return
        data = self.add(behind, addr_at, 0, size, guard=guard)
        if not isinstance(data, Copy):
            return
        for k, implementation in enumerate(implementations):
            concrete = implementation.type
            if concrete.size and has_pointers(concrete):
                queue.append((concrete, ((data.dst + starts[k], concrete.size),), behind + (k,),
                              guard, depth + 1))  # fmt: skip

    def _node_entries(
        self, node: BTreeNode, path: Path, planned: Planned, depth: int, queue: _Queue
    ) -> None:
        """Follow the pointers inside a B-tree node's keys and values (entry i only when
        the node's `len` is above i)."""
        if not isinstance(planned, Copy):
            return
        for part, element, start in (
            ("k", node.key, node.keys_at),
            ("v", node.value, node.vals_at),
        ):
            if not has_pointers(element):
                continue
            for i in range(min(node.capacity, self.max_elements)):
                where = planned.dst + start + i * element.size
                live = (planned.dst + node.len_at, SHORT | i)
                queue.append((element, ((where, element.size),), path + (part, i), live,
                              depth + 1))  # fmt: skip


Queued = tuple[RustType, Segments, Path, "tuple[int, int] | None", int]


class _Task(NamedTuple):
    """A step of planning queued like a value: the next element of a collection, or a
    later chunk of a big copy (`always`: run even once the copies are spent, so that the
    chunk records why it is not there)."""

    run: Callable[[], None]
    always: bool


class _Queue:
    """The values whose pointers are still to follow, in the order their copies are
    planned: by depth (how many pointers lie before them), then element by element across
    collections: the first tag of every book before the second tag of any. When one call's
    copies run out (MAX_DEREFS), what is left out is then the tail of the longest inner
    collections, which a value seldom has, not every book after the tenth."""

    def __init__(self) -> None:
        self.heap: list[tuple[int, tuple[int, ...], int, Any]] = []
        self.added = 0

    def append(self, item: Queued) -> None:
        self.task(item[4], item[2], item)

    def task(self, depth: int, path: Path, item: Any) -> None:
        """Queue `item` (a value, or a function to call) where a value at `path` goes."""
        indexes = tuple(reversed([i for i in path[1:] if isinstance(i, int)]))
        heapq.heappush(self.heap, (depth, indexes, self.added, item))
        self.added += 1

    def popleft(self) -> Any:
        return heapq.heappop(self.heap)[3]

    def __bool__(self) -> bool:
        return bool(self.heap)


def _area_offset(segments: Segments, offset: int) -> int | None:
    """The area offset of the 8 bytes at `offset` in a value, if they sit in one segment."""
    start = 0
    for where, length in segments:
        if start <= offset and offset + 8 <= start + length:
            return where + offset - start if where != CONSTANT_SEGMENT else None
        start += length
    return None


# by type (RustTypes hash by identity); an entry goes with its type, which its binary's
# "types" memo holds: dropped by the binary's close()
_has_pointers: weakref.WeakKeyDictionary[RustType, bool] = weakref.WeakKeyDictionary()


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
        if planned is None:  # not planned: past max_elements, or the copies ran out
            spent = self.copies.get(EXHAUSTED)
            if isinstance(spent, Unavailable):
                return spent
            return Unavailable("not followed: beyond max_elements")
        if isinstance(planned, Unavailable):
            return planned
        if planned.index < 0:
            return b""
        if planned.counted:
            assert count is not None
            count += 1 if planned.flags & PLUS_ONE else 0
        if not planned.more:
            return self._placed(planned, address, count)
        parts: list[bytes] = []
        skip = 0
        for chunk in (planned, *planned.more):
            assert count is not None
            if count <= skip:
                break
            if isinstance(chunk, Unavailable):
                return chunk
            got = self._placed(chunk, address, count - skip)
            if isinstance(got, Unavailable):
                return got
            parts.append(got)
            skip += chunk.size // chunk.scale
        # BELOW: each chunk holds the bytes below the one before it
        return b"".join(reversed(parts) if planned.flags & BELOW else parts)

    def _placed(self, planned: Copy, address: int, count: int | None) -> bytes | Unavailable:
        """The bytes one copy placed (a counted one: of `count` elements at most)."""
        if self.failed & STOPPED and planned.index >= self.failed & ~STOPPED:
            return Unavailable(
                f"not copied: this call's copies stopped after the first "
                f"{self.failed & ~STOPPED} (the BPF engine runs up to 34 x 256, the "
                f"in-process one {IN_PROCESS_DEREFS}); lower max_elements"
            )
        at = TABLE - WORDS + 4 * planned.index
        entry = int.from_bytes(self.data[at : at + 4], "little")
        if entry == FAILED:
            return Unavailable(f"the memory at {address:#x} could not be read")
        if entry == FULL:
            return Unavailable(
                f"not copied: the values copied before it filled the event's area (copies "
                f"start in its first {START_LIMIT} bytes under BPF, "
                f"{IN_PROCESS_AREA - MAX_COPY} in-process); lower max_string or max_elements"
            )
        if entry == NOT_RUN:
            return Unavailable("not copied: the value it is read from was not copied")
        offset, extent = (entry & 0x7FFFF) << 3, entry >> 19
        size = extent
        if planned.counted:
            assert count is not None
            size = min(count * planned.scale, planned.size)
        start = offset - WORDS
        if planned.flags & BELOW:
            start += extent - size
        chunk = self.data[start : start + size]
        if len(chunk) < size or size > extent:
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
    if value.std:
        return stdtypes.meaning(value, _decode(value, raw, reader, path))
    return _decode(value, raw, reader, path)


def _decode(value: RustType, raw: bytes, reader: Reader, path: Path) -> Any:
    kind = value.kind
    if kind in SCALARS or kind in ("unit", "unsupported"):
        return value.decode(raw)
    if kind == "trait_object":
        return _dyn(value, raw, reader, path)
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
        if value.std == "weak" and address == 2**64 - 1:
            return Missing("dangling")  # Weak::new(): never pointed at a value
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
    if value.std in ("rcdst", "arcdst"):  # Rc<str>, Arc<[T]>: with the counts before it
        counts = reader.fetch(path + ("counts",), address)
        if isinstance(counts, Unavailable):
            return counts
        inner = _decode(replace(value, std=""), raw, reader, path)
        if isinstance(inner, Unavailable):
            return inner
        return Inside(inner, "Rc" if value.std == "rcdst" else "Arc",
                      strong=int.from_bytes(counts[:8], "little"),
                      weak=int.from_bytes(counts[8:16], "little"))  # fmt: skip
    if kind == "deque":
        return _deque(value, raw, reader, path, address, length)
    if kind == "table":
        return _table(value, raw, reader, path, address, length)
    if kind == "btree":
        return _btree(value, raw, reader, path, address, length)
    if length == 0:  # nothing behind the pointer to copy (it may be dangling)
        return "" if kind in ("str", "string") else []
    data = reader.fetch(path + ("*",), address, length)
    if isinstance(data, Unavailable):
        return data
    if kind in ("str", "string"):
        if value.std == "cstr":  # the bytes end with the nul, which is no part of the text
            if len(data) == length and data.endswith(b"\0"):
                return _text(data[:-1], length - 1)
            return _text(data, length - 1)
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


PAGE = 4096


def _dyn(value: RustType, raw: bytes, reader: Reader, path: Path) -> Any:
    """The value a trait object points to, as its concrete type: the implementation whose
    vtable's file address has the run-time vtable's offset within a page (a binary is
    loaded at a page boundary), and whose size and alignment the vtable's words repeat.
    Where several remain, Unavailable names them: a guess could be wrong."""
    if len(raw) < value.size:
        return Unavailable(f"only {len(raw)} of the {value.size} bytes of {value.name} were read")
    address = _word(value, raw, "ptr")
    vtable = _word(value, raw, "vtable")
    implementations = value.implementations
    if not implementations:
        return value.decode(b"")
    if value.std == "weak" and address == 2**64 - 1:
        return Missing("dangling")  # Weak::new(): never pointed at a value
    words = reader.fetch(path + ("vtable",), vtable)
    if isinstance(words, Unavailable):
        return words
    size = int.from_bytes(words[8:16], "little")
    align = int.from_bytes(words[16:24], "little")
    fits = [
        (k, i)
        for k, i in enumerate(implementations)
        if i.vtable % PAGE == vtable % PAGE and i.type.size == size
        and (not i.align or i.align == align)
    ]  # fmt: skip
    if len(fits) != 1:
        names = ", ".join(i.name for _, i in fits) or "none"
        return Unavailable(
            f"which type {value.name} points to is not known: the vtable at {vtable:#x} "
            f"(size {size}, align {align}) matches {len(fits)} implementations ({names})"
        )
    k, implementation = fits[0]
    concrete = implementation.type
    if value.holder_die is not None:
        return _held(value, implementation, k, align, address, reader, path)
    if concrete.size == 0:
        return decode_value(concrete, b"", reader, path + ("*", k))
    data = reader.fetch(path + ("*",), address)
    if isinstance(data, Unavailable):
        return data
    return decode_value(concrete, data[: concrete.size], reader, path + ("*", k))


# The alignment a value of unknown alignment is planned for: no scalar's is larger.
_MOST_ALIGNED = 16


def _planned_align(implementation: Implementation) -> int:
    return implementation.align or _MOST_ALIGNED


def _unheld(value: RustType, levels: tuple[TailLevel, ...] | None) -> str | None:
    """Why the trait object inside `value`'s holder (Rc<dyn T>'s RcInner) is not read, if
    it is not."""
    if levels is None:
        return f"{value.name} holds its trait object in a way not recognised"
    for level in levels:
        for f in level.holder.fields:
            if f.name != level.field and has_pointers(f.type):
                return (f"{level.holder.name} holds pointers beside its trait object "
                        f"({f.name}), which are not followed")  # fmt: skip
    return None


def _held(value: RustType, implementation: Implementation, k: int, align: int, address: int,
          reader: Reader, path: Path) -> Any:  # fmt: skip
    """A trait object inside its holder (Rc<dyn T>'s RcInner): the holder's fields, its
    unsized field being the concrete value, found at the offset its alignment (the
    vtable's) sets; each level as its std type means it (an RcInner's counts, a
    RefCell's borrow state)."""
    levels = value.tail
    why = _unheld(value, levels)
    if why is not None or levels is None:
        return Unavailable(why or "")
    if address == 0:
        return Unavailable("a null pointer")
    concrete = implementation.type
    starts = tail_offsets(levels, align)
    if (
        not implementation.align
        and has_pointers(concrete)
        and (starts[-1] != tail_offsets(levels, _planned_align(implementation))[-1])
    ):
        return Unavailable(
            f"{implementation.name}'s alignment is not in DWARF, and the vtable's ({align}) "
            "puts the value where its pointers were not followed"
        )
    data = reader.fetch(path + ("*",), address)
    if isinstance(data, Unavailable):
        return data
    at = starts[-1]
    inner = decode_value(concrete, data[at : at + concrete.size], reader, path + ("*", k))
    for level, start in zip(reversed(levels), reversed(starts[:-1])):
        holder = level.holder
        fields = {
            f.name: inner if f.name == level.field else decode_value(
                f.type, data[start + f.offset : start + f.offset + f.type.size], reader,
                path + ("*", "holder", f.name))
            for f in holder.fields
        }  # fmt: skip
        made: Any = (tuple(fields.values()) if holder.kind == "tuple"
                     else Struct(holder.name, fields, holder.tuple_like))  # fmt: skip
        inner = stdtypes.meaning(holder, made) if holder.std else made
    return inner


def _word(value: RustType, raw: bytes, name: str) -> int:
    return int.from_bytes(raw[value.part(name).offset :][:8], "little")


def _deque(
    value: RustType, raw: bytes, reader: Reader, path: Path, address: int, length: int
) -> Any:
    """A VecDeque in logical order: element i sits in slot (head + i) % cap."""
    if length == 0:
        return []
    element = value.element
    assert element is not None
    cap, head = _word(value, raw, "cap"), _word(value, raw, "head")
    if cap == 0 or head >= cap or length > cap:
        return Unavailable(f"not a valid VecDeque (head {head}, len {length}, capacity {cap})")
    size = element.size
    if size == 0:
        return [decode_value(element, b"", reader, path + ("*", 0)) for _ in range(length)]
    data = reader.fetch(path + ("*",), address, cap)
    if isinstance(data, Unavailable):
        return data
    items: list[Any] = []
    for i in range(length):
        slot = (head + i) % cap
        if (slot + 1) * size > len(data):
            return Truncated(items, length)  # slots past the copied ones (max_elements)
        chunk = data[slot * size : (slot + 1) * size]
        items.append(decode_value(element, chunk, reader, path + ("*", slot)))
    return items


def _table(value: RustType, raw: bytes, reader: Reader, path: Path, address: int, mask: int) -> Any:
    """A hashbrown table's entries in bucket order (its iteration order): bucket i is full
    when its control byte's top bit is clear; its bytes sit at ctrl - (i + 1) * size."""
    items = _word(value, raw, "items")
    if items == 0:
        return []
    element = value.element
    assert element is not None
    if element.size == 0:  # zero-sized entries: nothing was copied, every entry the same
        return [decode_value(element, b"", reader, path + ("*", 0)) for _ in range(items)]
    ctrl = reader.fetch(path + ("ctrl",), address, mask)
    if isinstance(ctrl, Unavailable):
        return ctrl
    data = reader.fetch(path + ("*",), address, mask)
    if isinstance(data, Unavailable):
        return data
    size = element.size
    found = []
    buckets = min(len(ctrl), len(data) // size, mask + 1)
    for i in range(buckets):
        if ctrl[i] & 0x80:
            continue  # empty or deleted
        end = len(data) - i * size
        found.append(decode_value(element, data[end - size : end], reader, path + ("*", i)))
        if len(found) == items:
            return found
    if buckets == mask + 1:
        return Unavailable(
            f"the table says it holds {items} entries, and its control bytes show {len(found)}"
        )
    return Truncated(found, items)  # buckets past the copied ones (max_elements)


class _Stop(Exception):
    """A B-tree walk ends early: with what makes the value (Truncated or Unavailable)."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _btree(
    value: RustType, raw: bytes, reader: Reader, path: Path, address: int, length: int
) -> Any:
    """A BTreeMap's (key, value) pairs in key order: an in-order walk of the nodes the
    event holds (the root's, then each level's, left to right), until it reaches a node
    not copied (past max_elements: Truncated)."""
    if length == 0:
        return []
    node = value.node
    assert node is not None
    height = _word(value, raw, "height")
    if height > MAX_LEVELS:
        return Unavailable(
            f"a BTreeMap of height {height} ({length} entries): the nodes of trees up to "
            f"height {MAX_LEVELS} are copied"
        )
    root = reader.fetch(path + ("*",), address)
    if isinstance(root, Unavailable):
        return root
    pairs: list[Any] = []
    planned = reader.copies.get(path + ("*",))
    limit = planned.limit if isinstance(planned, Copy) and planned.limit else length

    def entry(data: bytes, at: Path, i: int) -> None:
        if len(pairs) >= limit:
            raise _Stop(Truncated(pairs, length))  # max_elements
        key_at = node.keys_at + i * node.key.size
        val_at = node.vals_at + i * node.value.size
        key = decode_value(node.key, data[key_at : key_at + node.key.size], reader, at + ("k", i))
        val = decode_value(node.value, data[val_at : val_at + node.value.size], reader,
                           at + ("v", i))  # fmt: skip
        pairs.append((key, val))

    def count(data: bytes) -> int:
        number = int.from_bytes(data[node.len_at : node.len_at + 2], "little")
        if number > node.capacity:
            raise _Stop(Unavailable(f"a node of {value.name} holds more than {node.capacity} keys"))
        return number

    def walk(data: bytes, at: Path, level: int, address: int) -> None:
        keys = count(data)
        if level == height:  # a leaf
            for i in range(keys):
                entry(data, at, i)
            return
        edges = reader.fetch(at + ("edges",), address)
        if isinstance(edges, Unavailable):
            raise _Stop(Truncated(pairs, length) if _beyond(edges) else edges)
        for j in range(keys + 1):
            child_address = int.from_bytes(edges[8 * j :][:8], "little")
            child = reader.fetch(at + ("edges", j), child_address)
            if isinstance(child, Unavailable):
                raise _Stop(Truncated(pairs, length) if _beyond(child) else child)
            walk(child, at + ("edges", j), level + 1, child_address)
            if j < keys:
                entry(data, at, j)

    try:
        walk(root, path + ("*",), 0, address)
    except _Stop as stop:
        return stop.value
    if len(pairs) != length:
        return Unavailable(
            f"the map says it holds {length} entries, and its nodes show {len(pairs)}"
        )
    return pairs


def _beyond(why: Unavailable) -> bool:
    """A node left out because the entries before it already reach max_elements."""
    return why.reason.startswith("not followed")


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
