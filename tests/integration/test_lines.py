"""Source-line and USDT probes. Expected values come from what the programs print and from
arithmetic on their inputs; lines are found by their `// probe:` markers."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pytest_uprobe import Tracer, Unavailable
from pytest_uprobe.points import (
    AmbiguousSourceFile,
    NoCodeAtLine,
    NoSuchUsdtProbe,
    writable_segments_covering,
)

PROFILES = ["dev", "release"]
CRATE = "example_crates/lines"
ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / CRATE / "src" / "main.rs"
C_SOURCE = ROOT / "tests" / "fixtures" / "usdt_demo.c"


def line_of(marker: str) -> int:
    for number, text in enumerate(SOURCE.read_text().splitlines(), start=1):
        if text.rstrip().endswith(f"// probe: {marker}"):
            return number
    raise AssertionError(f"no line marked {marker!r}")


@pytest.fixture(scope="module", params=["O0", "O2"])
def c_usdt(request, tmp_path_factory) -> Path:
    if shutil.which("gcc") is None or not Path("/usr/include/x86_64-linux-gnu/sys/sdt.h").exists():
        pytest.fail(
            "the C USDT test needs gcc and sys/sdt.h: apt-get install gcc systemtap-sdt-dev"
        )
    exe = tmp_path_factory.mktemp("usdt") / f"usdt_demo_{request.param}"
    subprocess.run(["gcc", f"-{request.param}", "-g", "-o", str(exe), str(C_SOURCE)], check=True)
    return exe


@pytest.mark.parametrize("profile", PROFILES)
def test_a_line_inlined_into_two_callers_counts_every_execution_with_its_locals(
    uprobe_trace, cargo_bin, profile
):
    exe = cargo_bin(CRATE, profile=profile)
    xs = [2, 3, 7]
    probe = f"src/main.rs:{line_of('scale-body')}"
    trace = uprobe_trace.run([exe, *map(str, xs)], probes=[probe])
    hits = trace[probe]
    assert len(re.findall(r"^first_caller", trace.stdout, re.M)) == len(xs)
    assert hits.call_count == 2 * len(xs) == len(hits.calls)
    hosts = [re.search(r"in (lines::\w+)", c.at).group(1) for c in hits.calls]
    assert hosts == ["lines::first_caller", "lines::second_caller"] * len(xs)
    # scale(x, 3) from first_caller, scale(x, 5) from second_caller: as the program printed.
    printed = [int(v) for v in re.findall(r"^first_caller\((\d+)\)", trace.stdout, re.M)]
    assert printed == xs
    assert [c.locals for c in hits.calls] == [{"x": x, "k": k} for x in xs for k in (3, 5)]
    hits.assert_any_call(x=7, k=5)


@pytest.mark.parametrize("profile", PROFILES)
def test_a_loop_body_line_counts_each_iteration_and_reads_the_counter(
    uprobe_trace, cargo_bin, profile
):
    exe = cargo_bin(CRATE, profile=profile)
    n = 6
    probe = f"src/main.rs:{line_of('loop-body')}"
    trace = uprobe_trace.run([exe, str(n)], probes=[probe])
    printed = [
        {"i": int(i), "square": int(s), "total": int(t)}
        for i, s, t in re.findall(r"^iter i=(\d+) square=(\d+) total=(\d+)$", trace.stdout, re.M)
    ]
    body = trace[probe]
    assert body.call_count == n == len(printed)
    seen = [{k: c.locals[k] for k in ("i", "square", "total")} for c in body.calls]
    if profile == "release":
        # `i` has one stack slot for the whole function; the code writes it there for the
        # println and reads it no more, so nothing proves the slot holds it at the line
        # (dwarf/slots.py): Unavailable, naming the fix. `square` and `total` are read
        # from their slots there, which proves them.
        assert all(
            isinstance(c["i"], Unavailable) and "opt-level 0" in c["i"].reason for c in seen
        ), seen
        seen = [{**c, "i": p["i"]} for c, p in zip(seen, printed)]
    assert seen == printed
    assert [c.locals["n"] for c in body.calls] == [n] * n
    readable = [v for c in body.calls for k, v in c.locals.items() if k != "i"]
    assert all(not isinstance(v, Unavailable) for v in readable)


def test_the_counts_of_a_line_split_over_several_ranges_match_bpftrace_free_arithmetic(
    uprobe_trace, cargo_bin
):
    """Dev code for `total = total.wrapping_add(square)` is line 33, wrapping_add inlined,
    line 33 again; `let square = black_box(i * i)` has a line-0 jump and an overflow
    panic block: each still counts once per iteration."""
    exe = cargo_bin(CRATE, profile="dev")
    n = 5
    body = f"src/main.rs:{line_of('loop-body')}"
    square = f"src/main.rs:{line_of('loop-body') - 2}"
    trace = uprobe_trace.run([exe, str(n)], probes=[body, square])
    assert trace[body].call_count == n
    assert trace[square].call_count == n
    plan = uprobe_trace.plan(exe, [body, square])
    assert len(plan.probe_sites) == 2


def test_a_line_without_code_names_the_nearest_lines_with_code(uprobe_trace, cargo_bin):
    exe = cargo_bin(CRATE)
    line = line_of("comment-only")
    with pytest.raises(NoCodeAtLine) as raised:
        uprobe_trace.plan(exe, [f"src/main.rs:{line}"])
    assert raised.value.nearest == [line - 2, line + 1]  # the loop body; `total`
    assert f"nearest lines with code: {line - 2}, {line + 1}" in str(raised.value)


def test_an_ambiguous_file_name_lists_the_candidates(uprobe_trace, cargo_bin):
    exe = cargo_bin(CRATE)
    with pytest.raises(AmbiguousSourceFile) as raised:
        uprobe_trace.plan(exe, ["mod.rs:10"])
    assert len(raised.value.candidates) > 1
    assert all(c.endswith("/mod.rs") for c in raised.value.candidates)


@pytest.mark.parametrize("profile", PROFILES)
def test_rust_usdt_arguments_and_semaphore(uprobe_trace, cargo_bin, profile):
    exe = cargo_bin(CRATE, profile=profile)
    plan = uprobe_trace.plan(exe, ["usdt:lines:work"])
    # The semaphore's file page is also the last page of the RELRO segment: the layout in
    # which a kernel attaching before exec would count in the wrong place.
    semaphore = plan.functions[0].point.semaphore
    assert len(writable_segments_covering(plan.binary, semaphore)) == 2
    n = 4
    untraced = subprocess.run([exe, str(n)], capture_output=True, text=True, check=True).stdout
    assert re.findall(r"enabled=(\w+)", untraced) == ["false"] * n
    trace = uprobe_trace.run([exe, str(n)], probes=["usdt:lines:start", "usdt:lines:work"])
    work = re.findall(r"^work round=(\d+) enabled=(\w+) summary=(\d+)$", trace.stdout, re.M)
    assert [e for _, e, _ in work] == ["true"] * n  # the semaphore was set while attached
    assert trace["usdt:lines:start"].args_list == [(r, 10 * r) for r in range(n)]
    assert trace["usdt:lines:work"].args_list == [(int(r), int(s)) for r, _, s in work]
    assert [int(s) for _, _, s in work] == [sum(v**3 for v in range(r + 1)) for r in range(n)]
    trace.assert_sequence(["usdt:lines:start", "usdt:lines:work"] * n, exact=True)
    after = subprocess.run([exe, str(n)], capture_output=True, text=True, check=True).stdout
    assert re.findall(r"enabled=(\w+)", after) == ["false"] * n


def test_c_usdt_arguments_from_registers_stack_and_constants(uprobe_trace, c_usdt):
    rounds = 3
    untraced = subprocess.run([c_usdt, str(rounds)], capture_output=True, text=True).stdout
    assert re.findall(r"enabled=(\d)", untraced) == ["0"] * rounds
    trace = uprobe_trace.run([c_usdt, str(rounds)], probes=["usdt:demo:step", "usdt:demo:tick"])
    printed = re.findall(
        r"^tick round=(\d+) enabled=(\d) summary=(\d+) big=(\d+) negative=(-\d+)$",
        trace.stdout,
        re.M,
    )
    assert [e for _, e, _, _, _ in printed] == ["1"] * rounds
    assert trace["usdt:demo:step"].args_list == [
        (int(r), int(b), int(neg), 7) for r, _, _, b, neg in printed
    ]
    assert trace["usdt:demo:tick"].args_list == [(int(r), int(s)) for r, _, s, _, _ in printed]
    trace["usdt:demo:tick"].assert_any_call(2, 9)


def test_an_unknown_usdt_probe_lists_the_binary_s_probes(uprobe_trace, cargo_bin):
    exe = cargo_bin(CRATE)
    with pytest.raises(NoSuchUsdtProbe) as raised:
        uprobe_trace.plan(exe, ["usdt:lines:nope"])
    assert raised.value.known == ["usdt:lines:start", "usdt:lines:work"]


@pytest.mark.parametrize("profile", PROFILES)
def test_functions_lines_and_usdt_probes_in_one_run(uprobe_trace, cargo_bin, profile):
    exe = cargo_bin(CRATE, profile=profile)
    n = 3
    body = f"src/main.rs:{line_of('loop-body')}"
    probes = ["lines::sum_squares", body, "usdt:lines:start"]
    trace = uprobe_trace.run([exe, str(n)], probes=probes)
    assert trace["lines::sum_squares"].call_count == 1
    assert trace[body].call_count == n
    assert trace["usdt:lines:start"].call_count == n
    trace.assert_sequence(["lines::sum_squares", body, body, body, "usdt:lines:start"])
    for call in trace[body].calls:
        assert call.caller is not None and call.caller.function == "lines::sum_squares"
    third = trace[body].calls[2].locals
    i = 2 if profile == "dev" else third["i"]  # Unavailable in release (see above)
    trace[body].assert_any_call(n=n, total=1, iter=third["iter"], i=i, square=4)


def test_count_only_mode_counts_lines_and_usdt_hits(cargo_bin):
    exe = cargo_bin(CRATE, profile="release")
    body = f"src/main.rs:{line_of('loop-body')}"
    with Tracer(record=False) as tracer:
        trace = tracer.run([exe, "9"], probes=[body, "usdt:lines:work"])
    assert trace[body].call_count == 9
    assert trace["usdt:lines:work"].call_count == 9
    assert "enabled=true" in trace.stdout


@pytest.mark.parametrize("profile", PROFILES)
def test_the_lines_command_lists_probe_able_lines_with_their_sites(cargo_bin, capsys, profile):
    from pytest_uprobe.cli import main

    exe = cargo_bin(CRATE, profile=profile)
    assert main(["lines", str(exe), "src/main.rs", "--json"]) == 0
    rows = {row["line"]: row for row in json.loads(capsys.readouterr().out)}
    scale = rows[line_of("scale-body")]
    assert scale["probe"] == f"src/main.rs:{line_of('scale-body')}"
    assert scale["functions"] == ["lines::first_caller", "lines::second_caller"]
    assert len(scale["addresses"]) == 2
    assert line_of("comment-only") not in rows
    assert main(["lines", str(exe), "--function", "lines::sum_squares"]) == 0
    listed = capsys.readouterr().out
    assert f"main.rs:{line_of('loop-body')} " in listed
    assert f"main.rs:{line_of('scale-body')} " not in listed


def _ask(process: subprocess.Popen) -> str:
    process.stdin.write("?\n")
    process.stdin.flush()
    return process.stdout.readline().strip()


@pytest.mark.uprobe
@pytest.mark.parametrize("links", ["uprobe_multi", "perf"])
def test_the_semaphore_is_set_while_attached_only_in_the_traced_process_and_cleared_after(
    cargo_bin, monkeypatch, links
):
    """A USDT semaphore is the kernel's reference counter of the probe: incremented in the
    traced process when attaching, decremented on detach, untouched in a process running
    the same binary next door; through uprobe_multi links and through perf uprobes."""
    from pytest_uprobe.bpf import session as sessions

    exe = cargo_bin(CRATE)
    plan = Tracer().plan(exe, ["usdt:lines:work"])
    assert len(plan.probe_sites) == 2 and all(site.semaphore for site in plan.probe_sites)
    if links == "perf":  # as on a kernel before 6.6

        def load_each(self, count):
            self.multi = False
            self._load_each(count)

        sessions.release_programs()  # pooled programs must not keep the forced mode
        monkeypatch.setattr(sessions._Loaded, "load", load_each)
    real_close_all = sessions._close_all

    def late_in_background(links):
        if threading.current_thread() is not threading.main_thread():
            time.sleep(0.5)  # as on a loaded machine, where a closing thread runs late
        real_close_all(links)

    monkeypatch.setattr(sessions, "_close_all", late_in_background)
    pipes = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    traced = subprocess.Popen([exe, "wait"], **pipes)
    neighbour = subprocess.Popen([exe, "wait"], **pipes)
    try:
        assert _ask(traced) == "enabled=false"
        with sessions.Session(plan) as session:
            session.attach(traced.pid)
            assert _ask(traced) == "enabled=true"
            assert _ask(neighbour) == "enabled=false"
            assert _ask(traced) == "enabled=true"
            session.finish()  # the process lives on: its links must close now
            assert _ask(traced) == "enabled=false"
            assert sum(session.counts()) == 2  # `work` is inlined at two places: two sites
        assert _ask(traced) == "enabled=false"
        assert _ask(neighbour) == "enabled=false"
    finally:
        for process in (traced, neighbour):
            process.stdin.close()
            process.wait(timeout=10)
        if links == "perf":
            sessions.release_programs()


def runs_markers() -> dict[int, str]:
    """Line number -> its `// runs: X` oracle in `branches`."""
    found = {}
    for number, text in enumerate(SOURCE.read_text().splitlines(), start=1):
        match = re.search(r"// runs: (\S+)$", text)
        if match:
            found[number] = match.group(1)
    return found


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("n", [0, 1, 7])
def test_every_line_of_a_function_counts_as_often_as_it_runs(uprobe_trace, cargo_bin, profile, n):
    """Each line of `branches` is counted exactly as often as the arithmetic of its loop
    says, in one run that probes them all: straight lines, the loop header (n+1), the `if`
    (whose branches end in jumps attributed to it in dev builds) and both branches."""
    exe = cargo_bin(CRATE, profile=profile)
    markers = runs_markers()
    probes = [f"src/main.rs:{line}" for line in markers]
    trace = uprobe_trace.run([exe, str(n)], probes=probes)
    evens = len(range(0, n, 2))
    printed = re.search(r"^branches\((\d+)\) evens=(\d+) odds=(\d+)$", trace.stdout, re.M)
    assert int(printed.group(1)) == n
    assert int(printed.group(2)) == sum(range(0, n, 2))
    assert int(printed.group(3)) == 3 * sum(range(1, n, 2))
    expected = {"1": 1, "n": n, "n+1": n + 1, "evens": evens, "odds": n - evens}
    counts = {line: trace[f"src/main.rs:{line}"].call_count for line in markers}
    truth = {line: expected[runs] for line, runs in markers.items()}
    # Exact and equal, or (release: a loop header, code in pieces) a bound holding the truth.
    assert {line: c if c.exact else "bound" for line, c in counts.items()} == {
        line: truth[line] if counts[line].exact else "bound" for line in markers
    }
    assert all(c.low <= truth[line] <= c.high for line, c in counts.items())
    if profile == "dev":
        assert all(c.exact for c in counts.values())


@pytest.mark.parametrize("profile", PROFILES)
def test_locals_in_a_loop_equal_the_arithmetic_or_say_why_not(uprobe_trace, cargo_bin, profile):
    """At the `if`, in each branch and after it, `i`, `evens` and `odds` are what the loop
    computed so far. Dev builds have them all; an optimized build may have none of a
    variable at some address (its location list has a gap there): then, and only then,
    `Unavailable` with the reason, never a wrong number."""
    exe = cargo_bin(CRATE, profile=profile)
    n = 6
    markers = runs_markers()
    condition, after = sorted(line for line, runs in markers.items() if runs == "n")
    (even,) = [line for line, runs in markers.items() if runs == "evens"]
    (odd,) = [line for line, runs in markers.items() if runs == "odds"]
    assert "black_box(evens ^ odds)" in SOURCE.read_text().splitlines()[after - 1]
    probes = [f"src/main.rs:{line}" for line in (condition, even, odd, after)]
    trace = uprobe_trace.run([exe, str(n)], probes=probes)
    expected: dict[int, list[dict[str, int]]] = {line: [] for line in (condition, even, odd, after)}
    evens = odds = 0
    for i in range(n):
        expected[condition].append({"i": i, "evens": evens, "odds": odds})
        expected[even if i % 2 == 0 else odd].append({"i": i, "evens": evens, "odds": odds})
        if i % 2 == 0:
            evens += i
        else:
            odds += 3 * i
        expected[after].append({"i": i, "evens": evens, "odds": odds})
    gaps = []
    for line, wanted in expected.items():
        hits = trace[f"src/main.rs:{line}"].calls
        assert len(hits) == len(wanted)
        for hit, values in zip(hits, wanted):
            for name, value in values.items():
                got = hit.locals[name]
                if isinstance(got, Unavailable):
                    assert profile == "release", (line, name, got)
                    gaps.append(got.reason)
                else:
                    assert got == value, (line, name, hit.locals)
    if profile == "release":
        assert "optimized out at this point" in gaps


def test_a_function_and_two_lines_sharing_one_address_each_count(uprobe_trace, cargo_bin):
    """In release, `first_caller`'s entry, its line `scale(x, 3)` and the first line of the
    inlined `scale` are one instruction: three sites at one address, each counted."""
    exe = cargo_bin(CRATE, profile="release")
    scale = line_of("scale-body")
    call = next(
        n
        for n, text in enumerate(SOURCE.read_text().splitlines(), start=1)
        if text.strip() == "scale(x, 3)"
    )
    probes = ["lines::first_caller", f"src/main.rs:{call}", f"src/main.rs:{scale}"]
    plan = uprobe_trace.plan(exe, probes)
    starts = [s for s in plan.probe_sites if s.kind.starts_a_call]
    assert [plan.functions[s.function].probe for s in starts] == [*probes, probes[2]]
    assert starts[0].address == starts[1].address == starts[2].address != starts[3].address
    trace = uprobe_trace.run([exe, "5", "6", "8"], probes=probes)
    assert [trace[p].call_count for p in probes] == [3, 3, 6]
    assert trace[f"src/main.rs:{call}"].calls[1].locals == {"x": 6}


@pytest.mark.parametrize("profile", PROFILES)
def test_every_line_of_a_crate_probed_at_once_leaves_the_program_unchanged(
    uprobe_trace, cargo_bin, profile
):
    """Every line `pytest-uprobe lines` lists for the zoo crate (generics, closures, trait
    objects, recursion) probed in one run, locals read at each hit: the program prints and
    exits exactly as untraced, and the line with `fib`'s recursive call counts its calls."""
    from pytest_uprobe.elf import ElfBinary
    from pytest_uprobe.lines_command import line_rows

    exe = cargo_bin("example_crates/zoo", profile=profile)
    rows = line_rows(ElfBinary.open(exe), "src/main.rs", None)
    probes = [row.probe for row in rows]
    assert len(probes) > 50
    plain = subprocess.run([exe], capture_output=True, text=True)
    trace = uprobe_trace.run([exe], probes=probes)
    assert (trace.stdout, trace.returncode) == (plain.stdout, plain.returncode)
    assert trace.lost_events == 0
    assert sum(trace[p].call_count for p in probes) > len(probes)
    source = (ROOT / "example_crates/zoo/src/main.rs").read_text().splitlines()
    counting = source.index("    FIB_CALLS.fetch_add(1, Ordering::Relaxed);") + 1
    recursing = source.index("    black_box(fib(n - 1)) + black_box(fib(n - 2))") + 1
    calls = int(re.search(r"^calls zoo::fib (\d+)$", trace.stdout, re.M).group(1))
    # Every call counts; every call but the leaves (n < 2) recurses: (calls - 1) / 2 do.
    assert trace[f"src/main.rs:{counting}"].call_count == calls
    assert trace[f"src/main.rs:{recursing}"].call_count == (calls - 1) // 2


