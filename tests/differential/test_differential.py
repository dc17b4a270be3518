"""The differential harness in the suite: a fixed set of generated crates, built in dev,
release (`debug = true`) and release (`debug = 1`), every function traced by both engines
(BPF and in-process) on the same executable, every decoded argument and return value
compared with what the program printed, and the two engines' answers compared with each
other. Zero wrong values; identical answers except SSE returns (read by the in-process
engine only) and functions one engine declines naming the other.

Longer campaigns: `make differential N=200 SEED=7` (see docs/decode-rates.md)."""

from __future__ import annotations

import pytest

from .grammar import OK, WRONG
from .harness import ENGINES, cross_check, rate_table, run_seed

pytest.importorskip("frida", reason="the in-process engine needs frida (pip install '.[test]')")

# Chosen to finish in about two minutes on a 2-core machine from a cold cargo cache (builds
# are cached under tests/differential/target), and to cover every family of the grammar.
# Tracing them on both engines takes about 10 s per seed once built.
SEEDS = (3, 11, 20)
FUNCTIONS = 40


@pytest.mark.uprobe
@pytest.mark.parametrize("seed", SEEDS)
def test_both_engines_decode_what_the_program_printed_and_agree(seed):
    outcomes = run_seed(seed, FUNCTIONS, engines=ENGINES)
    wrong = [o for o in outcomes if o.status == WRONG]
    assert not wrong, "\n".join(
        f"{o.engine} {o.profile} {o.function} {o.position} ({o.family}): "
        f"{'; '.join(o.details)[:400]}"
        for o in wrong
    ) + "".join(
        f"\n\n{engine}:\n" + rate_table([o for o in outcomes if o.engine == engine])
        for engine in ENGINES
    )
    checked = cross_check(outcomes)
    assert not checked.differences, "the engines' answers differ:\n" + "\n".join(
        str(d)[:600] for d in checked.differences
    )
    for engine in ENGINES:
        # Each engine compared real values in every profile, not only Unavailable ones.
        mine = [o for o in outcomes if o.engine == engine]
        assert {"dev", "release"} <= {o.profile for o in mine if o.status == OK}, engine
        assert len(mine) > 200, engine
    # Most answers were compared across the engines, not declined.
    assert checked.same > 300
    assert len(checked.refused) <= 10
