"""The Python shapes of decoded Rust values, and the value that stands for what could not be read.

Scalars, strings, lists, tuples and None are plain Python values. Rust structs become
`Struct`, enums other than Option become `Variant`, a string or list cut at the cap becomes
`Truncated`, bytes that are not UTF-8 where a `str` was expected become `BadUtf8`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any


class Unavailable:
    """A value the probe could not read, with the reason why.

    It equals no real value (not even another Unavailable), so an assertion that
    expects a number fails and the failure text shows the reason.
    """

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"Unavailable({self.reason!r})"

    def __eq__(self, other: Any) -> bool:
        return False

    def __ne__(self, other: Any) -> bool:
        return True

    __hash__ = object.__hash__


class Struct:
    """A Rust struct: fields by attribute (`p.x`) or by name or position (`p["x"]`, `p[0]`).

    Equal to a Struct of the same name and fields, to a dict of its fields
    (`p == {"x": 1, "y": 2}`), and, for a tuple struct, to a tuple of its fields.
    """

    __slots__ = ("_name", "_fields", "_tuple_like")

    def __init__(self, name: str, fields: Mapping[str, Any], tuple_like: bool = False) -> None:
        self._name = name
        self._fields = dict(fields)
        self._tuple_like = tuple_like

    @property
    def type_name(self) -> str:
        return self._name

    @property
    def fields(self) -> dict[str, Any]:
        return dict(self._fields)

    @property
    def tuple_like(self) -> bool:
        """A tuple struct (`struct Meters(u32)`): its fields are positional."""
        return self._tuple_like

    def __getattr__(self, name: str) -> Any:
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(f"{self._name} has no field {name!r}") from None

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, int):
            return list(self._fields.values())[key]
        return self._fields[key]

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, Struct):
            return self._name == other._name and self._fields == other._fields
        if isinstance(other, Mapping):
            return self._fields == dict(other)
        if isinstance(other, tuple) and self._tuple_like:
            return tuple(self._fields.values()) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if self._tuple_like:
            return f"{self._name}({', '.join(repr(v) for v in self._fields.values())})"
        inner = ", ".join(f"{k}={v!r}" for k, v in self._fields.items())
        return f"{self._name}({inner})"


class Variant:
    """A value of a Rust enum other than Option: the variant's `name` and its `value`
    (None for a unit variant, the field for a one-field tuple variant, a tuple for more,
    a Struct for a struct-like variant).

    `Variant("Ok", 5)` equals `Ok(5)`; a unit variant also equals its name as a str.
    """

    __slots__ = ("name", "value", "enum")

    def __init__(self, name: str, value: Any = None, enum: str | None = None) -> None:
        self.name = name
        self.value = value
        self.enum = enum  # the enum's type name, informative only

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, Variant):
            return self.name == other.name and self.value == other.value
        if isinstance(other, str):
            return self.value is None and self.name == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if self.value is None:
            return f"Variant({self.name!r})"
        return f"Variant({self.name!r}, {self.value!r})"


class Truncated:
    """A string or list longer than the cap (`max_string` bytes, `max_elements` elements):
    the `prefix` that was copied and the true `length` (bytes or elements). It equals only
    a Truncated with the same prefix and length: never the full value it stands for."""

    __slots__ = ("prefix", "length")

    def __init__(self, prefix: Any, length: int) -> None:
        self.prefix = prefix
        self.length = length

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, Truncated):
            return self.prefix == other.prefix and self.length == other.length
        return False

    def __ne__(self, other: Any) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Truncated({self.prefix!r}, length={self.length})"


class BadUtf8(str):
    """A `&str` or `String` whose bytes are not UTF-8 (only unsafe code makes one): the text
    with each invalid byte shown as `\\xNN`, and the bytes themselves in `.raw`."""

    raw: bytes

    def __new__(cls, raw: bytes) -> BadUtf8:
        text = super().__new__(cls, raw.decode("utf-8", "backslashreplace"))
        text.raw = raw
        return text

    def __repr__(self) -> str:
        return f"BadUtf8({self.raw!r})"


class Inside:
    """The value inside an Rc, Arc, RefCell, Mutex or RwLock, with the container's state.

    It equals what it holds (`Inside == 41` when the Rc holds 41), so assertions read as
    they would on the value; `.value` is the value itself, `.state` the container's state
    (`strong`/`weak` counts of Rc and Arc, `borrow` of RefCell: 0 when not borrowed, the
    number of shared borrows, or -1 while borrowed mutably; `locked` and `poisoned` of a
    Mutex, `readers`, `write_locked` and `poisoned` of an RwLock), also as attributes
    (`rc.strong`); other attributes and items are the value's (`rc.name`, `rc[0]`)."""

    __slots__ = ("value", "container", "state")

    def __init__(self, value: Any, container: str, **state: Any) -> None:
        self.value = value
        self.container = container
        self.state = state

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in Inside.__slots__:
            raise AttributeError(name)  # (copy and pickle look for these before __init__)
        if name in self.state:
            return self.state[name]
        return getattr(self.value, name)

    def __getitem__(self, key: Any) -> Any:
        return self.value[key]

    # What the value does, the Inside does: `set(rc)`, `len(cell)`, `x in rc`, `sorted()` of
    # Mutex values, `float(rc)`. (Without __iter__, iteration would fall back to indexing
    # with 0, 1, ... through __getitem__: a set inside raised "not subscriptable".)
    def __iter__(self) -> Any:
        return iter(self.value)

    def __len__(self) -> int:
        return len(self.value)

    def __contains__(self, item: Any) -> bool:
        return item in self.value

    def __bool__(self) -> bool:
        return bool(self.value)

    def __int__(self) -> int:
        return int(self.value)

    def __float__(self) -> float:
        return float(self.value)

    def __lt__(self, other: Any) -> Any:
        return self.value < _unwrapped(other)

    def __le__(self, other: Any) -> Any:
        return self.value <= _unwrapped(other)

    def __gt__(self, other: Any) -> Any:
        return self.value > _unwrapped(other)

    def __ge__(self, other: Any) -> Any:
        return self.value >= _unwrapped(other)

    def __eq__(self, other: Any) -> bool:
        return bool(self.value == _unwrapped(other))

    def __ne__(self, other: Any) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        state = "".join(f", {k}={v!r}" for k, v in self.state.items())
        return f"{self.container}({self.value!r}{state})"


