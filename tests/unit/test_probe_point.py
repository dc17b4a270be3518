"""Where a probe goes when the kernel refuses the instruction it was meant for."""

from __future__ import annotations

from pytest_uprobe import machine_code as code


def assemble(*hex_instructions: str) -> bytes:
    return b"".join(bytes.fromhex(h) for h in hex_instructions)


START = 0x1000
# 0x1000 lea -0x8(%rsp),%r11        (5 bytes)
# 0x1005 lock incq (%rax)           (4 bytes)   refused by x86 uprobes
# 0x1009 cs nopw 0x0(%rax,%rax,1)   (10 bytes)  refused too (segment prefix), padding
# 0x1013 mov %rcx,%rbx              (3 bytes)   a loop head: the jne below jumps here
# 0x1016 jne 0x1013                 (2 bytes)
# 0x1018 ret
CODE = assemble("4c8d5c24f8", "f048ff00", "2e660f1f840000000000", "4889cb", "75fb", "c3")


def shape() -> code.CodeShape:
    return code.analyze(CODE, START)


def test_the_kernel_refusals_are_known():
    assert shape().unprobeable == {0x1005, 0x1009}
    assert 0x1013 in shape().jump_targets


def test_a_probeable_instruction_stays_where_it_is():
    assert shape().probe_point(0x1000) == 0x1000


def test_a_lock_prefixed_entry_moves_back_not_onto_the_loop_head():
    # Forward, the next probe-able instruction is a loop head that runs once per iteration;
    # backward, the lea always falls through into the refused run: it runs exactly as often.
    assert shape().probe_point(0x1005) == 0x1000
    assert shape().probe_point(0x1009) == 0x1000


def test_no_point_when_a_jump_lands_in_between():
    # lock incq; mov; jne back onto the mov: the mov runs once per iteration, the lock incq
    # once in all, and nothing comes before it.
    looped = code.analyze(assemble("f048ff00", "4889cb", "75fb", "c3"), START)
    assert 0x1004 in looped.jump_targets
    assert looped.probe_point(START) is None


def test_the_next_instruction_when_nothing_jumps_between():
    # lock incq; mov; jne back onto the lock incq: the mov runs exactly as often.
    looped = code.analyze(assemble("f048ff00", "4889cb", "75f7", "c3"), START)
    assert looped.probe_point(START) == 0x1004


def test_not_an_instruction_boundary():
    assert shape().probe_point(0x1001) is None
