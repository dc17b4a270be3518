"""Values of realistic size arrive whole, and the std types rustc's pretty-printers know
decode as what they hold: every argument of example_crates/bigvalues equals what the
program printed with `{:?}` (dev and release, both engines, DWARF 4 and 5).

`bigvalues big N` passes collections of N entries: a `&[String]`, a `&[Book]` (a title and
0-2 tags each), a `HashMap<String, u32>`, a `BTreeMap<u32, String>` and a `BTreeSet<i64>`
(more than 143 entries: a tree of height 2 or more). One call of these takes hundreds of
copies from behind pointers: the BPF program runs them 256 per program, going on in
tail calls, and the copies of a collection bigger than one copy (4 KiB) come in chunks.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_uprobe import Inside, Missing, Struct, Truncated, Unavailable
from pytest_uprobe.cargo import cargo_bin
from pytest_uprobe.tracer import Tracer
from tests.integration.test_stdtypes import printed_calls, same

CRATE = "example_crates/bigvalues"
PROFILES = ["dev", "release"]
BIG = ["b_lines", "b_books", "b_map", "b_tree", "b_set"]
STD = [
    "s_rc_str", "s_arc_str", "s_rc_slice", "s_arc_slice", "s_box_str", "s_box_slice", "s_weak",
    "s_oncecell", "s_oncelock", "s_cow", "s_cell", "s_pin", "s_dyn", "s_box_dyn",
]  # fmt: skip
DWARF5 = "-C dwarf-version=5"


def _compare(trace: Any, where: str) -> int:
    """Assert every argument and return value equals what the program printed; returns how
    many were compared."""
    assert trace.returncode == 0, trace.stderr
    assert trace.lost_events == 0
    expected = printed_calls(trace.stdout)
    calls = trace.calls
    assert [c.path.removeprefix("bigvalues::") for c in calls] == [e[0] for e in expected]
    compared = 0
    for call, (function, args, ret) in zip(calls, expected):
        values = dict(call.kwargs)
        values["return"] = call.retval
        for name, printed in [*args.items(), ("return", ret)]:
            decoded = values[name]
            assert _same(function if name != "return" else "", decoded, printed), (
                f"{function} ({where}) {name}: decoded {decoded!r:.600}, printed {printed!r:.600}"
            )
            compared += 1
    return compared


def _same(function: str, decoded: Any, printed: Any) -> bool:
    """`same`, where the printed text is what a method returned (`upgrade()`, `get()`) or
    the value inside an Rc/Arc/Cow. `function` is "" for return values."""
    if function == "s_weak":  # printed: what upgrade() gives, Some(v) or None
        if printed is None:
            return isinstance(decoded, Missing) and decoded.kind in ("dropped", "dangling")
        return isinstance(decoded, Inside) and decoded.container == "Weak" and decoded == printed
    if function in ("s_oncecell", "s_oncelock"):  # printed: get(), Some(v) or None
        if printed is None:
            return isinstance(decoded, Missing) and decoded == Missing("uninitialised")
        return bool(decoded == printed) and not isinstance(decoded, Missing)
    if isinstance(decoded, Inside) and function in ("s_rc_str", "s_arc_str", "s_cow"):
        return same(function, decoded.value, printed)
    if isinstance(decoded, Inside) and function in ("s_rc_slice", "s_arc_slice"):
        return bool(decoded.value == printed)
    return same(function, decoded, printed)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("entries", [300, 1000])
def test_hundreds_of_entries_arrive_whole(root, profile, entries):
    exe = cargo_bin(root / CRATE, profile=profile)
    with Tracer(max_elements=entries) as tracer:
        trace = tracer.run([exe, "big", str(entries)], probes=[f"bigvalues::{f}" for f in BIG])
    assert _compare(trace, f"{profile}, {entries} entries") == 10
    (books,) = trace["bigvalues::b_books"].args_list[0]
    assert sum(len(b.tags) for b in books) == sum(i % 3 for i in range(entries))
    (tree,) = trace["bigvalues::b_tree"].args_list[0]
    assert list(tree) == [3 * i for i in range(entries)]  # key order, across the levels


def test_the_in_process_engine_reads_them_whole_too(root):
    exe = cargo_bin(root / CRATE)
    with Tracer(max_elements=300, backend="inprocess") as tracer:
        trace = tracer.run([exe, "big", "300"], probes=[f"bigvalues::{f}" for f in BIG])
    assert _compare(trace, "in-process") == 10


def test_caps_cut_big_values_at_max_elements(root):
    exe = cargo_bin(root / CRATE, profile="release")
    with Tracer(max_elements=50, max_string=5) as tracer:
        trace = tracer.run([exe, "big", "300"], probes=[f"bigvalues::{f}" for f in BIG])
    printed = {f: a for f, a, _ in printed_calls(trace.stdout)}
    (lines,) = trace["bigvalues::b_lines"].args_list[0]
    assert isinstance(lines, Truncated) and lines.length == 300 and len(lines.prefix) == 50
    assert lines.prefix == [
        line if len(line) <= 5 else Truncated(line[:5], len(line))
        for line in printed["b_lines"]["lines"][:50]
    ]
    (tree,) = trace["bigvalues::b_tree"].args_list[0]
    assert isinstance(tree, Truncated) and tree.length == 300
    assert list(tree.prefix) == [3 * i for i in range(50)]  # the first 50 in key order
    (keys,) = trace["bigvalues::b_set"].args_list[0]
    assert isinstance(keys, Truncated) and keys.length == 300 and len(keys.prefix) == 50
    assert keys.prefix == {i * i - 50 for i in range(50)}
    (table,) = trace["bigvalues::b_map"].args_list[0]
    assert isinstance(table, Truncated) and table.length == 300
    assert all(printed["b_map"]["m"][k[:5]] == v for k, v in table.prefix.items()
               if not isinstance(k, Truncated))  # fmt: skip


def test_what_one_call_cannot_carry_names_the_limit_it_hit(root):
    """2,000 books (a title and 0-2 tags each), strings and tree entries are more than one
    call's 128 KiB area and 4,096 copies: what is left out says which limit it hit."""
    exe = cargo_bin(root / CRATE, profile="release")
    with Tracer(max_elements=2000) as tracer:
        trace = tracer.run([exe, "big", "2000"], probes=[f"bigvalues::{f}" for f in BIG])
    reasons = []
    for function in ("b_books", "b_tree"):
        (value,) = trace[f"bigvalues::{function}"].args_list[0]
        found = list(_unavailable(value))
        assert found, f"{function}: {value!r:.300}"
        reasons += [u.reason for u in found]
    limits = ("filled the event's area", "one call follows at most 4096 pointers")
    assert all(any(limit in reason for limit in limits) for reason in reasons), reasons[:3]
    (tree,) = trace["bigvalues::b_tree"].args_list[0]
    assert list(tree) == [3 * i for i in range(2000)]  # the keys (u32) all arrive


