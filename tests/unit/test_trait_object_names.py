"""Which fat pointers are trait objects decoded as their concrete value: those that point
at the `dyn` value itself. A fat pointer to a type that holds it (Rc<dyn T>'s RcInner: the
counts come first) read as the concrete type gave the counts as its fields (A(x=3, y=1)
for an Rc holding A { x: 7, y: 9 }, measured): it is refused instead."""

from __future__ import annotations

import pytest

from pytest_uprobe.dwarf.types import _points_at_dyn


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
