"""Futures by name under the in-process engine: the same plan in, the same events out, so
the same futures as with BPF, checked against the program's own lines (see
tests/integration/test_futures.py)."""

from __future__ import annotations

import pytest

from pytest_uprobe import Tracer
from pytest_uprobe.errors import UnreadableFunction
from pytest_uprobe.futures import FutureCall
from tests.integration.test_futures import CRATE, FETCH, by_id, printed_outputs, printed_polls

pytestmark = pytest.mark.uprobe


def test_futures_polls_and_drops_in_process(cargo_bin) -> None:
    exe = cargo_bin(CRATE, profile="release")
    with Tracer(backend="inprocess") as tracer:
        select = tracer.run([exe, "select"], probes=[FETCH])
        pool = tracer.run([exe, "pool"], probes=[FETCH])
    futures = by_id(select)
    assert futures[3].completed and futures[3].retval == printed_outputs(select.stdout)[3]
    # In release its drop runs in drop glue inlined into drop_in_place<Select<..>>: the
    # copy's first instruction loads the state's discriminant, whose base register is the
    # address dropped (futures._read_inlined_dropped_address).
    assert futures[4].outcome == "dropped unfinished after 1 poll"
    assert futures[5].outcome == "dropped without being polled"
    printed = printed_polls(pool.stdout)
    outputs = printed_outputs(pool.stdout)
    assert pool[FETCH].call_count == 4
    for ident, future in by_id(pool).items():
        assert [p.tid for p in future.polls] == printed[ident]
        assert future.completed and future.retval == outputs[ident]


def test_a_panic_in_a_task_in_process(cargo_bin) -> None:
    exe = cargo_bin(CRATE, profile="release")
    with Tracer(backend="inprocess") as tracer:
        try:
            pool = tracer.run([exe, "pool"], probes=["asyncs::explode"])
        except UnreadableFunction as refused:  # said before the run, never a changed run
            # explode's drop glue is a lone `ret`: Frida cannot patch it.
            assert "--uprobe-backend=bpf" in str(refused)
            pytest.skip(f"the in-process engine refuses this build's site: {refused}")
    (boom,) = pool["asyncs::explode"].calls
    assert isinstance(boom, FutureCall)
    assert [p.result for p in boom.polls] == ["pending", "panicked"]
    assert "task panicked" in pool.stdout
