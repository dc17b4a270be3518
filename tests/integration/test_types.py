"""Typed values: every argument and return value of example_crates/types, decoded from DWARF,
equals what the program itself printed with `{:?}` (dev and release builds).

The program prints `ARG <function> <parameter> = <Debug>` inside each function and
`RET <function> = <Debug>` after each call; `parse_debug` reads Rust's Debug text back into
the Python shapes pytest-uprobe decodes to, so the expected values come from the program
and never from the probe.
"""

from __future__ import annotations

import re
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_uprobe import Struct, Tracer, Truncated, Unavailable, Variant

CRATE = "example_crates/types"
PROFILES = ["dev", "release"]
FUNCTIONS = [
    "t_i8", "t_i16", "t_i32", "t_i64", "t_i128", "t_isize",
    "t_u8", "t_u16", "t_u32", "t_u64", "t_u128", "t_usize",
    "t_many", "t_bool", "t_char", "t_f64", "t_str", "t_str_ret", "t_string", "t_string_ref",
    "t_slice", "t_vec", "t_strings", "t_array", "t_tuple", "t_struct", "t_person", "t_big",
    "t_option", "t_option_ref", "t_option_box", "t_option_string", "t_result", "t_shape",
    "t_ref", "t_box", "t_unit",
]  # fmt: skip
PROBES = [f"types::{name}" for name in FUNCTIONS]
STRUCTS = {"Point", "Person", "Big", "Pair"}  # the crate's structs; other names are variants
LINE = re.compile(r"^(ARG|RET) (\w+)(?: (\w+))? = (.*)$")


