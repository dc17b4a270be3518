"""The Python examples of the README and of docs/ run as tests, against the real plugin.

A ```python block that defines a test is run; a ```py block is an illustration only (a
crate of the reader's own, say) and is not.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOL_HOMES = {
    "RUSTUP_HOME": os.environ.get("RUSTUP_HOME", str(Path.home() / ".rustup")),
    "CARGO_HOME": os.environ.get("CARGO_HOME", str(Path.home() / ".cargo")),
}


DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def python_examples() -> list[tuple[str, str]]:
    """(where, code) of every example that defines a test."""
    found = []
    for document in DOCUMENTS:
        text = document.read_text()
        for number, block in enumerate(re.findall(r"```python\n(.*?)```", text, re.S)):
            if "def test_" in block:
                found.append((f"{document.relative_to(ROOT)}#{number}", block))
    return found


def test_the_docs_have_examples():
    where = {w.split("#")[0] for w, _ in python_examples()}
    assert "README.md" in where and len(where) > 3


@pytest.mark.uprobe
@pytest.mark.parametrize(
    "example", [e for _, e in python_examples()], ids=[w for w, _ in python_examples()]
)
def test_doc_example_passes(pytester, monkeypatch, example):
    for name, value in TOOL_HOMES.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile(example)
    pytester.makeini(f"[pytest]\nrootdir = {ROOT}\n")
    result = pytester.runpytest_subprocess("--uprobe", f"--rootdir={ROOT}")
    result.assert_outcomes(passed=example.count("def test_"))
