"""When a stack slot DWARF gives for a whole scope holds the variable (dwarf/slots.py), on
hand-assembled x86-64 functions: no root, no compiler. The slot is `[rsp + 8]` after a
`sub rsp, 0x18` (the CFA is rsp + 0x20 there), the value arrives in rdi."""

from __future__ import annotations

import pytest

from pytest_uprobe.dwarf.locations import Cfa, Piece
from pytest_uprobe.dwarf.slots import unsettled_with
from pytest_uprobe.machine_code import flow

START = 0x1000
SUB = "4883ec18"  # sub rsp, 0x18
STORE = "48897c2408"  # mov [rsp + 8], rdi
LOAD = "488b442408"  # mov rax, [rsp + 8]
COPY = "4889f8"  # mov rax, rdi
ADD = "4883c418"  # add rsp, 0x18
RET = "c3"
NOP = "90"
INC = "48ffc7"  # inc rdi
TEST = "4885ff"  # test rdi, rdi
LEA = "488d742408"  # lea rsi, [rsp + 8]
CALL = "e800000000"  # a direct call (to the next instruction)
CALL_RAX = "ffd0"  # call rax: a callee the compiler could not see
LEA_RAX = "488d442408"  # lea rax, [rsp + 8]
KEEP_RAX = "4889442410"  # mov [rsp + 0x10], rax: the pointer escapes into memory
CALL_GOT = "ff1500000000"  # call [rip]: through the GOT, say
SLOT = (Piece(7, 8, 8, memory=True),)  # [rsp + 8] at the probed address


def why(*parts: str, probe: int) -> str | None:
    """What unsettled says about the slot at the `probe`-th instruction of `parts`."""
    code = bytes.fromhex("".join(parts))
    shape = flow(code, START, memory=True)
    sub_end = START + 4
    ret = shape.boundaries[-1]

    def cfa_at(address: int) -> Cfa:
        return Cfa(7, 0x20 if sub_end <= address < ret else 8)

    return unsettled_with(shape, shape.boundaries[probe], SLOT, cfa_at)


def test_a_slot_written_before_and_read_after_the_line_holds_the_value():
    assert why(SUB, STORE, NOP, LOAD, ADD, RET, probe=2) is None


def test_a_slot_not_yet_written_on_the_way_to_the_line_is_unavailable():
    reason = why(SUB, NOP, STORE, LOAD, ADD, RET, probe=1)
    assert reason is not None and "does not write the slot on every path" in reason
    assert "opt-level 0" in reason


def test_a_slot_nothing_reads_after_the_line_proves_nothing():
    # The value may have changed in a register since the store, with no reason to write
    # the slot again: nothing reads it.
    reason = why(SUB, STORE, NOP, COPY, ADD, RET, probe=2)
    assert reason is not None and "leaves the function first" in reason


def test_a_loop_that_keeps_the_value_in_a_register_and_stores_it_after_is_unavailable():
    # store; loop: inc rdi; test; jne loop; then the store sunk out of the loop, and a read.
    jne_back = "75f8"  # from 0x1011 back to 0x1009
    reason = why(SUB, STORE, INC, TEST, jne_back, STORE, LOAD, ADD, RET, probe=2)
    assert reason is not None and "may write it first, at 0x1011" in reason


def test_a_call_the_compiler_cannot_see_given_a_pointer_to_the_slot_reads_it():
    assert why(SUB, STORE, NOP, LEA, CALL_RAX, ADD, RET, probe=2) is None
    # The pointer stored to memory (an `fmt::Arguments`, say), then any opaque call.
    assert why(SUB, STORE, NOP, LEA_RAX, KEEP_RAX, CALL_GOT, ADD, RET, probe=2) is None
    # ...made before the line, on every path to it.
    assert why(SUB, STORE, LEA_RAX, KEEP_RAX, NOP, CALL_GOT, ADD, RET, probe=4) is None


def test_a_direct_call_proves_nothing_the_compiler_may_know_it_reads_no_memory():
    # LLVM infers what a function of the same crate touches (`memory(none)`): it need not
    # store a value before calling it, pointer or not (the zoo crate's `total` read 90
    # where the program had 93, 99 and 108).
    reason = why(SUB, STORE, NOP, LEA, CALL, ADD, RET, probe=2)
    assert reason is not None and "may write it first" in reason
    reason = why(SUB, STORE, LEA_RAX, KEEP_RAX, NOP, CALL, ADD, RET, probe=4)
    assert reason is not None and "may write it first" in reason


@pytest.mark.parametrize("between", [STORE, CALL + LEA + "48893e"])  # mov [rsi], rdi
def test_a_write_before_the_read_is_unavailable(between):
    # Another store on the slot, or a pointer to it made and written through.
    reason = why(SUB, STORE, NOP, between, LOAD, ADD, RET, probe=2)
    assert reason is not None and "may write it first" in reason
