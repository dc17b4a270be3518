"""The trace-event JSON and the SVG picture of hand-built runs: no root, no compiler. Every
expected time is arithmetic on the nanosecond timestamps given here."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_uprobe.picture import svg
from pytest_uprobe.plugin import timeline_name
from pytest_uprobe.timeline import chrome_trace, value_text
from pytest_uprobe.trace import Call, FunctionTrace, Trace
from pytest_uprobe.values import Struct, Truncated, Unavailable, Variant
from tests.trace_event_format import problems

PID = 4000
OTHER = 4001
SVG = "{http://www.w3.org/2000/svg}"


def call(path: str, ts: int, end: int | None = None, *, tid: int = PID, depth: int = 0,
         caller: Call | None = None, args: tuple = (), retval: object = None,
         **flags: object) -> Call:  # fmt: skip
    c = Call(
        function=path,
        path=path,
        args=args,
        kwargs={f"a{i}": v for i, v in enumerate(args)},
        tid=tid,
        ts_ns=ts,
        retval=retval,
        returned=end is not None,
        return_ts_ns=end,
        caller=caller,
        depth=depth,
    )
    for name, value in flags.items():
        setattr(c, name, value)
    return c


def trace_of(calls: list[Call], *, lost: int = 0, pid: int | None = PID) -> Trace:
    calls = sorted(calls, key=lambda c: c.ts_ns)
    t = Trace(["/build/target/debug/demo", "1", "2"], 0, "", "", calls=calls, lost_events=lost,
              pid=pid)  # fmt: skip
    for name in dict.fromkeys(c.function for c in calls):
        t.functions[name] = FunctionTrace(name, [c for c in calls if c.function == name])
    return t


def nested_run() -> Trace:
    """main (1 000..91 000 ns) calls hello twice; a second thread runs work once."""
    main = call("demo::main", 1_000, 91_000)
    return trace_of(
        [
            main,
            call("demo::hello", 5_000, 17_500, depth=1, caller=main, args=(1, 3), retval=4),
            call("demo::hello", 25_000, 30_250, depth=1, caller=main, args=(2, 3), retval=5),
            call("demo::work", 40_000, 41_000, tid=OTHER, args=("x",), retval=[1, 2]),
        ]
    )


def events(doc: dict, ph: str) -> list[dict]:
    return [e for e in doc["traceEvents"] if e["ph"] == ph]


def test_out_of_line_calls_are_complete_slices_in_microseconds_since_the_first_call():
    doc = chrome_trace(nested_run())
    assert problems(doc) == []
    slices = [(e["name"], e["tid"], e["ts"], e["dur"]) for e in events(doc, "X")]
    assert slices == [
        ("demo::main", PID, 0.0, 90.0),
        ("demo::hello", PID, 4.0, 12.5),
        ("demo::hello", PID, 24.0, 5.25),
        ("demo::work", OTHER, 39.0, 1.0),
    ]
    first_hello = events(doc, "X")[1]["args"]
    assert first_hello["args"] == {"a0": "1", "a1": "3"}
    assert first_hello["returned"] == "4"
    assert first_hello["caller"] == "demo::main"
    assert first_hello["call"] == "demo::hello(1, 3) -> 4"
    assert doc["displayTimeUnit"] == "ns"


def test_one_named_track_per_thread_the_main_thread_first():
    doc = chrome_trace(nested_run())
    names = {e["tid"]: e["args"]["name"] for e in events(doc, "M") if e["name"] == "thread_name"}
    assert names == {PID: f"main thread (tid {PID})", OTHER: f"thread {OTHER}"}
    order = {e["tid"]: e["args"]["sort_index"] for e in events(doc, "M")
             if e["name"] == "thread_sort_index"}  # fmt: skip
    assert order == {PID: 0, OTHER: 1}
    process = [e for e in events(doc, "M") if e["name"] == "process_name"]
    assert process == [
        {"name": "process_name", "ph": "M", "pid": PID,
         "args": {"name": "demo 1 2: exit status 0"}}
    ]  # fmt: skip


def test_an_unwound_call_ends_at_the_latest_time_it_can_and_says_so():
    outer = call("demo::outer", 0, None, unwound=True)
    inner = call("demo::inner", 2_000, None, depth=1, caller=outer, unwound=True)
    after = call("demo::outer", 50_000, 60_000)  # same depth: outer's frame is gone by then
    doc = chrome_trace(trace_of([outer, inner, after]))
    assert problems(doc) == []
    slices = {(e["name"], e["ts"]): e for e in events(doc, "X")}
    assert slices[("demo::outer", 0.0)]["dur"] == 50.0
    assert slices[("demo::inner", 2.0)]["dur"] == 48.0  # within its caller
    assert slices[("demo::outer", 0.0)]["cat"] == "unwound"
    assert "unknown: unwound by a panic" in slices[("demo::inner", 2.0)]["args"]["end"]
    marks = [(e["name"], e["ts"], e["s"]) for e in events(doc, "i")]
    assert marks == [("panic unwound demo::outer", 50.0, "t"),
                     ("panic unwound demo::inner", 50.0, "t")]  # fmt: skip
    # Events in time order, the marks among them; an enclosing slice first at equal times.
    timed = [(e["ts"], e["name"]) for e in doc["traceEvents"] if e["ph"] != "M"]
    assert timed == [
        (0.0, "demo::outer"), (2.0, "demo::inner"), (50.0, "panic unwound demo::outer"),
        (50.0, "panic unwound demo::inner"), (50.0, "demo::outer"),
    ]  # fmt: skip


def test_an_unwound_call_inside_a_caller_that_returned_ends_by_that_return():
    parent = call("demo::catcher", 0, 30_000)
    child = call("demo::boom", 1_000, None, depth=1, caller=parent, unwound=True)
    doc = chrome_trace(trace_of([parent, child]))
    assert problems(doc) == []
    assert [(e["name"], e["ts"], e["dur"]) for e in events(doc, "X")] == [
        ("demo::catcher", 0.0, 30.0),
        ("demo::boom", 1.0, 29.0),
    ]


def test_a_call_still_running_at_the_end_reaches_the_last_event():
    running = call("demo::serve", 0, None)
    late = call("demo::tick", 7_000, 9_000, depth=1, caller=running)
    doc = chrome_trace(trace_of([running, late]))
    assert problems(doc) == []
    serve = next(e for e in events(doc, "X") if e["name"] == "demo::serve")
    assert serve["dur"] == 9.0
    assert serve["cat"] == "unfinished"
    assert "still running when the trace ended" in serve["args"]["end"]
    assert not any(e["name"].startswith("panic") for e in events(doc, "i"))


def test_inlined_hits_are_thread_instants_and_tail_calls_say_so():
    main = call("demo::main", 0, 20_000)
    inlined = call("demo::tiny", 3_000, depth=1, caller=main, args=(Unavailable("optimized out"),),
                   inlined=True, inlined_into="demo::main (main.rs:12)")  # fmt: skip
    jumper = call("demo::forward", 5_000, 6_000, depth=1, caller=main, tail_call=True,
                  retval=Unavailable("tail call into demo::grow"))  # fmt: skip
    doc = chrome_trace(trace_of([main, inlined, jumper]))
    assert problems(doc) == []
    (hit,) = events(doc, "i")
    assert (hit["name"], hit["ts"], hit["s"], hit["cat"]) == ("demo::tiny", 3.0, "t", "inlined")
    assert hit["args"]["inlined_into"] == "demo::main (main.rs:12)"
    assert hit["args"]["args"] == {"a0": "<unavailable: optimized out>"}
    forward = next(e for e in events(doc, "X") if e["name"] == "demo::forward")
    assert forward["cat"] == "tail-call"
    assert forward["args"]["call"] == (
        "demo::forward() -> tail call (<unavailable: tail call into demo::grow>)"
    )


def test_lost_events_are_noted_on_the_timeline_and_in_its_metadata():
    doc = chrome_trace(trace_of([call("demo::f", 0, 10)], lost=17))
    assert problems(doc) == []
    assert doc["otherData"]["lost_events"] == 17
    (note,) = [e for e in events(doc, "i") if e["cat"] == "lost"]
    assert note["name"] == "17 events lost: this timeline is incomplete"
    assert note["s"] == "g"


def test_a_run_without_calls_is_still_a_valid_timeline():
    doc = chrome_trace(trace_of([], pid=None))
    assert problems(doc) == []
    assert [e["name"] for e in events(doc, "i")] == ["no calls traced"]


def test_rust_values_are_readable_text():
    assert value_text(Unavailable("register not saved")) == "<unavailable: register not saved>"
    assert value_text(Struct("Point", {"x": 1, "y": -2})) == "Point(x=1, y=-2)"
    assert value_text(Variant("Ok", 5)) == "Variant('Ok', 5)"
    assert value_text(Truncated("abc", length=900)) == "Truncated('abc', length=900)"
    assert value_text("é") == "'é'"
    long = value_text("x" * 1000)
    assert len(long) == 200 and long.endswith("...")


def test_save_timeline_writes_json_that_loads_back(tmp_path: Path):
    target = tmp_path / "deeper" / "run.json"
    assert nested_run().save_timeline(target) == target
    doc = json.loads(target.read_text())
    assert problems(doc) == []
    assert len(events(doc, "X")) == 4


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"traceEvents": [{"name": "f", "ph": "X", "ts": 0, "pid": 1, "tid": 1}]},
         "'dur' is a required property"),
        ({"traceEvents": [{"name": "f", "ph": "Q", "ts": 0, "pid": 1, "tid": 1}]},
         "'Q' is not one of"),
        ({"events": []}, "'traceEvents' is a required property"),
        ({"traceEvents": [
            {"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "t"}},
            {"name": "a", "ph": "X", "ts": 0, "dur": 10, "pid": 1, "tid": 1},
            {"name": "b", "ph": "X", "ts": 5, "dur": 10, "pid": 1, "tid": 1}]},
         "slice b [5000, 15000] ns overlaps a [0, 10000] ns without nesting in it"),
        ({"traceEvents": [{"name": "a", "ph": "X", "ts": 0, "dur": 1, "pid": 1, "tid": 9}]},
         "thread 9 has events but no thread_name"),
    ],
)  # fmt: skip
def test_the_format_check_refuses_what_perfetto_would_not_show_whole(doc, expected):
    assert any(expected in p for p in problems(doc)), problems(doc)


def test_timeline_file_names_are_safe_and_distinct():
    a = timeline_name("tests/test_x.py::test_a[1-2]", 1)
    b = timeline_name("tests/test_x.py::test_a[1 2]", 1)
    assert a.startswith("tests_test_x.py_test_a_1-2-") and a.endswith(".run1.json")
    assert a != b  # the same once sanitized, told apart by the id's hash
    assert timeline_name("tests/test_x.py::test_a[1-2]", 2) == a.replace(".run1.", ".run2.")
    long = timeline_name("t.py::test_" + "x" * 500, 1)
    assert len(long) < 160
    assert "/" not in timeline_name("../../etc/passwd::t", 1)


# -- the picture --------------------------------------------------------------------------


def parse(picture: str) -> ET.Element:
    return ET.fromstring(picture)  # well-formed XML, or this raises


def of_class(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(SVG + tag) if cls in (e.get("class") or "").split()]


def test_the_picture_has_a_lane_per_thread_and_a_bar_per_call():
    root = parse(svg(nested_run()))
    lanes = of_class(root, "g", "lane")
    assert [lane.get("data-tid") for lane in lanes] == [str(PID), str(OTHER)]
    bars = of_class(root, "rect", "call")
    assert [b.get("data-function") for b in bars] == [
        "demo::main", "demo::hello", "demo::hello", "demo::work"
    ]  # fmt: skip
    # main spans the whole plot; the first hello is 12.5/90 of it, starting at 4/90.
    widths = [float(b.get("width", 0)) for b in bars]
    xs = [float(b.get("x", 0)) for b in bars]
    assert widths[1] / widths[0] == pytest.approx(12.5 / 90, rel=1e-3)
    assert (xs[1] - xs[0]) / widths[0] == pytest.approx(4 / 90, rel=1e-3)
    titles = [b.find(SVG + "title").text for b in bars]  # type: ignore[union-attr]
    assert titles[1] == f"demo::hello(1, 3) -> 4 [tid {PID}] 12.5 us"
    assert "demo::main: 1, demo::hello: 2, demo::work: 1" in "".join(root.itertext())


def test_the_picture_marks_unwound_and_inlined_calls():
    outer = call("demo::outer", 0, None, unwound=True)
    tiny = call("demo::tiny", 1_000, depth=1, caller=outer, inlined=True)
    after = call("demo::outer", 50_000, 60_000)
    root = parse(svg(trace_of([outer, tiny, after])))
    (unwound,) = of_class(root, "rect", "unwound")
    assert "unwound by a panic: ended within 50 us" in unwound.find(SVG + "title").text  # type: ignore[union-attr,operator]
    assert len(of_class(root, "polygon", "inlined")) == 1


def test_the_picture_draws_the_first_calls_and_summarizes_the_rest():
    calls = [call("demo::fib", i * 100, i * 100 + 50) for i in range(400)]
    calls += [call("demo::other", 40_000 + i * 100, 40_000 + i * 100 + 50) for i in range(5)]
    root = parse(svg(trace_of(calls), max_calls=300))
    assert len(of_class(root, "rect", "call")) == 300
    (summary,) = of_class(root, "text", "not-drawn")
    assert summary.text == "not drawn (105 calls): demo::fib: 100, demo::other: 5"
    assert "the first 300 of 405 calls recorded" in "".join(root.itertext())


def test_generic_names_are_escaped_in_the_picture():
    path = "<demo::Shape as core::fmt::Debug>::fmt"
    root = parse(svg(trace_of([call(path, 0, 1_000_000)])))
    (bar,) = of_class(root, "rect", "call")
    assert bar.get("data-function") == path
    assert "fmt" in [t.text for t in root.iter(SVG + "text")]  # the bar's short label


def test_lost_events_are_said_on_the_picture():
    root = parse(svg(trace_of([call("demo::f", 0, 10)], lost=3)))
    (note,) = of_class(root, "text", "lost")
    assert note.text == "3 events lost: this picture is incomplete"
