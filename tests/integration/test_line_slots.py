"""Line probes in optimized code: a variable DWARF places in one stack slot for its whole
scope while the code keeps it in a register, and a store the optimizer moved out of a loop
with the loop body's line number (example_crates/loops). Expected values come from what the
program prints and from arithmetic on its arguments; lines are found by their markers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_uprobe import Unavailable

CRATE = "example_crates/loops"
SOURCE = Path(__file__).resolve().parents[2] / CRATE / "src" / "main.rs"
PROFILES = ["dev", "release"]
ID = 3  # accumulate(3, n) in main


def line_of(marker: str) -> int:
    for number, text in enumerate(SOURCE.read_text().splitlines(), start=1):
        if text.rstrip().endswith(f"// probe: {marker}"):
            return number
    raise AssertionError(f"no line marked {marker!r}")


def stale_slot(value: object) -> bool:
    return isinstance(value, Unavailable) and "opt-level 0" in value.reason


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("n", [0, 1, 4])
def test_a_loop_body_counts_each_iteration_and_never_reads_its_accumulator_stale(
    uprobe_trace, cargo_bin, profile, n
):
    """The body `acc = add_step(acc, k * id)` runs n times. Release code keeps `acc` in a
    register through the loop and writes its slot after it, on the loop's exit and on the
    path that skips it, both stores with the body's line number: neither is an execution
    (n + 1 hits, and 1 for n = 0, before). At the line the slot holds no value of this
    run's `acc`: Unavailable naming the build that reads it; `id`, `n` and `k` are read."""
    exe = cargo_bin(CRATE, profile=profile)
    probe = f"src/main.rs:{line_of('accumulate-body')}"
    trace = uprobe_trace.run([exe, str(n)], probes=[probe])
    printed = re.search(r"^accumulate\((\d+), (\d+)\) = (\d+)$", trace.stdout, re.M)
    assert printed is not None, trace.stdout
    assert (int(printed[1]), int(printed[2])) == (ID, n)
    assert int(printed[3]) == ID * n * (n + 1) // 2
    body = trace[probe]
    assert body.call_count == n
    assert [h.locals["k"] for h in body.calls] == list(range(1, n + 1))
    assert [(h.locals["id"], h.locals["n"]) for h in body.calls] == [(ID, n)] * n
    for hit in body.calls:
        k, acc = hit.locals["k"], hit.locals["acc"]
        if profile == "release":
            assert stale_slot(acc), hit.locals
        else:
            assert acc == ID * (k - 1) * k // 2, hit.locals


@pytest.mark.parametrize("profile", PROFILES)
def test_a_variable_changed_after_its_slot_was_last_read_is_new_or_unavailable(
    uprobe_trace, cargo_bin, profile
):
    """`shown` is printed (its slot holds `seed`), then becomes seed * 7 where nothing reads
    the slot again: the line after reads seed * 7, or says it cannot; never `seed`."""
    exe = cargo_bin(CRATE, profile=profile)
    seed = 5
    probe = f"src/main.rs:{line_of('after-change')}"
    trace = uprobe_trace.run([exe, "2", str(seed)], probes=[probe])
    assert f"shown before = {seed}" in trace.stdout
    assert f"changed_after_print({seed}) = {seed * 7 + 1}" in trace.stdout
    (hit,) = trace[probe].calls
    shown = hit.locals["shown"]
    if profile == "release":
        assert shown == seed * 7 or stale_slot(shown), hit.locals
    else:
        assert shown == seed * 7
    assert hit.locals["seed"] == seed


def test_a_line_a_uprobe_cannot_count_is_not_listed_and_says_why(uprobe_trace, cargo_bin):
    """In the stockpile crate's release build, `*rule_hits.entry(..).or_insert(0) += 1;`
    has a site on a `lock`-prefixed instruction with no stand-in, and a site its inlined
    hash-table probing loops back to (each pass counts): no count of it would be a bound
    of its executions, so probing it fails naming the site, and `pytest-uprobe lines`,
    which lists the lines that can be probed, leaves it out (it listed it before)."""
    from pytest_uprobe.elf import ElfBinary
    from pytest_uprobe.lines_command import line_rows
    from pytest_uprobe.plan import UnprobeableSite
    from tests.blackbox.stockpile import CRATE

    exe = cargo_bin(str(CRATE), profile="release")
    source = (CRATE / "src" / "main.rs").read_text().splitlines()
    line = source.index("                *rule_hits.entry(r.name.as_str()).or_insert(0) += 1;") + 1
    with pytest.raises(UnprobeableSite) as refused:
        uprobe_trace.plan(exe, [f"src/main.rs:{line}"])
    assert "uprobe cannot take" in str(refused.value)
    listed = {r.line for r in line_rows(ElfBinary.open(exe), "src/main.rs", None)}
    assert line not in listed and line - 1 in listed
