"""Where polls enter an inlined async body's copy (dwarf/coroutine_entry.py), on hand-made
x86-64 code: no root, no compiler. The host function sits at 0x1000; the copy's address
ranges are given as DWARF would give them."""

from __future__ import annotations

from typing import Any

from pytest_uprobe.dwarf import coroutine_entry as ce
from pytest_uprobe.elf import Symbol

# 0x1000 mov rax, [rdi]; 0x1003 movzx ecx, byte [rax + 0x19] (the discriminant);
# 0x1007 test ecx, ecx; 0x1009 jne 0x1010; 0x100b mov byte [rax + 0x19], 1; 0x100f ret;
# 0x1010 mov byte [rax + 0x19], 2; 0x1014 ret
DISPATCH = bytes.fromhex(
    "488b07" "0fb64819" "85c9" "7505" "c6401901" "c3" "c6401902" "c3"
)  # fmt: skip
# 0x1000 mov rax, [rdi]; 0x1003 movzx ecx, byte [rax + 0x19]; 0x1007 test ecx, ecx;
# 0x1009 je 0x1003 (back to the copy's first instruction); 0x100b ret
LOOP = bytes.fromhex("488b07" "0fb64819" "85c9" "74f8" "c3")  # fmt: skip


class FakeBinary:
    """What coroutine_entry reads of a binary: one function's code, no sections."""

    def __init__(self, code: bytes) -> None:
        self.raw = code
        self.symbol = Symbol("host", "demo::host", 0x1000, len(code), "FUNC")
        self.memos: dict[str, dict[Any, Any]] = {}
        self.elf = self

    def memo(self, name: str) -> dict[Any, Any]:
        return self.memos.setdefault(name, {})

    def function_containing(self, address: int) -> Symbol | None:
        return self.symbol if 0x1000 <= address < 0x1000 + len(self.raw) else None

    def code(self, address: int, size: int) -> bytes | None:
        start = address - 0x1000
        return self.raw[start : start + size] if 0 <= start < len(self.raw) else None

    def iter_sections(self) -> list[Any]:
        return []


def test_a_copy_entered_at_its_dispatch_only_is_one_entry() -> None:
    binary: Any = FakeBinary(DISPATCH)
    found = ce.outside_entries(binary, [(0x1003, 0x1015)])
    assert found is not None and found.addresses == (0x1003,)
    layout = ce.StateLayout((0x19, 1), ())
    assert ce._loads_state(found.flow, [(0x1003, 0x1015)], layout)
    # An argument at 0x10 the copy never loads: its state may not be the future's.
    unread = ce.StateLayout((0x19, 1), ((0x10, 4),))
    assert not ce._loads_state(found.flow, [(0x1003, 0x1015)], unread)


def test_control_coming_in_at_two_places_that_do_not_dispatch() -> None:
    binary: Any = FakeBinary(DISPATCH)
    # Without the dispatch: the two arms are entered from outside, neither loads the state.
    found = ce.outside_entries(binary, [(0x100B, 0x1015)])
    assert found is not None and found.addresses == (0x100B, 0x1010)
    assert not any(ce._loads_at(found.flow, a, 0x19, 1) for a in found.addresses)
    assert ce._loads_at(found.flow, 0x1003, 0x19, 1)


def test_a_jump_back_to_the_entry_from_inside_is_not_judged() -> None:
    binary: Any = FakeBinary(LOOP)
    assert ce.outside_entries(binary, [(0x1003, 0x100C)]) is None


def test_a_copy_outside_every_function_is_not_judged() -> None:
    binary: Any = FakeBinary(DISPATCH)
    assert ce.outside_entries(binary, [(0x2000, 0x2010)]) is None
    assert ce.outside_entries(binary, []) is None
