"""Call timelines as a person meets them: a pytest run with --uprobe-timeline and --html on
real example crates, the JSON files checked against the trace-event format, the HTML report
opened in headless Chromium (its DOM and a screenshot), `pytest-uprobe trace --timeline`.
Every expected value comes from what the traced programs print or from their inputs.

UPDATE_DOC_IMAGES=1 copies the screenshots to docs/images/ for docs/timeline.md.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import math
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pytest_uprobe.cli import main
from pytest_uprobe.picture import MAX_DRAWN_CALLS, PALETTE, UNWOUND_STROKE
from pytest_uprobe.plugin import timeline_name
from tests import browser
from tests.test_cli import printed_hellos
from tests.test_plugin import ROOT, program_output, use_tool_homes
from tests.trace_event_format import ns, problems

ARGS = str(ROOT / "example_crates/args")
PANICS = str(ROOT / "example_crates/panics")
ZOO = str(ROOT / "example_crates/zoo")
DOC_IMAGES = ROOT / "docs" / "images"

SUITE = f"""
def test_hello(uprobe_trace, cargo_bin):
    trace = uprobe_trace.run([cargo_bin({ARGS!r}), "1", "2", "3"],
                             probes=["args::hello", "args::main"])
    assert trace["args::hello"].call_count == 3

def test_threads(uprobe_trace, cargo_bin):
    uprobe_trace.run([cargo_bin({PANICS!r}), "thread", "4", "7"],
                     probes=["panics::checked_half"])
    assert False, "fails on purpose: its report names the timeline file"

def test_fib(uprobe_trace, cargo_bin):
    uprobe_trace.run([cargo_bin({ZOO!r}), "12"], probes=["zoo::fib"])

def test_untraced():
    pass
