"""std types as what a Rust programmer means by them, not as their layout.

dwarf/types.py recognises the std types (by their path in std's own modules, so a user's
`Duration` stays a struct) and tags each RustType with `std`; decode.py decodes the layout
as usual and hands the result here. Where a part could not be read, the whole value says so
(`Unavailable`): a map never silently loses an entry, a path is never a guess.

| tag | Rust | Python |
|---|---|---|
| path | &Path, PathBuf | pathlib.PurePosixPath (bytes not UTF-8 kept as surrogates) |
| os | &OsStr, OsString | str (BadUtf8 when not UTF-8) |
| cstr | &CStr, CString | str without the nul (BadUtf8 when not UTF-8) |
| rc, arc | Rc<T>, Arc<T> | Inside(value, strong=, weak=) (Rc<dyn T> too: decode.py |
| | | finds the value in its RcInner by the vtable) |
| cell, unsafecell | Cell<T>, UnsafeCell<T> | the value |
| refcell | RefCell<T> | Inside(value, borrow=) |
| mutex, rwlock | Mutex<T>, RwLock<T> | Inside(value, locked= or readers=, write_locked=; |
| | | poisoned=) |
| nonzero | NonZero<T> (NonZeroU32, ...) | int |
| duration | Duration | values.Duration (a datetime.timedelta keeping nanoseconds) |
| vecdeque | VecDeque<T> | list, in logical order (decode.py) |
| hashmap, hashset | HashMap, HashSet | dict, set, in bucket order (a list of pairs, or |
| | | of keys, where a key is unhashable) |
| btreemap, btreeset | BTreeMap, BTreeSet | dict, set (in order) |
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from .values import BadUtf8, Duration, Inside, Missing, Struct, Truncated, Unavailable, Variant

if TYPE_CHECKING:
    from .dwarf.types import RustType

# The futex RwLock's state word (std/src/sys/sync/rwlock/futex.rs): readers count in the
# low 30 bits, all of them set while write-locked.
_RWLOCK_MASK = (1 << 30) - 1


def meaning(value: RustType, decoded: Any) -> Any:
    """What `decoded`, the layout of a value of std type `value`, means."""
    if isinstance(decoded, Unavailable):
        return decoded
    try:
        return _MEANINGS[value.std](decoded)
    except _Unexpected as unexpected:
        return Unavailable(f"{value.name} is laid out in a way not recognised: {unexpected}")


class _Unexpected(Exception):
    pass


def _field(decoded: Any, name: str) -> Any:
    if not isinstance(decoded, Struct) or name not in decoded.fields:
        raise _Unexpected(f"no field {name!r} in {decoded!r}")
    return decoded.fields[name]


def _scalar(decoded: Any) -> Any:
    """The one scalar inside newtypes (AtomicU32(v=UnsafeCell(5)) -> 5)."""
    for _ in range(8):
        if isinstance(decoded, (int, bool, Unavailable)):
            return decoded
        if isinstance(decoded, Struct) and len(decoded.fields) == 1:
            decoded = next(iter(decoded.fields.values()))
            continue
        if isinstance(decoded, tuple) and len(decoded) == 1:
            decoded = decoded[0]
            continue
        break
    raise _Unexpected(f"{decoded!r} is not one number")


def _path(text: Any) -> Any:
    if isinstance(text, Truncated):
        return text  # a cut path is no path: its text prefix and true length
    if isinstance(text, BadUtf8):
        return PurePosixPath(os.fsdecode(text.raw))
    return PurePosixPath(text)


def _text(text: Any) -> Any:
    return text


def _shared(kind: str) -> Any:
    def shared(inner: Any) -> Any:
        value = _field(inner, "value" if "value" in inner.fields else "data")
        return Inside(value, kind, strong=_scalar(_field(inner, "strong")),
                      weak=_scalar(_field(inner, "weak")))  # fmt: skip

    return shared


def _cell(decoded: Any) -> Any:
    return _field(decoded, "value")


def _refcell(decoded: Any) -> Any:
    return Inside(_field(decoded, "value"), "RefCell", borrow=_scalar(_field(decoded, "borrow")))


def _poisoned(decoded: Any) -> Any:
    flag = _scalar(_field(decoded, "poison"))
    return flag if isinstance(flag, Unavailable) else bool(flag)


def _mutex(decoded: Any) -> Any:
    state = _scalar(_field(decoded, "inner"))
    locked = state if isinstance(state, Unavailable) else state != 0
    return Inside(_field(decoded, "data"), "Mutex", locked=locked, poisoned=_poisoned(decoded))


def _rwlock(decoded: Any) -> Any:
    inner = _field(decoded, "inner")
    state = _scalar(_field(inner, "state"))
    if isinstance(state, Unavailable):
        readers: Any = state
        write_locked: Any = state
    else:
        held = state & _RWLOCK_MASK
        write_locked = held == _RWLOCK_MASK
        readers = 0 if write_locked else held
    return Inside(_field(decoded, "data"), "RwLock", readers=readers,
                  write_locked=write_locked, poisoned=_poisoned(decoded))  # fmt: skip


def _nonzero(decoded: Any) -> Any:
    number = _scalar(decoded)
    if number == 0:
        return Unavailable("a NonZero that holds 0 (uninitialised memory?)")
    return number


def _duration(decoded: Any) -> Any:
    secs = _scalar(_field(decoded, "secs"))
    nanos = _scalar(_field(decoded, "nanos"))
    for part in (secs, nanos):
        if isinstance(part, Unavailable):
            return part
    if not 0 <= nanos < 10**9:
        return Unavailable(f"a Duration with {nanos} nanoseconds (not below one second)")
    return Duration(secs, nanos)


def _entries(decoded: Any) -> tuple[list[Any], int | None]:
    """The entries of a table or tree, and the true count when they were cut."""
    if isinstance(decoded, Truncated):
        return list(decoded.prefix), decoded.length
    if not isinstance(decoded, list):
        raise _Unexpected(f"{decoded!r} is not a list of entries")
    return decoded, None


def _mapping(pairs: list[Any], length: int | None) -> Any:
    for pair in pairs:
        if isinstance(pair, Unavailable):
            return pair
        if isinstance(pair[0], Unavailable):  # no dict can hold it truthfully
            return Unavailable(f"a key could not be read: {pair[0].reason}")
    try:
        made: Any = dict(pairs)
    except TypeError:  # an unhashable key (a struct, a list): the pairs, in order
        made = [tuple(p) for p in pairs]
    return made if length is None else Truncated(made, length)


def _keys(keys: list[Any], length: int | None) -> Any:
    for key in keys:
        if isinstance(key, Unavailable):
            return Unavailable(f"a key could not be read: {key.reason}")
    try:
        made: Any = set(keys)
    except TypeError:
        made = keys
    return made if length is None else Truncated(made, length)


def _hashmap(decoded: Any) -> Any:
    table = _field(_field(decoded, "base"), "table")
    if isinstance(table, Unavailable):
        return table
    return _mapping(*_entries(table))


def _hashset(decoded: Any) -> Any:
    table = _field(_field(_field(decoded, "base"), "map"), "table")
    if isinstance(table, Unavailable):
        return table
    pairs, length = _entries(table)
    return _keys([p[0] if isinstance(p, tuple) else p for p in pairs], length)


def _btreemap(decoded: Any) -> Any:
    return _mapping(*_entries(decoded))


def _btreeset(decoded: Any) -> Any:
    inner = _field(decoded, "map")
    if isinstance(inner, Unavailable):
        return inner
    if isinstance(inner, Truncated):
        return _keys(list(inner.prefix), inner.length)
    if isinstance(inner, list):  # pairs whose key was unhashable
        return [p[0] for p in inner]
    return _keys(list(inner), None)


def _vecdeque(decoded: Any) -> Any:
    return decoded


def _weak(inner: Any) -> Any:
    """A Weak: the value while an Rc/Arc still holds it, else Missing("dropped")."""
    if isinstance(inner, Missing):
        return inner  # dangling (Weak::new)
    strong = _scalar(_field(inner, "strong"))
    weak = _scalar(_field(inner, "weak"))
    if isinstance(strong, Unavailable):
        return strong
    if strong == 0:
        return Missing("dropped", strong=0, weak=weak)
    value = _field(inner, "value" if "value" in inner.fields else "data")
    return Inside(value, "Weak", strong=strong, weak=weak)


def _pin(decoded: Any) -> Any:
    return next(iter(decoded.fields.values()))


def _oncecell(decoded: Any) -> Any:
    inner = _field(decoded, "inner")
    if inner is None:
        return Missing("uninitialised")
    if isinstance(inner, Variant) and inner.name == "Some":  # Some(None) and the like
        return inner.value
    return inner


# std's futex Once (std/src/sys/sync/once/futex.rs): the low two bits are the state,
# COMPLETE being 0 (INCOMPLETE 3, POISONED 2, RUNNING 1).
_ONCE_STATE = 0b11


def _oncelock(decoded: Any) -> Any:
    state = _scalar(_field(decoded, "state_and_queued"))
    if isinstance(state, Unavailable):
        return state
    if state & _ONCE_STATE != 0:
        return Missing("uninitialised")
    return _field(decoded, "value")


def _cow(decoded: Any) -> Any:
    if not isinstance(decoded, Variant) or decoded.name not in ("Borrowed", "Owned"):
        raise _Unexpected(f"{decoded!r} is neither Borrowed nor Owned")
    return Inside(decoded.value, "Cow", owned=decoded.name == "Owned")


_MEANINGS = {
    "newtype": _text,  # a std newtype known not to be #[repr(C)]: as it is
    "path": _path,
    "os": _text,
    "cstr": _text,
    "rc": _shared("Rc"),
    "arc": _shared("Arc"),
    "cell": _cell,
    "unsafecell": _cell,
    "refcell": _refcell,
    "mutex": _mutex,
    "rwlock": _rwlock,
    "nonzero": _nonzero,
    "duration": _duration,
    "vecdeque": _vecdeque,
    "hashmap": _hashmap,
    "hashset": _hashset,
    "btreemap": _btreemap,
    "btreeset": _btreeset,
    "weak": _weak,
    "pin": _pin,
    "oncecell": _oncecell,
    "oncelock": _oncelock,
    "cow": _cow,
    "rcdst": _text,  # decode.py made it an Inside with the counts
    "arcdst": _text,
}