# -- Rust's Debug format, read back ---------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def value(self) -> Any:
        self.space()
        c = self.text[self.at]
        if c == '"':
            return self.string()
        if c == "'":
            return self.char()
        if c == "[":
            return self.sequence("[", "]")
        if c == "(":
            items = self.sequence("(", ")")
            return None if items == [] else tuple(items)
        if c == "-" or c.isdigit():
            return self.number()
        name = re.compile(r"[A-Za-z_]\w*").match(self.text, self.at)
        assert name, self.text[self.at :]
        self.at = name.end()
        word = name.group()
        if word in ("true", "false"):
            return word == "true"
        if word in ("inf", "NaN"):
            return float(word)
        if self.peek("("):
            args = self.sequence("(", ")")
            if word == "Some":
                return args[0]
            payload = args[0] if len(args) == 1 else tuple(args)
            if word in STRUCTS:
                return Struct(word, {str(i): a for i, a in enumerate(args)}, tuple_like=True)
            return Variant(word, payload)
        if self.peek("{"):
            fields = self.fields()
            return Struct(word, fields) if word in STRUCTS else Variant(word, Struct(word, fields))
        return None if word == "None" else Variant(word)

    def peek(self, token: str) -> bool:
        self.space()
        return self.text.startswith(token, self.at)

    def expect(self, token: str) -> None:
        self.space()
        assert self.text.startswith(token, self.at), (token, self.text[self.at :])
        self.at += len(token)

    def space(self) -> None:
        while self.at < len(self.text) and self.text[self.at] == " ":
            self.at += 1

    def sequence(self, open_: str, close: str) -> list[Any]:
        self.expect(open_)
        items: list[Any] = []
        while not self.peek(close):
            items.append(self.value())
            if not self.peek(close):
                self.expect(",")
        self.expect(close)
        return items

    def fields(self) -> dict[str, Any]:
        self.expect("{")
        fields: dict[str, Any] = {}
        while not self.peek("}"):
            name = re.compile(r"\w+").match(self.text, self.at)
            assert name
            self.at = name.end()
            self.expect(":")
            fields[name.group()] = self.value()
            if not self.peek("}"):
                self.expect(",")
        self.expect("}")
        return fields

    def number(self) -> int | float:
        found = re.compile(r"-?(?:inf|\d[\d.]*(?:e-?\d+)?)").match(self.text, self.at)
        assert found
        self.at = found.end()
        token = found.group()
        return float(token) if any(c in token for c in ".ei") else int(token)

    def string(self) -> str:
        self.at += 1
        out = []
        while self.text[self.at] != '"':
            out.append(self.escaped())
        self.at += 1
        return "".join(out)

    def char(self) -> str:
        self.at += 1
        c = self.escaped()
        assert self.text[self.at] == "'"
        self.at += 1
        return c

    def escaped(self) -> str:
        c = self.text[self.at]
        self.at += 1
        if c != "\\":
            return c
        e = self.text[self.at]
        self.at += 1
        if e == "u":
            end = self.text.index("}", self.at)
            code = int(self.text[self.at + 1 : end], 16)
            self.at = end + 1
            return chr(code)
        return {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(e, e)


def parse_debug(text: str) -> Any:
    parser = _Parser(text)
    value = parser.value()
    assert parser.at == len(text), f"unparsed: {text[parser.at :]!r}"
    return value


def printed_calls(stdout: str) -> list[tuple[str, dict[str, Any], Any]]:
    """(function, {parameter: value}, return value) per call, as the program printed them."""
    calls: list[tuple[str, dict[str, Any], Any]] = []
    args: dict[str, Any] = {}
    for line in stdout.splitlines():
        found = LINE.match(line)
        assert found, line
        kind, function, name, text = found.groups()
        if kind == "ARG":
            args[name] = parse_debug(text)
        else:
            calls.append((function, args, parse_debug(text)))
            args = {}
    return calls


def test_the_debug_reader_reads_rust_debug_text():
    assert parse_debug('Person { name: "A\\"\\u{301}", tags: ["x"], home: Point { x: 1 } }') == (
        Struct("Person", {"name": 'A"\u0301', "tags": ["x"], "home": Struct("Point", {"x": 1})})
    )
    assert parse_debug("Some(Rect { w: 1, h: 2 })") == Variant(
        "Rect", Struct("Rect", {"w": 1, "h": 2})
    )
    assert parse_debug("[(1, -2.5, '\\''), ()]") == [(1, -2.5, "'"), None]
    assert parse_debug("Pair(-3, 4)") == (-3, 4)


# -- the comparison -------------------------------------------------------------------------


def _f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def check_trace(trace: Any, *, profile: str) -> int:
    """Every traced call equals the printed one: arguments by name, return value. Returns
    how many values were compared."""
    assert trace.returncode == 0, trace.stderr
    expected = printed_calls(trace.stdout)
    calls = trace.calls
    assert [c.path.removeprefix("types::") for c in calls] == [e[0] for e in expected]
    compared = 0
    for call, (function, args, ret) in zip(calls, expected):
        where = f"{function} ({profile})"
        if function == "t_unit":  # rustc names no zero-sized parameter
            assert call.args == (None,) and call.retval is None, where
            continue
        if function == "t_f64":
            args["y"] = _f32(args["y"])
            assert isinstance(call.retval, Unavailable), where
            assert "SSE register" in call.retval.reason, where
        else:
            assert call.retval == ret, f"{where}: returned {call.retval!r}, printed {ret!r}"
            compared += 1
        assert call.returned, where
        assert call.kwargs == args, f"{where}: decoded {call.kwargs!r}, printed {args!r}"
        compared += len(args)
    return compared


@pytest.mark.parametrize("profile", PROFILES)
def test_every_value_equals_what_the_program_printed(uprobe_trace, cargo_bin, profile):
    exe = cargo_bin(CRATE, profile=profile)
    trace = uprobe_trace.run([exe, "all"], probes=PROBES)
    assert trace.lost_events == 0
    assert check_trace(trace, profile=profile) > 100
    # A few by hand, in the shapes the README documents.
    person = trace["types::t_person"].calls[0]
    assert person.kwargs["p"].name == "Ada" and person.kwargs["p"].home == {"x": 1, "y": 2}
    assert person.retval.tags == ["math", "engines", "older"]
    big = trace["types::t_big"].calls[0]
    assert big.retval == {"a": 2, "b": 2, "c": 252, "d": [6, 5, 4], "e": False, "f": "Z",
                          "g": 2**63 - 1}  # fmt: skip
    assert trace["types::t_result"].retvals == [Variant("Err", False), Variant("Ok", 2),
                                                Variant("Err", True)]  # fmt: skip
    assert trace["types::t_option_box"].args_list == [(Struct("Point", {"x": 7, "y": 8}),), (None,)]
    shape = trace["types::t_shape"]
    assert shape.calls[1].kwargs == {"s": Variant("Circle", 5), "level": "Mid"}


@pytest.mark.parametrize("profile", PROFILES)
def test_large_struct_returned_through_a_hidden_pointer(uprobe_trace, cargo_bin, profile):
    exe = cargo_bin(CRATE, profile=profile)
    trace = uprobe_trace.run([exe, "all"], probes=["types::t_big", "types::t_person"])
    (function, args, ret), *_ = [e for e in printed_calls(trace.stdout) if e[0] == "t_big"]
    call = trace["types::t_big"].calls[0]
    assert call.kwargs == args and call.retval == ret
    person = [e for e in printed_calls(trace.stdout) if e[0] == "t_person"][0]
    assert trace["types::t_person"].retvals == [person[2]]


def test_caps_cut_strings_and_lists_visibly(cargo_bin):
    exe = cargo_bin(CRATE)
    with Tracer(max_string=5, max_elements=2) as tracer:
        trace = tracer.run([exe, "str", "héllo wörld"], probes=["types::t_str"])
        (text,) = trace["types::t_str"].args_list[0]
        assert text == Truncated("héll", len("héllo wörld".encode()))  # no half character
        assert text != "héllo wörld"
        trace = tracer.run([exe, "vec", "1", "2", "3"], probes=["types::t_slice", "types::t_vec"])
        assert trace["types::t_slice"].args_list == [(Truncated([1, 2], 3),)]
        assert trace["types::t_vec"].retvals == [Truncated([6, 4], 3)]


# -- the round trip, with generated values --------------------------------------------------

INT_BOUNDS = [
    (-(2**7), 2**7 - 1), (-(2**15), 2**15 - 1), (-(2**31), 2**31 - 1), (-(2**63), 2**63 - 1),
    (-(2**127), 2**127 - 1), (-(2**63), 2**63 - 1),
    (0, 2**8 - 1), (0, 2**16 - 1), (0, 2**32 - 1), (0, 2**64 - 1), (0, 2**128 - 1), (0, 2**64 - 1),
]  # fmt: skip
INTS = st.tuples(
    *(st.one_of(st.sampled_from([lo, hi, 0]), st.integers(lo, hi)) for lo, hi in INT_BOUNDS)
)
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=40)
ROUND_TRIP = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def dev_exe(cargo_bin):
    return cargo_bin(CRATE)


