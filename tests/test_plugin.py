"""What a user sees: pytester runs of small test files against the real plugin."""

from __future__ import annotations

import os
import re
import subprocess
import xml.etree.ElementTree as ET
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
        ("--uprobe-max-string", "uprobe_max_string"),
        ("--uprobe-max-elements", "uprobe_max_elements"),
        ("--uprobe-no-inlined", "uprobe_inlined"),
        ("--uprobe-lost-events", "uprobe_lost_events"),
    ]:
        assert flag in text and ini in text
    assert text.count("eBPF uprobe tracing of compiled binaries") == 1  # one option group
    assert "{fail,warn}" in text


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the privilege check comes first")
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


def use_tool_homes(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in TOOL_HOMES.items():
        monkeypatch.setenv(name, value)


def program_output(crate: str, *args: str) -> str:
    """What the example program prints when run on its own (built as the fixture builds it)."""
    from pytest_uprobe.cargo import cargo_bin

    exe = cargo_bin(ROOT / crate)
    return subprocess.run([exe, *args], capture_output=True, text=True).stdout


ARGS = repr(str(ROOT / "example_crates/args"))
ZOO = repr(str(ROOT / "example_crates/zoo"))


@pytest.mark.uprobe
def test_a_failing_assertion_shows_every_call_and_the_trace_section(pytester, monkeypatch):
    use_tool_homes(monkeypatch)
    pytester.makepyfile(
        f"""
        def test_wrong(uprobe_trace, cargo_bin):
            exe = cargo_bin({ARGS})
            trace = uprobe_trace.run([exe, "1", "2"], probes=["args::hello", "args::main"])
            trace["args::hello"].assert_called_with(2, 4)
        """
    )
    result = pytester.runpytest_subprocess("--uprobe")
    result.assert_outcomes(failed=1)
    # args prints the length of its argv as hello's second argument and i + len as its return.
    printed = program_output("example_crates/args", "1", "2")
    assert "Hello, world! 1 in 3\nreturn value: 4\nHello, world! 2 in 3\nreturn value: 5" in printed
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: expected call not found.",
            "*Expected: args::hello(2, 4)",
            "*  Actual: args::hello(2, 3) -> 5 [[]tid *[]]",
            "*Calls seen (2):",
            "*  0: args::hello(1, 3) -> 4 [[]tid *[]] from args::main",
            "*  1: args::hello(2, 3) -> 5 [[]tid *[]] from args::main",
            "*- uprobe trace -*",
            "run 1: *args 1 2",
            "exit status: 0",
            "calls counted: args::hello: 2, args::main: 1",
            "     0.000 ms  tid *   args::main() -> *  [[]out-of-line, * us[]]",
            "* ms  tid *     args::hello(1, 3) -> 4  [[]out-of-line, * us[]]",
            "* ms  tid *     args::hello(2, 3) -> 5  [[]out-of-line, * us[]]",
        ]
    )
    assert result.stdout.str().count("- uprobe trace -") == 1


@pytest.mark.uprobe
def test_a_long_log_is_cut_with_a_count_of_what_was_left_out(pytester, monkeypatch):
    use_tool_homes(monkeypatch)
    fib_calls = int(
        re.search(r"calls zoo::fib (\d+)", program_output("example_crates/zoo", "10"))[1]
    )
    assert fib_calls > 200
    pytester.makepyfile(
        f"""
        def test_many(uprobe_trace, cargo_bin):
            trace = uprobe_trace.run([cargo_bin({ZOO}), "10"], probes=["zoo::fib"])
            assert False, "look at the trace"
        """
    )
    result = pytester.runpytest_subprocess("--uprobe")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    section = text[text.index("- uprobe trace -") :]
    log = [line for line in section.splitlines() if " ms  tid " in line]
    assert len(log) == 200  # the first 150 and the last 50
    assert (
        f"... {fib_calls - 200} calls left out (of {fib_calls}; all are in trace.calls) ..."
        in section
    )
    assert f"calls counted: zoo::fib: {fib_calls}" in section


