"""Closures: args and returns derived from the values the program printed."""

import pytest

from pytest_uprobe import Unavailable
from tests.blackbox_stockroom import rdebug


@pytest.fixture(params=["dev", "release"])
def profile(request):
    return request.param


def _items(stdout):
    (((items,), _),) = rdebug.calls(stdout)["average_cents"]
    return items


def test_max_key_closure_per_item(uprobe_trace, crate_dir, cargo_bin, profile):
    exe = cargo_bin(crate_dir, profile=profile)
    p = "stockroom::pricing::max_key::{closure#0}"
    trace = uprobe_trace.run([exe, "sync"], probes=[p])
    items = _items(trace.stdout)
    words = ["pallet", "crate", "box"]  # printed lengths: max 6
    ft = trace[p]
    if profile == "release":
        assert ft.call_count >= 1  # documented bound: inlined copy with a loop
        return
    assert ft.call_count == len(items) + len(words)
    assert [c.args[0] for c in ft.calls[: len(items)]] == items
    assert ft.retvals[: len(items)] == [i["cents"] * i["qty"] for i in items]
    assert max(ft.retvals[: len(items)]) == rdebug.calls(trace.stdout)["max_key::<Item>"][0][1]


def test_low_stock_filter_closure_sees_every_entry(uprobe_trace, crate_dir, cargo_bin, profile):
    exe = cargo_bin(crate_dir, profile=profile)
    p = "stockroom::Inventory::low_stock::{closure#0}"
    trace = uprobe_trace.run([exe, "sync"], probes=[p])
    stock = rdebug.arg_lines(trace.stdout)["total_units"][0][0]
    low = rdebug.calls(trace.stdout)["low_stock"][0][1]
    ft = trace[p]
    assert ft.call_count == len(stock)
    seen = [c.args[0] for c in ft.calls]
    if profile == "dev":
        assert sorted(seen) == sorted(stock.items())
        assert sorted(k for (k, _), r in zip(seen, ft.retvals) if r) == low


def test_cheapest_closure_box_dyn_inside_tuple(uprobe_trace, crate_dir, cargo_bin, profile):
    """docs/value-types.md: Box<dyn Trait> decodes to the concrete type's value."""
    exe = cargo_bin(crate_dir, profile=profile)
    p = "stockroom::pricing::cheapest::{closure#0}"
    trace = uprobe_trace.run([exe, "sync"], probes=[p])
    printed = rdebug.calls(trace.stdout)
    rules = [a[0] for a, _ in printed["quote"][::2]]
    ft = trace[p]
    assert ft.call_count == 2 * len(rules)
    arg = ft.calls[1].args[0]
    assert not isinstance(arg, Unavailable), arg
    (idx, rule) = arg
    assert (idx, rule) == (1, rules[1])
