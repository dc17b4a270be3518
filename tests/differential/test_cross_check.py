"""The engines' comparison itself (no root, no compiler): what counts as the same answer,
the one allowed difference (SSE returns), honest refusals, and every other difference named
with function, position and both answers."""

from __future__ import annotations

from pytest_uprobe import Struct, Truncated, Variant

from .grammar import OK, UNAVAILABLE, WRONG
from .harness import Outcome, canonical, cross_check

SSE = "floats return in xmm0, and a uprobe's BPF program cannot read SSE registers"


def value(engine, position, status, answer, details=(), function="f1", call=0):
    return Outcome("release", function, position, "integers", status, list(details), engine,
                   call, answer)  # fmt: skip


def test_identical_answers_are_the_same():
    checked = cross_check([value("bpf", "arg 0", OK, "5"), value("inprocess", "arg 0", OK, "5")])
    assert (checked.same, checked.sse, checked.differences) == (1, 0, [])


def test_a_different_answer_names_function_position_and_both_answers():
    checked = cross_check(
        [value("bpf", "arg 1", OK, "5", call=2), value("inprocess", "arg 1", WRONG, "6", call=2)]
    )
    (difference,) = checked.differences
    assert str(difference) == "seed 0 release f1 arg 1 of call 2: bpf: 5; inprocess: 6"


def test_unavailable_on_one_engine_only_is_a_difference():
    checked = cross_check(
        [
            value("bpf", "return", OK, "7"),
            value("inprocess", "return", UNAVAILABLE, "Unavailable('x')", ["return: x"]),
        ]
    )
    assert len(checked.differences) == 1


def test_an_sse_return_may_be_read_by_the_inprocess_engine_only_and_right():
    bpf = value("bpf", "return", UNAVAILABLE, f"Unavailable({SSE!r})", [f"return: {SSE}"])
    assert cross_check([bpf, value("inprocess", "return", OK, "2.5")]).sse == 1
    # Read but wrong is no exception.
    wrong = cross_check([bpf, value("inprocess", "return", WRONG, "6.9e-310")])
    assert len(wrong.differences) == 1
    # Nor is any other reason for Unavailable on BPF.
    other = value("bpf", "return", UNAVAILABLE, "Unavailable('nocall')", ["return: nocall"])
    assert len(cross_check([other, value("inprocess", "return", OK, "2.5")]).differences) == 1


def test_a_function_declined_naming_the_other_engine_is_a_refusal_not_a_difference():
    why = "cannot instrument f1 at 0x10 (entry site); fix: use --uprobe-backend=bpf"
    refused = value("inprocess", "probe", UNAVAILABLE, "refused", [why], call=-1)
    traced = [value("bpf", "arg 0", OK, "1"), value("bpf", "return", OK, "2")]
    checked = cross_check([*traced, refused])
    assert (len(checked.refused), checked.differences) == (1, [])
    assert "2 values on bpf" in str(checked.refused[0])
    silent = value("inprocess", "probe", UNAVAILABLE, "refused", ["no reason"], call=-1)
    assert len(cross_check([value("bpf", "arg 0", OK, "1"), silent]).differences) == 1


def test_a_values_missing_on_one_engine_is_a_difference():
    checked = cross_check([value("bpf", "arg 0", OK, "1"), value("bpf", "arg 0", OK, "1", call=1),
                           value("inprocess", "arg 0", OK, "1")])  # fmt: skip
    (difference,) = checked.differences
    assert "inprocess: no such value" in str(difference)


def test_functions_of_different_seeds_are_not_compared():
    one = value("bpf", "arg 0", OK, "1")
    other = value("inprocess", "arg 0", OK, "2")
    other.seed = 5
    assert len(cross_check([one, other]).differences) == 2  # each missing on the other engine


def test_maps_compare_whatever_order_each_run_iterated_them_in():
    first = {2: Struct("S", {"a": {"x": 1, "y": 2}}), 1: Variant("Err", (3, {4: 5, 6: 7}))}
    second = {1: Variant("Err", (3, {6: 7, 4: 5})), 2: Struct("S", {"a": {"y": 2, "x": 1}})}
    assert repr(first) != repr(second)
    assert canonical(first) == canonical(second)
    assert canonical({1: 2}) != canonical({1: 3})
    # Also inside a list longer than max_elements (the campaign's seeds 100 and 101).
    assert canonical(Truncated([{1: 2, 3: 4}], 9)) == canonical(Truncated([{3: 4, 1: 2}], 9))
    assert canonical(Truncated([{1: 2}], 9)) != canonical(Truncated([{1: 2}], 8))
