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
# disagrees with the program, the first rule's worst case; "a bound" one that `==` refuses
# (the program's count is the docs' definition; the user's test asserts it exactly).
LINES = "line counts (issue 18): "
KNOWN_GAPS: dict[str, str] = {
    "test_closures.py::test_cheapest_closure_box_dyn_inside_tuple[release]": (
        "the closure's copies inlined into cheapest have their argument optimized out in DWARF: "
        "Unavailable('optimized out') vs printed (1, Tiered { tiers: [(10, 200), (50, 150)], "
        "fallback: 260 }) (dev decodes the &(usize, &Box<dyn Pricing>) now)"
    ),
    "test_lines.py::test_loop_body_line_with_locals[release]": LINES
    + "checksum's loop body lib.rs:192 (9 STEP lines printed) is a bound now, "
    "CallCount(11, neither a lower nor an upper bound): `==` raises InexactCount "
    "(it was 11, exact-looking)",
    "test_lines.py::test_loop_body_line_inprocess[release]": LINES
    + "checksum's loop body lib.rs:192 (9 printed) is a bound now in-process too, "
    "CallCount(11, neither a lower nor an upper bound) (it was 11, exact-looking)",
    "test_lines.py::test_line_counts_equal_executions[stockroom/src/lib.rs:192-release]": LINES
    + "lib.rs:192 (loop body, 9 printed) is a bound now, CallCount(11, "
    "neither a lower nor an upper bound) (it was 11, exact-looking)",
    "test_lines.py::test_line_counts_equal_executions[stockroom/src/jobs/mod.rs:9-release]": LINES
    + "jobs/mod.rs:9 (an async fn's line, 3 completions printed) is a bound "
    "now, CallCount(6, neither a lower nor an upper bound) (it was 6, exact-looking)",
    "test_lines.py::test_line_count_matches_program[stockroom/src/pricing/mod.rs:87-release]": LINES
    + "settle's mod.rs:87 (1 call printed), in two pieces around line 88's "
    "inlined drop_in_place, is a bound now: CallCount(2, neither a lower nor an upper bound)",
    "test_lines.py::test_line_count_matches_program[stockroom/src/lib.rs:54-release]": LINES
    + "lib.rs:54 `(0..n).map(..).collect()` (1 + 120 entries) is a bound now, "
    "CallCount(241, neither a lower nor an upper bound) (it was 241, exact-looking)",
    "test_lines.py::test_line_count_matches_program[stockroom/src/main.rs:43-release]": LINES
    + "main.rs:43 (unrolled loop body, 9 STEP lines) is a bound now, "
    "CallCount(8, neither a lower nor an upper bound) (it was 8, exact-looking)",
    "test_lines.py::test_line_count_matches_program[stockroom/src/main.rs:67-release]": LINES
    + "main.rs:67 `for` header (n + 1 = 5) is a bound now, CallCount(4, "
    "neither a lower nor an upper bound) (it was 4, exact-looking)",
    "test_lines.py::test_line_count_matches_program[stockroom/src/main.rs:84-release]": LINES
    + "main.rs:84 `for` header (n + 1 = 4) is a bound now, CallCount(3, "
    "neither a lower nor an upper bound) (it was 3, exact-looking)",
    "test_lines.py::test_line_counts_equal_executions[stockroom/src/lib.rs:181-release]": LINES
    + "the loop body lib.rs:181 (4 printed) is a bound, CallCount(4, neither a lower "
    "nor an upper bound): optimized code in 2 pieces that one arrival can both pass",
    "test_lines.py::test_line_counts_equal_executions[stockroom/src/main.rs:42-release]": LINES
    + "the loop body main.rs:42 (9 STEP lines) is a bound, CallCount(9, neither a "
    "lower nor an upper bound): optimized code in 9 pieces (the loop unrolled)",
    "test_lines.py::test_line_count_matches_program[stockroom/src/lib.rs:180-release]": LINES
    + "the `for o in orders` header lib.rs:180 (n + 1 = 5) is a bound, CallCount(5, "
    "neither a lower nor an upper bound): a loop header in optimized code, in 2 pieces",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        reason = KNOWN_GAPS.get(item.nodeid.split("tests/blackbox_stockroom/", 1)[-1])
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
