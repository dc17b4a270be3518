"""Pairing entries with returns per thread by CFA, on hand-made event streams."""

from __future__ import annotations

from types import SimpleNamespace

from pytest_uprobe.dwarf.locations import Cfa, Piece
from pytest_uprobe.dwarf.types import RustType
from pytest_uprobe.elf import Symbol
from pytest_uprobe.events import LEFT_UNSEEN, build_calls
from pytest_uprobe.machine_code import CodeShape, TailCall
from pytest_uprobe.plan import PlannedFunction, ProbePlan, ReturnMode, Site, SiteKind, Value
from pytest_uprobe.rawevents import RawEvent

I64 = RustType("i64", "int", 8, signed=True)
ARG = Value("n", I64, (Piece(5, 0, 8, memory=False),))
RET = Value("return", I64, (Piece(0, 0, 8, memory=False),))


def function(name: str, address: int) -> PlannedFunction:
    shape = CodeShape(
        address, address + 16, (), (TailCall(address + 8, 0x2000),), 1, 0, 0, frozenset()
    )
    symbol = Symbol(name, name, address, 16, "function")
    return PlannedFunction(name, symbol, (ARG,), RET, ReturnMode.RET_SITES, shape, True)


def make_plan() -> ProbePlan:
    binary = SimpleNamespace(functions=[Symbol("g", "g", 0x2000, 16, "function")])
    plan = ProbePlan(binary, ("f", "g"))  # type: ignore[arg-type]
    plan.functions = [function("f", 0x1000), function("g", 0x2000)]
    plan.sites = [
        Site(SiteKind.ENTRY, 0x1000, 0, Cfa(7, 8), ARG.location),  # 0
        Site(SiteKind.RETURN, 0x100F, 0, Cfa(7, 8), RET.location),  # 1
        Site(SiteKind.TAIL_CALL, 0x1008, 0, Cfa(7, 8), (), 0x2000),  # 2
        Site(SiteKind.ENTRY, 0x2000, 1, Cfa(7, 8), ARG.location),  # 3
        Site(SiteKind.RETURN, 0x200F, 1, Cfa(7, 8), RET.location),  # 4
    ]
    return plan


def panicking_plan() -> ProbePlan:
    """make_plan watching rust_panic (where panics start) at 0x3000: site 5."""
    plan = make_plan()
    panic = function("", 0x3000)
    panic.marker = "panic"
    plan.markers.append(panic)
    plan.sites.append(Site(SiteKind.ENTRY, 0x3000, 2, Cfa(7, 8)))
    return plan


def ev(site: int, cfa: int, word: int = 0, tid: int = 1, ts: int = 0) -> RawEvent:
    return RawEvent(ts, cfa, tid, site, (word,) + (0,) * 15)


def test_recursion_pairs_each_call_with_its_own_return():
    events = [
        ev(0, 1000, 3),
        ev(0, 960, 2),
        ev(0, 920, 1),
        ev(1, 920, 1),
        ev(1, 960, 2),
        ev(1, 1000, 6),
    ]
    calls = build_calls(make_plan(), events, exited=True)
    assert [(c.args, c.retval, c.returned) for c in calls] == [
        ((3,), 6, True),
        ((2,), 2, True),
        ((1,), 1, True),
    ]


def test_an_unwound_frame_is_closed_by_the_next_entry_at_the_same_height():
    # f(1) panics (no return), is caught; f(2) then runs in the same frame height and returns.
    events = [ev(0, 1000, 1), ev(5, 900), ev(0, 1000, 2), ev(1, 1000, 20)]
    first, second = build_calls(panicking_plan(), events, exited=True)
    assert (first.returned, first.unwound, first.retval) == (False, True, None)
    assert (second.returned, second.unwound, second.retval) == (True, False, 20)


def test_a_frame_left_without_a_panic_is_not_called_unwound():
    # f(1) leaves by a jump through a register (no probe sees it); f(2) takes its height.
    events = [ev(0, 1000, 1), ev(0, 1000, 2), ev(1, 1000, 20)]
    first, second = build_calls(make_plan(), events, exited=True)
    assert (first.returned, first.unwound, first.ended) == (False, False, LEFT_UNSEEN)
    assert (second.returned, second.retval) == (True, 20)


def test_a_return_above_pending_inner_frames_marks_them_unwound():
    events = [ev(0, 1000, 1), ev(0, 900, 2), ev(5, 800), ev(1, 1000, 7)]
    outer, inner = build_calls(panicking_plan(), events, exited=True)
    assert (outer.returned, outer.retval) == (True, 7)
    assert (inner.returned, inner.unwound) == (False, True)


def test_a_return_above_an_inner_frame_left_without_a_panic_says_so():
    events = [ev(0, 1000, 1), ev(0, 900, 2), ev(1, 1000, 7)]
    outer, inner = build_calls(make_plan(), events, exited=True)
    assert (outer.returned, outer.retval) == (True, 7)
    assert (inner.returned, inner.unwound, inner.ended) == (False, False, LEFT_UNSEEN)


def test_threads_are_paired_separately():
    events = [
        ev(0, 1000, 1, tid=1),
        ev(0, 1000, 2, tid=2),
        ev(1, 1000, 20, tid=2),
        ev(1, 1000, 10, tid=1),
    ]
    calls = build_calls(make_plan(), events, exited=True)
    assert [(c.tid, c.retval) for c in calls] == [(1, 10), (2, 20)]


