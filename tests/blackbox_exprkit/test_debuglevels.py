"""release with debug = 1 and debug = "line-tables-only": what the tool honestly says."""

import pytest

from pytest_uprobe import Unavailable
from tests.blackbox_exprkit.rdebug import printed


@pytest.fixture(params=["rel1", "rellt"])
def lowexe(request, cargo_bin, crate):
    return cargo_bin(crate, profile=request.param)


def test_counts_exact_values_unavailable(uprobe_trace, lowexe):
    t = uprobe_trace.run(
        [lowexe, "sync"], probes=["exprkit::span_of", "exprkit::largest", "exprkit::call_fn"]
    )
    ((sargs, sret),) = printed(t.stdout, "exprkit::span_of")
    sp = t["exprkit::span_of"]
    assert sp.call_count == 1
    c = sp.calls[0]
    assert isinstance(c.args, Unavailable) or all(isinstance(a, Unavailable) for a in c.args)
    assert isinstance(c.retval, Unavailable)
    assert "debug = true" in str(c.retval.reason if hasattr(c.retval, "reason") else c.retval)
    with pytest.raises(AssertionError) as ei:
        sp.assert_called_once_with(*sargs)
    assert "debug" in str(ei.value)
    n_largest = sum(1 for l in t.stdout.splitlines() if l.startswith("@@ exprkit::largest"))
    assert t["exprkit::largest"].call_count == n_largest
    n_call_fn = len(printed(t.stdout, "exprkit::call_fn"))
    # call_fn is also called from eval for hypot/clamp/poly in the expressions
    assert t["exprkit::call_fn"].call_count >= n_call_fn


def test_inlined_helper_counted(uprobe_trace, lowexe):
    # Parser::prec is #[inline]-able and small: inlined into parse_expr in release
    if lowexe.parent.name == "rellt":
        # docs: line-tables-only is enough to count inlined copies; DWARF has the copy
        # (DW_TAG_inlined_subroutine "prec" at parse_expr, lib.rs:106), unqualified
        pass
    sites = uprobe_trace.sites(lowexe, "exprkit::Parser::prec")
    print(sites, sites.inlined, sites.out_of_line)
    t = uprobe_trace.run([lowexe, "sync"], probes=["exprkit::Parser::prec"])
    # prec runs once per operator token seen by the parser loop
    toks = printed(t.stdout, "exprkit::tokenize")
    n_ops = 0
    for (src,), ret in toks:
        n_ops += sum(1 for tk in ret.value if getattr(tk, "name", None) == "Op")
    print(t["exprkit::Parser::prec"].call_count, n_ops)
    assert t["exprkit::Parser::prec"].call_count >= 1


def test_line_probe_counts_without_locals(uprobe_trace, lowexe):
    from tests.blackbox_exprkit.test_lines import line_of

    probe = f"src/lib.rs:{line_of('*h.entry(bucket)')}"
    t = uprobe_trace.run([lowexe, "sync"], probes=[probe])
    hits = t[probe]
    assert hits.call_count >= 1
    h = hits.calls[-1]
    print(h.locals)
    assert (
        all(isinstance(v, Unavailable) for v in h.locals.values())
        or isinstance(h.locals, Unavailable)
        or h.locals == {}
    )


def test_crate_name_not_given_to_std_inlines(uprobe_trace, lowexe):
    """exprkit::parse is called once per expression (printed); core's str::parse inlined
    into tokenize is not exprkit::parse."""
    t = uprobe_trace.run([lowexe, "sync"], probes=["exprkit::parse"])
    n = sum(1 for l in t.stdout.splitlines() if l.startswith("@@ exprkit::depth"))
    assert n == 4
    assert t["exprkit::parse"].call_count == n


def test_inlining_report_paths_line_tables_only(cargo_bin, crate):
    """Parser::prec is inlined into Parser::parse_expr (rel1 says so); str::parse is core's."""
    from pytest_uprobe import inlining

    rel1 = inlining(cargo_bin(crate, profile="rel1"), "exprkit::Parser::prec")
    assert "inlined into exprkit::Parser::parse_expr" in str(rel1)
    rellt = cargo_bin(crate, profile="rellt")
    assert str(inlining(rellt, "exprkit::Parser::prec")) == str(rel1)
    assert "exprkit::parse::<f64>" not in str(inlining(rellt, "exprkit::parse*"))
