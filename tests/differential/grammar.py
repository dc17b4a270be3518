"""The type grammar of the differential harness: random Rust types, the Rust code that makes
random values of them, the reader of their `{:?}` text, and the comparison of a decoded value
with the printed one.

Each `Ty` knows its Rust spelling (`rust`), a Rust expression that builds a random value from
the generated program's PRNG (`make`), how to read its Debug text back (`read`), and how to
compare a value pytest-uprobe decoded with the one read (`compare`). The comparison is
type-directed, so a decoded value of the wrong shape is caught as surely as a wrong number.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any

from pytest_uprobe import Duration, Inside, Struct, Truncated, Unavailable, Variant

# Outcomes of one comparison.
OK, UNAVAILABLE, WRONG = "ok", "unavailable", "wrong"

# Text the program picks its strings from: empty, ASCII, multi-byte, and longer than the
# default max_string (256 bytes), so truncation is exercised.
STRINGS = ["", "a", "hello", "naïve café", "中文字", "🦀 crab", "x" * 40, "long:" + "ab" * 150]
CHARS = ["a", "Z", "0", " ", "é", "中", "🦀", "~"]


class Result:
    """The outcome of comparing one value: OK, UNAVAILABLE (with the reasons) or WRONG (with
    what differed)."""

    def __init__(self) -> None:
        self.wrong: list[str] = []
        self.unavailable: list[str] = []

    @property
    def status(self) -> str:
        return WRONG if self.wrong else UNAVAILABLE if self.unavailable else OK


class Reader:
    """A cursor over one line of Debug text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def space(self) -> None:
        while self.at < len(self.text) and self.text[self.at] == " ":
            self.at += 1

    def peek(self, token: str) -> bool:
        self.space()
        return self.text.startswith(token, self.at)

    def expect(self, token: str) -> None:
        self.space()
        if not self.text.startswith(token, self.at):
            raise ValueError(f"expected {token!r} at {self.text[self.at : self.at + 40]!r}")
        self.at += len(token)

    def word(self) -> str:
        self.space()
        start = self.at
        while self.at < len(self.text) and (
            self.text[self.at].isalnum() or self.text[self.at] in "_.-+"
        ):
            self.at += 1
        return self.text[start : self.at]

    def quoted(self, quote: str) -> str:
        self.expect(quote)
        out = []
        while self.text[self.at] != quote:
            c = self.text[self.at]
            self.at += 1
            if c == "\\":
                e = self.text[self.at]
                self.at += 1
                if e == "u":
                    end = self.text.index("}", self.at)
                    c = chr(int(self.text[self.at + 1 : end], 16))
                    self.at = end + 1
                else:
                    c = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(e, e)
            out.append(c)
        self.at += 1
        return "".join(out)

    def items(self, open_: str, close: str, read: Any) -> list[Any]:
        self.expect(open_)
        found = []
        while not self.peek(close):
            found.append(read(self))
            if not self.peek(close):
                self.expect(",")
        self.expect(close)
        return found