"""


def slices(doc: dict, name: str) -> list[dict]:
    return [e for e in doc["traceEvents"] if e["ph"] == "X" and e["name"] == name]


def thread_names(doc: dict) -> dict[int, str]:
    return {
        e["tid"]: e["args"]["name"]
        for e in doc["traceEvents"]
        if e["ph"] == "M" and e["name"] == "thread_name"
    }


class Timelines(HTMLParser):
    """Per results-table body (one per test): its "uprobe calls" cell, and per timeline
    picture, its lanes and the class of every call shape."""

    def __init__(self) -> None:
        super().__init__()
        self.test = ""
        self.counts: dict[str, str] = {}
        self.pictures: dict[str, list[dict[str, list[str]]]] = {}
        self.headers: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if tag == "tbody" and a.get("id"):
            self.test = a["id"] or ""
        elif tag == "th":
            self._in = "th"
        elif tag == "td" and "col-uprobe-calls" in cls:
            self._in = "counts"
            self.counts[self.test] = ""
        elif tag == "svg" and "uprobe-timeline" in cls:
            self.pictures.setdefault(self.test, []).append(
                {"lanes": [], "shapes": [], "not_drawn": []}
            )
        elif tag == "g" and "lane" in cls:
            self.pictures[self.test][-1]["lanes"].append(a.get("data-tid") or "")
        elif tag in ("rect", "polygon") and {"call", "inlined"} & set(cls):
            self.pictures[self.test][-1]["shapes"].append(" ".join(cls))
        elif tag == "text" and "not-drawn" in cls:
            self._in = "not-drawn"
            self.pictures[self.test][-1]["not_drawn"].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td", "text"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "th":
            self.headers.append(data.strip())
        elif self._in == "counts":
            self.counts[self.test] += data
        elif self._in == "not-drawn":
            self.pictures[self.test][-1]["not_drawn"][-1] += data


def fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def save_doc_image(source: Path, name: str) -> None:
    if os.environ.get("UPDATE_DOC_IMAGES"):
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, DOC_IMAGES / name)


@pytest.mark.uprobe
def test_a_suite_run_makes_timeline_files_and_an_html_report_with_pictures(pytester, monkeypatch):
    use_tool_homes(monkeypatch)
    hellos = printed_hellos(program_output("example_crates/args", "1", "2", "3"))
    assert [h[0] for h in hellos] == [1, 2, 3]
    threads_out = program_output("example_crates/panics", "thread", "4", "7")
    assert "checked_half(4) = 2 on main" in threads_out
    assert "thread: checked_half(7) panicked" in threads_out
    fib_out = program_output("example_crates/zoo", "12")
    pytester.makepyfile(test_suite=SUITE)
    report = pytester.path / "report.html"
    result = pytester.runpytest_subprocess(
        "--uprobe", f"--html={report}", "--self-contained-html", "--uprobe-timeline=timelines"
    )
    result.assert_outcomes(passed=3, failed=1)
    folder = pytester.path / "timelines"
    hello_file = folder / timeline_name("test_suite.py::test_hello", 1)
    threads_file = folder / timeline_name("test_suite.py::test_threads", 1)
    fib_file = folder / timeline_name("test_suite.py::test_fib", 1)
    assert sorted(folder.iterdir()) == sorted([hello_file, threads_file, fib_file])

    # The failure section names its file; the session's last line counts them.
    result.stdout.fnmatch_lines(
        ["*- uprobe trace -*", "run 1: *panics thread 4 7", "exit status: 0",
         "calls counted: panics::checked_half: 2", f"timeline: {threads_file}"]
    )  # fmt: skip
    result.stdout.fnmatch_lines([f"uprobe: 3 timeline files in {folder} (open them in*"])

    # The JSON files: valid trace-event documents with the calls the programs printed.
    hello_doc = json.loads(hello_file.read_text())
    assert problems(hello_doc) == []
    (main_slice,) = slices(hello_doc, "args::main")
    hello_slices = slices(hello_doc, "args::hello")
    assert [(int(s["args"]["args"]["i"]), int(s["args"]["args"]["len"]),
             int(s["args"]["returned"])) for s in hello_slices] == hellos  # fmt: skip
    for s in hello_slices:  # nested in main, by time
        assert main_slice["ts"] < s["ts"] and ns(s["ts"]) + ns(s["dur"]) <= ns(
            main_slice["ts"]
        ) + ns(main_slice["dur"])
        assert s["tid"] == main_slice["tid"] and s["args"]["caller"] == "args::main"
    assert thread_names(hello_doc) == {main_slice["tid"]: f"main thread (tid {main_slice['tid']})"}

    threads_doc = json.loads(threads_file.read_text())
    assert problems(threads_doc) == []
    halves = {s["args"]["args"]["n"]: s for s in slices(threads_doc, "panics::checked_half")}
    assert set(halves) == {"4", "7"}
    assert halves["4"]["args"]["returned"] == "2" and halves["4"]["cat"] == "returned"
    assert halves["7"]["cat"] == "unwound" and "returned" not in halves["7"]["args"]
    names = thread_names(threads_doc)
    assert names[halves["4"]["tid"]] == f"main thread (tid {halves['4']['tid']})"
    assert names[halves["7"]["tid"]] == f"thread {halves['7']['tid']}"  # the spawned one
    marks = [
        e for e in threads_doc["traceEvents"] if e["name"] == "panic unwound panics::checked_half"
    ]
    assert len(marks) == 1 and marks[0]["tid"] == halves["7"]["tid"]

    # zoo N calls fib(N + 2), recursive: every slice returns fib(n), nested n - 1 deep.
    fib_calls = int(re.search(r"calls zoo::fib (\d+)", fib_out)[1])  # type: ignore[index]
    fib_doc = json.loads(fib_file.read_text())
    assert problems(fib_doc) == []
    fibs = slices(fib_doc, "zoo::fib")
    assert len(fibs) == fib_calls
    assert all(int(s["args"]["returned"]) == fib(int(s["args"]["args"]["n"])) for s in fibs)
    assert (fibs[0]["args"]["args"]["n"], fibs[0]["args"]["depth"]) == ("14", 0)
    assert max(s["args"]["depth"] for s in fibs) == 14 - 1

    # The report, as Chromium renders it: the column, and a picture per traced test.
    url = f"{report.as_uri()}?collapsed=none"
    dom = Timelines()
    dom.feed(browser.dump_dom(url))
    assert "uprobe calls" in dom.headers
    assert dom.counts == {
        "test_suite.py::test_hello": "args::hello: 3, args::main: 1",
        "test_suite.py::test_threads": "panics::checked_half: 2",
        "test_suite.py::test_fib": f"zoo::fib: {fib_calls}",
        "test_suite.py::test_untraced": "",
    }
    assert set(dom.pictures) == {
        "test_suite.py::test_hello", "test_suite.py::test_threads", "test_suite.py::test_fib"
    }  # fmt: skip
    (hello_picture,) = dom.pictures["test_suite.py::test_hello"]
    assert hello_picture["lanes"] == [str(main_slice["tid"])]
    assert hello_picture["shapes"] == ["call"] * 4  # main and three hellos
    (threads_picture,) = dom.pictures["test_suite.py::test_threads"]
    assert threads_picture["lanes"] == [str(halves["4"]["tid"]), str(halves["7"]["tid"])]
    assert threads_picture["shapes"] == ["call", "call unwound"]
    (fib_picture,) = dom.pictures["test_suite.py::test_fib"]
    assert fib_picture["shapes"] == ["call"] * MAX_DRAWN_CALLS
    left = fib_calls - MAX_DRAWN_CALLS
    assert fib_picture["not_drawn"] == [f"not drawn ({left} calls): zoo::fib: {left}"]

    # ... and its screenshot is not blank: the bars' colors are there, in bar-sized areas.
    # args::main is the first call of its run and lasts all of it: its bar spans the plot
    # (778 px by 16 px). How wide the other bars are depends on timing: their colors are
    # surely at least in the legend's 12 px swatches.
    shot = browser.screenshot(url, pytester.path / "report.png", 1100, 2000)
    image = browser.read_png(shot)
    colors = image.colors()
    assert image.non_white() > image.width * image.height // 20
    first, second = browser.hex_color(PALETTE[0]), browser.hex_color(PALETTE[1])
    assert colors[first] > 700 * 14  # main's bar (and fib's, and checked_half's)
    assert colors[second] >= 100  # the hellos' bars and swatch
    # The unwound call's outline and mark, not pytest-html's red (255, 0, 0).
    mark = browser.hex_color(UNWOUND_STROKE)
    near = sum(n for color, n in colors.items() if math.dist(color, mark) < 30)
    assert near >= 10
    save_doc_image(shot, "timeline-html-report.png")


@pytest.mark.uprobe
def test_timelines_of_failed_tests_only_from_the_ini_without_pytest_html(pytester, monkeypatch):
    use_tool_homes(monkeypatch)
    pytester.makeini("[pytest]\nuprobe_timeline = out/timelines\n")
    pytester.makepyfile(
        test_two=f"""
        def test_passes(uprobe_trace, cargo_bin):
            uprobe_trace.run([cargo_bin({ARGS!r}), "5"], probes=["args::hello"])

        def test_fails(uprobe_trace, cargo_bin):
            uprobe_trace.run([cargo_bin({ARGS!r}), "6"], probes=["args::hello"])
            uprobe_trace.run([cargo_bin({ARGS!r}), "8", "9"], probes=["args::hello"])
            assert False
        """
    )
    # -p no:html: the plugin needs no pytest-html
    result = pytester.runpytest_subprocess(
        "--uprobe", "-rA", "--uprobe-timeline-on=failure", "-p", "no:html"
    )
    result.assert_outcomes(passed=1, failed=1)
    folder = pytester.path / "out" / "timelines"  # relative to the ini file
    expected = [folder / timeline_name("test_two.py::test_fails", run) for run in (1, 2)]
    assert sorted(folder.iterdir()) == expected
    hellos = [printed_hellos(program_output("example_crates/args", *argv))
              for argv in (["6"], ["8", "9"])]  # fmt: skip
    for path, printed in zip(expected, hellos):
        doc = json.loads(path.read_text())
        assert problems(doc) == []
        got = [(int(s["args"]["args"]["i"]), int(s["args"]["args"]["len"]),
                int(s["args"]["returned"])) for s in slices(doc, "args::hello")]  # fmt: skip
        assert got == printed
    text = result.stdout.str()
    assert f"timeline: {expected[0]}" in text and f"timeline: {expected[1]}" in text
    passed = text[text.index("_ test_passes _") :]
    assert "calls counted: args::hello: 1" in passed and "timeline:" not in passed


@pytest.mark.uprobe
def test_a_timeline_that_cannot_be_written_is_said_and_the_test_outcome_stands(
    pytester, monkeypatch
):
    use_tool_homes(monkeypatch)
    (pytester.path / "blocker").write_text("a file where the directory should be")
    pytester.makepyfile(
        f"""
        def test_fails(uprobe_trace, cargo_bin):
            uprobe_trace.run([cargo_bin({ARGS!r}), "3"], probes=["args::hello"])
            assert False, "its own failure"
        """
    )
    result = pytester.runpytest_subprocess("--uprobe", "--uprobe-timeline=blocker/timelines")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*AssertionError: its own failure", "calls counted: args::hello: 1",
         "timeline: not written: *blocker*", "uprobe: 0 timeline files in *blocker/timelines*"]
    )  # fmt: skip
    assert "INTERNALERROR" not in result.stdout.str()


@pytest.mark.uprobe
def test_xdist_workers_write_timelines_and_report_pictures(pytester, monkeypatch):
    use_tool_homes(monkeypatch)
    pytester.makepyfile(
        test_pair=f"""
        def test_first(uprobe_trace, cargo_bin):
            uprobe_trace.run([cargo_bin({ARGS!r}), "1"], probes=["args::hello"])

        def test_second(uprobe_trace, cargo_bin):
            uprobe_trace.run([cargo_bin({ARGS!r}), "2", "3"], probes=["args::hello"])
        """
    )
    report = pytester.path / "report.html"
    result = pytester.runpytest_subprocess(
        "--uprobe", "-n", "2", "-p", "no:cacheprovider", "--uprobe-timeline=tl",
        f"--html={report}", "--self-contained-html",
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    folder = pytester.path / "tl"
    assert sorted(folder.iterdir()) == sorted(
        folder / timeline_name(f"test_pair.py::{name}", 1) for name in ("test_first", "test_second")
    )
    result.stdout.fnmatch_lines([f"uprobe: 2 timeline files in {folder} *"])
    html = report.read_text()
    # The pictures and counts came from the workers' reports (escaped in the data blob).
    assert html.count("uprobe run 1") == 2  # one picture's heading per test
    assert "args::hello: 1&lt;/td&gt;" in html and "args::hello: 2&lt;/td&gt;" in html


def test_the_html_report_has_the_column_even_without_tracing(pytester):
    pytester.makepyfile("def test_plain():\n    pass\n")
    report = pytester.path / "report.html"
    result = pytester.runpytest_subprocess(f"--html={report}", "--self-contained-html")
    result.assert_outcomes(passed=1)
    html = report.read_text()
    assert '<th class="uprobe-calls">uprobe calls</th>' in html
    assert "col-uprobe-calls" in html  # the plain test's (empty) cell
    assert "uprobe-timeline" not in html  # and no picture


def test_help_lists_the_timeline_options(pytester):
    text = pytester.runpytest("--help").stdout.str()
    assert "--uprobe-timeline=DIR" in text and "uprobe_timeline " in text
    assert "--uprobe-timeline-on={always,failure}" in text and "uprobe_timeline_on" in text


@pytest.mark.uprobe
def test_trace_command_writes_the_timeline(cargo_bin, tmp_path, capsys):
    exe = cargo_bin(PANICS)
    printed = subprocess.run([exe, "nested", "2", "-3"], capture_output=True, text=True).stdout
    assert "outer(2) = 7" in printed and "outer(-3) panicked" in printed
    target = tmp_path / "nested.json"
    status = main(["trace", "-p", "panics::outer", "-p", "panics::inner", "--timeline",
                   str(target), "--", str(exe), "nested", "2", "-3"])  # fmt: skip
    assert status == 0
    assert f"timeline written to {target}" in capsys.readouterr().err
    doc = json.loads(target.read_text())
    assert problems(doc) == []
    outer = {s["args"]["args"]["n"]: s for s in slices(doc, "panics::outer")}
    inner = {s["args"]["args"]["n"]: s for s in slices(doc, "panics::inner")}
    # outer(n) = inner(n) + 1 and inner(n) = 3n; a negative n panics in inner.
    assert outer["2"]["args"]["returned"] == "7" and inner["2"]["args"]["returned"] == "6"
    assert outer["-3"]["cat"] == inner["-3"]["cat"] == "unwound"
    for n in ("2", "-3"):
        assert inner[n]["args"]["caller"] == "panics::outer"
        o, i = outer[n], inner[n]
        assert o["ts"] <= i["ts"] and ns(i["ts"]) + ns(i["dur"]) <= ns(o["ts"]) + ns(o["dur"])
    assert doc["otherData"]["argv"].endswith("panics nested 2 -3")


SPEEDSCOPE = ROOT / ".tools" / "speedscope" / "package" / "dist" / "release"


@contextlib.contextmanager
def served(directory: Path) -> Iterator[str]:
    """`directory` over HTTP on 127.0.0.1 (speedscope fetches its profile; file:// URLs
    hang in headless Chromium), for the length of the block; yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.mark.uprobe
