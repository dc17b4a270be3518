"""Traced tests of crate/ (jobsched). Every expected value is parsed from what the program
printed in the traced run itself (its `CALL`/`ASYNC` lines, see rustdebug.py)."""

from pathlib import PurePosixPath

from tests.blackbox_jobsched import rustdebug

TASK_COST = "<* as jobsched::Task>::cost"


def printed(trace):
    assert trace.returncode == 0, trace.stderr
    return rustdebug.calls(trace.stdout)


def problems(trace, name, expected, *, args=lambda a: a, ret=lambda r: r):
    """call count, args and return values of `name` against the printed calls: a list of
    the mismatches, each naming what the tool gave and what the program printed."""
    ft = trace[name]
    if ft.call_count != len(expected):
        return [f"{name}: call_count {ft.call_count!r} != printed {len(expected)}"]
    bad = []
    got_args = [args(tuple(a)) for a in ft.args_list]
    for i, (g, e) in enumerate(zip(got_args, expected)):
        if g != e[0]:
            bad.append(f"{name} call {i} args: tool {g!r} != printed {e[0]!r}")
    for i, (g, e) in enumerate(zip(ft.retvals, expected)):
        if g != ret(e[1]):
            bad.append(f"{name} call {i} ret: tool {g!r} != printed {ret(e[1])!r}")
    return bad


def check(trace, name, expected, **kw):
    bad = problems(trace, name, expected, **kw)
    assert not bad, "\n".join(bad)
    return trace[name]


def check_all(trace, p, names):
    bad = []
    for n in names:
        bad += problems(trace, n, [(a, r) for a, r, _ in p[n]])
    assert not bad, "\n".join(bad)


# ------------------------------------------------------------------ trait objects


def test_dyn_task_args(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "sync", "3"], probes=["jobsched::run_task"])
    exp = printed(trace)["jobsched::run_task"]
    path = lambda a: (
        ({**a[0], "from": PurePosixPath(a[0]["from"])} if "from" in a[0] else a[0],) + a[1:]
    )
    exp = [(path(a), r) for a, r, _ in exp]
    check(trace, "jobsched::run_task", exp)


def test_box_dyn_task_and_string_return(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "sync", "3"], probes=["jobsched::boxed_label"])
    exp = printed(trace)["jobsched::boxed_label"]
    path = lambda a: ({**a[0], "from": PurePosixPath(a[0]["from"])} if "from" in a[0] else a[0],)
    check(trace, "jobsched::boxed_label", [(path(a), r) for a, r, _ in exp])


def test_trait_impls_glob_counts(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "sync", "5"], probes=[TASK_COST])
    p = printed(trace)
    impls = [k for k in p if k.endswith(" as jobsched::Task>::cost")]
    total = sum(len(p[k]) for k in impls)
    assert trace[TASK_COST].call_count == total
    # the glob's calls in time order are the printed ones in program order
    order = [(a, r) for n, a, r in rustdebug.ordered(trace.stdout) if n in impls]
    path = lambda a: (
        ({**a[0], "from": PurePosixPath(a[0]["from"])} if "from" in a[0] else a[0],) + a[1:]
    )
    check(trace, TASK_COST, [(path(a), r) for a, r in order])


def test_each_trait_impl_by_exact_name(uprobe_trace, exe):
    names = [
        "<jobsched::Compile as jobsched::Task>::cost",
        "<jobsched::Sleep as jobsched::Task>::cost",
    ]
    trace = uprobe_trace.run([exe, "sync", "4"], probes=names)
    p = printed(trace)
    check_all(trace, p, names)


# ------------------------------------------------------------------ generics, closures


def test_generic_instances_one_name(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "sync", "3"], probes=["jobsched::total_cost"])
    exp = printed(trace)["jobsched::total_cost"]
    check(trace, "jobsched::total_cost", [(a, r) for a, r, _ in exp])


