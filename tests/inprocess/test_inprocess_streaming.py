"""The in-process engine hands its events on while the program runs (as the BPF engine's
poller does): the Tracer's Pairing gets them before the program ends, and what the run
returns stays exact, killed mid-way, with events lost, or with a consumer that fails.
Expected values come from the workload program's own arithmetic (tick(n) = 2n + 1).
Needs frida."""

from __future__ import annotations

import time

import pytest

from pytest_uprobe import Tracer
from pytest_uprobe import tracer as tracer_module
from pytest_uprobe.errors import TraceTimeout
from pytest_uprobe.events import EVENT, Pairing
from pytest_uprobe.trace import LostEventsWarning

pytest.importorskip("frida")
pytestmark = pytest.mark.uprobe

TICK = "workload::tick"


class _Watched(Pairing):
    """A Pairing that notes, for each batch it is fed, when (CLOCK_MONOTONIC, the clock the
    events' timestamps use) and how many events."""

    batches: list[tuple[int, int]] = []

    def feed(self, records, data):  # type: ignore[no-untyped-def]
        type(self).batches.append((time.monotonic_ns(), len(records) // EVENT.size))
        super().feed(records, data)


@pytest.fixture
def watched(monkeypatch):
    monkeypatch.setattr(_Watched, "batches", [])
    monkeypatch.setattr(tracer_module, "Pairing", _Watched)
    return _Watched.batches


def _ticks_in_order(trace) -> int:
    """Every recorded tick, in order from 0, with its return value (a run killed or out of
    room may leave the last one without); how many events they came from (the dev tick's
    entry and its return are one each)."""
    __tracebackhide__ = True
    calls = trace[TICK].calls
    assert [c.args[0] for c in calls] == list(range(len(calls)))
    assert all(c.returned for c in calls[:-1])
    assert [c.retval for c in calls if c.returned] == [2 * c.args[0] + 1 for c in calls
                                                      if c.returned]  # fmt: skip
    return len(calls) + sum(c.returned for c in calls)


def test_events_are_paired_while_the_program_runs(cargo_bin, watched):
    """`hang` ticks 100 times a second until the timeout kills it: batches reach the
    Pairing before its last tick, and the killed run keeps every tick it counted."""
    exe = cargo_bin("example_crates/workload")
    with Tracer(backend="inprocess") as tracer, pytest.raises(TraceTimeout) as error:
        tracer.run([exe, "hang", "1000"], probes=[TICK], timeout=1.0)
    trace = error.value.trace
    assert trace.returncode == -9
    last_tick = trace[TICK].calls[-1].ts_ns
    early = [n for at, n in watched if at < last_tick]
    assert early and sum(early) > 0, (watched, last_tick)
    assert trace.lost_events == 0
    assert sum(n for _, n in watched) == _ticks_in_order(trace)
    assert len(trace[TICK].calls) == trace[TICK].call_count


def test_a_ring_left_full_drops_events_and_counts_them(cargo_bin, monkeypatch, watched):
    """Nobody drains a 64 KiB ring (about 390 events) while the program runs: it waits for
    room, then drops and counts what it cannot write. The counts stay exact; the recorded
    calls are the first ones, and the events recorded + lost are a call's entry and its
    return for every call counted."""
    from pytest_uprobe.inprocess import engine

    monkeypatch.setattr(engine.SharedBuffer.__init__, "__defaults__", (1 << 16,))
    monkeypatch.setattr(engine.InprocessRun, "_drain", lambda self: self._stop.wait())
    exe = cargo_bin("example_crates/workload")
    with Tracer(backend="inprocess", lost_events="warn") as tracer, pytest.warns(LostEventsWarning):
        trace = tracer.run([exe, "loop", "3000"], probes=[TICK])
    assert "ticks 3000" in trace.stdout
    recorded = _ticks_in_order(trace)
    assert trace[TICK].call_count == 3000
    assert sum(n for _, n in watched) == recorded
    assert 0 < recorded < 6000 and recorded + trace.lost_events == 2 * 3000


def test_a_consumer_that_fails_fails_the_run_and_leaves_nothing(cargo_bin, monkeypatch):
    """An error while pairing (a bug) is raised by run(), never a run with calls missing."""

    def broken(self, records, data):  # type: ignore[no-untyped-def]
        raise RuntimeError("pairing broke")

    monkeypatch.setattr(Pairing, "feed", broken)
    exe = cargo_bin("example_crates/workload")
    with Tracer(backend="inprocess") as tracer, pytest.raises(RuntimeError, match="pairing"):
        tracer.run([exe, "loop", "5000"], probes=[TICK])
    monkeypatch.undo()
    with Tracer(backend="inprocess") as tracer:  # the next run of the process is whole
        trace = tracer.run([exe, "loop", "5000"], probes=[TICK])
    assert _ticks_in_order(trace) == 2 * 5000 and len(trace[TICK].calls) == 5000