def _unwrapped(value: Any) -> Any:
    return value.value if isinstance(value, Inside) else value


class Missing:
    """A value that is not there, and a known state rather than an unknown one: a `Weak`
    whose value was dropped (`Missing("dropped", strong=0, weak=1)`), one made by
    `Weak::new()` that never had one (`Missing("dangling")`), a `OnceCell`/`OnceLock` not
    set yet (`Missing("uninitialised")`). It equals a Missing of the same kind, and its
    kind as a string (`w == "dropped"`); never None, which is a value (an Option's)."""

    __slots__ = ("kind", "state")

    def __init__(self, kind: str, **state: Any) -> None:
        self.kind = kind
        self.state = state

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in Missing.__slots__:
            raise AttributeError(name)
        try:
            return self.state[name]
        except KeyError:
            raise AttributeError(name) from None

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, Missing):
            return self.kind == other.kind
        return isinstance(other, str) and other == self.kind

    def __ne__(self, other: Any) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(("Missing", self.kind))

    def __repr__(self) -> str:
        state = "".join(f", {k}={v!r}" for k, v in self.state.items())
        return f"Missing({self.kind!r}{state})"


class Duration(timedelta):
    """A `std::time::Duration`: a `datetime.timedelta` that keeps the nanoseconds
    (`.nanoseconds`, the whole duration in ns), which timedelta's microseconds cannot.

    It equals another Duration of the same nanoseconds, and a timedelta only when it is a
    whole number of microseconds (1.5 us never equals the timedelta of 1 us)."""

    nanoseconds: int

    def __new__(cls, seconds: int, nanos: int) -> Duration:
        total = seconds * 10**9 + nanos
        made = super().__new__(cls, seconds=seconds, microseconds=nanos // 1000)
        made.nanoseconds = total
        return made

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, Duration):
            return self.nanoseconds == other.nanoseconds
        if isinstance(other, timedelta):
            return self.nanoseconds % 1000 == 0 and timedelta.__eq__(self, other)
        return NotImplemented

    def __ne__(self, other: Any) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = timedelta.__hash__

    def __repr__(self) -> str:
        seconds, nanos = divmod(self.nanoseconds, 10**9)
        return f"Duration(seconds={seconds}, nanoseconds={nanos})"