def test_closure_and_apply_twice(uprobe_trace, exe):
    names = ["jobsched::apply_twice", "jobsched::make_scaler::{closure#0}"]
    trace = uprobe_trace.run([exe, "sync", "3"], probes=names)
    p = printed(trace)
    # apply_twice's first argument is the closure (not printable in Rust): compare x only
    bad = problems(trace, names[1], [(a, r) for a, r, _ in p[names[1]]], args=lambda a: a[-1:])
    bad += problems(trace, names[0], [(a, r) for a, r, _ in p[names[0]]], args=lambda a: a[-1:])
    assert not bad, "\n".join(bad)
    trace.assert_sequence([names[0]] * 2)
    trace[names[1]].assert_only_called_from(names[0])


# ------------------------------------------------------------------ enums, Option, Result


def test_parse_priority_result(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "sync", "3"], probes=["jobsched::parse_priority"])
    exp = printed(trace)["jobsched::parse_priority"]
    ft = check(trace, "jobsched::parse_priority", [(a, r) for a, r, _ in exp])
    ft.assert_called_with(*exp[-1][0])


def test_make_job_struct_return(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "sync", "3"], probes=["jobsched::make_job"])
    exp = printed(trace)["jobsched::make_job"]
    check(trace, "jobsched::make_job", [(a, r) for a, r, _ in exp])


def test_find_job_option_struct(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "sync", "3"], probes=["jobsched::find_job", "jobsched::by_id"])
    p = printed(trace)
    check_all(trace, p, ["jobsched::find_job", "jobsched::by_id"])


# ------------------------------------------------------------------ std collections


def test_hashmap_return(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "sync", "3"], probes=["jobsched::count_words"])
    exp = printed(trace)["jobsched::count_words"]
    (text,), counts, _ = exp[0]
    assert counts == {w: text.split().count(w) for w in text.split()}  # the program is right
    check(trace, "jobsched::count_words", [(a, r) for a, r, _ in exp])


def test_hashset_and_btreeset_args(uprobe_trace, exe):
    names = ["jobsched::tag_count", "jobsched::ready_ids"]
    trace = uprobe_trace.run([exe, "sync", "3"], probes=names)
    p = printed(trace)
    check_all(trace, p, names)


def test_vecdeque_wrapped_ring(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "sync", "3"], probes=["jobsched::next_in_queue"])
    exp = printed(trace)["jobsched::next_in_queue"]
    check(trace, "jobsched::next_in_queue", [(a, r) for a, r, _ in exp])


def test_path_and_pathbuf(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "sync", "3"], probes=["jobsched::output_path"])
    exp = printed(trace)["jobsched::output_path"]
    exp = [((PurePosixPath(a[0]), a[1]), PurePosixPath(r)) for a, r, _ in exp]
    check(trace, "jobsched::output_path", exp)


# ------------------------------------------------------------------ Rc, RefCell, Mutex, Arc


def test_rc_strong_count(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "sync", "3"], probes=["jobsched::shared_len"])
    ((args, ret, extra),) = printed(trace)["jobsched::shared_len"]
    ft = check(trace, "jobsched::shared_len", [(args, ret)])
    assert ft.calls[0].args[0].strong == int(extra.split("=")[1])


def test_refcell_and_mutex(uprobe_trace, exe):
    names = ["jobsched::bump", "jobsched::lock_add"]
    trace = uprobe_trace.run([exe, "sync", "7"], probes=names)
    p = printed(trace)
    check_all(trace, p, names)
    assert [c.args[0].borrow for c in trace["jobsched::bump"].calls] == [0, 0]
    assert not any(c.args[0].locked for c in trace["jobsched::lock_add"].calls)


def test_arc_vec(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "sync", "3"], probes=["jobsched::arc_sum"])
    exp = printed(trace)["jobsched::arc_sum"]
    assert exp[0][1] == sum(exp[0][0][0])
    check(trace, "jobsched::arc_sum", [(a, r) for a, r, _ in exp])


def test_duration_and_nonzero(uprobe_trace, exe):
    names = ["jobsched::timeout_for", "jobsched::retries"]
    trace = uprobe_trace.run([exe, "sync", "6"], probes=names)
    p = printed(trace)
    check_all(trace, p, names)
    trace["jobsched::retries"].assert_called_once_with(3, 6)


