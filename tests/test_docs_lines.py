"""The Python examples of docs/lines-and-usdt.md run as tests, against the real plugin."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_readme import ROOT, TOOL_HOMES

DOC = ROOT / "docs" / "lines-and-usdt.md"


def python_examples() -> list[str]:
    text = DOC.read_text()
    return [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "def test_" in b]


def test_the_doc_has_examples():
    assert len(python_examples()) == 2


@pytest.mark.uprobe
@pytest.mark.parametrize("example", python_examples())
def test_doc_example_passes(pytester, monkeypatch, example):
    for name, value in TOOL_HOMES.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile(example)
    pytester.makeini(f"[pytest]\nrootdir = {ROOT}\n")
    result = pytester.runpytest_subprocess("--uprobe", f"--rootdir={ROOT}")
    result.assert_outcomes(passed=example.count("def test_"))


def test_the_rust_usdt_example_matches_the_crate():
    """The doc's hand-written probe is the example crate's, renamed."""
    crate = (ROOT / "example_crates" / "lines" / "src" / "usdt.rs").read_text()
    for line in (".4byte 992f-991f, 994f-993f, 3", "993: .8byte 990b", ".8byte {sem}"):
        assert line in crate and line in DOC.read_text()
    assert Path(DOC).read_text().count("```rust") == 1
