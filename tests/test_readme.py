"""The README's Python examples run as tests, against the real plugin."""

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


def python_examples() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [
        block for block in re.findall(r"```python\n(.*?)```", text, re.S) if "def test_" in block
    ]


def test_the_readme_has_examples():
    assert python_examples()


@pytest.mark.uprobe
@pytest.mark.parametrize("example", python_examples())
def test_readme_example_passes(pytester, monkeypatch, example):
    for name, value in TOOL_HOMES.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile(example)
    pytester.makeini(f"[pytest]\nrootdir = {ROOT}\n")
    result = pytester.runpytest_subprocess("--uprobe", f"--rootdir={ROOT}")
    result.assert_outcomes(passed=example.count("def test_"))
