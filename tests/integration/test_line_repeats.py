"""Lines that loop within themselves: loops written on one line, closures written on the
line that the line's code calls, and a jump over code the optimizer moved in from another
line (example_crates/oneline), plus stockpile's `for` header and the `if` of its body.

One execution of a line is gcov's and llvm-cov's (docs/lines-and-usdt.md): one arrival at
the line's code from another line, or one more pass of a loop written on the line. So a
one-line `while` runs once per pass plus the check that ends it, a one-line `for` or
iterator chain n + 1 times for n items (a closure's run is an arrival from core's code).
The program prints its calls and each loop's passes: a count is exactly that arithmetic,
or a bound holding it whose exact comparisons refuse, and `pytest-uprobe lines` marks
exactly the lines whose count is a bound."""

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
# marker -> the function whose every call runs the line's statement once (None: main,
# once a run).
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


def executions(stdout: str, marker: str) -> int:
    """How often the line ran by gcov's definition, from what the program printed: per call
    of its function one arrival plus each further pass of the loop written on the line."""
    function = ONE_LINE[marker]
    if function is None:
        assert re.search(rf"^rounds={ROUNDS}$", stdout, re.M)
        return 1
    calls = re.findall(rf"^{function}\((\d+)\)(?: \w+=(\d+))?", stdout, re.M)
    assert len(calls) == ROUNDS
    if marker == "while-one-line":  # `countdown(n) steps=S`: S passes, then the check that ends
        return sum(int(steps) + 1 for _, steps in calls)
    if marker == "loop-one-line":  # `until(n) i=I`: I passes, the first one the arrival
        return sum(int(passes) for _, passes in calls)
    # `for_sum(len)`, `chain(len)`, `vector_sum(len)`: the statement, then one pass (a
    # closure run) per item.
    return sum(int(length) + 1 for length, _ in calls)


@pytest.mark.parametrize("marker", list(ONE_LINE))
def test_a_line_s_count_is_its_executions_or_a_bound_that_holds_them(run, marker):
    profile, _, trace = run
    ran = executions(trace.stdout, marker)
    count = trace[probe_of(marker)].call_count
    if profile == "dev":
        assert count.exact, (marker, repr(count), count.reasons())
    if count.exact:
        assert count == ran, (marker, int(count), ran)
        return
    assert count.low <= ran <= count.high, (marker, repr(count), ran)
    assert count >= 1  # the line's code was reached: it ran
    trace[probe_of(marker)].assert_called()
    if count.low != count.high:
        with pytest.raises(InexactCount, match="it may be"):
            assert count == ran
        with pytest.raises(InexactCount):
            trace[probe_of(marker)].assert_called_once()


def test_in_dev_one_line_loops_and_closures_count_each_pass_exactly(run):
    """The dev `while` (its condition first on the line, the loop's back jump to it), the
    dev `loop` and the dev chain's out-of-line closure count every pass, as the program
    printed them: exactly gcov's count, no bound."""
    profile, _, trace = run
    if profile != "dev":
        pytest.skip("release counts of these lines are checked as bounds above")
    steps = [int(s) for s in re.findall(r"^countdown\(\d+\) steps=(\d+)$", trace.stdout, re.M)]
    ends = [int(i) for i in re.findall(r"^until\(\d+\) i=(\d+)$", trace.stdout, re.M)]
    assert steps == [N] * ROUNDS and ends == [N] * ROUNDS
    assert trace[probe_of("while-one-line")].call_count == sum(s + 1 for s in steps)
    assert trace[probe_of("loop-one-line")].call_count == sum(ends)
    assert trace[probe_of("chain-one-line")].call_count == ROUNDS * (1 + N)


@pytest.mark.parametrize("profile", PROFILES)
def test_the_lines_command_marks_exactly_the_lines_whose_count_is_a_bound(
    uprobe_trace, cargo_bin, capsys, profile
):
    """Every line of the file: `(bound: ...)` in `pytest-uprobe lines` if and only if the
    plan of a probe on that line makes its count a bound; none in a dev build."""
    from pytest_uprobe.cli import main

    exe = cargo_bin(CRATE, profile=profile)
    assert main(["lines", str(exe), "src/main.rs", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    probes = [row["probe"] for row in rows]
    plan = uprobe_trace.plan(exe, probes)
    marked = {row["probe"] for row in rows if row["bound"]}
    bounded = {p for p in probes if plan.coverage_of(p).unseen or plan.coverage_of(p).may_be_fewer}
    assert marked == bounded
    if profile == "dev":
        assert not marked  # dev builds count every line exactly
        # `(loops)` still tells which lines a loop of their own passes again (each pass counts).
        looping = {row["probe"] for row in rows if row["loops_back"]}
        assert {probe_of("while-one-line"), probe_of("loop-one-line")} <= looping
    else:
        assert marked  # the release loops on one line are bounds naming their shape


STOCKPILE = Path(__file__).resolve().parents[2] / "example_crates" / "stockpile"


def stockpile_line(text: str) -> int:
    lines = (STOCKPILE / "src" / "main.rs").read_text().splitlines()
    (number,) = [n for n, line in enumerate(lines, start=1) if line.strip() == text]
    return number


@pytest.mark.parametrize("profile", PROFILES)
def test_a_for_header_and_its_body_count_their_executions_or_a_bound(
    uprobe_trace, cargo_bin, profile
):
    """stockpile's generic `largest` (4 instances, each over 3 items, as it prints): the
    `for` header runs len + 1 times per call, the `if` of its body len times.

    Dev code for the header calls `into_iter`, then jumps to `next()`, the loop's back
    jump reaching it again: n + 1 exactly (it once counted 20 for 16). Release code of the
    u8 instance schedules the `for` line's pointer increment between the two halves of the
    body's compare, each half an arrival (it once counted 15 for 12, silently): release
    counts of these loop lines are bounds naming the shape, holding the truth."""
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
            assert count.low <= ran <= count.high and count.reasons(), (probe, repr(count))
            with pytest.raises(InexactCount, match="it may be"):
                assert count == ran
    if profile == "release" and int(trace[body].call_count) != truth[body]:
        assert not trace[body].call_count.exact  # the case that was silently wrong
