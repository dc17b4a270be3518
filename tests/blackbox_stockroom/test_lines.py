"""Line probes on checksum's loop body, with locals; line-name errors."""

import re

import pytest

from pytest_uprobe import Unavailable

BODY = 192  # acc = acc.rotate_left(5) ^ (b as u32);


def steps(stdout):
    return [tuple(int(x) for x in m) for m in re.findall(r"STEP n=(\d+) b=(\d+) acc=(\d+)", stdout)]


def _check_body(trace, probe, profile):
    expected = steps(trace.stdout)
    assert len(expected) == 9
    body = trace[probe]
    assert body.call_count == len(expected)
    got = []
    for hit in body.calls:
        loc = hit.locals
        got.append(tuple(loc.get(k) for k in ("n", "b", "acc")))
    for (n, b, acc), (gn, gb, gacc), hit in zip(expected, got, body.calls):
        for name, want, have in (("n", n, gn), ("b", b, gb), ("acc", acc, gacc)):
            if profile == "release" and isinstance(have, Unavailable):
                continue  # documented: optimized code may not prove the slot
            assert have == want, f"{name} at {hit.at}: program printed {want}, tool gave {have!r}"
    if profile == "dev":
        assert got == expected
    assert body.calls[0].at.startswith(f"lib.rs:{BODY} in stockroom::checksum")


@pytest.mark.parametrize("profile", ["dev", "release"])
def test_loop_body_line_with_locals(uprobe_trace, crate_dir, cargo_bin, profile):
    exe = cargo_bin(crate_dir, profile=profile)
    probe = f"stockroom/src/lib.rs:{BODY}"
    trace = uprobe_trace.run([exe, "sync"], probes=[probe])
    _check_body(trace, probe, profile)


@pytest.mark.parametrize("profile", ["dev", "release"])
def test_loop_body_line_inprocess(crate_dir, cargo_bin, profile, request):
    if not request.config.getoption("--uprobe"):
        pytest.skip("needs --uprobe")
    from pytest_uprobe import Tracer

    exe = cargo_bin(crate_dir, profile=profile)
    probe = f"stockroom/src/lib.rs:{BODY}"
    with Tracer(backend="inprocess") as t:
        trace = t.run([exe, "sync"], probes=[probe])
    _check_body(trace, probe, profile)


def test_docs_form_src_lib_rs_names_the_crates_file(uprobe_trace, crate_dir, cargo_bin):
    """docs/lines-and-usdt.md: 'The file is a path relative to the crate (src/parser.rs)'."""
    exe = cargo_bin(crate_dir)
    trace = uprobe_trace.run([exe, "sync"], probes=[f"src/lib.rs:{BODY}"])
    assert trace[f"src/lib.rs:{BODY}"].call_count == 9


def test_ambiguous_file_names_candidates(uprobe_trace, crate_dir, cargo_bin):
    from pytest_uprobe.errors import ProbeNameError

    exe = cargo_bin(crate_dir)
    with pytest.raises(ProbeNameError) as ei:
        uprobe_trace.plan(exe, ["mod.rs:10"])
    msg = str(ei.value)
    assert type(ei.value).__name__ == "AmbiguousSourceFile"
    assert "src/jobs/mod.rs" in msg and "src/pricing/mod.rs" in msg, msg
    assert "fix:" in msg


def test_line_without_code(uprobe_trace, crate_dir, cargo_bin):
    exe = cargo_bin(crate_dir)
    with pytest.raises(Exception) as ei:
        uprobe_trace.plan(exe, ["stockroom/src/lib.rs:186"])  # a doc comment
    assert type(ei.value).__name__ == "NoCodeAtLine"
    assert "188" in str(ei.value), str(ei.value)


def _exec_counts(stdout):
    """How often each probed line ran, from what the program printed."""
    from tests.blackbox_stockroom import rdebug

    c = rdebug.calls(stdout)
    a = rdebug.calls(stdout, tag="ASYNC")
    n = {}
    if c:
        lines = [l for l in stdout.splitlines() if l.startswith("CALL reserve ")]
        n["stockroom/src/lib.rs:61"] = sum("=> Err(Unknown(" in l for l in lines)
        n["stockroom/src/lib.rs:64"] = sum("=> Ok(" in l for l in lines)
        n["stockroom/src/lib.rs:106"] = 3  # drain_backlog(q, 3) on a ring of 8
        n["stockroom/src/lib.rs:181"] = len(c["classify"])  # tally: once per order
        n["stockroom/src/main.rs:42"] = len(steps(stdout))
        n["stockroom/src/lib.rs:192"] = len(steps(stdout))
    if a:
        n["stockroom/src/jobs/mod.rs:9"] = sum(1 for _, r in a["fetch_stock"] if isinstance(r, int))
    return n


