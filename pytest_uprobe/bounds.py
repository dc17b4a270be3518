"""A call count that may be a bound rather than an exact number.

A probe whose sites could not all be attached, or whose function's calls of itself the
optimizer turned into a loop (dwarf/recursion.py), counts fewer calls than ran (a lower
bound); a probe on a function that shares its address with others, or into which the
optimizer merged functions whose names are gone (dwarf/merging.py), counts their calls too
(an upper bound), as does a source line whose code one execution passes more than once
(points.py: at most the count, and at least one when it is not 0). `CallCount` is an int,
so printing it, adding to it and `>=` read as usual, but a comparison whose answer the
bound cannot decide raises `InexactCount` (an AssertionError naming the reason), so
`assert trace["f"].call_count == 3` never passes on a wrong count.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any


class InexactCount(AssertionError):
    """An exact question about a call count that is only a bound."""


class CallCount(int):
    """A count of calls that is exact, a lower bound (`may_be_more`: why calls were not
    counted), an upper bound (`may_be_fewer`: why calls of other functions are counted),
    or neither. Comparisons return a bool only when the bound decides them."""

    may_be_more: tuple[str, ...]
    may_be_fewer: tuple[str, ...]
    name: str
    fewest: int  # of an upper bound: what ran at least (a line counted at all ran once)

    def __new__(
        cls,
        value: int,
        name: str = "",
        *,
        may_be_more: Sequence[str] = (),
        may_be_fewer: Sequence[str] = (),
        fewest: int = 0,
    ) -> CallCount:
        count = super().__new__(cls, value)
        count.name = name
        count.may_be_more = tuple(may_be_more)
        count.may_be_fewer = tuple(may_be_fewer)
        count.fewest = min(fewest, value)
        return count

    @property
    def exact(self) -> bool:
        return not self.may_be_more and not self.may_be_fewer

    @property
    def low(self) -> int:
        """The fewest calls that can have run."""
        return self.fewest if self.may_be_fewer else int(self)

    @property
    def high(self) -> float:
        """The most calls that can have run (infinity when sites were left out)."""
        return float("inf") if self.may_be_more else int(self)

    def __repr__(self) -> str:
        if self.exact:
            return int.__repr__(self)
        if self.may_be_more and not self.may_be_fewer:
            return f"CallCount(at least {int(self)})"
        if self.may_be_fewer and not self.may_be_more:
            if self.fewest:
                return f"CallCount(between {self.fewest} and {int(self)})"
            return f"CallCount(at most {int(self)})"
        return f"CallCount({int(self)}, neither a lower nor an upper bound)"

    __str__ = int.__repr__  # the number, as any int prints; repr() shows the bound

    def reasons(self) -> str:
        lines = [f"\n  - it may be more: {r}" for r in self.may_be_more]
        lines += [f"\n  - it may be fewer: {r}" for r in self.may_be_fewer]
        return "".join(lines)

    def _decide(self, what: str, other: int) -> bool:
        """`count <what> other` for every count in [low, high], or InexactCount when that
        depends on which count it is."""
        __tracebackhide__ = True
        low, high = self.low, self.high
        test = _OPERATORS[what]
        at_low, at_high = test(low, other), test(high, other)
        # Each test is monotonic over the interval, except == and != (true inside it).
        if what in ("==", "!=") and low < other < high:
            at_low = not at_low
        if at_low == at_high:
            return at_low
        whose = f"the call count of {self.name!r}" if self.name else "the call count"
        calls = "1 call" if int(self) == 1 else f"{int(self)} calls"
        kind = (
            f"at least {calls} ran"
            if not self.may_be_fewer
            else f"at most {calls} ran"
            if not self.may_be_more
            else f"{calls} counted, which bounds nothing"
        )
        raise InexactCount(
            f"cannot tell whether {whose} {what} {other!r}: {kind}.{self.reasons()}\n"
            "  fix: compare with a bound the count decides (`call_count >= n` for a lower "
            "bound, `<= n` for an upper one), or remove the cause named above"
        )

    def _compare(self, what: str, other: Any) -> Any:
        __tracebackhide__ = True
        if self.exact or isinstance(other, bool) or not isinstance(other, int):
            return getattr(int, _METHODS[what])(self, other)
        return self._decide(what, int(other))

    def __eq__(self, other: object) -> bool:
        __tracebackhide__ = True
        return bool(self._compare("==", other))

    def __ne__(self, other: object) -> bool:
        __tracebackhide__ = True
        return bool(self._compare("!=", other))

    def __ge__(self, other: Any) -> bool:
        __tracebackhide__ = True
        return bool(self._compare(">=", other))

    def __gt__(self, other: Any) -> bool:
        __tracebackhide__ = True
        return bool(self._compare(">", other))

    def __le__(self, other: Any) -> bool:
        __tracebackhide__ = True
        return bool(self._compare("<=", other))

    def __lt__(self, other: Any) -> bool:
        __tracebackhide__ = True
        return bool(self._compare("<", other))

    def __bool__(self) -> bool:
        __tracebackhide__ = True
        return bool(self._compare("!=", 0))

    __hash__ = int.__hash__


_OPERATORS: dict[str, Callable[[float, int], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
_METHODS = {
    "==": "__eq__",
    "!=": "__ne__",
    ">=": "__ge__",
    ">": "__gt__",
    "<=": "__le__",
    "<": "__lt__",
}