# ------------------------------------------------------------------ async


def _async(trace, name):
    assert trace.returncode == 0, trace.stderr
    return [x for x in rustdebug.async_lines(trace.stdout) if x[1] == name]


def test_async_fetch_completed_futures(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "async", "3"], probes=["jobsched::fetch_input"])
    exp = _async(trace, "fetch_input")
    ft = trace["jobsched::fetch_input"]
    assert ft.call_count == len(exp)  # futures created (6)
    assert ft.args_list == [a for _, _, a, _ in exp]
    done = [(c, e) for c, e in zip(ft.calls, exp) if e[0] == "ASYNC"]
    assert [len(c.polls) for c, _ in done] == [int(e[3]["polls"]) for _, e in done]
    assert [c.retval for c, _ in done] == [e[3]["ret"] for _, e in done]
    assert all(c.completed for c, _ in done)


def test_async_fetch_cancelled_futures(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "async", "3"], probes=["jobsched::fetch_input"])
    exp = _async(trace, "fetch_input")
    ft = trace["jobsched::fetch_input"]
    assert ft.call_count == len(exp)
    dropped = [(c, e) for c, e in zip(ft.calls, exp) if e[0] == "ASYNC-DROP"]
    assert [c.args for c, _ in dropped] == [e[2] for _, e in dropped]
    assert [len(c.polls) for c, _ in dropped] == [int(e[3]["polls"]) for _, e in dropped]
    assert all(c.dropped for c, _ in dropped)
    assert not any(c.completed for c, _ in dropped)
    assert [c.outcome for c, _ in dropped] == [
        "dropped unfinished after 1 poll"
        if e[3]["polls"] == "1"
        else "dropped without being polled"
        for _, e in dropped
    ]


def test_async_pipeline_awaits_twice(uprobe_trace, exe):
    names = ["jobsched::pipeline", "jobsched::fetch_input"]
    trace = uprobe_trace.run([exe, "async", "2"], probes=names)
    ((_, _, args, fields),) = _async(trace, "pipeline")
    (fut,) = trace["jobsched::pipeline"].calls
    assert fut.args == args
    assert len(fut.polls) == int(fields["polls"])
    assert fut.completed and fut.retval == fields["ret"]


def test_async_moves_between_threads(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "async", "3"], probes=["jobsched::crunch"])
    ((_, _, args, fields),) = _async(trace, "crunch")
    ft = trace["jobsched::crunch"]
    assert ft.call_count == 1
    ft.assert_called_once_with(*args)
    (fut,) = ft.calls
    assert len(fut.polls) == int(fields["polls"])
    assert len(set(fut.threads)) == int(fields["threads"])
    assert fut.completed and fut.retval == fields["ret"]


# ------------------------------------------------------------------ values the caller uses
# `jobsched used N`: the same functions, every argument and return value through
# std::hint::black_box, so a release build must keep them.

USED_SCALARS = [
    "jobsched::total_cost",
    "jobsched::next_in_queue",
    "jobsched::arc_sum",
    "jobsched::retries",
    "jobsched::bump",
    "jobsched::lock_add",
]
USED_AGGREGATES = [
    "jobsched::make_job",
    "jobsched::find_job",
    "jobsched::by_id",
    "jobsched::count_words",
]


def test_used_scalar_returns(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "used", "5"], probes=USED_SCALARS)
    check_all(trace, printed(trace), USED_SCALARS)


def test_used_closure_returns(uprobe_trace, exe):
    names = ["jobsched::apply_twice", "jobsched::make_scaler::{closure#0}"]
    trace = uprobe_trace.run([exe, "used", "5"], probes=names)
    p = printed(trace)
    bad = problems(trace, names[0], [(a, r) for a, r, _ in p[names[0]]], args=lambda a: a[-1:])
    bad += problems(trace, names[1], [(a, r) for a, r, _ in p[names[1]]], args=lambda a: a[-1:])
    assert not bad, "\n".join(bad)


