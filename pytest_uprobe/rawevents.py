"""Events as a tracing engine delivers them, before they are paired into calls.

Both engines send the same record: the BPF program through its ring buffer, the in-process
one through a shared ring (inprocess/). `RawEvents` keeps a run's records as they came, the
fixed part of each back to back in one bytearray (read in bulk with `struct.iter_unpack`),
and a big event's copied bytes beside it: no object per event while the program runs.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from .plan import AREA, MAX_PIECES

# `struct event` of the BPF program's C text (bpf/program.py), as Python reads it: ts, cfa,
# tid, site, failed, pad, then the words (a big event's copied data follows).
# tests/integration/test_layouts.py checks it against what the compiler laid out.
EVENT = struct.Struct(f"<QQIII4x{MAX_PIECES}Q")
EVENT_SIZE = EVENT.size
WORDS_AT = 5  # index of the first word in an unpacked record: ts, cfa, tid, site, failed
DATA_SIZE = AREA - 8 * MAX_PIECES  # a big event's bytes after the words


@dataclass(frozen=True)
class RawEvent:
    ts: int
    cfa: int
    tid: int
    site: int
    words: tuple[int, ...]
    data: bytes = b""  # a big event's bytes copied from behind pointers
    failed: int = 0  # bit i: copy i of the site's derefs could not read its memory


class Consumer(Protocol):
    def feed(self, records: bytes | bytearray, data: dict[int, bytes]) -> None:
        """Take these events (`data`: a big event's copied bytes, by its number among them)."""


class RawEvents:
    """A run's events in arrival order (per thread, the order they happened).

    With a `consumer`, `flush` hands it what came so far and forgets it: the poller does so
    while the program runs, so the events of a long run never pile up as bytes."""

    def __init__(self) -> None:
        self.records = bytearray()  # EVENT_SIZE bytes per event
        self.data: dict[int, bytes] = {}  # event number -> a big event's copied bytes
        self.consumer: Consumer | None = None
        self.handed = 0  # events handed to the consumer so far (not kept here)
        self.failure: BaseException | None = None  # what the consumer raised, if it did

    def flush(self, minimum: int = 1) -> None:
        """Hand the consumer the events kept so far, if they fill at least `minimum` bytes.
        A consumer that fails gets nothing more; the failure is kept for `collect`."""
        consumer = self.consumer
        if consumer is None or len(self.records) < minimum:
            return
        records, data = self.records, self.data
        self.records, self.data = bytearray(), {}
        self.handed += len(records) // EVENT_SIZE
        try:
            consumer.feed(records, data)
        except BaseException as exc:
            self.failure, self.consumer = exc, None
            raise

    def add(self, raw: bytes) -> None:
        """One record as the program sent it (a big one carries its data after the words)."""
        if len(raw) > EVENT_SIZE:
            self.data[len(self.records) // EVENT_SIZE] = raw[EVENT_SIZE:]
            self.records += raw[:EVENT_SIZE]
        else:
            self.records += raw

    def append(self, event: RawEvent) -> None:
        number = len(self)
        words = tuple(event.words) + (0,) * (MAX_PIECES - len(event.words))
        self.records += EVENT.pack(event.ts, event.cfa, event.tid, event.site, event.failed,
                                   *words)  # fmt: skip
        if event.data:
            self.data[number] = event.data

    @classmethod
    def of(cls, events: Iterable[RawEvent]) -> RawEvents:
        if isinstance(events, RawEvents):
            return events
        made = cls()
        for event in events:
            made.append(event)
        return made

    def unpacked(self) -> Iterator[tuple[int, ...]]:
        """Each event as one tuple: ts, cfa, tid, site, failed, then the words."""
        return EVENT.iter_unpack(self.records)

    def clear(self) -> None:
        self.records = bytearray()
        self.data = {}

    def __len__(self) -> int:
        """The events kept here (not those handed to the consumer)."""
        return len(self.records) // EVENT_SIZE

    def __bool__(self) -> bool:
        return bool(self.records)

    def __iter__(self) -> Iterator[RawEvent]:
        data = self.data
        for number, (ts, cfa, tid, site, failed, *words) in enumerate(self.unpacked()):
            yield RawEvent(ts, cfa, tid, site, tuple(words), data.get(number, b""), failed)

    def __getitem__(self, number: int) -> RawEvent:
        if number < 0:
            number += len(self)
        if not 0 <= number < len(self):
            raise IndexError(number)
        ts, cfa, tid, site, failed, *words = EVENT.unpack_from(self.records, number * EVENT_SIZE)
        return RawEvent(ts, cfa, tid, site, tuple(words), self.data.get(number, b""), failed)