@pytest.mark.uprobe
def test_rA_and_junit_xml_carry_the_same_trace_text(pytester, monkeypatch):
    use_tool_homes(monkeypatch)
    pytester.makepyfile(
        f"""
        def test_fails(uprobe_trace, cargo_bin):
            uprobe_trace.run([cargo_bin({ARGS}), "7"], probes=["args::hello"])
            assert False

        def test_passes(uprobe_trace, cargo_bin):
            uprobe_trace.run([cargo_bin({ARGS}), "8", "9"], probes=["args::hello"])
        """
    )
    xml_path = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess("--uprobe", "-rA", f"--junitxml={xml_path}")
    result.assert_outcomes(failed=1, passed=1)
    text = result.stdout.str()
    # the failure's section, then (-rA) the passed test's under PASSES
    result.stdout.fnmatch_lines(
        [
            "*_ test_fails _*",
            "*- uprobe trace -*",
            "run 1: *args 7",
            "* ms  tid *args::hello(7, 2) -> 9  [[]out-of-line, * us[]]",
            "*= PASSES =*",
            "*_ test_passes _*",
            "*- uprobe trace -*",
            "run 1: *args 8 9",
            "* ms  tid *args::hello(8, 3) -> 11  [[]out-of-line, * us[]]",
            "* ms  tid *args::hello(9, 3) -> 12  [[]out-of-line, * us[]]",
        ]
    )
    failure = ET.parse(xml_path).find(".//testcase[@name='test_fails']/failure")
    assert failure is not None and failure.text is not None
    section = failure.text[failure.text.index("- uprobe trace -") :]
    terminal = text[text.index("- uprobe trace -") :]
    assert terminal.startswith(section.strip())  # the same lines, byte for byte
    assert "exit status: 0\ncalls counted: args::hello: 1\n" in section


INI_PROBE = f"""
def test_settings(uprobe_trace, cargo_bin, pytestconfig):
    t = uprobe_trace
    print("SETTINGS", t.timeout, t.ret_sites_only, t.max_functions, t.max_string,
          t.max_elements, t.inlined, t.lost_events, cargo_bin({ARGS}).parent.name)
"""


@pytest.mark.uprobe
@pytest.mark.parametrize(
    ("ini", "flags", "expected"),
    [
        ("", [], "60.0 False 1000 256 16 True fail debug"),
        (
            "uprobe_timeout = 7.5\nuprobe_ret_sites_only = true\nuprobe_max_functions = 5\n"
            "uprobe_max_string = 64\nuprobe_max_elements = 4\nuprobe_inlined = false\n"
            "uprobe_lost_events = warn\nuprobe_profile = release\n",
            [],
            "7.5 True 5 64 4 False warn release",
        ),
        (
            "uprobe_timeout = 7.5\nuprobe_max_string = 64\nuprobe_lost_events = warn\n",
            ["--uprobe-timeout=3", "--uprobe-max-string=32", "--uprobe-max-elements=2",
             "--uprobe-no-inlined", "--uprobe-lost-events=fail", "--uprobe-ret-sites-only",
             "--uprobe-max-functions=9", "--uprobe-profile=release"],
            "3.0 True 9 32 2 False fail release",
        ),
    ],
    ids=["defaults", "ini", "command-line-wins"],
)  # fmt: skip
def test_every_setting_reaches_the_tracer(pytester, monkeypatch, ini, flags, expected):
    use_tool_homes(monkeypatch)
    pytester.makeini("[pytest]\n" + ini)
    pytester.makepyfile(INI_PROBE)
    result = pytester.runpytest_subprocess("--uprobe", "-s", *flags)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*SETTINGS {expected}*"])


@pytest.mark.parametrize(
    ("ini", "flags", "message"),
    [
        ("uprobe_lost_events = sometimes", [],
         "ini uprobe_lost_events (in *tox.ini) must be 'fail' or 'warn', got 'sometimes'"),
        ("uprobe_max_string = 0", [],
         "ini uprobe_max_string (in *) must be a positive integer, got '0'"),
        ("uprobe_max_elements = many", [],
         "ini uprobe_max_elements (in *) must be a positive integer, got 'many'"),
        ("uprobe_max_functions = -3", [],
         "ini uprobe_max_functions (in *) must be a positive integer, got '-3'"),
        ("uprobe_timeout = soon", [],
         "ini uprobe_timeout (in *) must be a number of seconds (0: no timeout), got 'soon'"),
        ("uprobe_timeline_on = sometimes", [],
         "ini uprobe_timeline_on (in *) must be 'always' or 'failure', got 'sometimes'"),
        ("uprobe_inlined = maybe", [], "ini uprobe_inlined (in *) must be true or false*"),
        ("uprobe_max_string = 64", ["--uprobe-max-string=0"],
         "--uprobe-max-string must be a positive integer, got '0'"),
        ("", ["--uprobe-timeout=-1"],
         "--uprobe-timeout must be a number of seconds (0: no timeout), got '-1'"),
    ],
)  # fmt: skip
def test_a_bad_setting_stops_the_session_once_naming_it(pytester, ini, flags, message):
    """Checked once at start-up, as pytest-xdist checks its options: a usage error (exit
    status 4) that names where the value was given, what it must be and the fix, instead
    of one failure per test; it needs neither root nor --uprobe."""
    pytester.makeini("[pytest]\n" + ini)
    pytester.makepyfile(
        "def test_traced(uprobe_trace):\n    pass\n\ndef test_other(uprobe_trace):\n    pass\n"
    )
    result = pytester.runpytest_subprocess(*flags)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-uprobe: {message}"])
    assert result.stderr.str().count("ERROR: pytest-uprobe") == 1
    if "pytest-uprobe: ini" in result.stderr.str() and "true or false" not in message:
        result.stderr.fnmatch_lines(["*fix: give ini uprobe_* or leave it out for the default*"])
    assert "passed" not in result.stdout.str() and "failed" not in result.stdout.str()


