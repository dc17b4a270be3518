"""Inlined functions in release builds (debug = true and debug = 1), sites(), line probes."""

import pytest

from pytest_uprobe import Unavailable
from tests.blackbox.stockpile import ARGV_TAIL, CRATE, printed_calls, printed_counts, printed_value

MAIN_RS = (CRATE / "src/main.rs").read_text().splitlines()


def line_of(text, path=MAIN_RS):
    """1-based line number of the only line containing `text`."""
    hits = [i + 1 for i, l in enumerate(path) if text in l]
    assert len(hits) == 1, (text, hits)
    return hits[0]


def test_sq_inlined_counts_and_args_release(uprobe_trace, release_exe):
    trace = uprobe_trace.run([release_exe, *ARGV_TAIL], probes=["stockpile::sq"])
    counts = printed_counts(trace.stdout)
    qtys = [args[0]["qty"] for args, _ in printed_calls(trace.stdout, "score")]
    sq = trace["stockpile::sq"]
    assert sq.call_count == counts["sq"] == len(qtys)
    assert all(c.inlined for c in sq.calls)
    assert all("stockpile::score" in c.inlined_into for c in sq.calls)
    assert sq.args_list == [(q,) for q in qtys]
    assert all(isinstance(r, Unavailable) for r in sq.retvals)


def test_sq_dev_inline_always_is_inlined_even_in_dev(uprobe_trace, dev_exe):
    # rustc honours #[inline(always)] at opt-level 0 too: sq only exists inlined into score
    trace = uprobe_trace.run([dev_exe, *ARGV_TAIL], probes=["stockpile::sq"])
    qtys = [args[0]["qty"] for args, _ in printed_calls(trace.stdout, "score")]
    sq = trace["stockpile::sq"]
    assert sq.call_count == printed_counts(trace.stdout)["sq"]
    assert sq.args_list == [(q,) for q in qtys]
    assert all(c.inlined for c in sq.calls)


def test_half_inlined_into_two_callers_release(uprobe_trace, release_exe):
    trace = uprobe_trace.run([release_exe, *ARGV_TAIL], probes=["stockpile::geo::half"])
    tri = printed_calls(trace.stdout, "Tri::area")
    scores = [r for _, r in printed_calls(trace.stdout, "score")]
    half = trace["stockpile::geo::half"]
    # one call per triangle area, one per score in HALVES
    assert half.call_count == len(tri) + len(scores)
    expected = {(b * h,) for (b, h), _ in tri} | {(s,) for s in scores}
    got = set(tuple(a) for a in half.args_list)
    assert got == expected