def _unavailable(value: Any) -> Any:
    """Every Unavailable inside a decoded value."""
    if isinstance(value, Unavailable):
        yield value
    elif isinstance(value, Truncated):
        yield from _unavailable(value.prefix)
    elif isinstance(value, dict):
        for pair in value.items():
            yield from _unavailable(list(pair))
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            yield from _unavailable(item)
    elif isinstance(value, Struct):
        yield from _unavailable(list(value.fields.values()))


@pytest.mark.parametrize(
    ("profile", "rustflags"),
    [("dev", None), ("release", None), ("dev", DWARF5), ("release", DWARF5)],
)
def test_std_types_equal_what_the_program_printed(root, profile, rustflags):
    exe = cargo_bin(root / CRATE, profile=profile, rustflags=rustflags)
    with Tracer() as tracer:
        trace = tracer.run([exe, "std"], probes=[f"bigvalues::{f}" for f in STD])
    where = f"{profile}{', DWARF 5' if rustflags else ''}"
    if profile == "release":
        # DWARF gives the release s_weak's argument no location at the entry
        weak = [args for (args,) in trace["bigvalues::s_weak"].args_list]
        assert all(isinstance(w, Unavailable) and "optimized out" in w.reason for w in weak)
        trace = _without(trace, "s_weak")
    compared = _compare(trace, where)
    assert compared == (40 if profile == "dev" else 34)  # 20 calls (17), argument and return


class _Without:
    """A trace whose calls and printed lines leave one function out."""

    def __init__(self, trace: Any, function: str) -> None:
        self.returncode, self.lost_events, self.stderr = (
            trace.returncode, trace.lost_events, trace.stderr)  # fmt: skip
        self.calls = [c for c in trace.calls if c.path != f"bigvalues::{function}"]
        self.stdout = "\n".join(
            line for line in trace.stdout.splitlines() if f" {function} " not in line
        )


def _without(trace: Any, function: str) -> Any:
    return _Without(trace, function)


def test_std_states_are_available(root):
    exe = cargo_bin(root / CRATE)
    with Tracer() as tracer:
        trace = tracer.run(
            [exe, "std"],
            probes=[
                "bigvalues::s_rc_str",
                "bigvalues::s_weak",
                "bigvalues::s_cow",
                "bigvalues::s_arc_slice",
            ],
        )
    ((text,),) = trace["bigvalues::s_rc_str"].args_list
    assert text == "shared text" and (text.strong, text.weak) == (1, 1)
    alive, dropped, dangling = (args[0] for args in trace["bigvalues::s_weak"].args_list)
    assert alive == 77 and alive.strong == 1  # the Rc `alive` still holds it
    assert dropped == "dropped" and dropped.weak == 1 and dropped != None  # noqa: E711
    assert dangling == Missing("dangling")
    borrowed, owned = (args[0] for args in trace["bigvalues::s_cow"].args_list)
    assert (borrowed, borrowed.owned, owned, owned.owned) == ("borrowed", False, "owned", True)
    ((numbers,),) = trace["bigvalues::s_arc_slice"].args_list
    assert numbers == [9, 8] and numbers.container == "Arc"