def test_the_timeline_opens_in_an_offline_trace_event_viewer(cargo_bin, tmp_path, capsys):
    """speedscope (npm) reads Chrome trace-event JSON: an independent reader of the file,
    since ui.perfetto.dev cannot be reached from here. `make test` unpacks it."""
    if not (SPEEDSCOPE / "index.html").exists():
        pytest.skip(f"speedscope is not unpacked in {SPEEDSCOPE} (make test fetches it with npm)")
    exe = cargo_bin(ZOO)
    printed = subprocess.run([exe, "6"], capture_output=True, text=True).stdout
    calls = int(re.search(r"calls zoo::fib (\d+)", printed)[1])  # type: ignore[index]
    shutil.copytree(SPEEDSCOPE, tmp_path / "viewer")
    target = tmp_path / "fib.json"
    assert main(["trace", "-p", "zoo::fib", "--timeline", str(target), "--", str(exe), "6"]) == 0
    assert f"calls counted: zoo::fib: {calls}" in capsys.readouterr().err
    with served(tmp_path) as base:
        url = f"{base}/viewer/index.html#profileURL={base}/fib.json"
        dom = browser.dump_dom(url)
        shot = browser.screenshot(url, tmp_path / "speedscope.png", 1200, 420)
    # Its title names the run and the thread it shows, both read from the file.
    assert re.search(r"zoo 6: exit status 0 \(pid \d+\), main thread \(tid \d+\)", dom), dom[-2000:]
    assert "Something went wrong" not in dom
    image = browser.read_png(shot)
    # Colored frames fill much of the flame chart (speedscope draws on a canvas).
    colored = sum(n for (r, g, b), n in image.colors().items() if max(r, g, b) - min(r, g, b) > 40)
    assert colored > image.width * image.height // 10
    save_doc_image(shot, "timeline-speedscope.png")


