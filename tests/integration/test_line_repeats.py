"""Lines that one execution passes more than once: loops written on one line, closures
written on the line the line's own code calls, and a jump over code the optimizer moved in
from another line (example_crates/oneline).

One execution of a line is one arrival at it from another line (or from the function's
caller); passing through the line's own code again belongs to the same execution. The
program prints its calls (each function runs its one-line loop once per call) and each
loop's passes: a count is exactly the calls, or an upper bound whose exact comparisons
refuse, and `pytest-uprobe lines` marks exactly the lines whose count is a bound."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_uprobe import Tracer
from pytest_uprobe.bounds import InexactCount
from pytest_uprobe.cargo import cargo_bin

PROFILES = ["dev", "release"]
CRATE = "example_crates/oneline"
SOURCE = Path(__file__).resolve().parents[2] / CRATE / "src" / "main.rs"
N, ROUNDS = 4, 3
# marker -> the function whose every call runs the line once (None: main, once a run).
ONE_LINE = {
    "while-one-line": "countdown",
    "loop-one-line": "until",
    "for-one-line": "for_sum",
    "chain-one-line": "chain",
    "vector-one-line": "vector_sum",
    "no-loop-two-arrivals": None,
    "collect-one-line": None,
}


def line_of(marker: str) -> int:
    for number, text in enumerate(SOURCE.read_text().splitlines(), start=1):
        if text.rstrip().endswith(f"// probe: {marker}"):
            return number
    raise AssertionError(f"no line marked {marker!r}")


def probe_of(marker: str) -> str:
    return f"src/main.rs:{line_of(marker)}"


@pytest.fixture(scope="module")
def cargo_bin_module(request):
    def build(crate, **kwargs):
        return cargo_bin(crate, base=request.config.rootpath, **kwargs)

    return build


@pytest.fixture(scope="module", params=PROFILES)
def run(request, cargo_bin_module):
    """One run of the crate per profile with every one-line loop probed."""
    exe = cargo_bin_module(CRATE, profile=request.param)
    with Tracer() as tracer:
        trace = tracer.run([exe, str(N), str(ROUNDS)], probes=[probe_of(m) for m in ONE_LINE])
    assert trace.returncode == 0, trace.stderr
    return request.param, exe, trace


def executions(stdout: str, function: str | None) -> int:
    """How often the line ran, from what the program printed: once per call of its
    function (each call prints one `function(...)` line), or once for main."""
    if function is None:
        assert re.search(rf"^rounds={ROUNDS}$", stdout, re.M)
        return 1
    return len(re.findall(rf"^{function}\(", stdout, re.M))


@pytest.mark.parametrize("marker", list(ONE_LINE))
def test_a_line_s_count_is_its_executions_or_an_upper_bound_that_says_why(run, marker):
    profile, _, trace = run
    ran = executions(trace.stdout, ONE_LINE[marker])
    assert ran == (ROUNDS if ONE_LINE[marker] else 1)
    count = trace[probe_of(marker)].call_count
    if count.exact:
        assert count == ran
        return
    assert int(count) >= ran and count.may_be_fewer and not count.may_be_more
    assert count <= int(count) and count >= 1  # what the bound decides: it ran, at most this
    assert repr(count) == f"CallCount(between 1 and {int(count)})"
    trace[probe_of(marker)].assert_called()
    with pytest.raises(InexactCount, match="each (arrival|of its runs) is counted"):
        assert count == ran
    with pytest.raises(InexactCount):
        trace[probe_of(marker)].assert_called_once()


def test_in_dev_a_one_line_while_counts_every_pass_as_an_upper_bound(run):
    """The dev `while` (its condition first on the line, the loop's back jump to it) and
    the dev `loop` count every pass, which the program printed: the bound is needed."""
    profile, _, trace = run
    if profile != "dev":
        pytest.skip("the release loops on one line are entered once per call (exact)")
    steps = [int(s) for s in re.findall(r"^countdown\(\d+\) steps=(\d+)$", trace.stdout, re.M)]
    ends = [int(i) for i in re.findall(r"^until\(\d+\) i=(\d+)$", trace.stdout, re.M)]
    assert steps == [N] * ROUNDS and ends == [N] * ROUNDS
    countdown = trace[probe_of("while-one-line")].call_count
    until = trace[probe_of("loop-one-line")].call_count
    assert int(countdown) == sum(s + 1 for s in steps)  # n passes and the check that ends it
    assert int(until) == sum(ends)
    assert "a loop written on one line" in countdown.reasons()
    # The dev iterator chain's closure runs out of line, once per item, each run counted.
    chain = trace[probe_of("chain-one-line")].call_count
    assert int(chain) == ROUNDS * (1 + N) and "body of a closure" in chain.reasons()


@pytest.mark.parametrize("profile", PROFILES)
def test_the_lines_command_marks_exactly_the_lines_whose_count_is_a_bound(
    uprobe_trace, cargo_bin, capsys, profile
):
    """Every line of the file: `(loops)` in `pytest-uprobe lines` if and only if the plan of
    a probe on that line makes its count an upper bound, with a reason per repeated site."""
    from pytest_uprobe.cli import main

    exe = cargo_bin(CRATE, profile=profile)
    assert main(["lines", str(exe), "src/main.rs", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    probes = [row["probe"] for row in rows]
    plan = uprobe_trace.plan(exe, probes)
    marked = {row["probe"] for row in rows if row["loops_back"]}
    bounded = {p for p in probes if plan.coverage_of(p).may_be_fewer}
    assert marked == bounded
    assert marked  # the crate has such lines in both profiles
    assert probe_of("collect-one-line") in marked or profile == "dev"
    if profile == "dev":
        assert {probe_of("while-one-line"), probe_of("chain-one-line")} <= marked
    # A line with a vectorized loop inlined from it is entered once per call: not marked.
    assert probe_of("vector-one-line") not in marked or profile == "dev"


STOCKPILE = Path(__file__).resolve().parents[2] / "example_crates" / "stockpile"


def stockpile_line(text: str) -> int:
    lines = (STOCKPILE / "src" / "main.rs").read_text().splitlines()
    (number,) = [n for n, line in enumerate(lines, start=1) if line.strip() == text]
    return number


@pytest.mark.parametrize("profile", PROFILES)
def test_a_for_header_and_its_body_count_their_executions_or_an_upper_bound(
    uprobe_trace, cargo_bin, profile
):
    """stockpile's generic `largest` (4 instances, each over 3 items, as it prints): the
    `for` header runs len + 1 times per call, the `if` of its body len times.

    Dev code for the header calls `into_iter`, then jumps to `next()`, a second entry of
    the same line: both were counted (20 for 16) until the first was joined into the
    second. Release code of the u8 instance schedules the `for` line's pointer increment
    between the two halves of the body's compare: each half counted (15 for 12). Such
    sites make the count an upper bound that says so."""
    from tests.blackbox.stockpile import ARGV_TAIL

    exe = cargo_bin(str(STOCKPILE), profile=profile)
    header = f"src/main.rs:{stockpile_line('for &x in items {')}"
    body = f"src/main.rs:{stockpile_line('if x > best {')}"
    trace = uprobe_trace.run([exe, *ARGV_TAIL], probes=[header, body])
    printed = re.findall(r"^CALL largest<\w+> \(\[([^\]]*)\],\) -> ", trace.stdout, re.M)
    sizes = [len(items.split(", ")) for items in printed]
    assert len(sizes) == 4
    truth = {header: sum(n + 1 for n in sizes), body: sum(sizes)}
    for probe, ran in truth.items():
        count = trace[probe].call_count
        if profile == "dev":
            assert count.exact and count == ran, (probe, count)
        elif count.exact:
            assert count == ran, (probe, count)
        else:
            assert int(count) >= ran and "each part counts" in count.reasons()
    if profile == "release":
        assert int(trace[body].call_count) > truth[body]  # the case that was silently wrong
        assert not trace[body].call_count.exact
