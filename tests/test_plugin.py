"""What a user sees: pytester runs of small test files against the real plugin."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# pytester points HOME at a temporary directory; rustup and cargo find their homes through it.
TOOL_HOMES = {
    "RUSTUP_HOME": os.environ.get("RUSTUP_HOME", str(Path.home() / ".rustup")),
    "CARGO_HOME": os.environ.get("CARGO_HOME", str(Path.home() / ".cargo")),
}

USES_FIXTURE = """
def test_traced(uprobe_trace):
    pass

import pytest

@pytest.mark.uprobe
def test_marked():
    pass

def test_plain():
    pass
"""


def test_without_the_flag_traced_tests_are_skipped_with_the_reason(pytester):
    pytester.makepyfile(USES_FIXTURE)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=2)
    reason = "uprobe tracing is off: run pytest with --uprobe (as root) to turn it on"
    result.stdout.fnmatch_lines([f"SKIPPED [[]1[]] *: {reason}", f"SKIPPED [[]1[]] *:6: {reason}"])


def test_the_ini_twin_turns_tracing_on(pytester):
    pytester.makeini("[pytest]\nuprobe = true\n")
    pytester.makepyfile("import pytest\n@pytest.mark.uprobe\ndef test_marked():\n    pass\n")
    pytester.runpytest().assert_outcomes(passed=1)


def test_help_lists_every_option_with_its_ini_twin(pytester):
    result = pytester.runpytest("--help")
    text = result.stdout.str()
    for flag, ini in [
        ("--uprobe", "uprobe "),
        ("--uprobe-timeout", "uprobe_timeout"),
        ("--uprobe-profile", "uprobe_profile"),
        ("--uprobe-ret-sites-only", "uprobe_ret_sites_only"),
        ("--uprobe-max-functions", "uprobe_max_functions"),
    ]:
        assert flag in text and ini in text


def test_a_missing_prerequisite_is_an_error_that_names_it(pytester, monkeypatch):
    monkeypatch.setenv("BCC_KERNEL_SOURCE", "/nonexistent-headers")
    pytester.makepyfile("def test_traced(uprobe_trace):\n    pass\n")
    result = pytester.runpytest_subprocess("--uprobe")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*pytest-uprobe needs kernel headers: BCC_KERNEL_SOURCE=/nonexistent-headers "
            "has no include/ directory",
            "*fix: unset BCC_KERNEL_SOURCE*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


@pytest.mark.uprobe
def test_a_failing_assertion_shows_every_call_and_the_trace_section(pytester, monkeypatch):
    for name, value in TOOL_HOMES.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile(
        f"""
        def test_wrong(uprobe_trace, cargo_bin):
            exe = cargo_bin({str(ROOT / "example_crates/args")!r})
            trace = uprobe_trace.run([exe, "1", "2"], probes=["args::hello"])
            trace["args::hello"].assert_called_with(2, 4)
        """
    )
    result = pytester.runpytest_subprocess("--uprobe")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: expected call not found.",
            "*Expected: args::hello(2, 4)",
            "*  Actual: args::hello(2, 3) -> 5 [[]tid *[]]",
            "*Calls seen (2):",
            "*  0: args::hello(1, 3) -> 4 [[]tid *[]]",
            "*  1: args::hello(2, 3) -> 5 [[]tid *[]]",
            "*- uprobe trace -*",
            "run 1: *args 1 2",
            "exit status: 0",
            "*ms  tid *args::hello(1, 3) -> 4*",
        ]
    )
