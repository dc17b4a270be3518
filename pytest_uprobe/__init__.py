"""pytest-uprobe: assert what a compiled Rust binary did at run time, through eBPF uprobes.

Public names load lazily, so that importing the package (which pytest does for its
entry point in every run) costs nothing and cannot fail for want of bcc.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Call",
    "FunctionTrace",
    "Trace",
    "Tracer",
    "Unavailable",
    "Struct",
    "Variant",
    "Truncated",
    "BadUtf8",
    "Inside",
    "Duration",
    "Missing",
    "UprobeError",
    "PrerequisiteError",
    "ProbeNameError",
    "TraceTimeout",
    "UsageError",
    "LostEventsError",
    "LostEventsWarning",
    "InexactCount",
    "LostEvents",
    "cargo_bin",
    "abi",
    "inlining",
]

_WHERE = {
    "Call": "trace",
    "FunctionTrace": "trace",
    "Trace": "trace",
    "Tracer": "tracer",
    "Unavailable": "values",
    "Struct": "values",
    "Variant": "values",
    "Truncated": "values",
    "BadUtf8": "values",
    "Inside": "values",
    "Duration": "values",
    "Missing": "values",
    "UprobeError": "errors",
    "PrerequisiteError": "errors",
    "ProbeNameError": "errors",
    "TraceTimeout": "errors",
    "UsageError": "errors",
    "LostEventsError": "trace",
    "LostEventsWarning": "trace",
    "InexactCount": "bounds",
    "LostEvents": "options",
    "cargo_bin": "cargo",
    "abi": "abi_snapshot",
    "inlining": "inlining_snapshot",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_uprobe' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