@ROUND_TRIP
@given(values=INTS)
def test_round_trip_integers(uprobe_trace, dev_exe, values):
    argv = [dev_exe, "ints", *map(str, values)]
    trace = uprobe_trace.run(argv, probes=[p for p in PROBES if p.startswith("types::t_")])
    check_trace(trace, profile="dev")
    assert [c.args[0] for c in trace.calls[:12]] == list(values)


@ROUND_TRIP
@given(text=TEXT)
def test_round_trip_strings(uprobe_trace, dev_exe, text):
    trace = uprobe_trace.run([dev_exe, "str", text], probes=PROBES)
    check_trace(trace, profile="dev")
    assert trace["types::t_str"].args_list == [(text,)]
    assert trace["types::t_string"].retvals == [text + "!"]


@ROUND_TRIP
@given(numbers=st.lists(st.integers(-(2**31), 2**31 - 1), max_size=16),
       texts=st.lists(TEXT, max_size=6))  # fmt: skip
def test_round_trip_vectors(uprobe_trace, dev_exe, numbers, texts):
    trace = uprobe_trace.run([dev_exe, "vec", *map(str, numbers)], probes=PROBES)
    check_trace(trace, profile="dev")
    assert trace["types::t_slice"].args_list == [(numbers,)]
    trace = uprobe_trace.run([dev_exe, "strings", *texts], probes=PROBES)
    check_trace(trace, profile="dev")
    assert trace["types::t_strings"].args_list == [(texts,)]
