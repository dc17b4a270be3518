"""BCC's Python bindings, loaded on first use: the one place that imports `bcc`.

The pytest entry point loads in every pytest run of the environment and must never fail for
want of bcc, so nothing imports it at module level. Debian's `python3-bpfcc` installs it for
/usr/bin/python3 only; from a virtualenv it is loaded by its file location.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from ..errors import PrerequisiteError

DEBIAN_BCC = Path("/usr/lib/python3/dist-packages/bcc/__init__.py")

_bcc: ModuleType | None = None


def load_bcc() -> ModuleType:
    """bcc from this interpreter's path, else Debian's python3-bpfcc, loaded by file location."""
    global _bcc
    if _bcc is not None:
        return _bcc
    try:
        _bcc = importlib.import_module("bcc")
        if not hasattr(_bcc, "BPF"):  # PyPI's unrelated `bcc` package
            raise ImportError("the installed `bcc` package is not BCC")
    except ImportError:
        if not DEBIAN_BCC.exists():
            raise PrerequisiteError(
                "BCC's Python bindings",
                "`import bcc` failed and Debian's python3-bpfcc is not installed",
                "apt-get install python3-bpfcc",
            ) from None
        spec = importlib.util.spec_from_file_location(
            "bcc", DEBIAN_BCC, submodule_search_locations=[str(DEBIAN_BCC.parent)]
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["bcc"] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules["bcc"]
            raise PrerequisiteError(
                "BCC's Python bindings",
                f"loading {DEBIAN_BCC.parent} failed: {exc}",
                "apt-get install --reinstall python3-bpfcc libbpfcc",
            ) from None
        _bcc = module
    return _bcc