def test_help_works_with_a_bad_setting(pytester):
    pytester.makeini("[pytest]\nuprobe_max_string = 0\n")
    result = pytester.runpytest("--help")
    assert result.ret == 0
    assert "--uprobe-max-string=N" in result.stdout.str()


def test_help_shows_each_default_from_the_options_table(pytester):
    from pytest_uprobe import options

    text = " ".join(pytester.runpytest("--help").stdout.str().split())
    for setting in (options.MAX_STRING, options.MAX_ELEMENTS, options.MAX_FUNCTIONS):
        assert f"(default: {setting.default})" in text
    assert "(default: 60; 0: no timeout)" in text
    assert "(ini: uprobe_inlined = false; default: probe them)" in text


@pytest.mark.uprobe
def test_the_session_ends_with_one_summary_line(pytester, monkeypatch):
    use_tool_homes(monkeypatch)
    hellos = program_output("example_crates/args", "1", "2", "3").count("return value:")
    pytester.makepyfile(
        f"""
        def test_one(uprobe_trace, cargo_bin):
            uprobe_trace.run([cargo_bin({ARGS}), "1", "2", "3"], probes=["args::hello"])

        def test_two(uprobe_trace, cargo_bin):
            uprobe_trace.run([cargo_bin({ARGS}), "1", "2", "3"], probes=["args::hello"])
            uprobe_trace.run([cargo_bin({ARGS}), "1", "2", "3"], probes=["args::main"])
        """
    )
    result = pytester.runpytest_subprocess("--uprobe")
    result.assert_outcomes(passed=2)
    calls = 2 * hellos + 1  # two runs' hellos, one main
    result.stdout.re_match_lines(
        [rf"uprobe: 3 traced runs, \d+ probes attached, {calls} calls seen, 0 events lost, "
         r"BPF compile \d+\.\d\d s$"]
    )  # fmt: skip
    assert len([line for line in result.outlines if line.startswith("uprobe: ")]) == 1


def test_no_summary_line_without_the_flag(pytester):
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert not any(line.startswith("uprobe: ") for line in result.outlines)


@pytest.mark.uprobe
def test_two_xdist_workers_trace_in_parallel(pytester, monkeypatch):
    use_tool_homes(monkeypatch)
    pytester.makepyfile(
        f"""
        import os

        def test_first(uprobe_trace, cargo_bin):
            trace = uprobe_trace.run([cargo_bin({ARGS}), "1", "2"], probes=["args::hello"])
            assert trace["args::hello"].args_list == [(1, 3), (2, 3)]
            print("WORKER", os.environ["PYTEST_XDIST_WORKER"])

        def test_second(uprobe_trace, cargo_bin):
            trace = uprobe_trace.run([cargo_bin({ARGS}), "5"], probes=["args::hello"])
            assert trace["args::hello"].retvals == [7]
            assert False, "fails on purpose: its report comes from a worker"
        """
    )
    assert "return value: 7" in program_output("example_crates/args", "5")
    result = pytester.runpytest_subprocess("--uprobe", "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- uprobe trace -*",
            "run 1: *args 5",
            "* ms  tid *args::hello(5, 2) -> 7  [[]out-of-line, * us[]]",
        ]
    )
    result.stdout.re_match_lines([r"uprobe: 2 traced runs, \d+ probes attached, 3 calls seen, "])


def test_the_configuration_page_lists_every_setting_of_the_table():
    from pytest_uprobe import options

    page = (ROOT / "docs" / "guide" / "configuration.md").read_text()
    for setting in options.SETTINGS:
        if setting.flag is not None:
            assert f"`{setting.flag}" in page and f"`{setting.ini}" in page, setting.name
