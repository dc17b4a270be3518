"""The seed's questions, answered: run with `make demo` (or `pytest --uprobe examples/`)."""

import pytest

from pytest_uprobe import Tracer, Unavailable
from pytest_uprobe.errors import InlinedFunction


def test_hello_called_per_argument(uprobe_trace, cargo_bin):
    exe = cargo_bin("example_crates/args")  # dev profile by default; returns a pathlib.Path
    trace = uprobe_trace.run([exe, "1", "2", "3", "4"], probes=["args::hello"])
    hello = trace["args::hello"]
    assert hello.call_count == 4
    assert hello.args_list == [(1, 5), (2, 5), (3, 5), (4, 5)]
    assert hello.retvals == [6, 7, 8, 9]
    hello.assert_called_with(4, 5)
    assert trace.returncode == 0 and "return value: 9" in trace.stdout


def test_helloworld_hello_runs_once_returning_zero(uprobe_trace, cargo_bin):
    exe = cargo_bin("example_crates/helloworld")
    trace = uprobe_trace.run([exe], probes=["helloworld::hello"])
    trace["helloworld::hello"].assert_called_once_with()
    assert trace["helloworld::hello"].retvals == [0]
    assert trace.stdout == "Hello, world!\n"


def test_release_build_still_counts_hello(uprobe_trace, cargo_bin):
    """In release, hello is inlined into main and has no code of its own: the probe goes on
    each inlined copy, where DWARF says the arguments live."""
    exe = cargo_bin("example_crates/args", profile="release")
    trace = uprobe_trace.run([exe, "1", "2", "3", "4"], probes=["args::hello"])
    hello = trace["args::hello"]
    assert hello.call_count == 4
    assert hello.args_list == [(1, 5), (2, 5), (3, 5), (4, 5)]
    assert all(call.inlined for call in hello.calls)
    assert isinstance(hello.retvals[0], Unavailable)  # an inlined copy has no return


def test_release_build_without_inlined_counting_says_why(cargo_bin):
    exe = cargo_bin("example_crates/args", profile="release")
    with pytest.raises(InlinedFunction, match="inlined into args::main"):
        Tracer(inlined=False).plan(exe, ["args::hello"])
