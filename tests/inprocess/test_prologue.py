"""The prologue reader (inprocess/prologue.py) on machine code bytes: where an entry probe's
values are at the function's first instruction. No root, no compiler, no Frida: the
prologues are rustc's (dev stockroom's `quote` and `Inventory::reserve`, copied from the
binary) or hand-assembled, each shown as capstone reads it."""

from __future__ import annotations

import pytest

from pytest_uprobe.dwarf.locations import CONSTANT_REG, RSP, Piece
from pytest_uprobe.inprocess.prologue import Unreadable, read_back
from pytest_uprobe.machine_code import _disassembler
from pytest_uprobe.plan import RDI, RIP, SAVE_WORD

RAX, RDX, RCX, RSI, RBP, R8 = 0, 1, 2, 4, 6, 8


def _prologue(hex_bytes: str, expected: list[str]):
    instructions = list(_disassembler().disasm(bytes.fromhex(hex_bytes), 0x1000))
    assert [f"{i.mnemonic} {i.op_str}" for i in instructions] == expected
    return instructions


def _slot(offset, size=8):
    return Piece(RSP, offset, size, memory=True)


def _reg(reg, size=8):
    return Piece(reg, 0, size, memory=False)


QUOTE = _prologue(
    "4883ec288914244889f08b34248974240448897c2410488944241889742424",
    [
        "sub rsp, 0x28",
        "mov dword ptr [rsp], edx",
        "mov rax, rsi",
        "mov esi, dword ptr [rsp]",
        "mov dword ptr [rsp + 4], esi",
        "mov qword ptr [rsp + 0x10], rdi",
        "mov qword ptr [rsp + 0x18], rax",
        "mov dword ptr [rsp + 0x24], esi",
    ],
)


def test_slots_filled_by_copies_and_reloads_are_the_start_registers():
    """quote(self: &dyn Pricing, qty: u32): the vtable pointer goes through rax, qty
    through a slot and back into esi before it is stored again."""
    assert read_back(QUOTE, [_slot(0x10), _slot(0x18), _slot(0x24, 4)]) == (
        _reg(RDI),
        _reg(RSI),
        _reg(RDX, 4),
    )


def test_a_register_reloaded_from_a_slot_is_the_register_stored_there():
    """At quote's entry probe esi holds qty (rdx's low half at the start), rax the vtable."""
    assert read_back(QUOTE, [_reg(RSI, 4), _reg(RAX)]) == (_reg(RDX, 4), _reg(RSI))


def test_a_long_prologue_shuffling_every_argument_through_slots():
    """Dev Inventory::reserve moves each argument register through rax and a slot before
    storing it where DWARF says it lives."""
    reserve = _prologue(
        "4881ecf8000000448944241c48894c24204889d0488b54242048894424284889f0488b742428"
        "48894424304889f8488b7c2430488944243848894424404889bc24c00000004889b424c8000000"
        "48899424d000000044898424dc000000",
        [
            "sub rsp, 0xf8",
            "mov dword ptr [rsp + 0x1c], r8d",
            "mov qword ptr [rsp + 0x20], rcx",
            "mov rax, rdx",
            "mov rdx, qword ptr [rsp + 0x20]",
            "mov qword ptr [rsp + 0x28], rax",
            "mov rax, rsi",
            "mov rsi, qword ptr [rsp + 0x28]",
            "mov qword ptr [rsp + 0x30], rax",
            "mov rax, rdi",
            "mov rdi, qword ptr [rsp + 0x30]",
            "mov qword ptr [rsp + 0x38], rax",
            "mov qword ptr [rsp + 0x40], rax",
            "mov qword ptr [rsp + 0xc0], rdi",
            "mov qword ptr [rsp + 0xc8], rsi",
            "mov qword ptr [rsp + 0xd0], rdx",
            "mov dword ptr [rsp + 0xdc], r8d",
        ],
    )
    pieces = [_slot(0xC0), _slot(0xC8), _slot(0xD0), _slot(0xDC, 4), _slot(0x38)]
    assert read_back(reserve, pieces) == (
        _reg(RSI),
        _reg(RDX),
        _reg(RCX),
        _reg(R8, 4),
        _reg(RDI),
    )