@dataclass(eq=False)
class Ty:
    """One Rust type of the grammar."""

    family: str = field(init=False, default="?")

    @property
    def rust(self) -> str:
        raise NotImplementedError

    def make(self) -> str:
        raise NotImplementedError

    def read(self, r: Reader) -> Any:
        raise NotImplementedError

    def compare(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        raise NotImplementedError

    def definitions(self) -> Iterator[str]:
        """Rust items this type needs (struct and enum definitions), inner ones first."""
        return iter(())

    @property
    def copy(self) -> bool:
        return False

    @property
    def zero_sized(self) -> bool:
        """rustc gives a function returning a zero-sized value no DWARF return type, so
        pytest-uprobe shows such a return value as None, like ()."""
        if isinstance(self, Unit):
            return True
        if isinstance(self, StructTy):
            return all(t.zero_sized for _, t in self.fields)
        if isinstance(self, Seq) and self.kind == "array":
            return self.count == 0 or self.element.zero_sized
        if isinstance(self, Tuple):
            return all(t.zero_sized for t in self.items)
        if isinstance(self, EnumTy):
            return len(self.variants) == 1 and all(t.zero_sized for _, t in self.variants[0][1])
        return False

    def check(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        """Compare, after the cases every type shares: Unavailable, Truncated."""
        if isinstance(decoded, Unavailable):
            result.unavailable.append(f"{where}: {decoded.reason}")
            return
        self.compare(decoded, expected, result, where)


def mismatch(result: Result, where: str, decoded: Any, expected: Any) -> None:
    result.wrong.append(f"{where}: decoded {decoded!r}, printed {expected!r}")


# -- scalars ------------------------------------------------------------------------------------


@dataclass(eq=False)
class Int(Ty):
    name: str

    def __post_init__(self) -> None:
        self.family = "i128/u128" if self.name.endswith("128") else "integers"

    @property
    def rust(self) -> str:
        return self.name

    @property
    def copy(self) -> bool:
        return True

    def make(self) -> str:
        if self.name.endswith("128"):
            return f"(((rnd() as u128) << 64 | rnd() as u128) as {self.name})"
        return f"(rnd() as {self.name})"

    def read(self, r: Reader) -> Any:
        return int(r.word())

    def compare(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        if type(decoded) is not int or decoded != expected:
            mismatch(result, where, decoded, expected)


@dataclass(eq=False)
class NonZero(Ty):
    """std::num::NonZeroU32: Debug prints the number; pytest-uprobe may show the wrapper."""

    def __post_init__(self) -> None:
        self.family = "integers"

    @property
    def rust(self) -> str:
        return "std::num::NonZeroU32"

    @property
    def copy(self) -> bool:
        return True

    def make(self) -> str:
        return "std::num::NonZeroU32::new((rnd() as u32) | 1).unwrap()"

    def read(self, r: Reader) -> Any:
        return int(r.word())

    def compare(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        while isinstance(decoded, Struct) and len(decoded.fields) == 1:
            decoded = decoded[0]
        if isinstance(decoded, tuple) and len(decoded) == 1:
            decoded = decoded[0]
        if type(decoded) is not int or decoded != expected:
            mismatch(result, where, decoded, expected)


@dataclass(eq=False)
class Bool(Ty):
    def __post_init__(self) -> None:
        self.family = "bool"

    rust = "bool"  # type: ignore[assignment]

    @property
    def copy(self) -> bool:
        return True

    def make(self) -> str:
        return "(rnd() & 1 == 1)"

    def read(self, r: Reader) -> Any:
        return {"true": True, "false": False}[r.word()]

    def compare(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        if decoded is not expected:
            mismatch(result, where, decoded, expected)


@dataclass(eq=False)
class Char(Ty):
    def __post_init__(self) -> None:
        self.family = "char"

    rust = "char"  # type: ignore[assignment]

    @property
    def copy(self) -> bool:
        return True

    def make(self) -> str:
        return "pick_char()"

    def read(self, r: Reader) -> Any:
        return r.quoted("'")

    def compare(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        if decoded != expected:
            mismatch(result, where, decoded, expected)


@dataclass(eq=False)
class Float(Ty):
    bits: int

    def __post_init__(self) -> None:
        self.family = "f32/f64"

    @property
    def rust(self) -> str:
        return f"f{self.bits}"

    @property
    def copy(self) -> bool:
        return True

    def make(self) -> str:
        # Quarters of small integers: exact in both widths, printed without exponent.
        return f"(((rnd() % 200000) as f{self.bits} - 100000.0) / 4.0)"

    def read(self, r: Reader) -> Any:
        return float(r.word())

    def compare(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        fmt = "<f" if self.bits == 32 else "<d"
        if type(decoded) is not float or struct.pack(fmt, decoded) != struct.pack(fmt, expected):
            mismatch(result, where, decoded, expected)


@dataclass(eq=False)
class Unit(Ty):
    def __post_init__(self) -> None:
        self.family = "unit/zero-sized"

    rust = "()"  # type: ignore[assignment]

    @property
    def copy(self) -> bool:
        return True

    def make(self) -> str:
        return "()"

    def read(self, r: Reader) -> Any:
        r.expect("()")
        return None

    def compare(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        if decoded is not None:
            mismatch(result, where, decoded, expected)


# -- strings and collections ---------------------------------------------------------------------


class Collection(Ty):
    """A type whose decoded value may be cut at a cap (Truncated)."""

    def compare(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        if isinstance(decoded, Truncated):
            if decoded.length != len(self.measure(expected)):
                mismatch(result, where, decoded, expected)
                return
            self.compare_prefix(decoded.prefix, expected, result, where)
            return
        self.compare_whole(decoded, expected, result, where)

    def measure(self, expected: Any) -> Any:
        return expected

    def compare_prefix(self, prefix: Any, expected: Any, result: Result, where: str) -> None:
        raise NotImplementedError

    def compare_whole(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        raise NotImplementedError


@dataclass(eq=False)
class Text(Collection):
    owned: bool

    def __post_init__(self) -> None:
        self.family = "String" if self.owned else "&str"

    @property
    def rust(self) -> str:
        return "String" if self.owned else "&'static str"

    @property
    def copy(self) -> bool:
        return not self.owned

    def make(self) -> str:
        return "pick_str().to_string()" if self.owned else "pick_str()"

    def read(self, r: Reader) -> Any:
        return r.quoted('"')

    def measure(self, expected: Any) -> Any:
        return expected.encode()

    def compare_prefix(self, prefix: Any, expected: Any, result: Result, where: str) -> None:
        if not isinstance(prefix, str) or not expected.startswith(prefix) or not prefix:
            mismatch(result, where, prefix, expected)

    def compare_whole(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        if type(decoded) is not str or decoded != expected:
            mismatch(result, where, decoded, expected)


@dataclass(eq=False)
class Seq(Collection):
    """&[T], Vec<T> or [T; N]."""

    element: Ty
    kind: str  # "slice", "vec", "array"
    count: int = 0  # array length

    def __post_init__(self) -> None:
        self.family = {"slice": "&[T]", "vec": "Vec<T>", "array": "[T; N]"}[self.kind]

    @property
    def rust(self) -> str:
        inner = self.element.rust
        if self.kind == "slice":
            return f"&'static [{inner}]"
        if self.kind == "vec":
            return f"Vec<{inner}>"
        return f"[{inner}; {self.count}]"

    @property
    def copy(self) -> bool:
        return self.kind == "slice" or (self.kind == "array" and self.element.copy)

    def definitions(self) -> Iterator[str]:
        return self.element.definitions()

    def make(self) -> str:
        if self.kind == "array":
            return f"std::array::from_fn::<_, {self.count}, _>(|_| {self.element.make()})"
        vec = (
            f"(0..pick_len()).map(|_| {self.element.make()}).collect::<Vec<{self.element.rust}>>()"
        )
        if self.kind == "vec":
            return vec
        return f"(&*Box::leak({vec}.into_boxed_slice()))"

    def read(self, r: Reader) -> Any:
        return r.items("[", "]", self.element.read)

    def compare_prefix(self, prefix: Any, expected: Any, result: Result, where: str) -> None:
        if not isinstance(prefix, list) or len(prefix) > len(expected):
            mismatch(result, where, prefix, expected)
            return
        for i, (d, e) in enumerate(zip(prefix, expected)):
            self.element.check(d, e, result, f"{where}[{i}]")

    def compare_whole(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        if not isinstance(decoded, list) or len(decoded) != len(expected):
            mismatch(result, where, decoded, expected)
            return
        for i, (d, e) in enumerate(zip(decoded, expected)):
            self.element.check(d, e, result, f"{where}[{i}]")


# -- compounds -----------------------------------------------------------------------------------


@dataclass(eq=False)
class Tuple(Ty):
    items: list[Ty]

    def __post_init__(self) -> None:
        self.family = "tuples"

    @property
    def rust(self) -> str:
        inner = ", ".join(t.rust for t in self.items)
        return f"({inner},)" if len(self.items) == 1 else f"({inner})"

    @property
    def copy(self) -> bool:
        return all(t.copy for t in self.items)

    def definitions(self) -> Iterator[str]:
        for t in self.items:
            yield from t.definitions()

    def make(self) -> str:
        inner = ", ".join(t.make() for t in self.items)
        return f"({inner},)" if len(self.items) == 1 else f"({inner})"

    def read(self, r: Reader) -> Any:
        r.expect("(")
        found = []
        for i, t in enumerate(self.items):
            found.append(t.read(r))
            if i + 1 < len(self.items) or len(self.items) == 1:
                r.expect(",")
        r.expect(")")
        return tuple(found)

    def compare(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        if not isinstance(decoded, tuple) or len(decoded) != len(expected):
            mismatch(result, where, decoded, expected)
            return
        for i, (t, d, e) in enumerate(zip(self.items, decoded, expected)):
            t.check(d, e, result, f"{where}.{i}")


@dataclass(eq=False)
class StructTy(Ty):
    name: str
    fields: list[tuple[str, Ty]]  # names "0", "1", ... for a tuple struct
    repr: str = ""  # "", "C", "packed"
    tuple_like: bool = False

    def __post_init__(self) -> None:
        if not self.fields:
            self.family = "unit/zero-sized"
        else:
            self.family = {
                "": "structs",
                "C": "#[repr(C)] structs",
                "packed": "#[repr(packed)] structs",
            }[self.repr]

    @property
    def rust(self) -> str:
        return self.name

    @property
    def copy(self) -> bool:
        return all(t.copy for _, t in self.fields)

    def definitions(self) -> Iterator[str]:
        for _, t in self.fields:
            yield from t.definitions()
        derives = "Debug, Clone, Copy" if self.copy else "Debug, Clone"
        attrs = f"#[derive({derives})]\n" + (f"#[repr({self.repr})]\n" if self.repr else "")
        if not self.fields:
            yield f"{attrs}pub struct {self.name};"
        elif self.tuple_like:
            inner = ", ".join(f"pub {t.rust}" for _, t in self.fields)
            yield f"{attrs}pub struct {self.name}({inner});"
        else:
            inner = ", ".join(f"pub {n}: {t.rust}" for n, t in self.fields)
            yield f"{attrs}pub struct {self.name} {{ {inner} }}"

    def make(self) -> str:
        if not self.fields:
            return self.name
        if self.tuple_like:
            return f"{self.name}({', '.join(t.make() for _, t in self.fields)})"
        return f"{self.name} {{ {', '.join(f'{n}: {t.make()}' for n, t in self.fields)} }}"

    def read(self, r: Reader) -> Any:
        r.expect(self.name)
        return read_fields(r, self.fields, self.tuple_like)

    def compare(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        if not isinstance(decoded, Struct) or list(decoded.fields) != [n for n, _ in self.fields]:
            mismatch(result, where, decoded, expected)
            return
        for (n, t), e in zip(self.fields, expected):
            t.check(decoded.fields[n], e, result, f"{where}.{n}")


def read_fields(r: Reader, fields: list[tuple[str, Ty]], tuple_like: bool) -> list[Any]:
    if not fields:
        return []
    found = []
    if tuple_like:
        r.expect("(")
        for i, (_, t) in enumerate(fields):
            found.append(t.read(r))
            if i + 1 < len(fields):
                r.expect(",")
        r.expect(")")
        return found
    r.expect("{")
    for i, (n, t) in enumerate(fields):
        r.expect(f"{n}:")
        found.append(t.read(r))
        if i + 1 < len(fields):
            r.expect(",")
    r.expect("}")
    return found


@dataclass(eq=False)
class EnumTy(Ty):
    name: str
    variants: list[tuple[str, list[tuple[str, Ty]], bool]]  # name, fields, tuple-like

    def __post_init__(self) -> None:
        self.family = "enums"

    @property
    def rust(self) -> str:
        return self.name

    @property
    def copy(self) -> bool:
        return all(t.copy for _, fs, _ in self.variants for _, t in fs)

    def definitions(self) -> Iterator[str]:
        for _, fs, _ in self.variants:
            for _, t in fs:
                yield from t.definitions()
        arms = []
        for name, fs, tuple_like in self.variants:
            if not fs:
                arms.append(name)
            elif tuple_like:
                arms.append(f"{name}({', '.join(t.rust for _, t in fs)})")
            else:
                arms.append(f"{name} {{ {', '.join(f'{n}: {t.rust}' for n, t in fs)} }}")
        derives = "Debug, Clone, Copy" if self.copy else "Debug, Clone"
        yield f"#[derive({derives})]\npub enum {self.name} {{ {', '.join(arms)} }}"

    def make(self) -> str:
        arms = []
        for i, (name, fs, tuple_like) in enumerate(self.variants):
            if not fs:
                value = f"{self.name}::{name}"
            elif tuple_like:
                value = f"{self.name}::{name}({', '.join(t.make() for _, t in fs)})"
            else:
                value = f"{self.name}::{name} {{ {', '.join(f'{n}: {t.make()}' for n, t in fs)} }}"
            arms.append(f"{i} => {value}")
        arms[-1] = "_" + arms[-1][len(str(len(arms) - 1)) :]
        return f"(match rnd() % {len(self.variants)} {{ {', '.join(arms)} }})"

    def read(self, r: Reader) -> Any:
        name = r.word()
        for vname, fs, tuple_like in self.variants:
            if vname == name:
                return (name, read_fields(r, fs, tuple_like))
        raise ValueError(f"no variant {name} in {self.name}")

    def compare(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        name, values = expected
        fs, tuple_like = next((fs, tl) for n, fs, tl in self.variants if n == name)
        if not isinstance(decoded, Variant) or decoded.name != name:
            mismatch(result, where, decoded, expected)
            return
        payload = decoded.value
        if not fs:
            if payload is not None:
                mismatch(result, where, decoded, expected)
            return
        if tuple_like and len(fs) == 1:
            fs[0][1].check(payload, values[0], result, f"{where}::{name}.0")
            return
        if tuple_like:
            if not isinstance(payload, tuple) or len(payload) != len(fs):
                mismatch(result, where, decoded, expected)
                return
            parts = list(payload)
        else:
            if not isinstance(payload, Struct) or list(payload.fields) != [n for n, _ in fs]:
                mismatch(result, where, decoded, expected)
                return
            parts = list(payload.fields.values())
        for (n, t), d, e in zip(fs, parts, values):
            t.check(d, e, result, f"{where}::{name}.{n}")


@dataclass(eq=False)
class OptionTy(Ty):
    inner: Ty

    def __post_init__(self) -> None:
        niche = isinstance(self.inner, (Ref, BoxTy, NonZero, Bool, Text, Seq)) and not (
            isinstance(self.inner, Seq) and self.inner.kind == "array"
        )
        self.family = "Option (niche)" if niche else "Option"

    @property
    def rust(self) -> str:
        return f"Option<{self.inner.rust}>"

    @property
    def copy(self) -> bool:
        return self.inner.copy

    def definitions(self) -> Iterator[str]:
        return self.inner.definitions()

    def make(self) -> str:
        return f"(if rnd() % 3 == 0 {{ None }} else {{ Some({self.inner.make()}) }})"

    def read(self, r: Reader) -> Any:
        word = r.word()
        if word == "None":
            return ("None",)
        r.expect("(")
        value = self.inner.read(r)
        r.expect(")")
        return ("Some", value)

    def compare(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        if expected == ("None",):
            if decoded is not None:
                mismatch(result, where, decoded, None)
            return
        if decoded is None:
            mismatch(result, where, decoded, expected)
            return
        inner = self.inner
        while isinstance(inner, (Ref, BoxTy)):
            inner = inner.inner
        if isinstance(inner, (Unit, OptionTy)):
            # The documented form where the payload's type can read as None itself.
            if not isinstance(decoded, Variant) or decoded.name != "Some":
                mismatch(result, where, decoded, expected)
                return
            decoded = decoded.value
        self.inner.check(decoded, expected[1], result, f"{where}?")


@dataclass(eq=False)
class ResultTy(Ty):
    ok: Ty
    err: Ty

    def __post_init__(self) -> None:
        self.family = "Result"

    @property
    def rust(self) -> str:
        return f"Result<{self.ok.rust}, {self.err.rust}>"

    @property
    def copy(self) -> bool:
        return self.ok.copy and self.err.copy

    def definitions(self) -> Iterator[str]:
        yield from self.ok.definitions()
        yield from self.err.definitions()

    def make(self) -> str:
        return f"(if rnd() % 2 == 0 {{ Ok({self.ok.make()}) }} else {{ Err({self.err.make()}) }})"

    def read(self, r: Reader) -> Any:
        word = r.word()
        r.expect("(")
        value = (self.ok if word == "Ok" else self.err).read(r)
        r.expect(")")
        return (word, value)

    def compare(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        name, value = expected
        if not isinstance(decoded, Variant) or decoded.name != name:
            mismatch(result, where, decoded, expected)
            return
        (self.ok if name == "Ok" else self.err).check(
            decoded.value, value, result, f"{where}::{name}"
        )


@dataclass(eq=False)
class BoxTy(Ty):
    inner: Ty

    def __post_init__(self) -> None:
        self.family = "Box<T>"

    @property
    def rust(self) -> str:
        return f"Box<{self.inner.rust}>"

    def definitions(self) -> Iterator[str]:
        return self.inner.definitions()

    def make(self) -> str:
        return f"Box::new({self.inner.make()})"

    def read(self, r: Reader) -> Any:
        return self.inner.read(r)

    def compare(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        self.inner.check(decoded, expected, result, f"*{where}")

    def check(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        if isinstance(decoded, Unavailable):
            result.unavailable.append(f"{where}: {decoded.reason}")
        else:
            self.inner.check(decoded, expected, result, f"*{where}")


@dataclass(eq=False)
class Ref(Ty):
    inner: Ty

    def __post_init__(self) -> None:
        self.family = "&T"

    @property
    def rust(self) -> str:
        return f"&'static {self.inner.rust}"

    @property
    def copy(self) -> bool:
        return True

    def definitions(self) -> Iterator[str]:
        return self.inner.definitions()

    def make(self) -> str:
        return f"(&*Box::leak(Box::new({self.inner.make()})))"

    def read(self, r: Reader) -> Any:
        return self.inner.read(r)

    def compare(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        self.inner.check(decoded, expected, result, f"*{where}")

    def check(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        if isinstance(decoded, Unavailable):
            result.unavailable.append(f"{where}: {decoded.reason}")
        else:
            self.inner.check(decoded, expected, result, f"*{where}")


# -- std types, decoded as what they mean (docs/value-types.md) ----------------------------------


@dataclass(eq=False)
class PathTy(Text):
    """std::path::PathBuf: Debug prints the path as a string; decoded, a PurePosixPath."""

    owned: bool = True

    def __post_init__(self) -> None:
        self.family = "PathBuf"

    @property
    def rust(self) -> str:
        return "std::path::PathBuf"

    @property
    def copy(self) -> bool:
        return False

    def make(self) -> str:
        return "std::path::PathBuf::from(pick_str())"

    def compare_whole(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        if not isinstance(decoded, PurePosixPath) or decoded != PurePosixPath(expected):
            mismatch(result, where, decoded, expected)


@dataclass(eq=False)
class DequeTy(Seq):
    """std::collections::VecDeque<T>, rotated so that its ring wraps around."""

    kind: str = "vec"

    def __post_init__(self) -> None:
        self.family = "VecDeque<T>"

    @property
    def rust(self) -> str:
        return f"std::collections::VecDeque<{self.element.rust}>"

    @property
    def copy(self) -> bool:
        return False

    def make(self) -> str:
        element = self.element.rust
        return (
            f"{{ let mut d: std::collections::VecDeque<{element}> = (0..pick_len())"
            f".map(|_| {self.element.make()}).collect(); let k = rnd() as usize % "
            "(d.len() + 1); d.rotate_left(k); if rnd() % 2 == 0 { d.pop_front(); } d }"
        )


@dataclass(eq=False)
class MapTy(Collection):
    """std::collections::BTreeMap<u16, T> or HashMap<u16, T>: Debug prints `{k: v, ...}`
    in iteration order; decoded, a dict in that order."""

    value: Ty
    sorted_: bool

    def __post_init__(self) -> None:
        self.family = "BTreeMap" if self.sorted_ else "HashMap"

    @property
    def rust(self) -> str:
        kind = "BTreeMap" if self.sorted_ else "HashMap"
        return f"std::collections::{kind}<u16, {self.value.rust}>"

    def definitions(self) -> Iterator[str]:
        return self.value.definitions()

    def make(self) -> str:
        return (
            f"(0..pick_len()).map(|_| (rnd() as u16, {self.value.make()})).collect::<{self.rust}>()"
        )

    def read(self, r: Reader) -> Any:
        def pair(r: Reader) -> tuple[int, Any]:
            key = int(r.word())
            r.expect(":")
            return key, self.value.read(r)

        return r.items("{", "}", pair)

    def compare_prefix(self, prefix: Any, expected: Any, result: Result, where: str) -> None:
        if not isinstance(prefix, dict) or list(prefix) != [k for k, _ in expected][: len(prefix)]:
            mismatch(result, where, prefix, expected)
            return
        for key, e in expected[: len(prefix)]:
            self.value.check(prefix[key], e, result, f"{where}[{key}]")

    def compare_whole(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        if not isinstance(decoded, dict) or list(decoded) != [k for k, _ in expected]:
            mismatch(result, where, decoded, expected)
            return
        for key, e in expected:
            self.value.check(decoded[key], e, result, f"{where}[{key}]")


@dataclass(eq=False)
class RcTy(Ty):
    """std::rc::Rc<T>: Debug prints the value; decoded, an Inside equal to it."""

    inner: Ty

    def __post_init__(self) -> None:
        self.family = "Rc<T>"

    @property
    def rust(self) -> str:
        return f"std::rc::Rc<{self.inner.rust}>"

    def definitions(self) -> Iterator[str]:
        return self.inner.definitions()

    def make(self) -> str:
        return f"std::rc::Rc::new({self.inner.make()})"

    def read(self, r: Reader) -> Any:
        return self.inner.read(r)

    def compare(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        if not isinstance(decoded, Inside) or decoded.container != "Rc" or decoded.strong < 1:
            mismatch(result, where, decoded, expected)
            return
        self.inner.check(decoded.value, expected, result, f"*{where}")


@dataclass(eq=False)
class SharedStrTy(Ty):
    """Rc<str> or Arc<str>: Debug prints the text; decoded, an Inside equal to it."""

    atomic: bool

    def __post_init__(self) -> None:
        self.family = "Arc<str>" if self.atomic else "Rc<str>"

    @property
    def rust(self) -> str:
        return "std::sync::Arc<str>" if self.atomic else "std::rc::Rc<str>"

    def make(self) -> str:
        return f"{self.rust.removesuffix('<str>')}::from(pick_str())"

    def read(self, r: Reader) -> Any:
        return r.quoted('"')

    def compare(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        container = "Arc" if self.atomic else "Rc"
        if not isinstance(decoded, Inside) or decoded.container != container or decoded.strong < 1:
            mismatch(result, where, decoded, expected)
            return
        Text(True).check(decoded.value, expected, result, f"*{where}")


@dataclass(eq=False)
class PinTy(Ty):
    """Pin<Box<T>>: Debug prints the value; decoded, the value."""

    inner: Ty

    def __post_init__(self) -> None:
        self.family = "Pin<Box<T>>"

    @property
    def rust(self) -> str:
        return f"std::pin::Pin<Box<{self.inner.rust}>>"

    def definitions(self) -> Iterator[str]:
        return self.inner.definitions()

    def make(self) -> str:
        return f"Box::pin({self.inner.make()})"

    def read(self, r: Reader) -> Any:
        return self.inner.read(r)

    def compare(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        self.inner.check(decoded, expected, result, f"*{where}")


UNITS = {"s": 10**9, "ms": 10**6, "µs": 10**3, "ns": 1}


@dataclass(eq=False)
class DurationTy(Ty):
    """std::time::Duration: Debug prints `12.5s`, `1.234567ms`, ...; decoded, a Duration."""

    def __post_init__(self) -> None:
        self.family = "Duration"

    rust = "std::time::Duration"  # type: ignore[assignment]

    @property
    def copy(self) -> bool:
        return True

    def make(self) -> str:
        return (
            "std::time::Duration::new(match rnd() % 3 { 0 => 0, 1 => rnd() % 100, _ => rnd() "
            "% 1000000 }, (rnd() % 1000000000) as u32)"
        )

    def read(self, r: Reader) -> Any:
        word = r.word()
        for unit in ("ms", "µs", "ns", "s"):
            if word.endswith(unit):
                return int(Decimal(word[: -len(unit)]) * UNITS[unit])
        raise ValueError(f"not a Duration: {word!r}")

    def compare(self, decoded: Any, expected: Any, result: Result, where: str) -> None:
        if not isinstance(decoded, Duration) or decoded.nanoseconds != expected:
            mismatch(result, where, decoded, expected)


# -- the random grammar ------------------------------------------------------------------------

INTS = ["u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize"]


class Grammar:
    """Draws random types (nested up to `depth`), naming the structs and enums it defines."""

    def __init__(self, rng: random.Random, depth: int = 3) -> None:
        self.rng = rng
        self.depth = depth
        self.defined = 0

    def _name(self, prefix: str) -> str:
        self.defined += 1
        return f"{prefix}{self.defined}"

    def scalar(self) -> Ty:
        r = self.rng.random()
        if r < 0.55:
            return Int(self.rng.choice(INTS))
        if r < 0.7:
            return Bool()
        if r < 0.8:
            return Char()
        return Float(self.rng.choice((32, 64)))

    def copy_scalar(self) -> Ty:
        t = self.scalar()
        return t

    def any(self, depth: int | None = None) -> Ty:
        depth = self.depth if depth is None else depth
        rng = self.rng
        if depth <= 0:
            return self.leaf()
        choice = rng.choices(
            ["leaf", "str", "seq", "tuple", "struct", "enum", "option", "result", "box", "ref",
             "std"],
            [30, 8, 10, 8, 10, 6, 10, 5, 4, 6, 8],
        )[0]  # fmt: skip
        inner = depth - 1
        if choice == "leaf":
            return self.leaf()
        if choice == "std":
            return self.std(inner)
        if choice == "str":
            return Text(rng.random() < 0.5)
        if choice == "seq":
            kind = rng.choice(["slice", "vec", "array"])
            element = self.any(min(inner, 1))
            return Seq(element, kind, rng.randint(0, 4) if kind == "array" else 0)
        if choice == "tuple":
            return Tuple([self.any(inner) for _ in range(rng.randint(1, 4))])
        if choice == "struct":
            return self.struct(inner)
        if choice == "enum":
            return self.enum(inner)
        if choice == "option":
            special = rng.random()
            if special < 0.2:
                return OptionTy(NonZero())
            if special < 0.35:
                return OptionTy(Bool())
            if special < 0.55:
                return OptionTy(Ref(self.any(inner)))
            return OptionTy(self.any(inner) if rng.random() < 0.3 else self.not_optional(inner))
        if choice == "result":
            return ResultTy(self.any(inner), self.any(inner))
        if choice == "box":
            return BoxTy(self.any(inner))
        return Ref(self.any(inner))

    def std(self, depth: int) -> Ty:
        """A std type that decodes as what it means (docs/value-types.md)."""
        kind = self.rng.choice(["path", "deque", "btree", "hash", "rc", "duration", "rcstr",
                                "arcstr", "pin"])  # fmt: skip
        if kind == "path":
            return PathTy()
        if kind in ("rcstr", "arcstr"):
            return SharedStrTy(kind == "arcstr")
        if kind == "pin":
            return PinTy(self.any(depth))
        if kind == "duration":
            return DurationTy()
        if kind == "deque":
            return DequeTy(self.any(min(depth, 1)))
        if kind == "rc":
            return RcTy(self.any(depth))
        return MapTy(self.any(min(depth, 1)), kind == "btree")

    def not_optional(self, depth: int) -> Ty:
        """A type whose value is never None or (): Option<that> decodes unambiguously."""
        while True:
            t = self.any(depth)
            if not isinstance(t, (OptionTy, Unit)) and not (
                isinstance(t, StructTy) and not t.fields
            ):
                return t

    def leaf(self) -> Ty:
        r = self.rng.random()
        if r < 0.04:
            return Unit()
        if r < 0.07:
            return StructTy(self._name("Z"), [])
        if r < 0.12:
            return Text(self.rng.random() < 0.5)
        return self.scalar()

    def struct(self, depth: int) -> Ty:
        rng = self.rng
        repr_ = rng.choices(["", "C", "packed"], [6, 2, 2])[0]
        count = rng.randint(1, 4)
        if repr_ == "packed":  # derive(Debug) copies packed fields: scalars only
            types = [self.scalar() for _ in range(count)]
        else:
            types = [self.any(depth) for _ in range(count)]
        tuple_like = rng.random() < 0.3
        names = [str(i) if tuple_like else f"f{i}" for i in range(count)]
        return StructTy(self._name("S"), list(zip(names, types)), repr_, tuple_like)

    def enum(self, depth: int) -> Ty:
        rng = self.rng
        variants: list[tuple[str, list[tuple[str, Ty]], bool]] = []
        for i in range(rng.randint(1, 4)):
            count = rng.choice([0, 0, 1, 1, 2, 3])
            tuple_like = rng.random() < 0.6
            fields = [
                (str(j) if tuple_like else f"x{j}", self.any(min(depth, 1))) for j in range(count)
            ]
            variants.append((f"V{i}", fields, tuple_like))
        return EnumTy(self._name("E"), variants)