def test_used_aggregate_returns(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "used", "5"], probes=USED_AGGREGATES)
    check_all(trace, printed(trace), USED_AGGREGATES)


def test_used_path_and_duration(uprobe_trace, exe):
    names = ["jobsched::output_path", "jobsched::timeout_for"]
    trace = uprobe_trace.run([exe, "used", "5"], probes=names)
    p = printed(trace)
    bad = problems(
        trace,
        names[0],
        [((PurePosixPath(a[0]), a[1]), PurePosixPath(r)) for a, r, _ in p[names[0]]],
    )
    bad += problems(trace, names[1], [(a, r) for a, r, _ in p[names[1]]])
    assert not bad, "\n".join(bad)


def test_used_rc_strong(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "used", "5"], probes=["jobsched::shared_len"])
    ((args, ret, extra),) = printed(trace)["jobsched::shared_len"]
    ft = check(trace, "jobsched::shared_len", [(args, ret)])
    assert ft.calls[0].args[0].strong == int(extra.split("=")[1])


# ------------------------------------------------------------------ mock-style API, callers


def test_mock_style_assertions_and_callers(uprobe_trace, exe):
    names = ["jobsched::run_task", "jobsched::total_cost", TASK_COST, "jobsched::parse_priority"]
    trace = uprobe_trace.run([exe, "sync", "3"], probes=names)
    p = printed(trace)
    pp = trace["jobsched::parse_priority"]
    for (arg,), _, _ in p["jobsched::parse_priority"]:
        pp.assert_any_call(arg)
    cost = trace[TASK_COST]
    # every cost() call comes from run_task or from total_cost's iterator
    n_run = len(p["jobsched::run_task"])
    n_total = sum(len(a[0]) for a, _, _ in p["jobsched::total_cost"])
    assert cost.called_from("jobsched::run_task").call_count == n_run
    assert cost.called_from("jobsched::total_cost").call_count == n_total
    trace.assert_sequence(["jobsched::run_task"] * n_run + ["jobsched::total_cost"] * 2)


def test_assert_has_calls_with_mock_call_objects(uprobe_trace, exe):
    from unittest.mock import call

    trace = uprobe_trace.run([exe, "sync", "3"], probes=["jobsched::parse_priority"])
    exp = printed(trace)["jobsched::parse_priority"]
    trace["jobsched::parse_priority"].assert_has_calls([call(*a) for a, _, _ in exp])


def test_assert_has_calls_with_arg_tuples(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "sync", "3"], probes=["jobsched::parse_priority"])
    exp = printed(trace)["jobsched::parse_priority"]
    trace["jobsched::parse_priority"].assert_has_calls([a for a, _, _ in exp])


# ------------------------------------------------------------------ inlining, recursion


def test_inlinable_weight_counts_and_args(uprobe_trace, exe):
    names = ["jobsched::weight", "jobsched::plan_weights"]
    trace = uprobe_trace.run([exe, "extra", "6"], probes=names)
    p = printed(trace)
    exp = [a for a, _, _ in p["jobsched::weight"]]
    w = trace["jobsched::weight"]
    assert w.call_count == len(exp) == 6
    assert [tuple(a) for a in w.args_list] == exp
    assert w.called_from("jobsched::plan_weights").call_count == len(exp)
    check(trace, "jobsched::plan_weights", [(a, r) for a, r, _ in p["jobsched::plan_weights"]])


def test_inlinable_weight_retvals(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "extra", "6"], probes=["jobsched::weight"])
    p = printed(trace)
    assert trace["jobsched::weight"].retvals == [r for _, r, _ in p["jobsched::weight"]]


def test_recursive_chain_len(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "extra", "6"], probes=["jobsched::chain_len"])
    p = printed(trace)
    ((top,), ret, _) = p["jobsched::chain_len"][0]
    calls_printed = int(
        next(l for l in trace.stdout.splitlines() if l.startswith("COUNT chain_len")).split("=")[1]
    )
    ft = trace["jobsched::chain_len"]
    assert ft.call_count == calls_printed
    assert [a[1] for a in ft.args_list] == list(range(top, top - calls_printed, -1))
    assert ft.retvals == list(range(ret, ret - calls_printed, -1))


