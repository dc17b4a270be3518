"""Sites Frida's 5-byte patch cannot take: handled where the project's rules allow, else left
out with the same bound the BPF engine gives a site no uprobe can take (the count is a lower
bound naming the site; exact comparisons refuse it), and a probe with nothing left to hook
fails before the run. Never a silently missed call. Needs frida."""

from __future__ import annotations

import re

import pytest

from pytest_uprobe import Tracer
from pytest_uprobe.bounds import InexactCount
from pytest_uprobe.elf import ElfBinary
from pytest_uprobe.errors import UnreadableFunction
from pytest_uprobe.inprocess import placement
from pytest_uprobe.plan import build_plan

pytest.importorskip("frida")
pytestmark = pytest.mark.uprobe

INLINING = "example_crates/inlining"


def _calls(trace, probe):
    return sorted((c.function, repr(c.args), repr(c.retval)) for c in trace[probe].calls)


def _both(exe, probe, argv=()):
    traces = {}
    for backend in ("bpf", "inprocess"):
        with Tracer(backend=backend) as tracer:
            traces[backend] = tracer.run([exe, *argv], probes=[probe])
    return traces["bpf"], traces["inprocess"]


def test_short_returns_of_leaves_are_seen_through_one_return_hook(cargo_bin):
    """Release `add`, `step`, `another_caller`, `through_generic` end in `lea rax, [...];
    ret` (too short to patch, and no plain epilogue): leaves, so one return hook on the
    first instruction sees their returns. `in_a_loop`'s entry probe lies 2 bytes into the
    patch of its return hook: moved to the first instruction (it was counted 0 for 1).
    Every call and value equals the BPF engine's, the counts equal what the program
    printed."""
    exe = cargo_bin(INLINING, profile="release")
    bpf, inprocess = _both(exe, "inlining::*")
    assert inprocess.stdout == bpf.stdout
    assert _calls(inprocess, "inlining::*") == _calls(bpf, "inlining::*")
    function = inprocess["inlining::*"]
    assert function.left_out == ()
    assert function.call_count == int(bpf["inlining::*"].call_count)
    adds = int(re.search(r"calls add (\d+)", inprocess.stdout)[1])
    steps = int(re.search(r"calls step (\d+)", inprocess.stdout)[1])
    for probe, printed in (("inlining::add", adds), ("inlining::step", steps)):
        with Tracer(backend="inprocess") as tracer:
            trace = tracer.run([exe], probes=[probe])
        assert trace[probe].call_count == printed
        assert all(not repr(c.retval).startswith("Unavailable") for c in trace[probe].calls
                   if c.inlined is None)  # fmt: skip


def test_helloworld_release_returns_through_the_leaf_hook(cargo_bin):
    exe = cargo_bin("example_crates/helloworld", profile="release")
    bpf, inprocess = _both(exe, "helloworld::hello")
    assert _calls(inprocess, "helloworld::hello") == _calls(bpf, "helloworld::hello")
    assert inprocess["helloworld::hello"].call_count == 1


def test_a_site_left_out_makes_the_count_a_lower_bound_naming_it(cargo_bin):
    """Dev stockpile: the closure half_in_thread runs on its thread calls checked_half and
    ends in a `ret` too short for Frida's patch, after a call (no leaf: no return hook):
    left out. The glob's count is a lower bound naming the site and the backend that
    probes it; exact comparisons refuse it; every other call is seen as the BPF engine
    sees it."""
    exe = cargo_bin("example_crates/stockpile")
    probe = "stockpile::half_in_thread*"
    bpf, inprocess = _both(exe, probe, ["halves", "4", "6"])
    function = inprocess[probe]
    assert len(function.left_out) == 1
    assert "half_in_thread::{closure#0}" in function.left_out[0]
    assert "cannot be hooked by the in-process engine" in function.left_out[0]
    assert "--uprobe-backend=bpf probes it" in function.left_out[0]
    count = function.call_count
    assert count.may_be_more == tuple(f"left out {site}" for site in function.left_out)
    assert count >= 1 and int(count) < int(bpf[probe].call_count)
    with pytest.raises(InexactCount, match="it may be more: left out the return"):
        assert count == int(bpf[probe].call_count)
    seen = _calls(inprocess, probe)
    assert set(seen) <= set(_calls(bpf, probe))
    assert len(seen) == int(count)


