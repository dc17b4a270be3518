"""Reports made for snapshot tests: plain records whose text form is stable and diffs well.

A report is a read-only mapping from a function's path to its record. Its `repr()` (and
`str()`) is the text form: sorted, one fact per line, no addresses, so that a snapshot
library that stores reprs (syrupy's `.ambr` files do, for objects that are not dicts, lists
or dataclasses) keeps one line per fact, and a review diff shows exactly the facts that
changed. Two reports are equal when their records are; compared with anything else, the
other side decides (`report == snapshot` is syrupy's comparison).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol, TypeVar


class Record(Protocol):
    @property
    def key(self) -> str: ...

    def lines(self) -> list[str]: ...


R = TypeVar("R", bound=Record)


class Report(Mapping[str, R]):
    """Records by key (a function's path), sorted; `text` is the stable text form."""

    title = "report"

    def __init__(self, records: Sequence[R], trailer: Sequence[str] = ()) -> None:
        self._records: dict[str, R] = {}
        for record in sorted(records, key=lambda r: r.key):
            self._records[record.key] = record
        self._trailer = tuple(trailer)  # lines after the records (shared facts)

    def __getitem__(self, key: str) -> R:
        return self._records[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    @property
    def records(self) -> tuple[R, ...]:
        return tuple(self._records.values())

    @property
    def text(self) -> str:
        lines = [line for record in self._records.values() for line in record.lines()]
        return "\n".join([*lines, *self._trailer])

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Report)
        return self.text == other.text

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__