@pytest.mark.parametrize("links", ["uprobe_multi", "perf"])
def test_nothing_stays_attached_after_runs_with_lines_usdt_and_semaphores(
    uprobe_trace, cargo_bin, monkeypatch, links
):
    """The entry-point stop probe and the semaphore sites are gone after the run, as every
    other probe: nothing of this process stays attached (bpftool, and its own BPF links)."""
    from pytest_uprobe.bpf import session as sessions
    from tests.conftest import attached_uprobes

    def mine() -> list[tuple]:
        return sorted(
            (str(p.get("fd_type")), str(p.get("filename")), int(p.get("offset", 0)))
            for p in attached_uprobes()
            if p.get("pid") == os.getpid()
        )

    exe = cargo_bin(CRATE)
    if links == "perf":

        def load_each(self, count):
            self.multi = False
            self._load_each(count)

        sessions.release_programs()
        monkeypatch.setattr(sessions._Loaded, "load", load_each)
    before = mine()
    try:
        body = f"src/main.rs:{line_of('loop-body')}"
        trace = uprobe_trace.run([exe, "2"], probes=[body, "usdt:lines:work", "lines::main"])
        assert trace[body].call_count == 2 and trace["usdt:lines:work"].call_count == 2
        assert "enabled=true" in trace.stdout
        assert mine() == before
    finally:
        if links == "perf":
            sessions.release_programs()


