"""std types as what they mean, on hand-built layouts and events (no root, no compiler):
the ring of a VecDeque in logical order, hashbrown's buckets below its control bytes, the
containers' state, Duration's nanoseconds, the trait of a trait object's type name."""

from __future__ import annotations

from datetime import timedelta
from pathlib import PurePosixPath

from pytest_uprobe import Duration, Inside, Struct, Truncated, Unavailable
from pytest_uprobe.decode import BELOW, PLUS_ONE, SOURCE, Copy, Reader, decode_value
from pytest_uprobe.dwarf.types import Field, RustType, _trait_of
from pytest_uprobe.stdtypes import meaning
from pytest_uprobe.values import BadUtf8

from .test_values import event_data

U32 = RustType("u32", "int", 4)
WORD = RustType("usize", "int", 8)
ADDRESS = RustType("*const T", "address", 8)


def words(*values: int) -> bytes:
    return b"".join(v.to_bytes(8, "little") for v in values)


def u32s(*values: int) -> bytes:
    return b"".join(v.to_bytes(4, "little") for v in values)


DEQUE = RustType(
    "VecDeque<u32>", "deque", 32, std="vecdeque", item=U32,
    fields=(Field("ptr", 0, ADDRESS), Field("cap", 8, WORD), Field("head", 16, WORD),
            Field("len", 24, WORD)),
)  # fmt: skip


def test_a_vecdeque_reads_in_logical_order_around_its_ring():
    raw = words(0x5000, 8, 5, 5)  # ptr, cap 8, head 5, len 5: slots 5, 6, 7, 0, 1
    copies = {(0, "*"): Copy(0, SOURCE, 32, 4, True)}
    data = event_data(u32s(7, 8, 0, 0, 0, 105, 106, 107))
    assert decode_value(DEQUE, raw, Reader(data, 0, copies), (0,)) == [105, 106, 107, 7, 8]
    cut = {(0, "*"): Copy(0, SOURCE, 24, 4, True)}  # 6 slots copied: slot 6 and on missing
    data = event_data(u32s(7, 8, 0, 0, 0, 105))
    assert decode_value(DEQUE, raw, Reader(data, 0, cut), (0,)) == Truncated([105], 5)
    bad = decode_value(DEQUE, words(0x5000, 4, 5, 1), Reader(data, 0, copies), (0,))
    assert isinstance(bad, Unavailable) and "not a valid VecDeque" in bad.reason


TABLE = RustType(
    "RawTable<(u32, u32)>", "table", 32,
    item=RustType("(u32, u32)", "tuple", 8, fields=(Field("0", 0, U32), Field("1", 4, U32))),
    fields=(Field("ptr", 0, ADDRESS), Field("len", 8, WORD), Field("items", 16, WORD)),
)  # fmt: skip


def test_a_hashbrown_table_reads_the_full_buckets_below_its_control_bytes():
    raw = words(0x9000, 3, 2, 0)  # ctrl, bucket_mask 3 (4 buckets), 2 items
    copies = {
        (0, "ctrl"): Copy(0, SOURCE, 8, 1, True, PLUS_ONE),
        (0, "*"): Copy(1, 2 * SOURCE, 64, 8, True, PLUS_ONE | BELOW),
    }
    ctrl = bytes([0xFF, 0x12, 0x80, 0x34])  # bucket 1 and 3 full (top bit clear)
    # the buckets sit below ctrl: bucket 3 first in memory, bucket 0 last
    buckets = u32s(30, 300) + u32s(0, 0) + u32s(10, 100) + u32s(0, 0)
    data = event_data(ctrl, bytes(64 - 32) + buckets)  # BELOW: the bytes end the copy's room
    assert decode_value(TABLE, raw, Reader(data, 0, copies), (0,)) == [(10, 100), (30, 300)]
    wrong = decode_value(TABLE, words(0x9000, 3, 3, 0), Reader(data, 0, copies), (0,))
    assert isinstance(wrong, Unavailable) and "holds 3 entries" in wrong.reason


def test_maps_and_sets_from_their_entries():
    hashmap = RustType("HashMap<u32, u32>", "struct", 48, std="hashmap")
    base = Struct("HashMap", {"hash_builder": None, "table": [(1, 2), (3, 4)]})
    assert meaning(hashmap, Struct("HashMap", {"base": base})) == {1: 2, 3: 4}
    cut = Struct("HashMap", {"hash_builder": None, "table": Truncated([(1, 2)], 5)})
    assert meaning(hashmap, Struct("HashMap", {"base": cut})) == Truncated({1: 2}, 5)
    unhashable = Struct("HashMap", {"hash_builder": None, "table": [([1], 2)]})
    assert meaning(hashmap, Struct("HashMap", {"base": unhashable})) == [([1], 2)]
    lost = Struct("HashMap", {"hash_builder": None, "table": [(Unavailable("gone"), 2)]})
    found = meaning(hashmap, Struct("HashMap", {"base": lost}))
    assert isinstance(found, Unavailable) and "a key could not be read: gone" in found.reason
    btreeset = RustType("BTreeSet<i32>", "struct", 24, std="btreeset")
    assert meaning(btreeset, Struct("BTreeSet", {"map": {3: None, -1: None}})) == {3, -1}


