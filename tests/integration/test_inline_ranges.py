"""Inlined copies counted once per execution: copies a loop unrolled into several ranges (or
several executions in one range), copies whose first range starts with padding, copies in
other modules and compile units, their parameters, and DWARF's names for generic instances
and closures. Every expected count comes from the program's own counters (`calls NAME N`)."""

from __future__ import annotations

import re

import pytest

CRATE = "example_crates/inline_ranges"
# One codegen unit per crate (release) and sixteen (release-cgu): copies whose abstract
# origin sits in another compile unit.
PROFILES = ["release", "release-cgu", "dev"]


def counted(stdout: str, name: str) -> int:
    return int(re.search(rf"^calls {name} (\d+)$", stdout, re.M).group(1))


@pytest.mark.uprobe
@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("n", [3, 13])
def test_every_execution_of_every_copy_counts_once(uprobe_trace, cargo_bin, profile, n):
    exe = cargo_bin(CRATE, profile=profile)
    probes = {
        "inline_ranges::execute": "execute",  # a loop of 4 unrolled: 4 ranges, one DIE
        "inline_ranges::helper": "helper",  # three call sites in a loop, one after padding
        "inline_ranges::count_small::{closure#0}": "filter",  # a closure only inlined
        "inline_ranges::mapped::{closure#0}": "map",
        "inline_ranges::largest": "largest",
        "inline_ranges::geo::total_area": "total_area",  # another module, inlined into main
        "<* as inline_ranges::geo::Shape>::area": "area",  # a glob over trait impls
    }
    trace = uprobe_trace.run([exe, str(n)], probes=list(probes))
    seen = {probe: trace[probe].call_count for probe in probes}
    expected = {probe: counted(trace.stdout, name) for probe, name in probes.items()}
    assert seen == expected


@pytest.mark.uprobe
@pytest.mark.parametrize("profile", PROFILES)
def test_impl_globs_agree_with_each_other(uprobe_trace, cargo_bin, profile):
    exe = cargo_bin(CRATE, profile=profile)
    globs = [
        "<inline_ranges::geo::Rect as *>::area",
        "<inline_ranges::geo::Square as *>::area",
    ]
    by_impl = uprobe_trace.run([exe, "4"], probes=globs)
    by_trait = uprobe_trace.run([exe, "4"], probes=["<* as inline_ranges::geo::Shape>::area"])
    total = counted(by_trait.stdout, "area")
    assert by_trait["<* as inline_ranges::geo::Shape>::area"].call_count == total
    assert sum(by_impl[g].call_count for g in globs) == total


@pytest.mark.uprobe
@pytest.mark.parametrize("profile", PROFILES)
def test_the_unrolled_copy_reads_each_command(uprobe_trace, cargo_bin, profile):
    n = 21
    exe = cargo_bin(CRATE, profile=profile)
    trace = uprobe_trace.run([exe, str(n)], probes=["inline_ranges::execute"])
    # main passes [n, n + 1, n + 2, n + 3]; run_commands prints the sum of 3 * cmd + 1.
    printed = int(re.search(r"^run_commands = (\d+)$", trace.stdout, re.M).group(1))
    assert printed == sum(3 * c + 1 for c in range(n, n + 4))
    assert sorted(c.kwargs["cmd"] for c in trace["inline_ranges::execute"].calls) == [
        n, n + 1, n + 2, n + 3
    ]
