"""docs/lines-and-usdt.md shows the example crate's own hand-written USDT probe. (Its
Python examples run with every other doc example, in tests/test_doc_examples.py.)"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "lines-and-usdt.md"


def test_the_rust_usdt_example_matches_the_crate():
    """The doc's hand-written probe is the example crate's, renamed."""
    crate = (ROOT / "example_crates" / "lines" / "src" / "usdt.rs").read_text()
    for line in (".4byte 992f-991f, 994f-993f, 3", "993: .8byte 990b", ".8byte {sem}"):
        assert line in crate and line in DOC.read_text()
    assert DOC.read_text().count("```rust") == 1
