"""Decoded values as JSON: each Rust value JSON has no type for is tagged with what it is
(a fifth user found `"Span(lo=-11, hi=99)"`, a repr string no reader can tell from a
Rust String with that text). The oracle: json round trips, and the tags by hand."""

from __future__ import annotations

import json
from pathlib import PurePosixPath

from pytest_uprobe.json_values import to_json
from pytest_uprobe.values import (
    BadUtf8,
    Duration,
    Inside,
    Missing,
    Struct,
    Truncated,
    Unavailable,
    Variant,
)


def _through_json(value):
    return json.loads(json.dumps(to_json(value), allow_nan=False))


def test_json_types_stay_themselves():
    for value in (None, True, 0, -(2**100), "Span(lo=-11, hi=99)", 2.5, [1, [2, 3]]):
        assert _through_json(value) == value


def test_rust_values_are_tagged_never_repr_text():
    span = Struct("Span", {"lo": -11, "hi": 99})
    assert _through_json(span) == {"struct": "Span", "fields": {"lo": -11, "hi": 99}}
    assert _through_json(Struct("Meters", {"__0": 3}, tuple_like=True)) == {
        "struct": "Meters",
        "fields": [3],
    }
    assert _through_json(Variant("Start")) == {"variant": "Start"}
    assert _through_json(Variant("Ok", (1, "a"))) == {
        "variant": "Ok",
        "payload": {"tuple": [1, "a"]},
    }
    assert _through_json(PurePosixPath("/srv/q.expr")) == {"path": "/srv/q.expr"}
    assert _through_json(Truncated({"a": 1}, 44)) == {
        "truncated": {"map": [["a", 1]]},
        "length": 44,
    }
    assert _through_json(Unavailable("optimized out")) == {"unavailable": "optimized out"}
    assert _through_json(Duration(1, 500)) == {"duration_ns": 1_000_000_500}
    assert _through_json(float("nan")) == {"float": "nan"}
    assert _through_json(BadUtf8(b"a\xff")) == {"bad_utf8": "a\\xff", "raw": [97, 255]}


def test_maps_keep_keys_of_any_type_and_sets_and_holders():
    # a HashMap<(u32, u32), String>: json.dump refused tuple keys before
    assert _through_json({(1, 2): "x", (3, 4): "y"}) == {
        "map": [[{"tuple": [1, 2]}, "x"], [{"tuple": [3, 4]}, "y"]]
    }
    assert _through_json({1: "one"}) == {"map": [[1, "one"]]}  # an int key stays an int
    assert _through_json({"b"}) == {"set": ["b"]}
    shared = Inside({"a"}, "RefCell", borrow=0)
    assert _through_json(shared) == {
        "inside": "RefCell",
        "value": {"set": ["a"]},
        "state": {"borrow": 0},
    }
    assert _through_json(Missing("dropped", strong=0, weak=1)) == {
        "missing": "dropped",
        "state": {"strong": 0, "weak": 1},
    }
