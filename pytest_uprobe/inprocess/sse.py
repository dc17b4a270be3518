"""Return values in SSE registers: what the in-process engine reads and the BPF one cannot.

A uprobe's BPF program sees the general-purpose registers only, so the shared plan marks a
float return (or a ScalarPair with a float half) `Unavailable`. Frida's CPU context holds
xmm0-15 too: for this engine the plan is copied with those returns located in DWARF's
register numbers 17 (xmm0) and 18 (xmm1), which the agent reads from the context.
"""

from __future__ import annotations

import copy
import dataclasses

from ..dwarf.locations import Piece
from ..plan import RAX, RDX, SSE_WHY, ProbePlan, ReturnMode, Value
from ..values import Unavailable

XMM0 = 17  # DWARF's number for xmm0; xmm1 is 18


def with_sse_returns(plan: ProbePlan) -> ProbePlan:
    """A copy of `plan` whose float returns are read from xmm registers (the original, shared
    with the BPF engine and cached, is left as it is)."""
    changed = {}
    for number, function in enumerate(plan.functions):
        returns = function.returns
        if returns is None or function.return_mode is ReturnMode.INLINED:
            continue
        location = _sse_location(returns)
        if location is not None:
            changed[number] = location
    if not changed:
        return plan
    new = copy.copy(plan)
    new.functions = list(plan.functions)
    for number, location in changed.items():
        function = copy.copy(plan.functions[number])
        assert function.returns is not None
        function.returns = Value("return", function.returns.type, location, root=("return",))
        new.functions[number] = function
    new.sites = [
        dataclasses.replace(site, pieces=changed[site.function])
        if site.function in changed and not site.kind.starts_a_call and site.condition is None
        else site
        for site in plan.sites
    ]
    return new


def _sse_location(returns: Value) -> tuple[Piece, ...] | None:
    """Where a value the plan could not read returns, if SSE registers are the reason."""
    rust_type = returns.type
    if not isinstance(returns.location, Unavailable) or rust_type.size > 16:
        return None
    if SSE_WHY not in returns.location.reason:  # e.g. DW_CC_nocall: dropped, not in xmm0
        return None
    if rust_type.float_return:
        return (Piece(XMM0, 0, rust_type.size, memory=False),)
    pair = rust_type.scalars()
    if pair is None or len(pair) != 2:
        return None
    (first, first_type), (second, second_type) = pair
    if "float" not in (first_type.kind, second_type.kind) or first != 0 or second > 8:
        return None
    # System V: each eightbyte takes the next register of its class (SSE or INTEGER).
    sse = iter((XMM0, XMM0 + 1))
    integer = iter((RAX, RDX))
    regs = [next(sse) if t.kind == "float" else next(integer) for t in (first_type, second_type)]
    return (
        Piece(regs[0], 0, second, memory=False),
        Piece(regs[1], 0, min(8, rust_type.size - second), memory=False),
    )
