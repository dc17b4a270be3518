"""Same checks under other code generation: v0 mangling, 16 codegen units, DWARF 5."""

import pytest

from tests.blackbox.stockpile import ARGV_TAIL, CRATE, printed_calls, printed_counts

VARIANTS = {
    "v0": "-C symbol-mangling-version=v0",
    "cgu16": "-C codegen-units=16",
    "dwarf5": "-Z dwarf-version=5" if False else "-C dwarf-version=5",
}


@pytest.fixture(params=sorted(VARIANTS))
def variant_exe(request, cargo_bin):
    return cargo_bin(str(CRATE), profile="release", rustflags=VARIANTS[request.param])


def test_counts_and_inlined_args(uprobe_trace, variant_exe):
    trace = uprobe_trace.run(
        [variant_exe, *ARGV_TAIL],
        probes=[
            "stockpile::clamp_add",
            "stockpile::sq",
            "stockpile::geo::half",
            "stockpile::largest::<u32>",
            "stockpile::main::{closure#12}",
            "<* as stockpile::geo::Shape>::area",
        ],
    )
    counts = printed_counts(trace.stdout)
    assert trace["stockpile::clamp_add"].call_count == counts["clamp_add"]
    sq = trace["stockpile::sq"]
    assert sq.call_count == counts["sq"]
    qtys = [args[0]["qty"] for args, _ in printed_calls(trace.stdout, "score")]
    assert sq.args_list == [(q,) for q in qtys]
    tri = printed_calls(trace.stdout, "Tri::area")
    assert trace["stockpile::geo::half"].call_count == len(tri) + len(qtys)
    ((u32_args, _),) = printed_calls(trace.stdout, "largest<u32>")
    trace["stockpile::largest::<u32>"].assert_called_once_with(*u32_args)
    even = [(s, r) for (n, s), r in printed_calls(trace.stdout, "Rule::matches") if n == "even"]
    c12 = trace["stockpile::main::{closure#12}"]
    assert [c.args[-1] for c in c12.calls] == [s for s, _ in even]
    assert c12.retvals == [r for _, r in even]
    areas = trace["<* as stockpile::geo::Shape>::area"]
    assert areas.call_count == 3
    assert areas.retvals == [
        r
        for f in ("Square::area", "Rect::area", "Tri::area")
        for _, r in printed_calls(trace.stdout, f)
    ]
