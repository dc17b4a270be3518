"""Function probes: values against what exprkit printed, dev and release."""

from pathlib import PurePosixPath

import pytest

from pytest_uprobe import Unavailable
from tests.blackbox_exprkit.conftest import bpf
from tests.blackbox_exprkit.rdebug import marker, parse, printed, to_py


def run(uprobe_trace, exe, probes, mode="sync", **kw):
    return uprobe_trace.run([exe, mode], probes=probes, **kw)


def test_tokenize_str_in_result_vec_enum_out(uprobe_trace, exe):
    t = run(uprobe_trace, exe, ["exprkit::tokenize", "exprkit::parse"])
    want = printed(t.stdout, "exprkit::tokenize")
    assert t["exprkit::tokenize"].call_count == 2 * len(want) == 8  # parse() tokenizes again
    tok = t["exprkit::tokenize"].called_from(None)
    assert tok.args_list == [a for a, _ in want]
    assert tok.retvals == [r for _, r in want]


def test_step_state_machine_enum_with_data(uprobe_trace, exe):
    t = run(uprobe_trace, exe, ["exprkit::step"])
    want = printed(t.stdout, "exprkit::step")  # the last 4 calls are made from main
    step = t["exprkit::step"]
    calls = step.calls[-4:]
    assert [c.args for c in calls] == [a for a, _ in want]
    assert [c.retval for c in calls] == [r for _, r in want]
    # each tokenize call steps once per char plus the terminating '\0'
    srcs = [a[0] for a, _ in printed(t.stdout, "exprkit::tokenize")] or [
        "1 + 2 * x",
        "hypot(3, y) - 2 ^ 2",
        "clamp(-x * 4) + poly(2)",
        "(a + b) / zeta",
    ]


def test_step_count_matches_chars(uprobe_trace, exe):
    t = run(uprobe_trace, exe, ["exprkit::step", "exprkit::tokenize"])
    srcs = [a[0] for a, _ in printed(t.stdout, "exprkit::tokenize")]
    # parse() tokenizes each source a second time
    assert t["exprkit::step"].call_count == 2 * sum(len(s) + 1 for s in srcs) + 4
    assert t["exprkit::step"].called_from("exprkit::tokenize").call_count == 2 * sum(
        len(s) + 1 for s in srcs
    )


def test_depth_recursion_counts_and_top_level_values(uprobe_trace, exe, profile):
    t = run(uprobe_trace, exe, ["exprkit::depth"])
    want = printed(t.stdout, "exprkit::depth")
    nodes = [int(l.split()[1]) for l in t.stdout.splitlines() if l.startswith("@@nodes ")]
    d = t["exprkit::depth"]
    if profile == "release":  # LLVM made depth(inner) a loop: an honest lower bound
        from pytest_uprobe.bounds import InexactCount

        with pytest.raises(InexactCount, match="lib.rs:162"):
            assert d.call_count == sum(nodes)
        assert d.call_count >= 1 and int(d.call_count) <= sum(nodes)
        return
    assert d.call_count == sum(nodes)
    top = d.called_from(None)
    assert top.retvals == [r for _, r in want]
    got = top.args_list
    # exprs nested deeper than the documented pointer limit: must be unequal (Unavailable inside)
    assert [got[i] for i in (0, 1, 3)] == [want[i][0] for i in (0, 1, 3)]
    assert got[2] != want[2][0] and "Unavailable" in repr(got[2])


def test_eval_result_f64_err_enum(uprobe_trace, exe):
    t = run(uprobe_trace, exe, ["exprkit::eval"])
    want = printed(t.stdout, "exprkit::eval")
    top = t["exprkit::eval"].called_from(None)
    assert top.retvals == [r for _, r in want]


def test_eval_env_hashmap_refcell_hashset_rc(uprobe_trace, exe):
    t = run(
        uprobe_trace,
        exe,
        ["exprkit::eval"],
    )
    vars_ = to_py(parse(marker(t.stdout, "vars")))
    last = t["exprkit::eval"].called_from(None).calls[-1]
    env = last.kwargs["env"]
    assert len(vars_) == 44
    # HashMap of 44 entries: more than max_elements (16) -> Truncated, honest
    assert env.vars != vars_