LINES = [
    "stockroom/src/lib.rs:61",
    "stockroom/src/lib.rs:64",
    "stockroom/src/lib.rs:106",
    "stockroom/src/lib.rs:181",
    "stockroom/src/main.rs:42",
    "stockroom/src/lib.rs:192",
    "stockroom/src/jobs/mod.rs:9",
]


@pytest.mark.parametrize("profile", ["dev", "release"])
@pytest.mark.parametrize("line", LINES)
def test_line_counts_equal_executions(uprobe_trace, crate_dir, cargo_bin, profile, line):
    exe = cargo_bin(crate_dir, profile=profile)
    trace = uprobe_trace.run([exe, "async" if "jobs" in line else "sync"], probes=[line])
    expected = _exec_counts(trace.stdout)[line]
    assert trace[line].call_count == expected


def _bulk_unit_cents_calls(stdout):
    from tests.blackbox_stockroom import rdebug

    c = rdebug.calls(stdout)
    is_bulk = lambda r: isinstance(r, dict) and "min_qty" in r  # noqa: E731
    n = sum(1 for (rule, _), _ in c["quote"] if is_bulk(rule))
    n += len(c["cheapest"])  # cheapest quotes every rule once per call: one Bulk each
    n += sum(1 for l in stdout.splitlines() if l.startswith("ARG settle | Bulk"))
    lines_per_order = {
        1001: 2,
        1002: 1,
        1003: 2,
        1004: 2,
    }  # from orders() as printed by classify ids
    n += sum(lines_per_order[oid] for (oid, rule), _ in c["order_value"] if is_bulk(rule))
    return n


# (probe, what the program's output says the count must be, per docs' definition of an execution)
PROGRAM_COUNTS = {
    # straight-line statement in settle, which runs once (one "CALL settle" line)
    "stockroom/src/pricing/mod.rs:87": lambda out: sum(
        l.startswith("CALL settle ") for l in out.splitlines()
    ),
    # let catalog = (0..n).map(|c| ...).collect(): the statement once, the closure once per entry
    "stockroom/src/lib.rs:54": lambda out: 1 + int(out.split("# catalog len ")[1].split()[0]),
    # loop body of checksum_steps: once per STEP line
    "stockroom/src/main.rs:43": lambda out: len(steps(out)),
    # `if ... || ...` in classify: once per classify call
    "stockroom/src/lib.rs:168": lambda out: sum(
        l.startswith("CALL classify ") for l in out.splitlines()
    ),
    # `if qty >= self.min_qty` in Bulk::unit_cents: once per Bulk::unit_cents call
    "stockroom/src/pricing/mod.rs:56": _bulk_unit_cents_calls,
    # `for o in orders` in tally: n + 1 (docs: the for header runs n + 1 times), n = orders
    "stockroom/src/lib.rs:180": lambda out: (
        sum(l.startswith("CALL classify ") for l in out.splitlines()) + 1
    ),
    # `for (sku, qty) in [4 pairs]` in run_sync: n + 1, n = CALL reserve lines
    "stockroom/src/main.rs:67": lambda out: (
        sum(l.startswith("CALL reserve ") for l in out.splitlines()) + 1
    ),
    # `for code in [100, 335, 7]`: n + 1, n = CALL catalog_lookup lines
    "stockroom/src/main.rs:84": lambda out: (
        sum(l.startswith("CALL catalog_lookup ") for l in out.splitlines()) + 1
    ),
}


@pytest.mark.parametrize("profile", ["dev", "release"])
@pytest.mark.parametrize("line", list(PROGRAM_COUNTS))
def test_line_count_matches_program(uprobe_trace, crate_dir, cargo_bin, profile, line):
    exe = cargo_bin(crate_dir, profile=profile)
    trace = uprobe_trace.run([exe, "sync"], probes=[line])
    expected = PROGRAM_COUNTS[line](trace.stdout)
    got = trace[line].call_count
    assert got == expected, f"{line} ({profile}): program says {expected}, tool says {got!r}"