@pytest.mark.parametrize("profile", PROFILES)
def test_lines_usdt_and_functions_interleave_in_program_order_with_printed_values(
    uprobe_trace, cargo_bin, profile
):
    """One run with all three kinds: each round's USDT `start`, the `summary` line, the
    function it calls, the line that prints and USDT `work` come in exactly that order,
    and the print line's locals are the values it printed."""
    exe = cargo_bin(CRATE, profile=profile)
    n = 4
    summary, printing = f"src/main.rs:{line_of('summary')}", f"src/main.rs:{line_of('work-print')}"
    probes = ["usdt:lines:start", summary, "lines::expensive_summary", printing, "usdt:lines:work"]
    trace = uprobe_trace.run([exe, str(n)], probes=probes)
    printed = re.findall(r"^work round=(\d+) enabled=(\w+) summary=(\d+)$", trace.stdout, re.M)
    assert len(printed) == n
    trace.assert_sequence(probes * n, exact=True)
    rounds = [int(r) for r, _, _ in printed]
    sums = [int(s) for _, _, s in printed]
    assert [hit.locals["round"] for hit in trace[summary].calls] == rounds
    assert [(c.args, c.retval) for c in trace["lines::expensive_summary"]] == [
        ((r,), s) for r, s in zip(rounds, sums)
    ]
    assert [
        (hit.locals["round"], hit.locals["enabled"], hit.locals["summary"])
        for hit in trace[printing].calls
    ] == [(r, e == "true", s) for r, e, s in zip(rounds, [e for _, e, _ in printed], sums)]
    trace[printing].assert_any_call(**{**trace[printing].calls[-1].locals, "summary": sums[-1]})


@pytest.mark.parametrize("profile", PROFILES)
def test_the_loop_counter_is_read_at_the_loop_s_condition_in_dev_and_release(
    uprobe_trace, cargo_bin, profile
):
    """The `if` heading the loop body of `branches` sees the counter 0..n (the arithmetic of
    the loop) in both builds: in release from the register its location list names."""
    exe = cargo_bin(CRATE, profile=profile)
    n = 7
    markers = runs_markers()
    condition = min(line for line, runs in markers.items() if runs == "n")
    assert "if black_box(i) % 2 == 0" in SOURCE.read_text().splitlines()[condition - 1]
    trace = uprobe_trace.run([exe, str(n)], probes=[f"src/main.rs:{condition}"])
    assert re.search(rf"^branches\({n}\) ", trace.stdout, re.M)
    hits = trace[f"src/main.rs:{condition}"]
    assert hits.call_count == n
    assert [hit.locals["i"] for hit in hits.calls] == list(range(n))
    assert [hit.locals["n"] for hit in hits.calls] == [n] * n
