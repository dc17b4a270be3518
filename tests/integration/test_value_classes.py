"""Each class of wrong value issue 13 found, on a real binary: example_crates/values (one
function per class, each printing what it got) and example_crates/cabi (C functions built by
gcc -g -O0). Expected values come from the program's output or from arithmetic on its input;
every one of these tests failed on the main branch before the fixes."""

from __future__ import annotations

import datetime
import re

import pytest

from pytest_uprobe import Struct, Unavailable

CRATE = "example_crates/values"
N = 7  # the program's argument


def run(uprobe_trace, exe, names, *argv):
    trace = uprobe_trace.run([exe, str(N), *argv], probes=[f"values::{n}" for n in names])
    assert trace.returncode == 0, trace.stderr
    return trace


@pytest.mark.parametrize("profile", ["limited", "lines"])
def test_limited_debug_info_gives_unavailable_arguments_naming_the_setting(
    uprobe_trace, cargo_bin, profile
):
    # debug = 1 used to report args == () and retval None: "takes nothing, returns ()".
    exe = cargo_bin(CRATE, profile=profile)
    trace = run(uprobe_trace, exe, ["scale", "triple"])
    assert "ARG scale -3 4" in trace.stdout
    scale = trace["values::scale"]
    assert scale.call_count == 1
    (args,) = scale.args_list
    assert isinstance(args, Unavailable) and args != ()
    assert "debug = true" in args.reason and "[profile.release]" in args.reason
    assert isinstance(scale.calls[0].kwargs, Unavailable)
    (retval,) = scale.retvals
    assert isinstance(retval, Unavailable) and "debug = true" in retval.reason
    with pytest.raises(AssertionError) as info:
        scale.assert_called_with(-3, 4)
    assert "arguments of 'values::scale' are unknown" in str(info.value)
    assert "debug = true" in str(info.value)
    assert "<arguments unknown" in trace.log()
    assert "scale() -> None" not in trace.log()


def test_a_unit_with_parameters_still_says_no_parameters(uprobe_trace, cargo_bin):
    # A function without parameters in a full-debug-info unit: (), not "unknown".
    exe = cargo_bin(CRATE, profile="release")
    trace = uprobe_trace.run([exe, str(N)], probes=["values::main"])
    assert trace["values::main"].args_list == [()]


@pytest.mark.parametrize("profile", ["dev", "release"])
def test_small_aggregates_return_as_the_program_printed_them(uprobe_trace, cargo_bin, profile):
    # (u32, u32, u32) decoded as (3000782036, 32765, 9): rustc returns it through the caller's
    # buffer, not in rax:rdx.
    exe = cargo_bin(CRATE, profile=profile)
    trace = run(uprobe_trace, exe, ["triple", "small", "padded", "maybe", "pair_array"])
    out = trace.stdout
    assert f"RET triple ({N}, {N + 1}, {N + 2})" in out
    assert trace["values::triple"].retvals == [(N, N + 1, N + 2)]
    assert f"RET small ({N}, 1, {N + 1}, 2)" in out
    assert trace["values::small"].retvals == [(N, 1, N + 1, 2)]
    assert f"RET padded Padded {{ a: {N}, b: 77, c: 5 }}" in out
    assert trace["values::padded"].retvals == [Struct("Padded", {"a": N, "b": 77, "c": 5})]
    assert f"RET maybe Some({N})" in out and "RET maybe None" in out
    assert trace["values::maybe"].retvals == [N, None]
    assert f"RET pair_array [{N}, {2 * N}]" in out
    assert trace["values::pair_array"].retvals == [[N, 2 * N]]


@pytest.mark.parametrize("profile", ["dev", "release"])
def test_an_async_fns_future_shows_its_argument(uprobe_trace, cargo_bin, profile):
    # fetch_double(20)'s future showed x=3182867404: its state was read as a (u32, u8) pair.
    exe = cargo_bin(CRATE, profile=profile)
    trace = run(uprobe_trace, exe, ["fetch_double"])
    assert "RET fetch_double 40" in trace.stdout
    # A probe on an async fn gives its futures (docs/async.md): the argument as created,
    # and the output as the poll returned it, or why not (release inlines the poll where
    # no probe can count it).
    call = trace["values::fetch_double"].calls[0]
    assert call.args == (20,)
    assert call.retval == 40 or (profile == "release" and isinstance(call.retval, Unavailable))


