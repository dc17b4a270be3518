"""ABI / inlining snapshots (no root needed), the pytest-uprobe command line, timelines."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_uprobe import abi, inlining
from tests.blackbox.stockpile import ARGV_TAIL, CRATE, printed_calls, printed_counts

CLI = [str(Path(sys.executable).with_name("pytest-uprobe"))]


@pytest.fixture
def rel(cargo_bin):
    return cargo_bin(str(CRATE), profile="release")


def test_abi_snapshot(rel, snapshot):
    assert abi(rel, "stockpile::*") == snapshot


def test_inlining_snapshot(rel, snapshot):
    assert inlining(rel, "stockpile::*") == snapshot


def test_abi_facts_match_the_source(rel):
    rep = abi(rel, "stockpile::clamp_add")
    f = rep["stockpile::clamp_add"]
    assert [p.name for p in f.params] == ["a", "b"]
    assert "fn(a: i64, b: i64) -> i64" in str(rep)


def test_inlining_report_for_sq(rel):
    rep = inlining(rel, "stockpile::sq")
    rec = rep["stockpile::sq"]
    assert "stockpile::score" in rec.callers
    assert rec.copies_in("stockpile::score") == 1


def test_limited_debug_abi_says_unknown(cargo_bin):
    exe = cargo_bin(str(CRATE), profile="release-limited")
    text = str(abi(exe, "stockpile::clamp_add"))
    assert "unknown: limited debug info" in text
    assert "fn()" not in text


def test_cli_symbols_lists_functions(rel):
    out = subprocess.run(
        CLI + ["symbols", str(rel), "stockpile::*"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    for name in [
        "stockpile::clamp_add",
        "stockpile::fib",
        "stockpile::largest::<u8>",
        "stockpile::worker",
    ]:
        assert name in out.stdout
    js = subprocess.run(
        CLI + ["symbols", "--json", str(rel), "stockpile::*"], capture_output=True, text=True
    )
    assert js.returncode == 0, js.stderr
    json.loads(js.stdout)


@pytest.mark.uprobe
@pytest.mark.parametrize("profile", ["dev", "release"])
def test_cli_trace_json(cargo_bin, profile, request):
    if not request.config.getoption("--uprobe"):
        pytest.skip("needs --uprobe")
    exe = cargo_bin(str(CRATE), profile=profile)
    out = subprocess.run(
        CLI
        + [
            "trace",
            "--json",
            "-p",
            "stockpile::clamp_add",
            "-p",
            "stockpile::apply",
            "--",
            str(exe),
            *ARGV_TAIL,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["returncode"] == 0
    counts = printed_counts(d["stdout"])
    assert d["counts"]["stockpile::clamp_add"] == counts["clamp_add"]
    printed = printed_calls(d["stdout"], "apply")
    applies = [c for c in d["calls"] if c["function"] == "stockpile::apply"]
    assert [c["args"][0] for c in applies] == [acc for (acc, _), _ in printed]
    assert [c["retval"] for c in applies] == [r for _, r in printed]


@pytest.mark.uprobe
def test_cli_trace_text_and_exit_status(cargo_bin, request):
    if not request.config.getoption("--uprobe"):
        pytest.skip("needs --uprobe")
    exe = cargo_bin(str(CRATE), profile="dev")
    out = subprocess.run(
        CLI + ["trace", "-p", "stockpile::fib", "--", str(exe), *ARGV_TAIL],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0
    n = printed_counts(out.stderr)["fib"]  # program output goes to stderr
    assert out.stdout.count("stockpile::fib(") == n


def test_timeline_file(uprobe_trace, dev_exe, tmp_path):
    trace = uprobe_trace.run(
        [dev_exe, *ARGV_TAIL], probes=["stockpile::worker", "stockpile::clamp_add"]
    )
    path = tmp_path / "run.json"
    trace.save_timeline(str(path))
    d = json.loads(path.read_text())
    slices = [e for e in d["traceEvents"] if e.get("ph") == "X"]
    counts = printed_counts(trace.stdout)
    workers = printed_calls(trace.stdout, "worker")
    assert (
        len([s for s in slices if s["name"].startswith("stockpile::clamp_add")])
        == counts["clamp_add"]
    )
    assert len([s for s in slices if s["name"].startswith("stockpile::worker")]) == len(workers)


def test_bad_probe_name_suggests(uprobe_trace, dev_exe):
    from pytest_uprobe import UprobeError

    with pytest.raises(UprobeError) as ei:
        uprobe_trace.run([dev_exe], probes=["stockpile::clamp_ad"])
    assert "stockpile::clamp_add" in str(ei.value)


def test_cli_symbols_inlined_lists_inlined_only_functions(rel):
    # docs: `symbols ... --inlined` lists what can be probed, with inlined copies;
    # stockpile::sq (#[inline(always)]) and geo::half (#[inline]) can be probed (inlined copies)
    out = subprocess.run(
        CLI + ["symbols", "--inlined", str(rel), "stockpile::*"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "stockpile::sq" in out.stdout
    assert "stockpile::geo::half" in out.stdout
    one = subprocess.run(
        CLI + ["symbols", "--inlined", str(rel), "stockpile::geo::half"],
        capture_output=True,
        text=True,
    )
    assert one.returncode == 0, one.stderr
