"""Function probes on stockpile, in dev and release (debug = true) builds."""

from pytest_uprobe import Struct, Unavailable, Variant
from tests.blackbox.stockpile import (
    ARGV_TAIL,
    CMDS,
    ITEMS,
    printed_calls,
    printed_counts,
    printed_value,
)


def as_variant(t):
    """('Add', 5) as printed by the program -> Variant('Add', 5)."""
    name, payload = t
    return Variant(name, payload)


def fib_args(n):
    """Every argument fib(n) recurses with, in call order (pre-order)."""
    out = []

    def go(k):
        out.append(k)
        if k >= 2:
            go(k - 1)
            go(k - 2)

    go(n)
    return out


def fib_value(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


# ---------------------------------------------------------------- parsing, structs, Option


def test_parse_item_args_and_option_struct_results(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, *ARGV_TAIL], probes=["stockpile::parse_item"])
    assert trace.returncode == 0
    printed = printed_calls(trace.stdout, "parse_item")
    pi = trace["stockpile::parse_item"]
    assert pi.call_count == len(ITEMS) == len(printed)
    assert pi.args_list == [args for args, _ in printed]
    assert pi.retvals == [res for _, res in printed]
    pi.assert_called_with("bad")
    pi.assert_any_call(ITEMS[1])


def test_score_struct_reference_and_closure_caller(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, *ARGV_TAIL], probes=["stockpile::score"])
    printed = printed_calls(trace.stdout, "score")
    score = trace["stockpile::score"]
    assert score.call_count == len(printed) == 3
    assert score.args_list == [args for args, _ in printed]
    assert score.retvals == [r for _, r in printed]
    first_item, weight = printed[0][0]
    score.assert_has_calls([(first_item, weight)])
    assert isinstance(score.calls[0].args[0], Struct)


# ---------------------------------------------------------------- enums, Result


def test_apply_enum_args_and_results(uprobe_trace, exe):
    trace = uprobe_trace.run(
        [exe, *ARGV_TAIL], probes=["stockpile::apply", "stockpile::checked_div"]
    )
    printed = printed_calls(trace.stdout, "apply")
    apply = trace["stockpile::apply"]
    assert apply.call_count == len(printed) == len([c for c in CMDS if c != "bogus"])
    assert apply.args_list == [(acc, as_variant(cmd)) for (acc, cmd), _ in printed]
    assert apply.retvals == [r for _, r in printed]
    apply.assert_has_calls([(acc, as_variant(cmd)) for (acc, cmd), _ in printed[2:4]])
    # Neg is a unit variant: also equal to its name
    neg = [c for c in apply.calls if c.args[1] == "Neg"]
    assert len(neg) == 1

    div_calls = [(acc, cmd[1]) for (acc, cmd), _ in printed if cmd[0] == "Div"]
    cd = trace["stockpile::checked_div"]
    assert cd.args_list == div_calls
    expected = []
    for a, b in div_calls:
        expected.append(
            Variant("Err", f"division of {a} by zero") if b == 0 else Variant("Ok", int(a / b))
        )
    assert cd.retvals == expected
    cd.assert_only_called_from("stockpile::apply")
    assert "ERROR division of 7 by zero" in trace.stdout


def test_find_item_slice_of_structs_and_option_ref(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, *ARGV_TAIL], probes=["stockpile::find_item"])
    items = [res for _, res in printed_calls(trace.stdout, "parse_item") if res is not None]
    printed = printed_calls(trace.stdout, "find_item")
    fi = trace["stockpile::find_item"]
    assert fi.args_list == [(items, name) for (name,), _ in printed]
    by_name = {i["name"]: i for i in items}
    assert fi.retvals == [by_name.get(r) if r is not None else None for _, r in printed]


# ---------------------------------------------------------------- generics