def test_an_entry_whose_patch_would_move_a_call_is_read_back_to_the_first_instruction(
    cargo_bin,
):
    """Dev builds: Frida's patch at the entry probe would move a call into its trampoline,
    so the hook goes on the first instruction and the prologue between is read back
    (inprocess/prologue.py). `tally` takes the address of a slot (`lea rdi, [rsp + 0x48]`),
    closure#10 reloads its u32 from a slot (`mov esi, dword ptr [rsp + 0xc]`), inlining's
    closure reads its String through rdi: all three were refused before. Their calls are
    the BPF engine's, and tally's argument is the words the program printed."""
    from tests.blackbox.stockpile import ARGV_TAIL, printed_calls

    exe = cargo_bin("example_crates/stockpile")
    probes = ["stockpile::tally", "stockpile::main::{closure#10}"]
    plan = build_plan(ElfBinary.open(exe), probes)
    moved = [h for h in placement.hooks(plan, True).hooks if h.pieces is not None]
    assert sorted(plan.function(plan.sites[h.site].function).symbol.path for h in moved) == [
        "stockpile::main::{closure#10}",
        "stockpile::tally",
    ]
    assert all(h.address == plan.function(plan.sites[h.site].function).shape.start
               for h in moved)  # fmt: skip
    traces = {}
    for backend in ("bpf", "inprocess"):
        with Tracer(backend=backend) as tracer:
            traces[backend] = tracer.run([exe, *ARGV_TAIL], probes=probes)
    for probe in probes:
        assert traces["inprocess"][probe].left_out == ()
        assert traces["inprocess"][probe].call_count >= 1
        # arguments only: closure#10 returns a JoinHandle, whose thread ids differ per run
        args = {b: sorted(repr(c.args) for c in traces[b][probe].calls) for b in traces}
        assert args["inprocess"] == args["bpf"]
    names = [r["name"] for _, r in printed_calls(traces["inprocess"].stdout, "parse_item") if r]
    traces["inprocess"]["stockpile::tally"].assert_called_once_with(names + ["apple"])
    bpf, inprocess = _both(cargo_bin(INLINING), "inlining::*")
    assert inprocess["inlining::*"].left_out == ()
    assert inprocess["inlining::*"].call_count == int(bpf["inlining::*"].call_count)
    assert _calls(inprocess, "inlining::*") == _calls(bpf, "inlining::*")


def test_a_probe_with_nothing_left_to_hook_fails_before_the_run(cargo_bin):
    """Dev helloworld's `hello` calls println (no leaf: no return hook) and ends in
    `xor eax, eax; ret`."""
    exe = cargo_bin("example_crates/helloworld")
    with Tracer(backend="inprocess") as tracer, pytest.raises(UnreadableFunction) as error:
        tracer.run([exe], probes=["helloworld::hello"])
    assert "its ret is too short" in str(error.value)
    assert "--uprobe-backend=bpf" in str(error.value)


@pytest.mark.parametrize("profile", ["dev", "release"])
def test_values_a_leaf_keeps_below_rsp_are_read_at_its_first_instruction(cargo_bin, profile):
    """Dev closures of the user's crate store their arguments in the red zone below rsp
    (`mov [rsp - 8], rsi`), which Frida's trampoline overwrites before the callback reads
    it: they read a pointer for a u64 (a silently wrong value). Their entry moves to the
    first instruction, where the values are still in registers: the same values as the BPF
    engine's, and as the program printed (tests/blackbox/test_calls.py)."""
    from tests.blackbox.stockpile import ARGV_TAIL, printed_calls

    exe = cargo_bin("example_crates/stockpile", profile=profile)
    probes = ["stockpile::main::{closure#12}", "stockpile::main::{closure#13}"]
    traces = {}
    for backend in ("bpf", "inprocess"):
        with Tracer(backend=backend) as tracer:
            traces[backend] = tracer.run([exe, *ARGV_TAIL], probes=probes)
    for probe in probes:
        assert _calls(traces["inprocess"], probe) == _calls(traces["bpf"], probe)
        assert traces["inprocess"][probe].left_out == ()
    printed = printed_calls(traces["inprocess"].stdout, "Rule::matches")
    over_area = [size for (name, size), _ in printed if name == "over_area"]
    assert [c.args[-1] for c in traces["inprocess"][probes[1]].calls] == over_area


