"""A plan whose copies from behind pointers do not fit the BPF program's `derefs` map
together is refused before anything loads, naming the functions that copy most and what to
do (before: BCC's "Could not update table" mid-set-up). No root needed: the check comes
before the program."""

from __future__ import annotations

import pytest

from pytest_uprobe.bpf import program
from pytest_uprobe.bpf.session import Session
from pytest_uprobe.cargo import cargo_bin
from pytest_uprobe.errors import UsageError
from pytest_uprobe.tracer import Tracer

CRATE = "example_crates/bigvalues"


def test_copies_past_the_map_are_refused_naming_the_largest(monkeypatch):
    plan = Tracer(max_elements=300).plan(cargo_bin(CRATE), ["bigvalues::b_*"])
    needed = sum(min(len(site.derefs), program.MAX_DEREFS) for site in plan.sites)
    assert needed > 300  # hundreds of copies: collections of up to max_elements entries
    monkeypatch.setattr(program, "DEREF_ENTRIES", needed - 1)
    with pytest.raises(UsageError) as refused:
        Session(plan)
    message = str(refused.value)
    assert f"need {needed:,} copies" in message and f"BPF engine's {needed - 1:,}" in message
    assert "bigvalues::b_" in message and "--uprobe-max-elements" in message


def test_copies_that_fit_and_count_only_runs_pass_the_check(monkeypatch):
    plan = Tracer(max_elements=300).plan(cargo_bin(CRATE), ["bigvalues::b_*"])
    needed = sum(min(len(site.derefs), program.MAX_DEREFS) for site in plan.sites)
    monkeypatch.setattr(program, "DEREF_ENTRIES", needed)
    program.check_deref_room(plan)  # exactly full: fits
    monkeypatch.setattr(program, "DEREF_ENTRIES", 0)
    monkeypatch.setattr("pytest_uprobe.bpf.session.load_bcc", _no_bcc)
    with pytest.raises(RuntimeError, match="past the check"):
        Session(plan, record=False)  # count-only copies nothing: it gets past the check


def _no_bcc():
    raise RuntimeError("past the check")