def trace_processor_shell() -> str:
    found = os.environ.get("PERFETTO_TRACE_PROCESSOR") or shutil.which("trace_processor_shell")
    if not found:
        pytest.skip(
            "PyPI perfetto's TraceProcessor downloads trace_processor_shell at run time, "
            "which this machine cannot reach: set PERFETTO_TRACE_PROCESSOR to a local binary"
        )
    return found


@pytest.mark.uprobe
def test_perfetto_reads_the_timeline(cargo_bin, tmp_path):
    shell = trace_processor_shell()
    tp_module = pytest.importorskip("perfetto.trace_processor")
    exe = cargo_bin(ARGS)
    hellos = printed_hellos(subprocess.run([exe, "4", "5"], capture_output=True, text=True).stdout)
    target = tmp_path / "args.json"
    assert (
        main(["trace", "-p", "args::*", "--timeline", str(target), "--", str(exe), "4", "5"]) == 0
    )
    config = tp_module.TraceProcessorConfig(bin_path=shell)
    with tp_module.TraceProcessor(trace=str(target), config=config) as tp:
        rows = list(tp.query("select name, depth from slice where name = 'args::hello'"))
    assert [(r.name, r.depth) for r in rows] == [("args::hello", 1)] * len(hellos)


def test_the_png_reader_agrees_with_what_it_was_given(tmp_path):
    """Two rows, each filtered differently, of a 3x2 RGB image encoded here by hand."""
    import struct
    import zlib

    rows = [[(255, 255, 255), (10, 20, 30), (200, 100, 0)], [(1, 2, 3), (4, 5, 6), (7, 8, 9)]]
    raw = bytes([0]) + bytes(c for p in rows[0] for c in p)
    up = [c for p in rows[1] for c in p]
    above = [c for p in rows[0] for c in p]
    raw += bytes([2]) + bytes((a - b) & 0xFF for a, b in zip(up, above))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 3, 2, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path = tmp_path / "tiny.png"
    path.write_bytes(png)
    image = browser.read_png(path)
    assert (image.width, image.height) == (3, 2)
    assert image.pixels == rows[0] + rows[1]
    assert image.non_white() == 5