def test_frame_pointer_slots_the_caller_frame_and_words_that_need_no_prologue():
    """`push rbp; mov rbp, rsp`: a slot below rbp; the return address (CFA - 8) and a
    stack-passed argument are the caller's, as they were; a constant and the instruction
    pointer do not depend on where the hook is."""
    framed = _prologue(
        "554889e54883ec1048897df8",
        ["push rbp", "mov rbp, rsp", "sub rsp, 0x10", "mov qword ptr [rbp - 8], rdi"],
    )
    constant = Piece(CONSTANT_REG, 0, 4, False, b"\x07\0\0\0")
    pieces = [Piece(RBP, -8, 8, True), Piece(RBP, 8, 8, True), _slot(0x20), constant]
    assert read_back(framed, [*pieces, _reg(RIP)]) == (
        _reg(RDI),
        _slot(0),
        _slot(8),
        constant,
        _reg(RIP),
    )
    with pytest.raises(Unreadable, match="did not fill the stack slot rsp-24 whole"):
        read_back(framed, [Piece(RBP, -16, 8, True)])  # a slot the prologue never wrote


def test_memory_through_an_unchanged_register_and_through_a_stack_address():
    """A value behind rdi (the prologue writes only its own frame, so that memory is as it
    was); a value behind a pointer the prologue took to its own slot (`lea`)."""
    spilled = _prologue(
        "4883ec2048897424084889fa488d7c2408",
        ["sub rsp, 0x20", "mov qword ptr [rsp + 8], rsi", "mov rdx, rdi", "lea rdi, [rsp + 8]"],
    )
    assert read_back(spilled, [Piece(RDX, 0x10, 8, True), Piece(RDI, 0, 8, True)]) == (
        Piece(RDI, 0x10, 8, True),
        _reg(RSI),
    )
    loaded = _prologue("4883ec20488b442428", ["sub rsp, 0x20", "mov rax, qword ptr [rsp + 0x28]"])
    assert read_back(loaded, [_reg(RAX)]) == (_slot(8),)


@pytest.mark.parametrize(
    ("hex_bytes", "expected", "pieces", "why"),
    [
        pytest.param(
            "4883ec08893c248b3424",
            ["sub rsp, 8", "mov dword ptr [rsp], edi", "mov esi, dword ptr [rsp]"],
            [_reg(RSI)],
            "only 4 bytes of it are known",
            id="a 32-bit reload read as 64 bits",
        ),
        pytest.param(
            "4883c718",
            ["add rdi, 0x18"],
            [_reg(RDI)],
            "rdi computed by `add rdi, 0x18` at 0x1000",
            id="a computed register",
        ),
        pytest.param(
            "4883ec1048893c2489742404",
            ["sub rsp, 0x10", "mov qword ptr [rsp], rdi", "mov dword ptr [rsp + 4], esi"],
            [_slot(0)],
            "did not fill the stack slot rsp-16 whole",
            id="a slot overwritten in part",
        ),
        pytest.param(
            "4883ec20488d7c2408",
            ["sub rsp, 0x20", "lea rdi, [rsp + 8]"],
            [_reg(RDI)],
            "the stack address rsp-24",
            id="an address of the new frame",
        ),
        pytest.param(
            "31c0",
            ["xor eax, eax"],
            [_reg(RAX, 4)],
            "zeroed by `xor eax, eax`",
            id="a zeroed register",
        ),
        pytest.param(
            "48893e",
            ["mov qword ptr [rsi], rdi"],
            [_reg(RDI)],
            "writes memory outside its frame",
            id="a store outside the frame",
        ),
        pytest.param("7402", ["je 0x1004"], [_reg(RDI)], "branches", id="a branch"),
        pytest.param(
            "c5fb10442408",
            ["vmovsd xmm0, qword ptr [rsp + 8]"],
            [Piece(17, 0, 8, False)],
            "xmm0 computed by `vmovsd",
            id="an instruction outside the subset",
        ),
    ],
)
def test_what_it_cannot_read_back_is_refused_naming_why(hex_bytes, expected, pieces, why):
    with pytest.raises(Unreadable) as error:
        read_back(_prologue(hex_bytes, expected), pieces)
    assert why in str(error.value)


def test_the_register_saved_for_the_return_must_be_the_start_one():
    """The hidden return pointer (rdi) is saved at the entry for the return site: a
    prologue that changed rdi is refused; a piece's word (SAVE_WORD + i) follows the piece."""
    changed = _prologue("4883c718", ["add rdi, 0x18"])
    with pytest.raises(Unreadable, match="the register saved for the return is changed"):
        read_back(changed, [], save_reg=RDI)
    assert read_back(changed, [_reg(RSI)], save_reg=SAVE_WORD) == (_reg(RSI),)
    assert read_back(QUOTE, [], save_reg=RDI) == ()
