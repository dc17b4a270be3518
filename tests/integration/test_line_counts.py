"""A line's count is right or says why not (issue 18): every line of example_crates/linecount
marked `// count: EXPR` is probed in one run, in dev and release, and its count is either
exact and equal to EXPR (arithmetic on the input `n`, checked against what the program
prints), or a bound that holds the truth and that `== truth` refuses with a reason naming
the line's shape. Dev builds count ordinary lines exactly (a `for` header n + 1 times, an
`if a || b` once per evaluation)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_uprobe import InexactCount
from pytest_uprobe.elf import ElfBinary
from pytest_uprobe.lines_command import line_rows

CRATE = "example_crates/linecount"
SOURCE = Path(__file__).resolve().parents[2] / CRATE / "src" / "main.rs"


def marked_lines() -> dict[int, str]:
    """Line number -> the expression of its `// count:` marker."""
    found = {}
    for number, text in enumerate(SOURCE.read_text().splitlines(), start=1):
        match = re.search(r"// count: ([0-9n][^`]*)$", text)
        if match:
            found[number] = match.group(1).strip()
    return found


def program_total(n: int) -> int:
    """What the program prints as its total: the same arithmetic in Python."""
    mask = 2**64 - 1
    total = 0
    for i in range(n):
        total += i + 4 + 1 + 0 + ((i + n) if (i > 3 or n > 3) else 0)
        total += i + (2 if i % 2 == 0 or i * 20 > 50 else 1) + 14
    total += 1 + sum(2 * x for x in range(n)) + sum(i * i for i in range(n))
    acc = 1
    for v in range(1, 7):
        acc = (acc * 31 + v) & mask
    total += acc + n
    acc = 0
    for x in [1, 2, 3, 4, 5, 6, 7, 8, n]:
        acc = ((acc * 7) & mask) ^ x
    return (total + acc + n + 1) & mask


@pytest.mark.parametrize("profile", ["dev", "release"])
@pytest.mark.parametrize("n", [1, 3, 6])
def test_every_marked_line_is_exact_and_right_or_a_bound_that_holds_the_truth(
    uprobe_trace, cargo_bin, profile, n
):
    exe = cargo_bin(CRATE, profile=profile)
    with_code = {row.line for row in line_rows(ElfBinary.open(exe), "src/main.rs", None)}
    marked = {line: runs for line, runs in marked_lines().items() if line in with_code}
    if profile == "dev":
        assert marked == marked_lines()  # release merges lines away; dev keeps every one
    probes = [f"src/main.rs:{line}" for line in marked]
    trace = uprobe_trace.run([exe] + ["x"] * (n - 1), probes=probes)
    assert trace.stdout == f"n={n} total={program_total(n)}\n"
    wrong, exact, bounds = [], [], []
    for line, expression in marked.items():
        truth = eval(expression, {"n": n})  # noqa: S307 - the test's own markers
        count = trace[f"src/main.rs:{line}"].call_count
        if count.exact:
            exact.append(line)
            if count != truth:
                wrong.append(f"line {line}: counted {count} exactly, ran {truth}")
            continue
        bounds.append(line)
        if not count.low <= truth <= count.high:
            wrong.append(f"line {line}: {count!r} does not hold {truth}")
        if count.low != count.high:
            with pytest.raises(InexactCount, match="it may be"):
                assert count == truth
    assert not wrong, "\n".join(wrong)
    if profile == "dev":
        assert not bounds, f"dev lines counted as bounds: {bounds}"


@pytest.mark.parametrize("profile", ["dev", "release"])
def test_a_crate_relative_path_means_the_crate_s_own_file(uprobe_trace, cargo_bin, profile):
    """`src/lib.rs:6` (the docs' "path relative to the crate") is the crate's own lib.rs,
    not std's, core's, alloc's or a dependency's (all in the binary's line tables)."""
    from pytest_uprobe.dwarf.lines import match_file, source_files
    from pytest_uprobe.points import resolve_source_file

    exe = cargo_bin(CRATE, profile=profile)
    lib = SOURCE.parent / "lib.rs"
    line = next(
        n
        for n, t in enumerate(lib.read_text().splitlines(), 1)
        if t.endswith("// probe: lib-total")
    )
    trace = uprobe_trace.run([exe, "x", "y"], probes=[f"src/lib.rs:{line}"])
    assert trace[f"src/lib.rs:{line}"].call_count == 1
    assert [c.at for c in trace[f"src/lib.rs:{line}"].calls] == [
        f"lib.rs:{line} in linecount::lib_total"
    ]
    # A bare `lib.rs` means the crate's own too: the others are std's and dependencies'.
    binary = ElfBinary.open(exe)
    assert resolve_source_file(binary, f"lib.rs:{line}", "lib.rs") == str(lib)
    assert len([f for f in source_files(binary) if f.endswith("/src/lib.rs")]) > 3
    # Ambiguous among the crate's own files: those are listed first.
    found = match_file(binary, "main.rs")
    assert found == [str(SOURCE)]