@pytest.mark.uprobe  # its own Tracer: BPF on either engine's run
def test_eval_env_with_raised_caps(cargo_bin, crate, profile):
    from pytest_uprobe import Tracer

    exe = cargo_bin(crate, profile=profile)
    with Tracer(max_elements=100) as tr:
        t = tr.run([exe, "sync"], probes=["exprkit::eval"])
    vars_ = to_py(parse(marker(t.stdout, "vars")))
    seen = to_py(parse(marker(t.stdout, "seen")))
    history = to_py(parse(marker(t.stdout, "history")))
    top = t["exprkit::eval"].called_from(None).calls
    env = top[-1].kwargs["env"]
    assert env.vars == vars_
    pre = [l.split(" ", 1)[1] for l in t.stdout.splitlines() if l.startswith("@@pre ")]
    for call, line in zip(top, pre):
        seen_s, hist_s = line.split("] [")
        e = call.kwargs["env"]
        assert e.seen == set(to_py(parse(seen_s + "]")))  # RefCell<HashSet<String>>
        assert e.history == to_py(parse("[" + hist_s))  # Rc<RefCell<Vec<f64>>>
    assert len(top) == len(pre) == 4
    assert sorted(env.funcs) == ["clamp", "hypot", "poly"]


def test_call_fn_dyn_function(uprobe_trace, exe):
    t = run(uprobe_trace, exe, ["exprkit::call_fn"])
    want = printed(t.stdout, "exprkit::call_fn")
    fromain = t["exprkit::call_fn"].calls[-4:]
    assert [c.args for c in fromain] == [a for a, _ in want]
    assert [c.retval for c in fromain] == [r for _, r in want]


def test_trait_method_glob_and_exact(uprobe_trace, exe, profile):
    t = run(
        uprobe_trace,
        exe,
        ["<* as exprkit::Function>::apply", "<exprkit::Clamp as exprkit::Function>::apply"],
    )
    want = printed(t.stdout, "exprkit::call_fn")[:3]
    g = t["<* as exprkit::Function>::apply"]
    got = [c.args for c in g.calls[-3:]]
    if profile == "release":  # Hypot is zero-sized: its &self is optimized out, honestly
        assert isinstance(got[0][0], Unavailable) and got[0][1] == want[0][0][1]
        got, want = got[1:], want[1:]
    assert got == [a for a, _ in want]
    clamp = t["<exprkit::Clamp as exprkit::Function>::apply"]
    assert clamp.call_count == 2
    for c, (a, r) in zip(g.calls[-len(want) :], want):
        if bpf(uprobe_trace):
            assert isinstance(c.retval, Unavailable)
        else:
            assert c.retval == r.value


def test_min_max_tuple_of_f64(uprobe_trace, exe):
    t = run(uprobe_trace, exe, ["exprkit::min_max"])
    want = printed(t.stdout, "exprkit::min_max")
    mm = t["exprkit::min_max"]
    assert mm.call_count == 2
    assert mm.calls[0].args == want[0][0]
    if bpf(uprobe_trace):
        assert isinstance(mm.calls[0].retval, Unavailable)
    else:
        assert mm.calls[0].retval == want[0][1]


def test_summarize_struct_of_f64_via_hidden_pointer(uprobe_trace, exe):
    t = run(uprobe_trace, exe, ["exprkit::summarize"])
    ((args, ret),) = printed(t.stdout, "exprkit::summarize")
    t["exprkit::summarize"].assert_called_once_with(*args)
    assert t["exprkit::summarize"].retvals == [ret]


def test_span_of_struct_in_rax_rdx(uprobe_trace, exe):
    t = run(uprobe_trace, exe, ["exprkit::span_of"])
    ((args, ret),) = printed(t.stdout, "exprkit::span_of")
    t["exprkit::span_of"].assert_called_once_with(*args)
    assert t["exprkit::span_of"].retvals == [ret]


@pytest.mark.parametrize("inst", ["u32", "i64", "char"])
def test_largest_monomorphs(uprobe_trace, exe, inst):
    name = f"exprkit::largest::<{inst}>"
    t = run(uprobe_trace, exe, [name])
    want = printed(t.stdout, name)
    f = t[name]
    assert f.call_count == len(want)
    assert f.args_list == [a for a, _ in want]
    assert f.retvals == [r for _, r in want]


def test_largest_generic_path_gets_every_instance(uprobe_trace, exe):
    t = run(uprobe_trace, exe, ["exprkit::largest"])
    want = [
        w
        for l in t.stdout.splitlines()
        if l.startswith("@@ exprkit::largest")
        for w in [(to_py(parse(l.split(" | ")[1])), to_py(parse(l.split(" | ")[2])))]
    ]
    f = t["exprkit::largest"]
    assert f.args_list == [a for a, _ in want]
    assert f.retvals == [r for _, r in want]


