"""cargo_bin is session-scoped (module-scoped fixtures build with it), and the session's
summary line counts every traced run: those of a Tracer a test or a fixture made itself,
not only the uprobe_trace fixture's."""

from __future__ import annotations

import pytest

from tests.test_plugin import ARGS, program_output, use_tool_homes


@pytest.mark.uprobe
def test_runs_of_a_module_fixtures_own_tracers_are_in_the_summary(pytester, monkeypatch):
    use_tool_homes(monkeypatch)
    hellos = program_output("example_crates/args", "1", "2").count("return value:")
    pytester.makepyfile(
        f"""
        import pytest
        from pytest_uprobe import Tracer

        @pytest.fixture(scope="module")
        def traces(cargo_bin):  # a session-scoped cargo_bin: no ScopeMismatch
            exe = cargo_bin({ARGS})
            runs = []
            for backend in ("bpf", "inprocess"):
                with Tracer(backend=backend) as tracer:
                    runs.append(tracer.run([exe, "1", "2"], probes=["args::hello"]))
            return runs

        def test_direct(traces):
            assert [t["args::hello"].call_count for t in traces] == [{hellos}, {hellos}]

        def test_fixture(uprobe_trace, cargo_bin, traces):
            uprobe_trace.run([cargo_bin({ARGS}), "1", "2"], probes=["args::main"])
        """
    )
    result = pytester.runpytest_subprocess("--uprobe", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.re_match_lines(
        [rf"uprobe: 3 traced runs, \d+ probes attached, {2 * hellos + 1} calls seen, 0 events "
         r"lost, BPF compile \d+\.\d\d s, engines: bpf 2, inprocess 1$"]
    )  # fmt: skip