def test_largest_every_generic_instance(uprobe_trace, exe):
    trace = uprobe_trace.run(
        [exe, *ARGV_TAIL], probes=["stockpile::largest", "stockpile::largest::<u32>"]
    )
    printed = []
    for line in trace.stdout.splitlines():
        if line.startswith("CALL largest<"):
            ty = line[len("CALL largest<") : line.index(">")]
            printed.append(ty)
    per_type = {}
    for ty in printed:
        per_type[ty] = printed_calls(trace.stdout, f"largest<{ty}>")[0]
    lg = trace["stockpile::largest"]
    assert lg.call_count == len(printed) == 4
    assert lg.args_list == [per_type[ty][0] for ty in printed]
    assert lg.retvals == [per_type[ty][1] for ty in printed]
    only_u32 = trace["stockpile::largest::<u32>"]
    assert only_u32.call_count == 1
    only_u32.assert_called_once_with(per_type["u32"][0][0])
    assert only_u32.retvals == [per_type["u32"][1]]


def test_map_all_generic_with_closures(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, *ARGV_TAIL], probes=["stockpile::map_all"])
    scores = [r for _, r in printed_calls(trace.stdout, "score")]
    ma = trace["stockpile::map_all"]
    assert ma.call_count == 2
    # first argument of each call: the slice
    for got, want in zip([c.args[0] for c in ma.calls], [scores, [1, 2, 3]]):
        assert got == want or isinstance(got, Unavailable)
    assert ma.retvals == [
        printed_value(trace.stdout, "HALVES"),
        printed_value(trace.stdout, "DOUBLED"),
    ]


# ---------------------------------------------------------------- traits and trait objects


def test_trait_impls_by_glob_and_exact(uprobe_trace, exe):
    trace = uprobe_trace.run(
        [exe, *ARGV_TAIL],
        probes=[
            "<* as stockpile::geo::Shape>::area",
            "<stockpile::geo::Rect as stockpile::geo::Shape>::area",
            "stockpile::geo::total_area",
        ],
    )
    sq = printed_calls(trace.stdout, "Square::area")
    rc = printed_calls(trace.stdout, "Rect::area")
    tr = printed_calls(trace.stdout, "Tri::area")
    areas = trace["<* as stockpile::geo::Shape>::area"]
    assert areas.call_count == len(sq) + len(rc) + len(tr) == 3
    assert areas.args_list == [
        ({"side": sq[0][0][0]},),
        ({"w": rc[0][0][0], "h": rc[0][0][1]},),
        ({"base": tr[0][0][0], "height": tr[0][0][1]},),
    ]
    assert areas.retvals == [sq[0][1], rc[0][1], tr[0][1]]
    rect = trace["<stockpile::geo::Rect as stockpile::geo::Shape>::area"]
    rect.assert_called_once_with({"w": rc[0][0][0], "h": rc[0][0][1]})
    total = trace["stockpile::geo::total_area"]
    assert total.retvals == [printed_calls(trace.stdout, "total_area")[0][1]]
    areas.assert_only_called_from("stockpile::geo::total_area")
    # calls are ordered by entry: total_area enters first, then calls each impl
    trace.assert_sequence(
        ["stockpile::geo::total_area"] + ["<* as stockpile::geo::Shape>::area"] * 3, exact=True
    )


# ---------------------------------------------------------------- closures


def test_closures_stored_in_rules(uprobe_trace, exe):
    trace = uprobe_trace.run(
        [exe, *ARGV_TAIL],
        probes=[
            "stockpile::Rule::matches",
            "stockpile::main::{closure#12}",
            "stockpile::main::{closure#13}",
        ],
    )
    printed = printed_calls(trace.stdout, "Rule::matches")
    matches = trace["stockpile::Rule::matches"]
    assert matches.call_count == len(printed)
    assert [c.args[1] for c in matches.calls] == [s for (_, s), _ in printed]
    # &self may be optimized out in release (documented Unavailable)
    for c, ((n, _), _) in zip(matches.calls, printed):
        assert isinstance(c.args[0], Unavailable) or c.args[0]["name"] == n
    assert matches.retvals == [r for _, r in printed]
    # closure#12 is the first rule ("even"), closure#13 the second ("over_area")
    even = [(s, r) for (n, s), r in printed if n == "even"]
    over = [(s, r) for (n, s), r in printed if n == "over_area"]
    c12 = trace["stockpile::main::{closure#12}"]
    c13 = trace["stockpile::main::{closure#13}"]
    assert [c.args[-1] for c in c12.calls] == [s for s, _ in even]
    assert c12.retvals == [r for _, r in even]
    assert [c.args[-1] for c in c13.calls] == [s for s, _ in over]
    assert c13.retvals == [r for _, r in over]
    c12.assert_only_called_from("stockpile::Rule::matches")


