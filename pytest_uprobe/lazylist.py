"""A list whose items are made on first use.

A traced run of millions of calls keeps them as columns of numbers (callstore.py); a test
that asks for `len(trace["f"].calls)` or `calls[-1]` should not pay for a million objects.
`LazyList` is a real `list` (isinstance, type hints and every list method work): `len()`,
truth and item access by index make no other item; anything else (iteration, slicing,
comparison, mutation, repr) makes them all once, after which it is a plain list.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from typing import Any, SupportsIndex, TypeVar

T = TypeVar("T")


class LazyList(list[T]):
    def __init__(
        self,
        length: int,
        item: Callable[[int], T],
        every_item: Callable[[], Iterable[T]] | None = None,
    ) -> None:
        """`item(i)` makes item i; `every_item()`, if given, makes them all in order (faster
        in bulk than one by one)."""
        super().__init__()
        self._length = length
        self._item: Callable[[int], T] | None = item
        self._every_item = every_item

    def _make_all(self) -> None:
        item, self._item = self._item, None
        if item is not None:
            every, self._every_item = self._every_item, None
            list.extend(self, every() if every is not None else map(item, range(self._length)))

    def __len__(self) -> int:
        return self._length if self._item is not None else list.__len__(self)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __getitem__(self, index: Any) -> Any:
        item = self._item
        if item is not None and not isinstance(index, slice):
            i = operator.index(index)
            if i < 0:
                i += self._length
            if not 0 <= i < self._length:
                raise IndexError("list index out of range")
            return item(i)
        self._make_all()
        return list.__getitem__(self, index)

    def __radd__(self, other: Any) -> Any:
        if not isinstance(other, list):
            return NotImplemented
        self._make_all()
        return list(other) + list.copy(self)

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        self._make_all()
        return (list, (list(iter(self)),))


def _making_all(name: str) -> Callable[..., Any]:
    method = getattr(list, name)

    def making_all(self: LazyList[Any], *args: Any, **kwargs: Any) -> Any:
        self._make_all()
        for other in args:  # list's own methods read another list's items directly
            if isinstance(other, LazyList):
                other._make_all()
        return method(self, *args, **kwargs)

    making_all.__name__ = name
    making_all.__doc__ = method.__doc__
    return making_all


for _name in (
    "__iter__", "__reversed__", "__contains__", "__eq__", "__ne__", "__lt__", "__le__",
    "__gt__", "__ge__", "__add__", "__iadd__", "__mul__", "__rmul__", "__imul__",
    "__setitem__", "__delitem__", "__repr__", "append", "extend", "insert", "pop", "remove",
    "clear", "index", "count", "sort", "reverse", "copy",
):  # fmt: skip
    setattr(LazyList, _name, _making_all(_name))