def test_handwritten_future_yieldonce(uprobe_trace, exe):
    name = "<jobsched::YieldOnce as core::future::future::Future>::poll"
    trace = uprobe_trace.run([exe, "async", "3"], probes=[name])
    line = next(l for l in trace.stdout.splitlines() if l.startswith("COUNT YieldOnce"))
    futures, polls = (int(x.split("=")[1]) for x in line.split()[2:])
    ft = trace[name]
    # docs/async.md: a hand-written future's call_count is a lower bound (seen from its
    # first poll) that refuses exact comparisons: compare with >= and count the calls seen
    assert ft.call_count >= futures
    assert len(ft.calls) == futures
    assert sum(len(c.polls) for c in ft.calls) == polls
    # a completed YieldOnce was polled twice, the one cancelled with fetch_input(7, 3) once
    assert sum(1 for c in ft.calls if c.completed) == polls - futures


def test_async_poll_function_as_plain_calls(uprobe_trace, exe):
    """The poll function itself, by its exact name: one call per poll."""
    from pytest_uprobe import Variant

    name = "jobsched::fetch_input::{async_fn#0}"
    trace = uprobe_trace.run([exe, "async", "3"], probes=[name])
    exp = _async(trace, "fetch_input")
    ft = trace[name]
    assert ft.call_count == sum(int(f["polls"]) for _, _, _, f in exp)
    ready = [r for r in ft.retvals if r != Variant("Pending")]
    assert ready == [Variant("Ready", f["ret"]) for k, _, _, f in exp if k == "ASYNC"]


def test_async_outcome_texts(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "async", "3"], probes=["jobsched::fetch_input"])
    exp = _async(trace, "fetch_input")
    want = []
    for kind, _, _, f in exp:
        n = int(f["polls"])
        if kind == "ASYNC":
            want.append(f"completed after {n} poll{'s' if n != 1 else ''}")
        elif n:
            want.append(f"dropped unfinished after {n} poll{'s' if n != 1 else ''}")
        else:
            want.append("dropped without being polled")
    assert [c.outcome for c in trace["jobsched::fetch_input"].calls] == want
    assert trace.lost_events == 0


# ------------------------------------------------------------------ edge: panics, caps, nesting


def test_panicking_call_unwinds(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "edge", "6"], probes=["jobsched::split_work"])
    panicked = [
        rustdebug.parse(l.split(" args=", 1)[1])
        for l in trace.stdout.splitlines()
        if l.startswith("PANIC jobsched::split_work")
    ]
    ok = printed(trace)["jobsched::split_work"]
    ft = trace["jobsched::split_work"]
    assert trace.returncode == 0
    assert ft.call_count == len(ok) + len(panicked)
    assert [tuple(c.args) for c in ft.calls if c.unwound] == panicked
    assert [c.retval for c in ft.calls if c.returned] == [r for _, r, _ in ok]
    assert [tuple(c.args) for c in ft.calls if c.returned] == [a for a, _, _ in ok]


def test_option_of_option(uprobe_trace, exe):
    trace = uprobe_trace.run([exe, "edge", "6"], probes=["jobsched::retry_delay"])
    p = printed(trace)
    check_all(trace, p, ["jobsched::retry_delay"])


def test_caps_truncate_long_vec_and_strings(uprobe_trace, exe):
    from pytest_uprobe import Truncated

    names = ["jobsched::arc_sum", "jobsched::long_log"]
    trace = uprobe_trace.run([exe, "edge", "6"], probes=names)
    p = printed(trace)
    (((vec,), s, _),) = p["jobsched::arc_sum"]
    (((lines,), n, _),) = p["jobsched::long_log"]
    assert len(vec) > 16 and any(len(l) > 256 for l in lines)
    exp_vec = Truncated(vec[:16], len(vec))
    exp_lines = [Truncated(l[:256], len(l)) if len(l) > 256 else l for l in lines]
    check(trace, names[0], [((exp_vec,), s)])
    check(trace, names[1], [((exp_lines,), n)])