def test_closure_passed_to_iterator_calls_score(uprobe_trace, exe):
    # the map closure `|it| score(it, weight)`: glob over main's closures, callers of score
    trace = uprobe_trace.run(
        [exe, *ARGV_TAIL], probes=["stockpile::main::{closure#*}", "stockpile::score"]
    )
    score = trace["stockpile::score"]
    n_scores = len(printed_calls(trace.stdout, "score"))
    assert score.call_count == n_scores
    callers = score.callers
    assert sum(callers.values()) == n_scores
    assert len(callers) == 1
    (caller,) = callers
    assert caller is not None and "stockpile::main::{closure#" in caller


# ---------------------------------------------------------------- a function called from several places, threads


def test_clamp_add_callers_and_threads(uprobe_trace, exe):
    trace = uprobe_trace.run(
        [exe, *ARGV_TAIL],
        probes=["stockpile::clamp_add", "stockpile::apply", "stockpile::worker", "stockpile::main"],
    )
    counts = printed_counts(trace.stdout)
    ca = trace["stockpile::clamp_add"]
    assert ca.call_count == counts["clamp_add"]
    workers = printed_calls(trace.stdout, "worker")
    adds = [c for c in CMDS if c.startswith("add:")]
    expected_callers = {
        "stockpile::apply": len(adds),
        "stockpile::main": 1,
        "stockpile::worker": sum(n for (_, n), _ in workers),
    }
    assert dict(ca.callers) == expected_callers
    # main's own call: printed
    (main_call,) = printed_calls(trace.stdout, "clamp_add")
    ca.called_from("stockpile::main").assert_called_once_with(*main_call[0])
    assert ca.called_from("stockpile::main").retvals == [main_call[1]]
    # worker calls run on three other threads
    wk = trace["stockpile::worker"]
    assert sorted(wk.args_list) == sorted(args for args, _ in workers)
    assert sorted(wk.retvals) == sorted(r for _, r in workers)
    main_tid = trace["stockpile::main"].calls[0].tid
    worker_tids = {c.tid for c in wk.calls}
    assert len(worker_tids) == 3 and main_tid not in worker_tids
    for c in ca.called_from("stockpile::worker").calls:
        assert c.caller.tid == c.tid
    # per worker, clamp_add's args follow the arithmetic of the loop
    for w in wk.calls:
        wid, n = w.args
        mine = [c.args for c in ca.calls if c.tid == w.tid]
        acc, exp = 0, []
        for k in range(1, n + 1):
            exp.append((acc, k * wid))
            acc = max(-1_000_000, min(1_000_000, acc + k * wid))
        assert mine == exp


# ---------------------------------------------------------------- recursion


def test_fib_recursion(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, *ARGV_TAIL], probes=["stockpile::fib"])
    counts = printed_counts(trace.stdout)
    ((n,), value) = printed_calls(trace.stdout, "fib")[0]
    fib = trace["stockpile::fib"]
    assert fib.call_count == counts["fib"] == len(fib_args(n))
    assert fib.args_list == [(k,) for k in fib_args(n)]
    assert fib.retvals == [fib_value(k) for k in sorted_by_return(n)]
    assert fib.calls[0].retval == value
    assert fib.calls[0].caller is None
    assert max(c.depth for c in fib.calls) == n - 1
    assert fib.called_from("stockpile::fib").call_count == counts["fib"] - 1


def sorted_by_return(n):
    """Arguments of fib calls in the order the calls *start* (retvals are per call)."""
    return fib_args(n)


def test_tree_sum_recursion(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, *ARGV_TAIL], probes=["stockpile::tree_sum"])
    (_, total) = printed_calls(trace.stdout, "tree_sum")[0]
    ts = trace["stockpile::tree_sum"]
    depth = 3
    assert ts.call_count == 2 ** (depth + 1) - 1
    assert ts.calls[0].retval == total
    n_items = len([i for i in ITEMS if i.count(":") == 2])
    leaves = [ts_leaf for ts_leaf in range(n_items * 2**depth, n_items * 2**depth + 2**depth)]
    assert sorted(c.retval for c in ts.calls if c.depth == depth) == leaves
    assert sum(leaves) == total


