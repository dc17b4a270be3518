"""Inlined copies counted once per execution: copies a loop unrolled into several ranges (or
several executions in one range), copies whose first range starts with padding, copies in
other modules and compile units, their parameters, and DWARF's names for generic instances
and closures. Every expected count comes from the program's own counters (`calls NAME N`)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from pytest_uprobe import Unavailable
from pytest_uprobe.cli import symbol_rows
from pytest_uprobe.elf import ElfBinary
from pytest_uprobe.plan import UnprobeableSite

CRATE = "example_crates/inline_ranges"
# One codegen unit per crate (release) and sixteen (release-cgu): copies whose abstract
# origin sits in another compile unit.
PROFILES = ["release", "release-cgu", "dev"]


def counted(stdout: str, name: str) -> int:
    return int(re.search(rf"^calls {name} (\d+)$", stdout, re.M).group(1))


# Each profile, and other code generation for the same source in release: vectorized for
# this machine's CPU (AVX instructions that uprobes refuse), DWARF 5 forms (.debug_addr,
# .debug_rnglists).
BUILDS = [(profile, None) for profile in PROFILES] + [
    ("release", "-C target-cpu=native"),
    ("release", "-C dwarf-version=5"),
]


@pytest.mark.parametrize(("profile", "flags"), BUILDS)
@pytest.mark.parametrize("n", [3, 13])
def test_every_execution_of_every_copy_counts_once(uprobe_trace, cargo_bin, profile, flags, n):
    exe = cargo_bin(CRATE, profile=profile, rustflags=flags)
    probes = {
        "inline_ranges::execute": "execute",  # a loop of 4 unrolled: 4 ranges, one DIE
        "inline_ranges::helper": "helper",  # three call sites in a loop, one after padding
        "inline_ranges::count_small::{closure#0}": "filter",  # a closure only inlined
        "inline_ranges::mapped::{closure#0}": "map",
        "inline_ranges::largest": "largest",
        "inline_ranges::sum_to": "sum_to",  # a loop inside the copy
        "inline_ranges::count_down": "count_down",  # a loop that is the copy's first statement
        "inline_ranges::geo::total_area": "total_area",  # another module, inlined into main
        "<* as inline_ranges::geo::Shape>::area": "area",  # a glob over trait impls
    }
    trace = uprobe_trace.run([exe, str(n)], probes=list(probes))
    seen = {probe: trace[probe].call_count for probe in probes}
    expected = {probe: counted(trace.stdout, name) for probe, name in probes.items()}
    assert seen == expected
    # main's closures: the argument parser runs once (one argument given), the map over
    # 0..5 five times.
    closures = ["inline_ranges::main::{closure#0}", "inline_ranges::main::{closure#1}"]
    trace = uprobe_trace.run([exe, str(n)], probes=closures)
    assert [trace[c].call_count for c in closures] == [1, 5]


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


@pytest.mark.parametrize("profile", PROFILES)
def test_the_unrolled_copy_reads_each_command(uprobe_trace, cargo_bin, profile):
    n = 21
    exe = cargo_bin(CRATE, profile=profile)
    trace = uprobe_trace.run([exe, str(n)], probes=["inline_ranges::execute"])
    # main passes [n, n + 1, n + 2, n + 3]; run_commands prints the sum of 3 * cmd + 1.
    printed = int(re.search(r"^run_commands = (\d+)$", trace.stdout, re.M).group(1))
    assert printed == sum(3 * c + 1 for c in range(n, n + 4))
    assert sorted(c.kwargs["cmd"] for c in trace["inline_ranges::execute"].calls) == [
        n,
        n + 1,
        n + 2,
        n + 3,
    ]


@pytest.mark.parametrize("profile", PROFILES)
def test_generic_instances_by_dwarf_names_with_their_parameters(uprobe_trace, cargo_bin, profile):
    exe = cargo_bin(CRATE, profile=profile)
    probes = ["inline_ranges::largest::<u8>", "inline_ranges::largest::<u32>"]
    trace = uprobe_trace.run([exe, "5"], probes=probes)
    # main calls each instance once (largest_u8, largest_u32); the counter sums both.
    assert [trace[p].call_count for p in probes] == [1, 1]
    assert counted(trace.stdout, "largest") == 2
    printed = {"u8": [3, 9, 4], "u32": [30, 90, 40, 7]}
    for probe in probes:
        (call,) = trace[probe].calls
        # DWARF lists `items` for every copy: never `()`; a part it cannot give is Unavailable.
        assert list(call.kwargs) == ["items"]
        items = call.kwargs["items"]
        if not isinstance(items, Unavailable):
            assert list(items) == printed[probe.rsplit("<", 1)[1].rstrip(">")]


def test_symbols_lists_each_generic_instance_and_numbered_closure_under_legacy_mangling(
    cargo_bin,
):
    binary = ElfBinary.open(cargo_bin("example_crates/zoo", profile="release"))
    assert any(s.name.startswith("_ZN") for s in binary.functions)  # legacy mangling
    paths = [row.path for row in symbol_rows(binary, "zoo::*")]
    assert {"zoo::ident::<u8>", "zoo::ident::<i32>", "zoo::ident::<u64>"} <= set(paths)
    assert {"zoo::main::{closure#0}", "zoo::main::{closure#1}"} <= set(paths)
    assert not [p for p in paths if "{{closure}}" in p]


@pytest.mark.parametrize("profile", ["dev", "release"])
def test_the_call_log_names_closures_as_dwarf_numbers_them(uprobe_trace, cargo_bin, profile):
    exe = cargo_bin("example_crates/zoo", profile=profile)
    trace = uprobe_trace.run([exe, "3"], probes=["zoo::main::*"])
    paths = Counter(c.path for c in trace["zoo::main::*"].calls)
    for number in (0, 1):
        name = f"zoo::main::{{closure#{number}}}"
        assert paths[name] == counted(trace.stdout, re.escape(name))
    assert not [p for p in paths if "{{closure}}" in p]
    assert "{{closure}}" not in trace.log()


@pytest.mark.parametrize("profile", ["release", "dev"])
@pytest.mark.parametrize("mangling", ["legacy", "v0"])
def test_async_bodies_by_either_name(uprobe_trace, cargo_bin, profile, mangling):
    rustflags = "-C symbol-mangling-version=v0" if mangling == "v0" else None
    exe = cargo_bin(CRATE, profile=profile, rustflags=rustflags)
    # DWARF names an async fn's body `{async_fn#0}` and an async block `{async_block#2}`
    # (closures, async fns and async blocks share one counter); v0 symbols spell both
    # `{closure#N}`. Either spelling names the same function, in either mangling.
    probes = [
        "inline_ranges::fetch_double::{async_fn#0}",
        "inline_ranges::fetch_double::{closure#0}",
        "inline_ranges::main::{async_block#2}",
        "inline_ranges::main::{closure#2}",
    ]
    # One run per spelling: two probes on one function in one run is issue 13's class 1.
    traces = [uprobe_trace.run([exe, "6"], probes=[p]) for p in probes[:2]]
    # The async block awaits, so it could suspend: a copy of it inlined into block_on is
    # resumed past where it begins, and is refused rather than counted low (release).
    for p in probes[2:]:
        try:
            traces.append(uprobe_trace.run([exe, "6"], probes=[p]))
        except UnprobeableSite as refused:
            assert profile == "release" and "resumed where it last suspended" in str(refused)
    stdout = traces[0].stdout
    # Each future is ready at its first poll: the body of fetch_double runs once per call
    # (three printed calls, and one inside the async block), the async block once.
    direct = len(re.findall(r"^fetch_double\(\d+\) = \d+$", stdout, re.M))
    blocks = len(re.findall(r"^async block = \d+$", stdout, re.M))
    assert (direct, blocks) == (3, 1)
    counts = [trace[p].call_count for trace, p in zip(traces, probes)]
    assert counts == [direct + blocks, direct + blocks, blocks, blocks][: len(traces)]
    assert all("{{closure}}" not in trace.log() for trace in traces)
