"""Decoded values as JSON (`pytest-uprobe trace --json`): every value a tree of JSON's own
types, each Rust value that JSON has no type for tagged with what it is, so that a struct
never reads as the text of its repr and a tuple never as a Vec.

- `int`, `bool`, `str`, `null` (an `Option`'s None) and finite floats as themselves; a list
  (slice, Vec, array) as a list.
- `{"tuple": [...]}`, `{"set": [...]}`, `{"map": [[key, value], ...]}` (keys of any type,
  in the decoded order), `{"path": "..."}`, `{"duration_ns": n}`, `{"float": "nan"}`
  (also "inf", "-inf").
- `{"struct": type name, "fields": {name: value}}` (a tuple struct: a list of fields),
  `{"variant": name, "payload": value}` (no payload: a unit variant).
- `{"truncated": prefix, "length": n}` past a cap, `{"unavailable": why}` where the value
  could not be read, `{"inside": container, "value": v, "state": {...}}` for the value in
  an Rc, RefCell, Mutex..., `{"missing": kind, "state": {...}}`.
- `{"bad_utf8": text, "raw": [bytes]}` for a str that is not UTF-8; bytes as a list of
  ints; anything else `{"repr": repr(value)}`.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import PurePath
from typing import Any

from .values import BadUtf8, Duration, Inside, Missing, Struct, Truncated, Unavailable, Variant


def to_json(value: Any) -> Any:
    """`value`, decoded by pytest-uprobe, as a tree json.dump writes as is."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, BadUtf8):
        return {"bad_utf8": str(value), "raw": list(value.raw)}
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [to_json(v) for v in value]}
    if isinstance(value, dict):
        return {"map": [[to_json(k), to_json(v)] for k, v in value.items()]}
    if isinstance(value, (set, frozenset)):
        return {"set": [to_json(v) for v in value]}
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    return _tagged(value)


def _tagged(value: Any) -> Any:
    if isinstance(value, Unavailable):
        return {"unavailable": value.reason}
    if isinstance(value, Struct):
        fields = value.fields
        if value.tuple_like:
            return {"struct": value.type_name, "fields": [to_json(v) for v in fields.values()]}
        return {"struct": value.type_name, "fields": {k: to_json(v) for k, v in fields.items()}}
    if isinstance(value, Variant):
        made: dict[str, Any] = {"variant": value.name}
        if value.value is not None:
            made["payload"] = to_json(value.value)
        return made
    if isinstance(value, Truncated):
        return {"truncated": to_json(value.prefix), "length": value.length}
    if isinstance(value, Inside):
        state = {k: to_json(v) for k, v in value.state.items()}
        return {"inside": value.container, "value": to_json(value.value), "state": state}
    if isinstance(value, Missing):
        return {"missing": value.kind, "state": {k: to_json(v) for k, v in value.state.items()}}
    if isinstance(value, PurePath):
        return {"path": str(value)}
    if isinstance(value, Duration):
        return {"duration_ns": value.nanoseconds}
    if isinstance(value, timedelta):
        return {"duration_ns": (value // timedelta(microseconds=1)) * 1000}
    return {"repr": repr(value)}
