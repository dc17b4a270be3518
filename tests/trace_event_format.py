"""A check of the Chrome trace-event format ("Trace Event Format", the JSON Object Format
that chrome://tracing and ui.perfetto.dev load): a JSON Schema of the events this project
writes, validated with jsonschema, plus what a schema cannot say and Perfetto enforces:
complete slices of one thread nest (a slice that starts inside another ends inside it, or
Perfetto drops it), and every thread with events has a name.

PyPI `perfetto`'s TraceProcessor would be the stronger oracle, but it downloads its
`trace_processor_shell` binary at run time from Google's storage, which this project's
machines cannot reach: tests/test_timeline.py uses it only when the binary is already
there (PERFETTO_TRACE_PROCESSOR names it).
"""

from __future__ import annotations

from typing import Any

import jsonschema

_NUMBER = {"type": "number", "minimum": 0}
_ID = {"type": "integer"}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["traceEvents"],
    "properties": {
        "traceEvents": {"type": "array", "items": {"$ref": "#/$defs/event"}},
        "displayTimeUnit": {"enum": ["ms", "ns"]},
        "otherData": {"type": "object"},
    },
    "$defs": {
        "event": {
            "type": "object",
            "required": ["name", "ph", "pid"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "cat": {"type": "string"},
                "ph": {"enum": ["X", "B", "E", "i", "I", "M", "C", "b", "e", "s", "t", "f"]},
                "ts": _NUMBER,
                "dur": _NUMBER,
                "pid": _ID,
                "tid": _ID,
                "s": {"enum": ["g", "p", "t"]},
                "args": {"type": "object"},
                "id": {"type": "string", "minLength": 1},
                "bp": {"const": "e"},
            },
            "allOf": [
                {  # async tracks (a future's life) and flow arrows (poll to poll)
                    "if": {"properties": {"ph": {"enum": ["b", "e", "s", "t", "f"]}}},
                    "then": {"required": ["ts", "id", "cat", "tid"]},
                },
                {
                    "if": {"properties": {"ph": {"const": "X"}}},
                    "then": {"required": ["ts", "dur", "tid"]},
                },
                {
                    "if": {"properties": {"ph": {"enum": ["i", "I"]}}},
                    "then": {"required": ["ts", "s", "tid"]},
                },
                {
                    "if": {"properties": {"ph": {"const": "M"}}},
                    "then": {
                        "required": ["args"],
                        "properties": {
                            "name": {
                                "enum": [
                                    "process_name",
                                    "process_labels",
                                    "process_sort_index",
                                    "thread_name",
                                    "thread_sort_index",
                                ]
                            }
                        },
                    },
                    "else": {"required": ["ts"]},
                },
            ],
        }
    },
}


def ns(microseconds: float) -> int:
    """Trace-event times are µs; compare them as whole ns (as Perfetto does), since float
    sums such as 8702.193 + 22.373 miss 8724.566."""
    return round(microseconds * 1000)


def problems(doc: Any) -> list[str]:
    """What makes `doc` not a trace-event document Perfetto shows whole (empty: none)."""
    found = [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in jsonschema.Draft202012Validator(SCHEMA).iter_errors(doc)
    ]
    if found:
        return found
    events = doc["traceEvents"]
    named = {(e["pid"], e["tid"]) for e in events if e["name"] == "thread_name"}
    slices: dict[tuple[int, int], list[tuple[int, int, str]]] = {}
    for e in events:
        on_a_thread = e["ph"] != "M" and "tid" in e and e.get("s") != "g"
        if on_a_thread and (e["pid"], e["tid"]) not in named:
            found.append(f"thread {e['tid']} has events but no thread_name")
            named.add((e["pid"], e["tid"]))
        if e["ph"] == "X":
            slices.setdefault((e["pid"], e["tid"]), []).append(
                (ns(e["ts"]), ns(e["ts"]) + ns(e["dur"]), e["name"])
            )
    for (_, tid), spans in slices.items():
        spans.sort(key=lambda s: (s[0], -s[1]))
        stack: list[tuple[int, int, str]] = []
        for start, end, name in spans:
            while stack and stack[-1][1] <= start:
                stack.pop()
            if stack and end > stack[-1][1]:
                found.append(
                    f"thread {tid}: slice {name} [{start}, {end}] ns overlaps {stack[-1][2]} "
                    f"[{stack[-1][0]}, {stack[-1][1]}] ns without nesting in it"
                )
            stack.append((start, end, name))
    return found