@pytest.mark.parametrize("profile", ["dev", "release"])
def test_lines_and_usdt_probes_with_their_semaphore(cargo_bin, profile):
    """The user's crate's USDT probe (whose semaphore the program reads: it prints
    PROGRESS_TRACED only while a tracer watches) and a line in a recursive function, on
    the in-process engine: counts and arguments as the program printed."""
    from tests.blackbox.stockpile import ARGV_TAIL, printed_calls, printed_counts
    from tests.blackbox.test_inlining import line_of

    exe = cargo_bin("example_crates/stockpile", profile=profile)
    line = f"main.rs:{line_of('FIB_CALLS.fetch_add(1, Ordering::Relaxed);')}"
    with Tracer(backend="inprocess") as tracer:
        trace = tracer.run([exe, *ARGV_TAIL], probes=["usdt:stockpile:progress", line])
    workers = printed_calls(trace.stdout, "worker")
    progress = trace["usdt:stockpile:progress"]
    assert progress.call_count == sum(n for (_, n), _ in workers) > 0
    assert sorted(progress.args_list) == sorted(
        (wid, k) for (wid, n), _ in workers for k in range(1, n + 1)
    )
    assert all(f"PROGRESS_TRACED worker={wid}" in trace.stdout for (wid, _), _ in workers)
    fib = trace[line].call_count
    # Release: fib's recursion made a loop puts the line in pieces, a bound (dwarf.lines).
    assert (
        fib == printed_counts(trace.stdout)["fib"]
        if fib.exact
        else fib.low <= printed_counts(trace.stdout)["fib"] <= fib.high
    )


RED_ZONE_C = r"""
#include <stdio.h>
__attribute__((noinline)) long calc(long n) {
    long a = n * 2;
    long b = a + 1;
    return b;
}
int main(void) {
    for (long i = 0; i < 3; i++) printf("calc %ld -> %ld\n", i, calc(i));
    return 0;
}
"""


def test_no_hook_where_a_leaf_still_needs_what_it_keeps_below_rsp(tmp_path, cargo_bin):
    """Frida's trampoline writes below rsp: a hook where a leaf later reads a slot it
    wrote there changes what the program computes, whether a probe reads the slot or not.
    gcc -O0 `calc` keeps `a` and `b` below its frame pointer (no `sub rsp`): its line sites
    are refused (also with no value to read) and its entry moves to the first instruction;
    the program prints what it prints untraced. Release `in_a_loop` writes [rsp - 8] and
    reads it back before the inlined copy of `add`, whose site stays hooked (the slot is
    written again before any read: dead there)."""
    import dataclasses
    import shutil
    import subprocess

    from pytest_uprobe.inprocess import placement
    from pytest_uprobe.plan import SiteKind

    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (make test installs it)")
    (tmp_path / "calc.c").write_text(RED_ZONE_C)
    exe = tmp_path / "calc"
    subprocess.run(["gcc", "-g", "-O0", "-o", exe, tmp_path / "calc.c"], check=True)
    untraced = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
    with Tracer(backend="inprocess") as tracer:
        plan = tracer.plan(exe, ["calc.c:4", "calc.c:5"])
        for number, site in enumerate(plan.sites):
            assert site.kind is SiteKind.LINE
            for pieces in (site.pieces, ()):
                bare = dataclasses.replace(site, pieces=pieces)
                with pytest.raises(placement.Unhookable, match="below rsp"):
                    placement._hook(plan, number, bare)
        trace = tracer.run([exe], probes=["calc"])
    assert trace.stdout == untraced == "calc 0 -> 1\ncalc 1 -> 3\ncalc 2 -> 5\n"
    assert [(c.args[0], c.retval) for c in trace["calc"].calls] == [(0, 1), (1, 3), (2, 5)]

    release = cargo_bin(INLINING, profile="release")
    with Tracer(backend="inprocess") as tracer:
        plan = tracer.plan(release, ["inlining::add"])
    copies = [
        (n, s) for n, s in enumerate(plan.sites)
        if s.kind is SiteKind.INLINED
        and plan.function(s.function).inlined.describe().startswith("inlining::in_a_loop")
    ]  # fmt: skip
    assert copies
    for number, site in copies:
        assert placement._hook(plan, number, site).address == site.address