def test_apply_n_closures(uprobe_trace, exe):
    t = run(uprobe_trace, exe, ["exprkit::apply_n", "exprkit::main::{closure#*}"])
    want = printed(t.stdout, "exprkit::apply_n")
    f = t["exprkit::apply_n"]
    assert [c.args[1:] for c in f.calls] == [a for a, _ in want]
    assert f.retvals == [r for _, r in want]
    k = f.calls[0].args[0]
    assert k == {"_ref__k": 3}  # DWARF's name for a captured reference


def test_map_reduce_two_closures(uprobe_trace, exe):
    t = run(uprobe_trace, exe, ["exprkit::map_reduce"])
    ((args, ret),) = printed(t.stdout, "exprkit::map_reduce")
    c = t["exprkit::map_reduce"].calls[0]
    assert (c.args[0], c.args[3]) == args
    assert c.retval == ret


def test_run_reducer_arc_dyn(uprobe_trace, exe):
    t = run(uprobe_trace, exe, ["exprkit::run_reducer"])
    want = printed(t.stdout, "exprkit::run_reducer")
    f = t["exprkit::run_reducer"]
    assert [c.args[1] for c in f.calls] == [a[1] for a, _ in want]
    assert f.retvals == [r for _, r in want] or not bpf(uprobe_trace)  # (String, f64)
    strong = [int(l.split()[1]) for l in t.stdout.splitlines() if l.startswith("@@strong")]
    for c, (a, _), s in zip(f.calls, want, strong):
        assert c.args[0] == a[0]
        assert c.args[0].strong == s


def test_fib_recursion(uprobe_trace, exe, profile):
    t = run(uprobe_trace, exe, ["exprkit::fib"])
    ((args, ret),) = printed(t.stdout, "exprkit::fib")
    n = args[0]
    calls = {0: 1, 1: 1}
    for i in range(2, n + 1):
        calls[i] = 1 + calls[i - 1] + calls[i - 2]
    fib = t["exprkit::fib"]
    if profile == "release":
        from pytest_uprobe.bounds import InexactCount

        with pytest.raises(InexactCount, match="fib.n - 1. \\+ fib.n - 2."):
            assert fib.call_count == calls[n]
        assert int(fib.call_count) <= calls[n]
        assert fib.called_from(None).call_count == 1
        return
    assert fib.called_from(None).args_list == [args]
    assert fib.called_from(None).retvals == [ret]
    assert fib.call_count == calls[n]


@pytest.mark.uprobe  # its own Tracer: BPF on either engine's run
def test_histogram_btreemap_return_and_busiest_big_map(cargo_bin, crate, profile):
    from pytest_uprobe import Tracer

    exe = cargo_bin(crate, profile=profile)
    with Tracer(max_elements=300) as tr:
        t = tr.run([exe, "sync"], probes=["exprkit::histogram", "exprkit::busiest"])
    ((hargs, hret),) = printed(t.stdout, "exprkit::histogram")
    ((bargs, bret),) = printed(t.stdout, "exprkit::busiest")
    h = t["exprkit::histogram"]
    assert h.calls[1].args == hargs and h.calls[1].retval == hret
    assert len(h.calls[0].args[0]) == 260
    b = t["exprkit::busiest"]
    assert len(bargs[0]) == 126
    assert b.calls[0].args == bargs
    assert b.calls[0].retval == bret
    assert b.calls[1].args == ({},) and b.calls[1].retval is None


def test_busiest_default_cap_is_truncated(uprobe_trace, exe):
    from pytest_uprobe import Truncated

    t = run(uprobe_trace, exe, ["exprkit::busiest"])
    ((bargs, bret),) = printed(t.stdout, "exprkit::busiest")
    m = t["exprkit::busiest"].calls[0].args[0]
    assert isinstance(m, Truncated) and m != bargs[0]


def test_lookup_all_vec_option_f64(uprobe_trace, exe):
    t = run(uprobe_trace, exe, ["exprkit::lookup_all"])
    ((args, ret),) = printed(t.stdout, "exprkit::lookup_all")
    c = t["exprkit::lookup_all"].calls[0]
    assert c.args[1] == args[0]
    assert c.retval == ret


def test_pathbuf_and_token_ref(uprobe_trace, exe):
    t = run(uprobe_trace, exe, ["exprkit::script_name", "exprkit::describe_shape"])
    ((pargs, pret),) = printed(t.stdout, "exprkit::script_name")
    ((dargs, dret),) = printed(t.stdout, "exprkit::describe_shape")
    t["exprkit::script_name"].assert_called_once_with(PurePosixPath(pargs[0]))
    assert t["exprkit::script_name"].retvals == [pret]
    t["exprkit::describe_shape"].assert_called_once_with(*dargs)
    assert t["exprkit::describe_shape"].retvals == [dret]