def test_containers_equal_what_they_hold_and_keep_their_state():
    rc = RustType("Rc<u32>", "pointer", 8, std="rc")
    inner = Struct("RcInner", {"strong": 2, "weak": 1, "value": 41})
    shared = meaning(rc, inner)
    assert isinstance(shared, Inside) and shared == 41 and shared != 40
    assert [shared] == [41] and 41 in [shared]  # from either side
    assert (shared.strong, shared.weak) == (2, 1) and repr(shared) == "Rc(41, strong=2, weak=1)"
    rwlock = RustType("RwLock<i64>", "struct", 24, std="rwlock")
    futex = Struct("RwLock", {"state": Struct("AtomicU32", {"v": (1 << 30) - 1}),
                              "writer_notify": Struct("AtomicU32", {"v": 0})})  # fmt: skip
    lock = meaning(rwlock, Struct("RwLock", {"inner": futex, "poison": Struct("Flag", {
        "failed": Struct("AtomicBool", {"v": 1})}), "data": -5}))  # fmt: skip
    assert lock == -5 and lock.write_locked and lock.readers == 0 and lock.poisoned is True


def test_a_duration_keeps_its_nanoseconds():
    duration = RustType("Duration", "struct", 16, std="duration")
    exact = meaning(duration, Struct("Duration", {"secs": 3, "nanos": (500_000_000,)}))
    assert isinstance(exact, Duration) and exact == timedelta(seconds=3.5)
    assert exact.nanoseconds == 3_500_000_000
    fine = meaning(duration, Struct("Duration", {"secs": 0, "nanos": (1_234_567,)}))
    assert fine.nanoseconds == 1_234_567 and fine != timedelta(microseconds=1234)
    assert fine == Duration(0, 1_234_567)
    assert repr(fine) == "Duration(seconds=0, nanoseconds=1234567)"
    wrong = meaning(duration, Struct("Duration", {"secs": 0, "nanos": (10**9,)}))
    assert isinstance(wrong, Unavailable)


def test_paths_and_byte_strings():
    path = RustType("PathBuf", "string", 24, std="path")
    assert meaning(path, "/tmp/x") == PurePosixPath("/tmp/x")
    odd = meaning(path, BadUtf8(b"/tmp/\xff"))
    assert isinstance(odd, PurePosixPath) and bytes(odd) == b"/tmp/\xff"
    assert meaning(path, Truncated("/ho", 9)) == Truncated("/ho", 9)


def test_the_trait_of_a_trait_object_type_name():
    assert _trait_of("&dyn a::Scorer") == "a::Scorer"
    assert _trait_of("alloc::boxed::Box<dyn a::Scorer, alloc::alloc::Global>") == "a::Scorer"
    assert _trait_of("&(dyn a::T<u8, u16> + core::marker::Send)") == "a::T<u8, u16>"
    assert _trait_of("&u8") is None


def test_a_set_of_zero_sized_values_needs_no_copy():
    unit_table = RustType(
        "RawTable<((), ())>", "table", 32, item=RustType("((), ())", "tuple", 0),
        fields=(Field("ptr", 0, ADDRESS), Field("len", 8, WORD), Field("items", 16, WORD)),
    )  # fmt: skip
    found = decode_value(unit_table, words(0x9000, 0, 1, 0), Reader(event_data(), 0, {}), (0,))
    assert found == [()]


def test_inside_copies_and_pickles():
    import copy
    import pickle

    shared = Inside([1, 2], "Rc", strong=2, weak=1)
    for again in (copy.deepcopy(shared), pickle.loads(pickle.dumps(shared))):  # noqa: S301
        assert again == [1, 2] and again.strong == 2 and again.container == "Rc"


def test_inside_iterates_measures_and_orders_as_its_value():
    """A fifth user's `set(e.seen)` (a RefCell<HashSet<String>>) raised "'set' object is
    not subscriptable", and sorted() of Mutex values "'<' not supported"."""
    seen = Inside({"a", "b"}, "RefCell", borrow=0)
    assert set(seen) == {"a", "b"} and len(seen) == 2 and "a" in seen and "c" not in seen
    totals = [Inside(3, "Mutex", locked=False), Inside(1, "Mutex", locked=False), Inside(2, "Rc")]
    assert sorted(totals) == [1, 2, 3] and max(totals) == 3 and totals[0] > 2 >= totals[1]
    assert float(Inside(2.5, "Arc")) == 2.5 and int(Inside(7, "Rc")) == 7
    assert not Inside([], "Rc") and Inside([0], "Rc")
    assert list(Inside([1, 2], "Rc")) == [1, 2] and Inside([1, 2], "Rc")[1] == 2
