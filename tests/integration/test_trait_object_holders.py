"""Trait objects wherever they sit (example_crates/dyn_holders, dev and release, both
engines): behind a reference, in a tuple behind a reference, and inside a type that holds
them after other fields (Rc<dyn T>, Arc<dyn T>, Weak<dyn T>, Rc<RefCell<dyn T>>,
Arc<Mutex<dyn T>>: the
counts come first, and the value sits where its alignment puts it), as an argument, in a
struct, in a Vec and as a return value. Every value equals what the program printed with
{:?}; the counts equal what Rc::strong_count and weak_count printed.

The implementations differ in size (A 16 bytes, B 48, C 32, Z 0) and alignment: C holds a
u128 (aligned to 16), so in an RcInner it sits at 16 like the others, but in an
RcInner<RefCell<..>> at 32 where A sits at 24. Reading the counts as the value's fields
once gave A(x=3, y=1) for the printed A { x: 7, y: 9 }."""

from __future__ import annotations

import ast
import re
from typing import Any

import pytest

from pytest_uprobe import Missing, Unavailable
from pytest_uprobe.values import Inside
from tests.blackbox import engines

CRATE = "example_crates/dyn_holders"
BOXED = ["ref_box", "pair"]  # the trait object itself behind a reference
HELD = ["by_rc", "ref_rc", "by_arc", "rc_refcell", "rc_vec", "held", "weak_dyn"]
RETURNED = ["make_rc"]  # prints the value it returns
COUNTED = ["by_rc", "ref_rc", "by_arc", "weak_dyn"]  # print their strong and weak counts

# Every test that traces runs on both engines (tests/blackbox/engines.py).
engine, _use_engine = engines.engine, engines._use_engine


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    engines.generate(metafunc)


def literal(debug: str) -> Any:
    """Rust's {:?} text of these values as Python (a struct as a dict, unit struct Z as an
    empty one, None for a Weak whose value is gone)."""
    text = re.sub(r"\b[A-Z]\w* \{", "{", debug)
    text = re.sub(r"\bZ\b", "{}", text)
    return ast.literal_eval(re.sub(r"(\w+): ", r'"\1": ', text))


def printed(stdout: str, name: str) -> list[Any]:
    """What `name` printed with {:?} on each call, as Python values."""
    values = []
    for line in stdout.splitlines():
        head, _, debug = line.partition(" ")
        if head == name:
            values.append(literal(debug))
    return values


def counts(stdout: str, name: str) -> list[tuple[int, int]]:
    """The (strong_count, weak_count) `name` printed on each call."""
    found = []
    for line in stdout.splitlines():
        if line.startswith(f"counts {name} "):
            strong, weak = line.split()[2:]
            found.append((int(strong), int(weak)))
    return found


def test_the_debug_reader_reads_the_crates_text():
    assert literal("Holder { id: 11, item: C { wide: 12, tag: 42 } }") == {
        "id": 11, "item": {"wide": 12, "tag": 42}}  # fmt: skip
    assert literal('[A { x: 7, y: 9 }, B { s: "hello", items: [1, 2] }, Z]') == [
        {"x": 7, "y": 9}, {"s": "hello", "items": [1, 2]}, {}]  # fmt: skip
    assert literal("None") is None


@pytest.fixture(params=["dev", "release"])
def trace(request, uprobe_trace, cargo_bin):
    exe = cargo_bin(CRATE, profile=request.param)
    names = BOXED + HELD + RETURNED
    run = uprobe_trace.run([exe], probes=[f"dyn_holders::{n}" for n in names])
    assert run.returncode == 0, run.stderr
    return run


def seen(trace: Any, name: str) -> list[Any]:
    """The first argument of each call; weak_dyn's are the Weaks of its one slice."""
    got = [args[0] for args in trace[f"dyn_holders::{name}"].args_list]
    if name == "weak_dyn":
        assert len(got) == 1
        return list(got[0])
    return got


@pytest.mark.uprobe
def test_trait_objects_equal_what_the_program_printed(trace):
    for name in BOXED + HELD:
        expected = printed(trace.stdout, "weak_item" if name == "weak_dyn" else name)
        assert len(expected) >= 1, name
        got = seen(trace, name)
        assert len(got) == len(expected), name
        for value, shown in zip(got, expected):
            assert not isinstance(value, Unavailable), (name, value)
            if shown is None:  # a Weak whose value was dropped
                assert value == Missing("dropped") and value.strong == 0, (name, value)
            else:
                assert value == shown, (name, value, shown)


@pytest.mark.uprobe
def test_a_returned_rc_dyn_equals_what_the_program_printed(trace):
    expected = printed(trace.stdout, "make_rc")
    assert len(expected) == 3  # A, B and C, each made by make_rc
    returned = [call.retval for call in trace["dyn_holders::make_rc"].calls]
    assert returned == expected
    assert all(isinstance(value, Inside) and value.container == "Rc" for value in returned)


@pytest.mark.uprobe
def test_the_holders_counts_are_those_the_program_printed(trace):
    for name in COUNTED:
        expected = counts(trace.stdout, name)
        got = seen(trace, name)
        assert len(got) == len(expected) >= 2, name
        for value, (strong, weak) in zip(got, expected):
            assert value.strong == strong, (name, value, strong)
            if strong:  # weak_count() says 0 once the value is gone; the raw count stays
                assert value.weak == weak + 1, (name, value, weak)  # + the strong ones' one


@pytest.mark.uprobe
def test_a_refcell_in_an_rc_keeps_its_borrow_state(trace):
    for value in (args[0] for args in trace["dyn_holders::rc_refcell"].args_list):
        assert isinstance(value, Inside) and value.container == "Rc"
        assert isinstance(value.value, Inside) and value.value.container == "RefCell"
        assert value.value.borrow == 0  # borrowed after the probe, to print it


@pytest.mark.uprobe
@pytest.mark.parametrize("profile", ["dev", "release"])
def test_a_mutex_in_an_arc_is_read_with_its_lock_state(uprobe_trace, cargo_bin, profile):
    """Release: DWARF places the argument in a stack slot (DW_OP_fbreg +32) for the whole
    function, but the code stores its vtable half there only after prologue_end, where the
    entry probe reads: the slot held the previous call's vtable (a C read as an A, an A
    as a C), until the planner read that half from rsi, which still holds it there."""
    exe = cargo_bin(CRATE, profile=profile)
    # In-process dev: a call right after the prologue; hooked at the first instruction, the
    # prologue read back (inprocess/prologue.py)
    run = uprobe_trace.run([exe], probes=["dyn_holders::arc_mutex"])
    assert run.returncode == 0, run.stderr
    got = [args[0] for args in run["dyn_holders::arc_mutex"].args_list]
    assert got == printed(run.stdout, "arc_mutex") and len(got) == 2
    for value in got:
        assert isinstance(value, Inside) and value.container == "Arc"
        assert isinstance(value.value, Inside) and value.value.container == "Mutex"
        assert (value.value.locked, value.value.poisoned) == (False, False)  # locked after