def test_frames_pending_at_a_crash_are_not_called_unwound():
    calls = build_calls(make_plan(), [ev(0, 1000, 1)], exited=False)
    assert (calls[0].returned, calls[0].unwound, calls[0].retval) == (False, False, None)


def test_a_tail_call_takes_the_probed_callees_return_value():
    events = [ev(0, 1000, 1), ev(2, 1000), ev(3, 1000, 5), ev(4, 1000, 42)]
    caller, callee = build_calls(make_plan(), events, exited=True)
    assert (caller.returned, caller.tail_call, caller.retval) == (True, True, 42)
    assert (callee.returned, callee.retval) == (True, 42)


def test_a_tail_call_into_an_unprobed_function_says_so():
    caller = build_calls(make_plan(), [ev(0, 1000, 1), ev(2, 1000)], exited=True)[0]
    assert caller.returned and caller.tail_call
    assert repr(caller.retval) == "Unavailable('tail call into g')"


# -- calls made from inside a probed inlined copy ---------------------------------------------


def plan_with_a_copy() -> ProbePlan:
    """`c`, inlined into an unprobed host at [0x5000, 0x5020) (entry 0x5004), and g, whose
    entry (site 1) carries its return address (word 1) and instruction pointer (word 2)."""
    from pytest_uprobe.dwarf.inlined import InlinedSite

    plan = make_plan()
    copy = InlinedSite(
        "c", "host", 0x5004, "src/lib.rs", 3, entries=(0x5004,), ranges=((0x5000, 0x5020),)
    )
    inlined = PlannedFunction(
        "c", Symbol("", "c", 0x5004, 0, "inlined"), (), None, ReturnMode.INLINED, None, True, copy
    )
    plan.functions = [inlined, function("g", 0x2000)]
    plan.sites = [
        Site(SiteKind.INLINED, 0x5004, 0, Cfa(7, 8)),  # 0
        Site(SiteKind.ENTRY, 0x2000, 1, Cfa(7, 8), ARG.location, return_address_word=1),  # 1
        Site(SiteKind.RETURN, 0x200F, 1, Cfa(7, 8), RET.location),  # 2
    ]
    return plan


LOADED_AT = 0x5555_0000_0000  # where the file's code is mapped (a PIE)


def entry_of_g(cfa: int, returns_to: int, tid: int = 1) -> RawEvent:
    words = (7, LOADED_AT + returns_to, LOADED_AT + 0x2000) + (0,) * 13
    return RawEvent(0, cfa, tid, 1, words)


def test_a_call_from_inside_a_probed_copy_has_the_copys_call_as_caller():
    events = [
        ev(0, 1000),  # c runs in the host's frame (CFA 1000)
        entry_of_g(980, 0x5010),  # g called from inside c's code
        ev(2, 980, 1),
        entry_of_g(980, 0x5030),  # g called from the host, after c's code
        ev(2, 980, 2),
    ]
    c, inside, after = build_calls(plan_with_a_copy(), events, exited=True)
    assert inside.caller is c and inside.depth == 1
    assert after.caller is None


def test_the_copys_call_must_be_in_a_frame_above_the_callee_and_on_its_thread():
    events = [
        ev(0, 1000),
        entry_of_g(1020, 0x5010),  # a frame above the copy's: not called by it
        entry_of_g(980, 0x5010, tid=2),  # another thread
    ]
    _, above, other_thread = build_calls(plan_with_a_copy(), events, exited=True)
    assert above.caller is None and other_thread.caller is None


def test_the_latest_call_of_the_copy_in_the_calling_frame_is_the_caller():
    events = [ev(0, 1000), ev(0, 1000), entry_of_g(980, 0x5010)]
    _, second, g = build_calls(plan_with_a_copy(), events, exited=True)
    assert g.caller is second


def test_an_instruction_pointer_that_is_not_the_sites_gives_no_inlined_caller():
    events = [ev(0, 1000), RawEvent(0, 980, 1, 1, (7, LOADED_AT + 0x5010, 0x1234) + (0,) * 13)]
    _, g = build_calls(plan_with_a_copy(), events, exited=True)
    assert g.caller is None


def test_a_hit_probe_in_vectorized_code_makes_the_count_a_lower_bound():
    from dataclasses import replace

    from pytest_uprobe.events import vectorized_hits

    plan = plan_with_a_copy()
    copy = replace(plan.functions[0].inlined, entries=(0x5004, 0x5010))
    copy = replace(copy, vectorized=((0x5004, "`psrlq xmm0, 1` at 0x5004"),))
    plan.functions[0].inlined = copy
    # Not run: exact. Run twice: a lower bound, with the instruction and the count.
    assert vectorized_hits(plan, [0, 5, 5]) == {}
    (why,) = vectorized_hits(plan, [2, 5, 5])["c"]
    assert "2 of its executions began in vectorized code (`psrlq xmm0, 1` at 0x5004)" in why
    # A probe moved forward past a refused instruction stands for the same entry; a probe at
    # the copy's other (scalar) entry does not.
    plan.sites[0] = replace(plan.sites[0], address=0x5008)
    assert "c" in vectorized_hits(plan, [1, 0, 0])
    plan.sites[0] = replace(plan.sites[0], address=0x5010)
    assert vectorized_hits(plan, [1, 0, 0]) == {}