# ---------------------------------------------------------------- HashMap


def test_tally_words(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, *ARGV_TAIL], probes=["stockpile::tally"])
    names = [r["name"] for _, r in printed_calls(trace.stdout, "parse_item") if r]
    tally = trace["stockpile::tally"]
    tally.assert_called_once_with(names + ["apple"])


# ---------------------------------------------------------------- order


def test_call_order_across_functions(uprobe_trace, exe):
    trace = uprobe_trace.run(
        [exe, *ARGV_TAIL],
        probes=["stockpile::parse_item", "stockpile::score", "stockpile::apply", "stockpile::fib"],
    )
    n_parse = len(printed_calls(trace.stdout, "parse_item"))
    n_score = len(printed_calls(trace.stdout, "score"))
    n_apply = len(printed_calls(trace.stdout, "apply"))
    trace.assert_sequence(
        ["stockpile::parse_item"] * n_parse
        + ["stockpile::score"] * n_score
        + ["stockpile::apply"] * n_apply
        + ["stockpile::fib"]
    )
    names = [c.function for c in trace.calls]
    assert names.index("stockpile::fib") > max(
        i for i, f in enumerate(names) if f == "stockpile::apply"
    )


def test_trait_object_arguments_decode_as_their_concrete_type(uprobe_trace, exe):
    # docs (value-types): a trait object -> its concrete type, found from its vtable
    trace = uprobe_trace.run([exe, *ARGV_TAIL], probes=["stockpile::geo::total_area"])
    (shapes,) = trace["stockpile::geo::total_area"].calls[0].args
    sq = printed_calls(trace.stdout, "Square::area")
    rc = printed_calls(trace.stdout, "Rect::area")
    tr = printed_calls(trace.stdout, "Tri::area")
    assert [s.type_name for s in shapes] == ["Square", "Rect", "Tri"]
    assert shapes == [
        {"side": sq[0][0][0]},
        {"w": rc[0][0][0], "h": rc[0][0][1]},
        {"base": tr[0][0][0], "height": tr[0][0][1]},
    ]


def test_inlined_copy_caller_is_the_out_of_line_host(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, *ARGV_TAIL], probes=["stockpile::score", "stockpile::sq"])
    printed = printed_calls(trace.stdout, "score")
    sq = trace["stockpile::sq"]
    assert sq.call_count == len(printed)
    sq.assert_only_called_from("stockpile::score")
    assert [c.caller.args for c in sq.calls] == [args for args, _ in printed]
    trace.assert_sequence(["stockpile::score", "stockpile::sq"] * len(printed), exact=True)


def test_generic_closure_inside_generic_fn(uprobe_trace, exe):
    trace = uprobe_trace.run(
        [exe, *ARGV_TAIL],
        probes=["stockpile::map_all::{closure#0}", "stockpile::main::{closure#6}"],
    )
    scores = [r for _, r in printed_calls(trace.stdout, "score")]
    doubled = printed_value(trace.stdout, "DOUBLED")
    inner = trace["stockpile::map_all::{closure#0}"]
    assert inner.call_count == len(scores) + len(doubled)
    c6 = trace["stockpile::main::{closure#6}"]  # |s| geo::half(s)
    assert c6.call_count == len(scores)
    assert [c.args[-1] for c in c6.calls] == scores
    halves = printed_value(trace.stdout, "HALVES")
    assert all(r == h or isinstance(r, Unavailable) for r, h in zip(c6.retvals, halves))


def test_rule_new_generic_instances_with_closure_env(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, *ARGV_TAIL], probes=["stockpile::Rule::new"])
    names = []
    for (n, _), _ in printed_calls(trace.stdout, "Rule::matches"):
        if n not in names:
            names.append(n)
    area = printed_calls(trace.stdout, "total_area")[0][1]
    rn = trace["stockpile::Rule::new"]
    assert rn.call_count == len(names) == 3
    assert [c.args[0] for c in rn.calls] == names
    # the over_area closure captures threshold = total area
    env = rn.calls[1].args[1]
    assert env["threshold"] == area
    assert [r["name"] for r in rn.retvals] == names
