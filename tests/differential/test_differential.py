"""The differential harness in the suite: a fixed set of generated crates, built in dev,
release (`debug = true`) and release (`debug = 1`), every function traced, every decoded
argument and return value compared with what the program printed. Zero wrong values.

Longer campaigns: `make differential N=200 SEED=7` (see docs/decode-rates.md)."""

from __future__ import annotations

import pytest

from .grammar import WRONG
from .harness import rate_table, run_seed

# Chosen to finish in about two minutes on a 2-core machine from a cold cargo cache (builds
# are cached under tests/differential/target), and to cover every family of the grammar.
SEEDS = (3, 11, 20)
FUNCTIONS = 40


@pytest.mark.uprobe
@pytest.mark.parametrize("seed", SEEDS)
def test_no_decoded_value_differs_from_what_the_program_printed(seed):
    outcomes = run_seed(seed, FUNCTIONS)
    wrong = [o for o in outcomes if o.status == WRONG]
    assert not wrong, (
        "\n".join(
            f"{o.profile} {o.function} {o.position} ({o.family}): {'; '.join(o.details)[:400]}"
            for o in wrong
        )
        + "\n\n"
        + rate_table(outcomes)
    )
    # The harness compared real values in every profile, not only Unavailable ones.
    decoded = {o.profile for o in outcomes if o.status == "ok"}
    assert {"dev", "release"} <= decoded
    assert len(outcomes) > 200
