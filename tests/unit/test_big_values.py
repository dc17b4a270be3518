"""How one call's big values are planned and read back: chunks of copies larger than 4 KiB,
the order copies are planned in across collections, the guards that keep empty hash
buckets and unused B-tree slots from being followed, where the copies stopped, and
`Missing`. No root, no compiler: the plans and events are made here."""

from __future__ import annotations

from pytest_uprobe import Missing, Truncated, Unavailable
from pytest_uprobe.decode import (
    BELOW,
    DATA,
    EXHAUSTED,
    MAX_COPY,
    MAX_DEREFS,
    NO_SLOT,
    SOURCE,
    STOPPED,
    Copy,
    Layout,
    Reader,
    decode_value,
)
from pytest_uprobe.dwarf.types import Field, RustType

USIZE = RustType("usize", "int", 8)
U8 = RustType("u8", "int", 1)
U32 = RustType("u32", "int", 4)
PTR = RustType("*const u8", "address", 8)
STRING = RustType("String", "string", 24, fields=(Field("ptr", 8, PTR), Field("len", 16, USIZE)),
                  item=U8)  # fmt: skip
VEC_U32 = RustType("Vec<u32>", "vec", 24, fields=(Field("ptr", 8, PTR), Field("len", 16, USIZE)),
                   item=U32)  # fmt: skip
BOOK = RustType("Book", "struct", 48, fields=(Field("title", 0, STRING), Field("tags", 24,
                RustType("Vec<String>", "vec", 24, fields=(Field("ptr", 8, PTR),
                Field("len", 16, USIZE)), item=STRING))))  # fmt: skip
BOOKS = RustType("&[Book]", "slice", 16, fields=(Field("ptr", 0, PTR), Field("len", 8, USIZE)),
                 item=BOOK)  # fmt: skip


def event(*copies: bytes) -> bytes:
    """An event's bytes after its words: the table of placements, then each copy."""
    table, data, at = [], b"", DATA
    for copy in copies:
        table.append(at >> 3 | len(copy) << 19)
        padded = copy + bytes(-len(copy) % 8)
        data += padded
        at += len(padded)
    table += [0] * (MAX_DEREFS - len(table))
    return b"".join(e.to_bytes(4, "little") for e in table) + data


def words(address: int, length: int) -> bytes:
    return address.to_bytes(8, "little") + length.to_bytes(8, "little")


def test_a_vec_bigger_than_one_copy_is_planned_in_chunks_and_read_back_whole():
    layout = Layout(max_string=256, max_elements=3000)
    layout.follow([(VEC_U32, ((0, 24),), (0,))])
    per = MAX_COPY // 4
    assert [d.skip for d in layout.derefs] == [0, per, 2 * per]  # 3000 u32: three chunks
    assert [d.add for d in layout.derefs] == [0, MAX_COPY, 2 * MAX_COPY]
    planned = layout.copies[(0, "*")]
    assert isinstance(planned, Copy) and len(planned.more) == 2 and planned.elements == 3000
    numbers = list(range(2500))
    data = b"".join(n.to_bytes(4, "little") for n in numbers)
    raw = bytes(8) + words(0x1000, 2500)
    chunks = event(data[:MAX_COPY], data[MAX_COPY : 2 * MAX_COPY], data[2 * MAX_COPY :])
    assert decode_value(VEC_U32, raw, Reader(chunks, 0, layout.copies), (0,)) == numbers
    more = bytes(8) + words(0x1000, 5000)  # past max_elements: cut there, visibly
    whole = b"".join(n.to_bytes(4, "little") for n in range(3000))
    cut = event(whole[:MAX_COPY], whole[MAX_COPY : 2 * MAX_COPY], whole[2 * MAX_COPY :])
    assert decode_value(VEC_U32, more, Reader(cut, 0, layout.copies), (0,)) == Truncated(
        list(range(3000)), 5000
    )


def test_chunks_below_an_address_are_joined_in_memory_order():
    """hashbrown's buckets: chunk j holds the bytes below chunk j - 1."""
    first = Copy(0, SOURCE, 8, 4, True, BELOW)
    planned = Copy(0, SOURCE, 8, 4, True, BELOW, more=(Copy(1, 2 * SOURCE, 8, 4, True, BELOW),))
    # buckets 0, 1 end at the address (bucket 0 highest); buckets 2, 3 below them
    data = event(bytes([1] * 4 + [0] * 4), bytes([3] * 4 + [2] * 4))
    got = Reader(data, 0, {("t",): planned}).fetch(("t",), 0x1000, 4)
    assert got == bytes([3] * 4 + [2] * 4 + [1] * 4 + [0] * 4)
    assert Reader(data, 0, {("t",): first}).fetch(("t",), 0x1000, 1) == bytes([0] * 4)


def test_inner_collections_are_planned_element_by_element_across_them():
    """The first tag of every book before the second tag of any: a limit cuts the tail of
    the longest inner collection, not every book after the first few."""
    layout = Layout(max_string=16, max_elements=100)
    layout.follow([(BOOKS, ((0, 16),), (0,))])
    tags = [(path[2], path[5]) for path, copy in layout.copies.items()
            if len(path) == 7 and path[3] == "tags" and isinstance(copy, Copy)]  # fmt: skip
    assert len(layout.derefs) == MAX_DEREFS  # 100 books x 100 tags: the budget is spent
    deepest = max(j for _, j in tags)
    every_book = {j for j in range(deepest) if sum(1 for _, k in tags if k == j) == 100}
    assert every_book == set(range(deepest)) and deepest >= 30  # whole rounds of tags
    why = layout.copies[EXHAUSTED]  # what the decoder says of the tags left out
    assert isinstance(why, Unavailable) and f"at most {MAX_DEREFS} pointers" in why.reason
    reader = Reader(b"", 0, layout.copies)
    left_out = reader.fetch((0, "*", 0, "tags", "*", 99, "*"), 0x10, 3)
    assert isinstance(left_out, Unavailable) and "pointers" in left_out.reason


def test_elements_are_followed_only_below_the_length():
    layout = Layout(max_string=16, max_elements=4)
    layout.follow([(BOOKS, ((0, 16),), (0,))])
    books = [d for d in layout.derefs if d.guard_at == 8]  # guarded by the slice's len
    assert [d.guard_min for d in books] == [0, 0, 1, 1, 2, 2, 3, 3]  # title, tags of each
    assert all(d.len_at != NO_SLOT for d in books)


def test_copies_that_stopped_early_say_where():
    planned = {(0, "*"): Copy(0, SOURCE, 16, 1, True), (1, "*"): Copy(1, 2 * SOURCE, 16, 1, True)}
    data = event(b"abc", b"")
    reader = Reader(data, STOPPED | 1, planned)
    assert reader.fetch((0, "*"), 0x10, 3) == b"abc"
    stopped = reader.fetch((1, "*"), 0x20, 3)
    assert isinstance(stopped, Unavailable) and "stopped after the first 1" in stopped.reason


def test_missing_is_a_known_state_never_none():
    dropped = Missing("dropped", strong=0, weak=1)
    assert dropped == "dropped" and dropped == Missing("dropped") and dropped.weak == 1
    assert dropped != None and dropped != Missing("uninitialised")  # noqa: E711
    assert repr(dropped) == "Missing('dropped', strong=0, weak=1)"
