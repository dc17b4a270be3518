"""The docs' own examples, copied as written (README, value-types)."""

from pathlib import PurePosixPath


def test_hello_called_per_argument(uprobe_trace, cargo_bin):
    exe = cargo_bin("example_crates/args")  # dev profile by default; a pathlib.Path
    trace = uprobe_trace.run([exe, "1", "2", "3", "4"], probes=["args::hello"])
    hello = trace["args::hello"]
    assert hello.call_count == 4
    assert hello.args_list == [(1, 5), (2, 5), (3, 5), (4, 5)]
    assert hello.retvals == [6, 7, 8, 9]
    hello.assert_called_with(4, 5)
    assert trace.returncode == 0 and "return value: 9" in trace.stdout


def test_release_build_counts_inlined_calls(uprobe_trace, cargo_bin):
    exe = cargo_bin("example_crates/args", profile="release")
    trace = uprobe_trace.run([exe, "1", "2", "3", "4"], probes=["args::hello"])
    hello = trace["args::hello"]
    assert hello.call_count == 4
    assert hello.args_list == [(1, 5), (2, 5), (3, 5), (4, 5)]  # where DWARF locates them
    assert all(call.inlined for call in hello.calls)  # retval: Unavailable(...)


def test_std_values(uprobe_trace, cargo_bin):
    trace = uprobe_trace.run(
        [cargo_bin("example_crates/stdtypes")],
        probes=["stdtypes::t_path", "stdtypes::t_rc", "stdtypes::t_hashmap"],
    )
    assert trace["stdtypes::t_path"].args_list[0] == (PurePosixPath("/home/me/project/src"),)
    (rc,) = trace["stdtypes::t_rc"].args_list[0]
    assert rc == 41 and rc.strong == 3
    assert trace["stdtypes::t_hashmap"].args_list[0][0]["ada"] == 0
