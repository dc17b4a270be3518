"""std types as Python values: every argument and return value of example_crates/stdtypes
equals what the program printed with `{:?}` (dev and release builds), read back into the
Python form docs/value-types.md gives each std type.

The program prints `ARG <function> <parameter> = <Debug>` inside each function and
`RET <function> = <Debug>` after each call; the expected values come from that text only.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any

import pytest

from pytest_uprobe import Struct, Tracer, Unavailable, Variant
from pytest_uprobe.cargo import cargo_bin
from pytest_uprobe.values import BadUtf8, Duration, Inside, Truncated

CRATE = "example_crates/stdtypes"
PROFILES = ["dev", "release"]
LINE = re.compile(r"^(ARG|RET) (\w+)(?: (\w+))? = (.*)$")
FUNCTIONS = [
    "t_string", "t_osstr", "t_osstring", "t_cstr", "t_cstring", "t_path", "t_pathbuf", "t_vec",
    "t_array", "t_vecdeque", "t_hashmap", "t_hashset", "t_btreemap", "t_btreeset", "t_rc",
    "t_arc", "t_box", "t_cell", "t_refcell", "t_mutex", "t_rwlock", "t_nonzero", "t_duration",
    "t_option", "t_result", "t_books", "t_dyn", "t_box_dyn",
]  # fmt: skip
PROBES = [f"stdtypes::{name}" for name in FUNCTIONS]
PATHS = {"t_path", "t_pathbuf", "t_option"}  # their strings are paths
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|ms|µs|ns)$")
UNITS = {"s": 10**9, "ms": 10**6, "µs": 10**3, "ns": 1}


class _Debug:
    """Rust's `{:?}` text read back: strings (bytes where it shows `\\xNN`), numbers,
    lists, maps, sets, tuples, structs (std's wrappers as what they hold), durations."""

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
        assert self.peek(token), (token, self.text[self.at :])
        self.at += len(token)

    def value(self) -> Any:
        self.space()
        c = self.text[self.at]
        if c == '"':
            return self.string()
        if c == "[":
            return self.items("[", "]")
        if c == "(":
            items = self.items("(", ")")
            return None if not items else tuple(items)
        if c == "{":
            return self.braces()
        if c == "-" or c.isdigit():
            return self.number()
        word = re.compile(r"[A-Za-z_]\w*").match(self.text, self.at)
        assert word, self.text[self.at :]
        self.at = word.end()
        name = word.group()
        if name in ("true", "false"):
            return name == "true"
        if name == "None":
            return None
        if self.peek("("):
            args = self.items("(", ")")
            if name == "Some":
                return args[0]
            return Variant(name, args[0] if len(args) == 1 else tuple(args))
        if self.peek("{"):
            fields = self.fields()
            if name in ("Cell", "RefCell"):
                return fields["value"]
            if name in ("Mutex", "RwLock"):
                return Printed(fields["data"], poisoned=fields["poisoned"])
            return Struct(name, fields)
        return Variant(name)

    def items(self, open_: str, close: str) -> list[Any]:
        self.expect(open_)
        found = []
        while not self.peek(close):
            found.append(self.value())
            if not self.peek(close):
                self.expect(",")
        self.expect(close)
        return found

    def braces(self) -> Any:
        """`{k: v, ...}` (a map) or `{a, b}` (a set); `{}` is an empty map."""
        self.expect("{")
        pairs: list[tuple[Any, Any]] = []
        keys: list[Any] = []
        while not self.peek("}"):
            key = self.value()
            if self.peek(":"):
                self.expect(":")
                pairs.append((key, self.value()))
            else:
                keys.append(key)
            if not self.peek("}"):
                self.expect(",")
        self.expect("}")
        return set(keys) if keys else dict(pairs)

    def fields(self) -> dict[str, Any]:
        self.expect("{")
        fields: dict[str, Any] = {}
        while not self.peek("}"):
            if self.peek(".."):
                self.expect("..")
                continue
            name = re.compile(r"\w+").match(self.text, self.at)
            assert name
            self.at = name.end()
            self.expect(":")
            fields[name.group()] = self.value()
            if not self.peek("}"):
                self.expect(",")
        self.expect("}")
        return fields

    def number(self) -> Any:
        found = re.compile(r"-?\d+(?:\.\d+)?(?:s|ms|µs|ns)?").match(self.text, self.at)
        assert found
        self.at = found.end()
        token = found.group()
        duration = DURATION.match(token)
        if duration:
            return PrintedDuration(int(Decimal(duration.group(1)) * UNITS[duration.group(2)]))
        return int(token)

    def string(self) -> str | bytes:
        """A str, or the bytes when Rust showed some as `\\xNN` (not UTF-8)."""
        self.at += 1
        out = bytearray()
        raw = False
        while self.text[self.at] != '"':
            c = self.text[self.at]
            self.at += 1
            if c != "\\":
                out += c.encode()
                continue
            e = self.text[self.at]
            self.at += 1
            if e == "x":
                out.append(int(self.text[self.at : self.at + 2], 16))
                self.at += 2
                raw = True
            elif e == "u":
                end = self.text.index("}", self.at)
                out += chr(int(self.text[self.at + 1 : end], 16)).encode()
                self.at = end + 1
            else:
                out += {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(e, e).encode()
        self.at += 1
        return bytes(out) if raw else out.decode()


class Printed:
    """A Mutex or RwLock as printed: the data and whether it is poisoned."""

    def __init__(self, data: Any, poisoned: bool) -> None:
        self.data = data
        self.poisoned = poisoned


class PrintedDuration(int):
    """A Duration as printed (`3.5s`, `1.234567ms`), in nanoseconds."""


def parse(text: str) -> Any:
    reader = _Debug(text)
    value = reader.value()
    assert reader.at == len(text), f"unparsed: {text[reader.at :]!r}"
    return value


def printed_calls(stdout: str) -> list[tuple[str, dict[str, Any], Any]]:
    calls: list[tuple[str, dict[str, Any], Any]] = []
    args: dict[str, Any] = {}
    for line in stdout.splitlines():
        found = LINE.match(line)
        assert found, line
        kind, function, name, text = found.groups()
        if kind == "ARG":
            args[name] = parse(text)
        else:
            calls.append((function, args, parse(text)))
            args = {}
    return calls


def same(function: str, decoded: Any, printed: Any) -> bool:
    """The decoded value is the printed one, in the Python form the docs give its type."""
    if isinstance(decoded, Inside) and not isinstance(printed, Printed):
        return decoded == printed and same(function, decoded.value, printed)  # Rc, Arc
    if isinstance(printed, bytes):  # not UTF-8: the bytes themselves must match
        if isinstance(decoded, PurePosixPath):
            return bytes(decoded) == printed
        return isinstance(decoded, BadUtf8) and decoded.raw == printed
    if isinstance(printed, str) and function in PATHS:
        return isinstance(decoded, PurePosixPath) and decoded == PurePosixPath(printed)
    if isinstance(printed, str):
        return type(decoded) is str and decoded == printed
    if isinstance(printed, Printed):
        return (
            isinstance(decoded, Inside)
            and decoded.value == printed.data
            and decoded.poisoned == printed.poisoned
        )
    if isinstance(printed, PrintedDuration):
        return isinstance(decoded, Duration) and decoded.nanoseconds == printed
    if isinstance(printed, (dict, set)):
        return type(decoded) is type(printed) and decoded == printed
    return bool(decoded == printed)


def test_the_debug_reader_reads_std_debug_text():
    assert parse('{"a": 1, "b": [2]}') == {"a": 1, "b": [2]}
    assert parse("{3, -1}") == {3, -1}
    assert parse('"bad\\xFF\\xFEend"') == b"bad\xff\xfeend"
    assert parse("1.234567ms") == 1_234_567 and parse("7s") == 7 * 10**9
    assert parse("Cell { value: 17 }") == 17
    mutex = parse("Mutex { data: 23, poisoned: false, .. }")
    assert isinstance(mutex, Printed) and (mutex.data, mutex.poisoned) == (23, False)


@pytest.fixture(scope="module")
def traces(root: Any) -> dict[str, Any]:
    found = {}
    with Tracer(max_elements=40) as tracer:  # t_btreeset holds 40
        for profile in PROFILES:
            exe = cargo_bin(root / CRATE, profile=profile)
            found[profile] = tracer.run([exe], probes=PROBES)
    return found


# What cannot be compared, and why (each checked to say so instead).
NOT_COMPARED = {}


@pytest.mark.parametrize("profile", PROFILES)
def test_every_std_value_equals_what_the_program_printed(traces, profile):
    trace = traces[profile]
    assert trace.returncode == 0, trace.stderr
    assert trace.lost_events == 0
    expected = printed_calls(trace.stdout)
    calls = trace.calls
    assert [c.path.removeprefix("stdtypes::") for c in calls] == [e[0] for e in expected]
    compared = 0
    for call, (function, args, ret) in zip(calls, expected):
        where = f"{function} ({profile})"
        if function == "t_books":
            continue  # test_a_slice_of_structs_with_strings
        values = dict(call.kwargs)
        values["return"] = call.retval
        for name, printed in [*args.items(), ("return", ret)]:
            decoded = values[name]
            why = NOT_COMPARED.get((function, name))
            if why is not None:
                assert isinstance(decoded, Unavailable) and why in decoded.reason, where
                continue
            assert same(function, decoded, printed), (
                f"{where} {name}: decoded {decoded!r}, printed {printed!r}"
            )
            compared += 1
    assert compared >= 70


@pytest.mark.parametrize("profile", PROFILES)
def test_containers_state_is_available(traces, profile):
    trace = traces[profile]
    (rc,) = trace["stdtypes::t_rc"].args_list[0]
    assert rc == 41 and rc.strong == 3 and rc.weak == 1  # shared, _other, and the argument
    (refcell,) = trace["stdtypes::t_refcell"].args_list[0]
    assert refcell == [5, 6, 7] and refcell.borrow == 0
    (mutex,) = trace["stdtypes::t_mutex"].args_list[0]
    assert mutex.locked is False and mutex.poisoned is False
    (lock,) = trace["stdtypes::t_rwlock"].args_list[0]
    assert lock == -5 and (lock.readers, lock.write_locked) == (0, False)


def test_a_wrapped_vecdeque_comes_in_logical_order(traces):
    deques = [args[0] for args in traces["release"]["stdtypes::t_vecdeque"].args_list]
    assert deques == [[99, 2, 3, 10, 11], [105, 106, 107, 7, 8]]


def test_caps_cut_std_collections_visibly(root):
    exe = cargo_bin(root / CRATE)
    with Tracer(max_elements=2, max_string=4) as tracer:
        trace = tracer.run([exe], probes=["stdtypes::t_hashset", "stdtypes::t_vecdeque",
                                          "stdtypes::t_path", "stdtypes::t_btreeset"])  # fmt: skip
    (hashed,) = trace["stdtypes::t_hashset"].args_list[0]
    assert isinstance(hashed, Truncated) and hashed.length == 20
    assert hashed.prefix < {i * i for i in range(1, 21)}
    (deque,) = trace["stdtypes::t_vecdeque"].args_list[1]  # head 5 of 8: slot 5 not copied
    assert deque == Truncated([], 5)
    (path,) = trace["stdtypes::t_path"].args_list[0]
    assert path == Truncated("/hom", len("/home/me/project/src"))
    (small,), (tiny,) = (trace["stdtypes::t_btreeset"].args_list[i] for i in (0, 1))
    assert isinstance(small, Truncated) and small.length == 40
    assert small.prefix <= set(range(-100, 174, 7)) and len(small.prefix) >= 2
    assert tiny == {3, -1}


@pytest.mark.parametrize("profile", PROFILES)
def test_a_slice_of_books_with_tags_arrives_whole_at_the_default_caps(root, profile):
    """Copies take what the run-time lengths need, not their caps: four books with ten tags
    in all (fifteen strings, a slice and four Vecs) fit one event."""
    exe = cargo_bin(root / CRATE, profile=profile)
    with Tracer() as tracer:
        trace = tracer.run([exe], probes=["stdtypes::t_books"])
    (printed,) = [e[1]["books"] for e in printed_calls(trace.stdout) if e[0] == "t_books"]
    (books,) = trace["stdtypes::t_books"].args_list[0]
    assert books == printed
    assert sum(len(b.tags) for b in books) == 10


@pytest.mark.parametrize(
    ("count", "length", "max_string", "reason"),
    [
        # 32 x 4000 bytes fit (each starts below 126,976); the 33rd finds the area full
        (40, 4000, 4096, "filled the event's area (copies start in its first 126976 bytes"),
        # more strings than one call follows pointers: the slice itself takes 30 chunks
        # (100 KiB), so the area fills first, and the last strings find no deref left
        (4200, 1, 256, "one call follows at most 4096 pointers"),
    ],
)
def test_what_does_not_fit_names_the_limit_it_hit(root, count, length, max_string, reason):
    exe = cargo_bin(root / CRATE)
    with Tracer(max_string=max_string, max_elements=5000) as tracer:
        trace = tracer.run([exe, "lines", str(count), str(length)], probes=["stdtypes::t_lines"])
    (lines,) = trace["stdtypes::t_lines"].args_list[0]
    assert len(lines) == count
    whole = [line for line in lines if isinstance(line, str)]
    assert whole == [chr(ord("a") + i % 26) * length for i in range(len(whole))]
    missing = lines[len(whole) :]
    assert missing and all(isinstance(m, Unavailable) for m in missing)
    assert reason in missing[-1].reason, missing[-1]
    assert all(reason in m.reason or "filled the event's area" in m.reason for m in missing)


@pytest.mark.parametrize("profile", PROFILES)
def test_a_string_longer_than_one_copy_arrives_in_chunks(root, profile):
    """One copy takes at most 4,096 bytes: a longer string comes in several, up to its cap."""
    exe = cargo_bin(root / CRATE, profile=profile)
    with Tracer(max_string=10_000) as tracer:
        trace = tracer.run([exe, "lines", "2", "9000"], probes=["stdtypes::t_lines"])
    with Tracer(max_string=4500) as tracer:
        cut = tracer.run([exe, "lines", "1", "5000"], probes=["stdtypes::t_lines"])
    assert trace["stdtypes::t_lines"].args_list[0] == (["a" * 9000, "b" * 9000],)
    ((line,),) = cut["stdtypes::t_lines"].args_list[0]
    assert line == Truncated("a" * 4500, 5000)
