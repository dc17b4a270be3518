"""Which fat pointers are trait objects decoded as their concrete value: those that point
at the `dyn` value itself. A fat pointer to a type that holds it (Rc<dyn T>'s RcInner: the
counts come first) read as the concrete type gave the counts as its fields (A(x=3, y=1)
for an Rc holding A { x: 7, y: 9 }, measured): it is read as its holder instead, the value
at the offset its alignment (the vtable's) sets (`tail_offsets`)."""

from __future__ import annotations

import pytest

from pytest_uprobe.dwarf.types import UNIT, TailLevel, _points_at_dyn, tail_offsets


@pytest.mark.parametrize(
    "name",
    [
        "&dyn stockroom::pricing::Pricing",
        "&mut dyn core::fmt::Debug",
        "*const dyn rcdyn::Show",
        "&(dyn core::any::Any + core::marker::Send)",
        "alloc::boxed::Box<dyn stockroom::pricing::Pricing, alloc::alloc::Global>",
        "alloc::boxed::Box<(dyn core::error::Error + core::marker::Send), alloc::alloc::Global>",
        "core::ptr::non_null::NonNull<dyn rcdyn::Show>",
    ],
)
def test_a_pointer_at_the_dyn_value_is_a_trait_object(name):
    assert _points_at_dyn(name)


@pytest.mark.parametrize(
    "name",
    [
        "core::ptr::non_null::NonNull<alloc::rc::RcInner<dyn rcdyn::Show>>",
        "core::ptr::non_null::NonNull<alloc::sync::ArcInner<dyn rcdyn::Show>>",
        "*const alloc::rc::RcInner<core::cell::RefCell<dyn rcdyn::Show>>",
        "&core::cell::RefCell<dyn rcdyn::Show>",
    ],
)
def test_a_pointer_at_a_type_holding_it_is_not(name):
    assert not _points_at_dyn(name)


# The holders' layouts as DWARF gives them: the unsized field's offset for a value aligned
# to 1, and its type's alignment without the trait object (rustc 1.95, dyn_holders);
# the sized Mutex<A> and Mutex<C> there place their data at 8 and 16, as the rule does.
RC_INNER = (TailLevel(UNIT, "value", 16, 1),)  # RcInner<dyn T>: after strong and weak
RC_REFCELL = (
    TailLevel(UNIT, "value", 16, 8),  # RcInner<RefCell<dyn T>>
    TailLevel(UNIT, "value", 8, 1),  # RefCell<dyn T>: after its borrow flag
    TailLevel(UNIT, "value", 0, 1),  # UnsafeCell<dyn T>
)
ARC_MUTEX = (
    TailLevel(UNIT, "data", 16, 4),  # ArcInner<Mutex<dyn T>>
    TailLevel(UNIT, "data", 5, 1),  # Mutex<dyn T>: after a u32 futex and a bool
    TailLevel(UNIT, "value", 0, 1),  # UnsafeCell<dyn T>
)


@pytest.mark.parametrize(
    ("levels", "align", "starts"),
    [
        (RC_INNER, 8, [0, 16]),
        (RC_INNER, 16, [0, 16]),  # a u128 inside: 16 is already aligned
        (RC_INNER, 32, [0, 32]),  # #[repr(align(32))]: the counts are padded
        (RC_REFCELL, 1, [0, 16, 24, 24]),
        (RC_REFCELL, 8, [0, 16, 24, 24]),
        (RC_REFCELL, 16, [0, 16, 32, 32]),  # the RefCell's value moves to 16 in it
        (ARC_MUTEX, 1, [0, 16, 21, 21]),
        (ARC_MUTEX, 8, [0, 16, 24, 24]),  # as DWARF places Mutex<A>'s data: at 8
        (ARC_MUTEX, 16, [0, 16, 32, 32]),  # and Mutex<C>'s: at 16
    ],
)
def test_a_held_value_sits_where_its_alignment_puts_it(levels, align, starts):
    assert tail_offsets(levels, align) == starts
