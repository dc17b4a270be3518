"""A release build may spill an argument to the stack slot DWARF gives for the whole
function (DW_OP_fbreg) only after prologue_end, where the entry probe reads: the slot then
holds an earlier call's value (dyn_holders' release arc_mutex read the previous call's
vtable, decoding a C as an A). `spilled_after` finds such words and the register that still
holds the argument. The code is dyn_holders::arc_mutex's first instructions (rustc 1.95,
release), byte for byte."""

from __future__ import annotations

from pytest_uprobe.machine_code import spilled_after

START = 0x170A0
PROLOGUE_END = 0x170B8  # what the line table marks
ARC_MUTEX = bytes.fromhex(
    "4157"  # push r15
    "4156"  # push r14
    "4155"  # push r13
    "4154"  # push r12
    "53"  # push rbx
    "4883ec40"  # sub rsp, 0x40
    "4889f3"  # mov rbx, rsi
    "4989fe"  # mov r14, rdi
    "48897c2420"  # mov [rsp+0x20], rdi     (before the entry: the pointer is there)
    "488b4610"  # mov rax, [rsi+0x10]       <- prologue_end
    "4883f805"  # cmp rax, 5
    "41bd04000000"  # mov r13d, 4
    "4c0f43e8"  # cmovae r13, rax
    "4889742428"  # mov [rsp+0x28], rsi     (after it: the vtable)
    "49ffcd"  # dec r13
)
RSI = 4  # DWARF's number


def test_a_slot_filled_after_the_entry_is_read_from_its_register():
    assert spilled_after(ARC_MUTEX, START, PROLOGUE_END) == {0x28: RSI}


def test_a_slot_filled_before_the_entry_holds_the_value_already():
    # at the first instruction nothing is spilled yet, but rsp moves before the stores
    # (the pushes, the sub): words are given from rsp at the entry, and the code before
    # the entry has none of them
    assert spilled_after(ARC_MUTEX, START, START) == {}
    after_sub = 0x170AD
    assert spilled_after(ARC_MUTEX, START, after_sub) == {0x20: 5, 0x28: RSI}


def test_a_register_written_before_its_store_is_not_the_argument():
    clobbered = ARC_MUTEX[: 0x170CA - START] + bytes.fromhex(
        "4889c6"  # mov rsi, rax: rsi no longer holds what the caller passed
        "4889742428"  # mov [rsp+0x28], rsi
    )
    assert spilled_after(clobbered, START, PROLOGUE_END) == {}


def test_a_call_before_the_entry_leaves_everything_as_dwarf_says():
    called = bytes.fromhex("e800000000") + ARC_MUTEX  # call (a stack probe, say) first
    assert spilled_after(called, START - 5, PROLOGUE_END) == {}
