"""The text form of ABI and inlining reports: sorted, one fact per line, equal when the
facts are, and a diff of lines when they are not. Hand-made records: no compiler needed."""

from __future__ import annotations

from pytest_uprobe.abi_snapshot import AbiReport, FunctionAbi, ParamAbi, ReturnAbi, TypeLayout
from pytest_uprobe.inlining_snapshot import Inlining, InliningReport

U64 = TypeLayout("u64", 8, 8)


def add(location: str = "in rdi") -> FunctionAbi:
    return FunctionAbi(
        "c::add",
        out_of_line=True,
        inlined=False,
        params=(ParamAbi("a", U64, location),),
        returns=ReturnAbi(U64, "in rax"),
    )


def test_records_are_sorted_by_path_and_the_text_is_one_fact_per_line():
    report = InliningReport([Inlining("c::z", 1), Inlining("c::a", 0, (("c::m", 2), ("c::n", 1)))])
    assert list(report) == ["c::a", "c::z"]
    assert (
        repr(report)
        == str(report)
        == report.text
        == "\n".join(
            [
                "c::a",
                "  out of line: no",
                "  inlined into c::m: 2 copies",
                "  inlined into c::n: 1 copy",
                "c::z",
                "  out of line: yes",
                "  inlined: nowhere",
            ]
        )
    )
    assert report["c::a"].copies_in("c::m") == 2 and report["c::a"].callers == ["c::m", "c::n"]


def test_abi_lines_signature_and_unknown():
    assert add().signature == "fn(a: u64) -> u64"
    assert add().lines() == [
        "c::add",
        "  exists: out of line",
        "  signature: fn(a: u64) -> u64",
        "  param a: u64 (8 bytes, align 8): in rdi",
        "  returns: u64 (8 bytes, align 8): in rax",
    ]
    unknown = FunctionAbi("c::f", out_of_line=True, inlined=False, unknown="no debug info")
    assert unknown.signature is None
    assert unknown.lines() == ["c::f", "  exists: out of line", "  unknown: no debug info"]
    nothing = FunctionAbi("c::g", True, True, returns=ReturnAbi(None, "nothing"))
    assert (
        nothing.lines()[-1] == "  returns: nothing" and nothing.exists == "out of line and inlined"
    )


def test_equal_when_the_facts_are():
    assert AbiReport([add()]) == AbiReport([add()])
    assert AbiReport([add()]) != AbiReport([add("in rsi")])
    assert AbiReport([add()]) != InliningReport([Inlining("c::add", 1)])
    assert AbiReport([add()]) != repr(AbiReport([add()]))  # a report is not its text


def test_a_failed_comparison_shows_the_lines_that_differ(pytester):
    pytester.makepyfile(
        """
        from pytest_uprobe.abi_snapshot import AbiReport, FunctionAbi, ParamAbi, ReturnAbi
        from pytest_uprobe.abi_snapshot import TypeLayout

        def record(where):
            u64 = TypeLayout("u64", 8, 8)
            return FunctionAbi("c::add", True, False, (ParamAbi("a", u64, where),),
                               ReturnAbi(u64, "in rax"))

        def test_moved():
            assert AbiReport([record("in rsi")]) == AbiReport([record("in rdi")])
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*abi reports differ (- right, + left):*",
            "*-  param a: u64 (8 bytes, align 8): in rdi",
            "*+  param a: u64 (8 bytes, align 8): in rsi",
        ]
    )
