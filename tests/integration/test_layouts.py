"""The records the BPF program and Python share are described once on each side: the C text
in bpf/program.py, and its Python mirrors (`EVENT`, `CSite`, `CPiece`, `CDeref`, `CFollow`).
This checks the mirrors against what the compiler actually laid out, through the map value
types BCC derives from the compiled program."""

from __future__ import annotations

import ctypes as ct

from pytest_uprobe.bpf import program
from pytest_uprobe.bpf.bcc import load_bcc
from pytest_uprobe.bpf.prerequisites import check_prerequisites

# Maps that exist only here, so that BCC reports the layout of each shared struct.
PROBE_MAPS = """
BPF_ARRAY(layout_event, struct event, 1);
BPF_ARRAY(layout_big_event, struct big_event, 1);
BPF_ARRAY(layout_piece, struct piece, 1);
BPF_ARRAY(layout_deref, struct deref, 1);
"""


def _layout(kind: type) -> list[tuple[str, int, int]]:
    """(name, offset, size) of each field of a ctypes structure."""
    return [
        (name, getattr(kind, name).offset, getattr(kind, name).size) for name, *_ in kind._fields_
    ]


def test_python_reads_the_records_the_compiler_laid_out() -> None:
    check_prerequisites()
    bcc = load_bcc()
    bpf = bcc.BPF(text=(program.source(8, per_site_functions=False) + PROBE_MAPS).encode())
    try:
        event = bpf[b"layout_event"].Leaf
        assert ct.sizeof(event) == program.EVENT.size
        assert [(n, o) for n, o, _ in _layout(event)][:6] == [
            ("ts", 0), ("cfa", 8), ("tid", 16), ("site", 20), ("failed", 24), ("pad", 28),
        ]  # fmt: skip
        big = bpf[b"layout_big_event"].Leaf
        assert ct.sizeof(big) == 32 + program.AREA  # the header, then the area
        assert _layout(bpf[b"layout_piece"].Leaf) == _layout(program.CPiece)
        assert _layout(bpf[b"layout_deref"].Leaf) == _layout(program.CDeref)
        assert ct.sizeof(bpf[b"sites"].Leaf) == ct.sizeof(program.CSite)
        assert [(n, o) for n, o, _ in _layout(bpf[b"sites"].Leaf)] == [
            (n, o) for n, o, _ in _layout(program.CSite)
        ]
        assert _layout(bpf[b"follow"].Leaf) == _layout(program.CFollow)
    finally:
        bpf.cleanup()
