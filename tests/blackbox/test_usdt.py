"""The crate's own USDT probe stockpile:progress(worker_id, step)."""

from tests.blackbox.stockpile import ARGV_TAIL, printed_calls


def test_usdt_progress_per_worker_step(uprobe_trace, exe):
    trace = uprobe_trace.run(
        [exe, *ARGV_TAIL], probes=["usdt:stockpile:progress", "stockpile::worker"]
    )
    workers = printed_calls(trace.stdout, "worker")
    p = trace["usdt:stockpile:progress"]
    assert p.call_count == sum(n for (_, n), _ in workers)
    assert sorted(p.args_list) == sorted(
        (wid, k) for (wid, n), _ in workers for k in range(1, n + 1)
    )
    # the semaphore is set while the probe is attached
    for (wid, _), _ in workers:
        assert f"PROGRESS_TRACED worker={wid}" in trace.stdout
    p.assert_only_called_from("stockpile::worker")


def test_usdt_semaphore_off_without_probe(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, *ARGV_TAIL], probes=["stockpile::worker"])
    assert "PROGRESS_TRACED" not in trace.stdout
