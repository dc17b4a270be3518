"""The in-process ring's records, parsed into RawEvents (inprocess/engine.take_records):
checked against records built here from the agent's layout (agent.RECORD_HEADER, then the
event as rawevents.EVENT packs it, then a big event's copied bytes, 8-byte aligned), and
against RawEvents.append of the same events. Needs neither root nor frida."""

from __future__ import annotations

import struct

import pytest

from pytest_uprobe.inprocess import agent
from pytest_uprobe.inprocess.engine import take_records
from pytest_uprobe.plan import MAX_PIECES
from pytest_uprobe.rawevents import EVENT, EVENT_SIZE, RawEvent, RawEvents

EVENT_KIND, SKIP_KIND = 0, 1


def record(event: RawEvent) -> bytes:
    """One ring record as the agent's record_hit writes it."""
    words = tuple(event.words) + (0,) * (MAX_PIECES - len(event.words))
    body = EVENT.pack(event.ts, event.cfa, event.tid, event.site, event.failed, *words)
    body += event.data
    need = (agent.RECORD_HEADER + len(body) + 7) & ~7
    head = struct.pack("<II", need, EVENT_KIND)
    return (head + body).ljust(need, b"\0")


def skip(size: int) -> bytes:
    """The record that sends the reader back to the ring's start (its tail is garbage)."""
    return struct.pack("<II", size, SKIP_KIND) + b"\xee" * (size - agent.RECORD_HEADER)


def event(n: int, data: bytes = b"", failed: int = 0) -> RawEvent:
    return RawEvent(ts=1000 + n, cfa=0x7FFF0000 - 16 * n, tid=40 + n % 3, site=n % 5,
                    words=(n, 2 * n + 1, 2**64 - 1 - n), data=data, failed=failed)  # fmt: skip


def padded(data: bytes) -> bytes:
    """A big event's bytes as the ring holds them: up to its record's 8-byte end."""
    return data.ljust((len(data) + 7) & ~7, b"\0")


def expected(events: list[RawEvent]) -> list[RawEvent]:
    made = RawEvents()
    for e in events:
        made.append(RawEvent(e.ts, e.cfa, e.tid, e.site, e.words, padded(e.data), e.failed))
    return list(made)


def parsed(blob: bytes) -> RawEvents:
    sink = RawEvents()
    assert take_records(blob, 0, len(blob), sink) == len(blob)
    return sink


def test_plain_events_come_out_as_the_bpf_side_delivers_them():
    events = [event(n) for n in range(50)]
    sink = parsed(b"".join(record(e) for e in events))
    assert list(sink) == expected(events)
    assert len(sink.records) == 50 * EVENT_SIZE and sink.data == {}


def test_big_events_keep_their_bytes_by_their_number_and_skips_are_left_out():
    events = [event(0), event(1, b"hello, copied", failed=2), event(2), event(3, b"x" * 200)]
    blob = record(events[0]) + record(events[1]) + skip(48) + record(events[2])
    blob += record(events[3]) + skip(agent.RECORD_HEADER)
    sink = parsed(blob)
    assert list(sink) == expected(events)
    assert sorted(sink.data) == [1, 3]


@pytest.mark.parametrize("limit", [1, EVENT_SIZE, 3 * EVENT_SIZE + 5, 1 << 20])
def test_parsing_in_slices_gives_the_same_events(limit):
    """The drainer parses a big blob a slice at a time: each call ends on a record's end
    and takes at least `limit` bytes (or the rest)."""
    events = [event(n, b"d" * (n % 4) * 9) for n in range(40)]
    records = [record(e) for e in events]
    blob = b"".join(records)
    ends = {sum(map(len, records[: i + 1])) for i in range(len(records))}
    sink, pos = RawEvents(), 0
    while pos < len(blob):
        end = take_records(blob, pos, limit, sink)
        assert end in ends and (end - pos >= limit or end == len(blob)), (pos, end)
        pos = end
    assert list(sink) == expected(events)


def test_events_already_taken_are_numbered_after_them():
    """A big event's bytes are keyed by its number among the events kept (not handed on)."""
    sink = RawEvents()
    first = [event(0), event(1)]
    take_records(b"".join(map(record, first)), 0, 1 << 20, sink)
    take_records(record(event(2, b"later")), 0, 1 << 20, sink)
    assert sink.data == {2: padded(b"later")}
    assert list(sink) == expected([*first, event(2, b"later")])


@pytest.mark.parametrize("size", [0, 4, 1 << 20])
def test_a_broken_record_is_an_error_never_a_guess(size):
    blob = record(event(0)) + struct.pack("<II", size, EVENT_KIND) + b"\0" * 200
    with pytest.raises(RuntimeError, match=f"record of {size} bytes at 168 .* bug"):
        take_records(blob, 0, len(blob), RawEvents())
