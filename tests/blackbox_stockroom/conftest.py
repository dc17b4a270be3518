"""A fourth user's crate (example_crates/stockroom: a library + binary with trait objects,
std collections, closures, a tokio multi-thread runtime, fork/exec workers) and tests,
written from the README and the user docs alone by someone who had not seen the code
(kept as a test of the project). Every expected value is parsed from what the program
printed (rdebug.py parses Rust's `{:?}`). KNOWN_GAPS lists what the tool could not do for
them, as strict xfails: a fix makes its test pass and the xfail fail, so the entry goes."""

from pathlib import Path

import pytest

CRATE = Path(__file__).resolve().parents[2] / "example_crates" / "stockroom"


@pytest.fixture(scope="session")
def crate_dir():
    return str(CRATE)


# (test id below tests/blackbox_stockroom/) -> what the tool gave vs what the program printed.
# Line counts (issue 18) go to the line-count work: "WRONG" marks an exact-looking count that
# disagrees with the program, the first rule's worst case.
LINES = "line counts (issue 18): "
KNOWN_GAPS: dict[str, str] = {
    "test_closures.py::test_cheapest_closure_box_dyn_inside_tuple[release]": (
        "the closure's copies inlined into cheapest have their argument optimized out in DWARF: "
        "Unavailable('optimized out') vs printed (1, Tiered { tiers: [(10, 200), (50, 150)], "
        "fallback: 260 }) (dev decodes the &(usize, &Box<dyn Pricing>) now)"
    ),
    "test_lines.py::test_loop_body_line_with_locals[release]":
        LINES + "WRONG: checksum's loop body lib.rs:192 counts 11 vs printed 9 STEP lines",
    "test_lines.py::test_loop_body_line_inprocess[release]":
        LINES + "WRONG: checksum's loop body lib.rs:192 counts 11 vs printed 9 (in-process)",
    "test_lines.py::test_line_counts_equal_executions[stockroom/src/lib.rs:192-release]":
        LINES + "WRONG: lib.rs:192 (loop body) counts 11 vs printed 9",
    "test_lines.py::test_line_counts_equal_executions[stockroom/src/jobs/mod.rs:9-release]":
        LINES + "WRONG: jobs/mod.rs:9 (an async fn's line) counts 6 vs printed 3 completions",
    "test_lines.py::test_line_count_matches_program[stockroom/src/pricing/mod.rs:87-release]":
        LINES + "WRONG: settle's mod.rs:87, split in two pieces around line 88's inlined "
        "drop_in_place, counts 2 vs printed 1 call",
    "test_lines.py::test_line_count_matches_program[stockroom/src/lib.rs:54-release]":
        LINES + "WRONG: lib.rs:54 `(0..n).map(..).collect()` counts 241 vs 121 (1 + 120 entries)",
    "test_lines.py::test_line_count_matches_program[stockroom/src/main.rs:43-release]":
        LINES + "WRONG: main.rs:43 (unrolled loop body) counts 8 vs printed 9 STEP lines",
    "test_lines.py::test_line_count_matches_program[stockroom/src/lib.rs:168-dev]":
        LINES + "WRONG: lib.rs:168 `if a || b {` counts 6 vs 4 classify calls",
    "test_lines.py::test_line_count_matches_program[stockroom/src/pricing/mod.rs:56-dev]":
        LINES + "WRONG: mod.rs:56 `if qty >= self.min_qty {` counts 11 vs 7 Bulk::unit_cents calls",
    "test_lines.py::test_line_count_matches_program[stockroom/src/lib.rs:180-dev]":
        LINES + "WRONG: lib.rs:180 `for o in orders` counts 1 vs n + 1 = 5 (docs: n + 1)",
    "test_lines.py::test_line_count_matches_program[stockroom/src/main.rs:67-dev]":
        LINES + "WRONG: main.rs:67 `for (sku, qty) in [..]` counts 1 vs n + 1 = 5",
    "test_lines.py::test_line_count_matches_program[stockroom/src/main.rs:67-release]":
        LINES + "WRONG: main.rs:67 `for` header counts 4 vs n + 1 = 5",
    "test_lines.py::test_line_count_matches_program[stockroom/src/main.rs:84-dev]":
        LINES + "WRONG: main.rs:84 `for code in [100, 335, 7]` counts 1 vs n + 1 = 4",
    "test_lines.py::test_line_count_matches_program[stockroom/src/main.rs:84-release]":
        LINES + "WRONG: main.rs:84 `for` header counts 3 vs n + 1 = 4",
    "test_lines.py::test_docs_form_src_lib_rs_names_the_crates_file":
        LINES + "`src/lib.rs:192` (docs: a path relative to the crate) is refused as "
        "AmbiguousSourceFile (11 files end that way: std's, hashbrown's, ...) vs the crate's own",
    "test_lines.py::test_ambiguous_file_names_candidates":
        LINES + "`mod.rs:10` lists 10 of 63 candidates, std's and deps' first, and neither "
        "of the crate's own src/jobs/mod.rs, src/pricing/mod.rs",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        reason = KNOWN_GAPS.get(item.nodeid.split("tests/blackbox_stockroom/", 1)[-1])
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
