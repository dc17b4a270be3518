"""Every form of probe name on example_crates/zoo, in both symbol mangling schemes.

Expected counts come from the program's own `calls <path> <count>` lines."""

from __future__ import annotations

import pytest

ZOO = "example_crates/zoo"
V0 = "-C symbol-mangling-version=v0"
ARG = "4"  # the zoo scales most of its call counts by this

BUILDS = [
    pytest.param((profile, flags), id=f"{profile}-{mangling}")
    for profile in ("dev", "release")
    for mangling, flags in [("legacy", None), ("v0", V0)]
]


def printed_counts(stdout: str) -> dict[str, int]:
    counts = {}
    for line in stdout.splitlines():
        if line.startswith("calls "):
            path, count = line[len("calls ") :].rsplit(" ", 1)
            counts[path] = int(count)
    return counts


@pytest.fixture(params=BUILDS)
def zoo(request, cargo_bin):
    profile, rustflags = request.param
    return cargo_bin(ZOO, profile=profile, rustflags=rustflags), rustflags is not None


# probe name -> the printed paths whose counts add up to its expected call count
FORMS = {
    "exact path": ("zoo::fib", ["zoo::fib"]),
    "nested module": ("zoo::geometry::inner::scale", ["zoo::geometry::inner::scale"]),
    "generic path, all instances": (
        "zoo::ident",
        ["zoo::ident::<u8>", "zoo::ident::<i32>", "zoo::ident::<u64>"],
    ),
    "trait impl": ("<zoo::Sq as zoo::Shape>::area", ["<zoo::Sq as zoo::Shape>::area"]),
    "closure #0": ("zoo::main::{closure#0}", ["zoo::main::{closure#0}"]),
    "closure #1": ("zoo::main::{closure#1}", ["zoo::main::{closure#1}"]),
    "glob over impls": (
        "<* as zoo::Shape>::area",
        ["<zoo::Sq as zoo::Shape>::area", "<zoo::Circle as zoo::Shape>::area"],
    ),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_name_form_counts_every_call(uprobe_trace, zoo, form):
    exe, _ = zoo
    probe, printed = FORMS[form]
    trace = uprobe_trace.run([exe, ARG], probes=[probe])
    assert trace.returncode == 0, trace.stderr
    counts = printed_counts(trace.stdout)
    expected = sum(counts[p] for p in printed)
    assert expected > 0
    assert trace[probe].call_count == expected
    assert trace.lost_events == 0


@pytest.mark.parametrize("instance", ["zoo::ident::<u8>", "zoo::ident::<i32>", "zoo::ident::<u64>"])
def test_explicit_generic_instance(uprobe_trace, zoo, instance):
    exe, v0 = zoo
    # Legacy symbols carry no generic arguments: DWARF's instance names (`ident<u8>`) do.
    trace = uprobe_trace.run([exe, ARG], probes=[instance])
    assert trace[instance].call_count == printed_counts(trace.stdout)[instance]
