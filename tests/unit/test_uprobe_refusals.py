"""Which x86-64 instructions the kernel silently refuses to uprobe (accepted, never fires):
the cases measured on this kernel (see code.refused_by_uprobes) and the classic ones."""

from __future__ import annotations

import pytest

from pytest_uprobe.machine_code import analyze, refused_by_uprobes


@pytest.mark.parametrize(
    ("hex_bytes", "refused"),
    [
        # Measured: a uprobe here never fired in a vectorized loop of inline_ranges.
        ("c5fa6f07", True),  # vmovdqu (%rdi),%xmm0: VEX opcode 6f (outs in the 1-byte table)
        ("c5f9d44710", True),  # vpaddq: VEX opcode d4
        ("62f1fd283e4708", True),  # vpcmpnleuq: EVEX opcode 1e
        # Measured: these fired.
        ("c5f970c1ee", False),  # vpshufd
        ("c4e1f97ec0", False),  # vmovq
        ("c5fb93d0", False),  # kmovd
        ("c4e37930c801", False),  # kshiftrb
        # Bad prefixes and plain instructions.
        ("f048ff05f0000000", True),  # lock incq
        ("662e0f1f840000000000", True),  # cs nopw
        ("4889c7", False),  # mov %rax,%rdi
        ("0f1f4000", False),  # nopl
        ("f30f1efa", False),  # endbr64
        ("660f3800c1", True),  # pshufb: a three-byte opcode
        ("cc", True),  # int3
    ],
)
def test_refused_instructions(hex_bytes, refused):
    assert refused_by_uprobes(bytes.fromhex(hex_bytes)) is refused


def test_a_refused_instruction_is_unprobeable_in_the_shape():
    code = bytes.fromhex("c5fa6f07c5f970c1eec3")
    shape = analyze(code, 0x1000)
    assert shape.unprobeable == {0x1000}
    assert shape.probe_point(0x1000) == 0x1004
