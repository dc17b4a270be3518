"""Values that stand for what could not be read."""

from __future__ import annotations

from typing import Any


class Unavailable:
    """A value the probe could not read, with the reason why.

    It equals no real value (not even another Unavailable), so an assertion that
    expects a number fails and the failure text shows the reason.
    """

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"Unavailable({self.reason!r})"

    def __eq__(self, other: Any) -> bool:
        return False

    def __ne__(self, other: Any) -> bool:
        return True

    __hash__ = object.__hash__