def test_half_dev(uprobe_trace, dev_exe):
    trace = uprobe_trace.run([dev_exe, *ARGV_TAIL], probes=["stockpile::geo::half"])
    tri = printed_calls(trace.stdout, "Tri::area")
    scores = [r for _, r in printed_calls(trace.stdout, "score")]
    half = trace["stockpile::geo::half"]
    assert half.call_count == len(tri) + len(scores)
    halves = printed_value(trace.stdout, "HALVES")
    assert sorted(half.retvals) == sorted([(b * h) // 2 for (b, h), _ in tri] + halves)


def test_sites_guard_inlining(uprobe_trace, release_exe):
    sites = uprobe_trace.sites(release_exe, "stockpile::sq")
    assert "stockpile::score" in sites.callers
    assert sites.out_of_line == ()
    clamp = uprobe_trace.sites(release_exe, "stockpile::clamp_add")
    assert len(clamp.out_of_line) == 1


def test_limited_debug_info_counts_but_no_args(uprobe_trace, limited_exe):
    trace = uprobe_trace.run(
        [limited_exe, *ARGV_TAIL], probes=["stockpile::sq", "stockpile::clamp_add"]
    )
    counts = printed_counts(trace.stdout)
    sq = trace["stockpile::sq"]
    assert sq.call_count == counts["sq"]
    assert trace["stockpile::clamp_add"].call_count == counts["clamp_add"]
    a = sq.calls[0].args
    print("debug=1 args:", a)
    # docs: "no: Unavailable, naming the setting that fixes it"
    # (the docs: an unknown parameter list is one Unavailable naming the setting)
    assert isinstance(a, Unavailable), a
    assert "debug" in str(a).lower()


def test_limited_debug_info_return_values_are_not_plausible_numbers(uprobe_trace, limited_exe):
    # clamp_add returns i64; with debug = 1 the docs promise Unavailable, not a value
    trace = uprobe_trace.run(
        [limited_exe, *ARGV_TAIL], probes=["stockpile::clamp_add", "stockpile::score"]
    )
    for name in ["stockpile::clamp_add", "stockpile::score"]:
        ft = trace[name]
        assert ft.call_count >= 1
        assert all(isinstance(r, Unavailable) for r in ft.retvals), (name, ft.retvals[:3])
        assert all(isinstance(c.args, Unavailable) for c in ft.calls), (name, ft.calls[0].args)


# ---------------------------------------------------------------- line probes


@pytest.mark.parametrize("profile", ["dev", "release"])
def test_worker_loop_body_line(uprobe_trace, cargo_bin, profile):
    exe = cargo_bin(str(CRATE), profile=profile)
    ln = line_of("acc = clamp_add(acc, k as i64 * id as i64);")
    probe = f"src/main.rs:{ln}"
    trace = uprobe_trace.run([exe, *ARGV_TAIL], probes=[probe])
    workers = printed_calls(trace.stdout, "worker")
    body = trace[probe]
    assert body.call_count == sum(n for (_, n), _ in workers)
    # per thread, k runs 1..=n and id is the worker's id
    per_tid = {}
    for hit in body.calls:
        per_tid.setdefault(hit.tid, []).append(hit)
    assert len(per_tid) == len(workers)
    seen = sorted((h[0].locals["id"], [x.locals["k"] for x in h]) for h in per_tid.values())
    assert seen == sorted((wid, list(range(1, n + 1))) for (wid, n), _ in workers)
    for hits in per_tid.values():
        wid = hits[0].locals["id"]
        acc = 0
        for h in hits:
            if profile == "release":
                # the loop keeps acc in a register; DWARF names its stack slot for the whole
                # function: Unavailable, naming the build that reads it (never a stale value)
                assert isinstance(h.locals["acc"], Unavailable), h.locals
                assert "opt-level 0" in h.locals["acc"].reason
            else:
                assert h.locals["acc"] == acc
            acc += h.locals["k"] * wid
    first = next(h for h in body.calls if h.locals["id"] == workers[0][0][0] and h.locals["k"] == 1)
    acc_at_first = first.locals["acc"] if profile == "release" else 0
    body.assert_any_call(
        id=workers[0][0][0], n=workers[0][0][1], acc=acc_at_first, iter=first.locals["iter"], k=1
    )


@pytest.mark.parametrize("profile", ["dev", "release"])
def test_fib_counter_line(uprobe_trace, cargo_bin, profile):
    exe = cargo_bin(str(CRATE), profile=profile)
    probe = f"main.rs:{line_of('FIB_CALLS.fetch_add(1, Ordering::Relaxed);')}"
    trace = uprobe_trace.run([exe, *ARGV_TAIL], probes=[probe])
    assert trace[probe].call_count == printed_counts(trace.stdout)["fib"]


def test_sq_body_line_release(uprobe_trace, release_exe):
    # body of the #[inline(always)] sq: runs once per score call
    probe = f"src/main.rs:{line_of('SQ_CALLS.fetch_add(1, Ordering::Relaxed);')}"
    trace = uprobe_trace.run([release_exe, *ARGV_TAIL], probes=[probe])
    qtys = [args[0]["qty"] for args, _ in printed_calls(trace.stdout, "score")]
    hits = trace[probe]
    assert hits.call_count == printed_counts(trace.stdout)["sq"]
    assert [h.locals["x"] for h in hits.calls] == qtys
    assert all("stockpile::score" in h.at for h in hits.calls)


def test_no_code_at_comment_line(uprobe_trace, dev_exe):
    from pytest_uprobe import UprobeError

    ln = line_of("// 1. items")
    with pytest.raises(UprobeError) as ei:
        uprobe_trace.run([dev_exe, *ARGV_TAIL], probes=[f"src/main.rs:{ln}"])
    assert "NoCodeAtLine" in type(ei.value).__name__ or "no code" in str(ei.value).lower()


@pytest.mark.parametrize("profile", ["dev", "release"])
def test_match_arm_lines_count_per_command(uprobe_trace, cargo_bin, profile):
    exe = cargo_bin(str(CRATE), profile=profile)
    neg = f"src/main.rs:{line_of('Cmd::Neg => -acc,')}"
    err_line = line_of('println!("ERROR {}", e);')
    err = f"src/main.rs:{err_line}"
    trace = uprobe_trace.run([exe, *ARGV_TAIL], probes=[neg, err])
    n_neg = len([c for c in ARGV_TAIL[ARGV_TAIL.index("--") + 1 :] if c == "neg"])
    n_err = trace.stdout.count("ERROR ")
    assert trace[neg].call_count == n_neg
    assert trace[err].call_count == n_err
    applies = printed_calls(trace.stdout, "apply")
    neg_accs = [acc for (acc, cmd), _ in applies if cmd[0] == "Neg"]
    assert [h.locals["acc"] for h in trace[neg].calls] == neg_accs
    err_msgs = [l[len("ERROR ") :] for l in trace.stdout.splitlines() if l.startswith("ERROR ")]
    assert [h.locals["e"] for h in trace[err].calls] == err_msgs


@pytest.mark.parametrize("profile", ["dev", "release"])
def test_score_line_locals(uprobe_trace, cargo_bin, profile):
    exe = cargo_bin(str(CRATE), profile=profile)
    probe = f"src/main.rs:{line_of('let r = item.price * item.qty as u64 * weight + sq(item.qty as u64);')}"
    trace = uprobe_trace.run([exe, *ARGV_TAIL], probes=[probe])
    printed = printed_calls(trace.stdout, "score")
    hits = trace[probe]
    assert hits.call_count == len(printed)
    assert [(h.locals["item"], h.locals["weight"]) for h in hits.calls] == [
        args for args, _ in printed
    ]


def test_line_tables_only_counts_inlined_copies(uprobe_trace, cargo_bin):
    exe = cargo_bin(str(CRATE), profile="release-lines")
    trace = uprobe_trace.run([exe, *ARGV_TAIL], probes=["stockpile::sq", "stockpile::clamp_add"])
    counts = printed_counts(trace.stdout)
    assert trace["stockpile::sq"].call_count == counts["sq"]
    assert trace["stockpile::clamp_add"].call_count == counts["clamp_add"]
    for ft in (trace["stockpile::sq"], trace["stockpile::clamp_add"]):
        for c in ft.calls:
            # no parameters in DWARF: never a plausible value
            assert isinstance(c.args, Unavailable)
            assert c.retval is not None or c.inlined
