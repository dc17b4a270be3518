"""Trait objects wherever they sit (example_crates/dyn_holders, dev and release): behind a
reference and in a tuple behind a reference they decode to the concrete value the program
printed; inside a type that holds them after other fields (Rc<dyn T>, Arc<dyn T>,
Rc<RefCell<dyn T>>: the counts come first) they are Unavailable, where reading the counts
as the value's fields gave A(x=3, y=1) for the printed A { x: 7, y: 9 }."""

from __future__ import annotations

import ast
import re
from typing import Any

import pytest

from pytest_uprobe import Unavailable

CRATE = "example_crates/dyn_holders"
SHOWN = ["ref_box", "pair"]  # decoded: compared with what the program printed
HELD = ["by_rc", "ref_rc", "by_arc", "rc_refcell"]  # refused: the value sits after counts


def printed(stdout: str, name: str) -> list[Any]:
    """The arguments `name` printed with {:?}, as Python values (a struct as a dict)."""
    values = []
    for line in stdout.splitlines():
        head, _, debug = line.partition(" ")
        if head == name:
            literal = re.sub(r"\b[A-Z]\w* \{", "{", debug)
            values.append(ast.literal_eval(re.sub(r"(\w+): ", r'"\1": ', literal)))
    return values


@pytest.mark.uprobe
@pytest.mark.parametrize("profile", ["dev", "release"])
def test_trait_objects_decode_behind_references_and_refuse_inside_holders(
    uprobe_trace, cargo_bin, profile
):
    exe = cargo_bin(CRATE, profile=profile)
    trace = uprobe_trace.run([exe], probes=[f"dyn_holders::{n}" for n in SHOWN + HELD])
    assert trace.returncode == 0, trace.stderr
    for name in SHOWN:
        expected = printed(trace.stdout, name)
        assert len(expected) == 2
        assert trace[f"dyn_holders::{name}"].args_list == [(value,) for value in expected]
    for name in HELD:
        calls = trace[f"dyn_holders::{name}"].calls
        assert len(calls) == len(printed(trace.stdout, name)) >= 1
        for call in calls:
            (holder,) = call.args
            pointer = holder.fields["ptr"].fields["pointer"]  # Rc's NonNull<RcInner<dyn T>>
            assert isinstance(pointer, Unavailable), pointer
            assert "trait object inside another type" in pointer.reason