def test_a_return_value_no_caller_uses_is_unavailable(uprobe_trace, cargo_bin):
    # `let _ = unused_result(n)`: LLVM drops the return value (DW_CC_nocall); rax held junk.
    release = cargo_bin(CRATE, profile="release")
    (retval,) = run(uprobe_trace, release, ["unused_result"])["values::unused_result"].retvals
    assert isinstance(retval, Unavailable) and "DW_CC_nocall" in retval.reason
    dev = cargo_bin(CRATE, profile="dev")
    assert run(uprobe_trace, dev, ["unused_result"])["values::unused_result"].retvals == [3 * N]


@pytest.mark.parametrize("profile", ["dev", "release"])
def test_arguments_on_the_stack_are_right_or_unavailable(uprobe_trace, cargo_bin, profile):
    exe = cargo_bin(CRATE, profile=profile)
    trace = run(uprobe_trace, exe, ["stacked"])
    assert (
        f"ARG stacked {N} {N + 1} {N + 2} {N + 3} {N + 4} {N + 5} Wide({1000 * N})" in trace.stdout
    )
    (call,) = trace["values::stacked"].calls
    assert call.args[:6] == tuple(range(N, N + 6))
    wide = call.kwargs["g"]
    assert wide == Struct("Wide", {"0": 1000 * N}, tuple_like=True) or (
        isinstance(wide, Unavailable) and "pointer" in wide.reason
    )
    assert call.kwargs["h"] == {"a": -N, "b": 1.5} or isinstance(call.kwargs["h"], Unavailable)


@pytest.mark.parametrize("profile", ["dev", "release"])
def test_a_struct_whose_padding_no_location_describes(uprobe_trace, cargo_bin, profile):
    # Duration (u64 secs, u32 nanos, 4 bytes of padding): release passes it in two registers
    # and its location describes 12 of the 16 bytes, every byte of every field.
    trace = run(uprobe_trace, cargo_bin(CRATE, profile=profile), ["wait_for"])
    assert f"ARG wait_for {N} 500000000" in trace.stdout
    ((base,),) = trace["values::wait_for"].args_list
    assert not isinstance(base, Unavailable), base
    if isinstance(base, Struct):
        assert (base.secs, base.nanos[0]) == (N, 500000000)
    else:  # std::time::Duration shown as a timedelta
        assert base == datetime.timedelta(seconds=N, microseconds=500000)


@pytest.mark.parametrize("profile", ["dev", "release"])
def test_a_hidden_return_pointer_the_prologue_moved(uprobe_trace, cargo_bin, profile):
    # A dev build's prologue copies rdi (the caller's buffer for the Vec) to a stack slot
    # and reuses rdi before the entry probe: the value is read through that slot.
    trace = run(uprobe_trace, cargo_bin(CRATE, profile=profile), ["tally"])
    printed = re.search(r"^RET tally \[(.*)\]$", trace.stdout, re.M)
    assert printed is not None, trace.stdout
    expected = [int(n) for n in printed.group(1).split(", ")]
    assert expected == [5, 5, 6]  # "alpha", "gamma", "delta!" of at least N - 3 bytes
    assert trace["values::tally"].retvals == [expected]


# -- C functions ----------------------------------------------------------------------------------

C_LINE = re.compile(r"^C (\w+) (.*) -> (.*)$")


def test_c_functions_built_by_gcc_read_their_arguments_after_the_prologue(uprobe_trace, cargo_bin):
    # gcc -g -O0 marks no prologue_end: the arguments were read before the prologue stored
    # them (stack garbage). The entry now sits at the line table's second row.
    exe = cargo_bin("example_crates/cabi")
    probes = ["c_add", "c_many", "c_pair", "c_trio", "c_big", "c_mixed"]
    trace = uprobe_trace.run([exe, "2"], probes=probes)
    assert trace.returncode == 0, trace.stderr
    printed = [C_LINE.match(line).groups() for line in trace.stdout.splitlines()]  # type: ignore[union-attr]
    assert len(printed) == 12
    numbers = [(name, [float(x) for x in args.split()], [float(x) for x in ret.split()])
               for name, args, ret in printed]  # fmt: skip
    for name in probes:
        calls = trace[name].calls
        mine = [(a, r) for n, a, r in numbers if n == name]
        assert len(calls) == len(mine) == 2, name
        for call, (args, ret) in zip(calls, mine):
            flat_args = _flatten(call.args)
            assert flat_args == args, (name, call)
            if name == "c_mixed":  # a double in the first eightbyte: returned in xmm0
                assert isinstance(call.retval, Unavailable) and "SSE" in call.retval.reason
            else:
                assert _flatten(call.retval) == ret, (name, call)


def _flatten(value):
    if isinstance(value, Struct):
        return [x for v in value.fields.values() for x in _flatten(v)]
    if isinstance(value, (tuple, list)):
        return [x for v in value for x in _flatten(v)]
    return [float(value)]
