"""Futures by name: a probe on an `async fn` (or an `async` block's enclosing fn, or a
hand-written `<T as Future>::poll`) gives one Call per future, not per machine-level call.

rustc turns `async fn fetch(..)` into a constructor `fetch` that stores its arguments in a
state value (the coroutine, DWARF type `fetch::{async_fn_env#0}`: a variant part with
`Unresumed`, `Returned`, `Panicked`, `Suspend0`..) and returns it by value, and a poll
function `fetch::{async_fn#0}(Pin<&mut State>, &mut Context) -> Poll<T>`. A run watches
three functions for each such probe: the constructor (the user's probe itself), the poll
function(s) and the state's drop glue (`drop_in_place<fetch::{async_fn_env#0}>`).

A future is keyed by the address of its pinned state, which the poll function receives:
the address is stable from the first poll on (pinning forbids moves), so a future that
migrates between worker threads stays one future. A first poll is recognised by the state's
`Unresumed` discriminant, read at the poll's entry; the arguments come from that variant,
which holds them, so they are known even where the constructor was inlined away. A
constructor call returns the state by value before it is pinned anywhere, so it is matched
to a first poll by arguments: exactly when one outstanding constructor call has equal
arguments, and where several have, the first is taken and the future says its creation is
one of those (`creation_doubt`): the arguments are right either way. The poll's return
(`Poll::Ready(v)` or `Pending`) is read at its `ret` sites; a poll that unwound panicked.
Drops are keyed by the address `drop_in_place` gets in rdi, with the state behind it (its
variant tells a future never polled, one dropped unfinished and one that completed),
readable only where the drop glue runs out of line; a drop inside code it was inlined into
has no address DWARF gives, and futures left unfinished then say that their fate is unknown
rather than guess. See docs/async.md, "How it works".
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import machine_code as code
from .dwarf import index
from .dwarf.closures import closure_aliases
from .dwarf.index import crate_unit_offsets, unit_index
from .dwarf.inlined import _indexed_path as indexed_path
from .dwarf.inlined import inlined_sites
from .dwarf.locations import REGISTER_NAMES, Piece
from .dwarf.types import USIZE, RustType, type_of
from .elf import ElfBinary
from .errors import ProbeNameError
from .names import crate_of, is_glob, matcher
from .plan import RDI, PlannedFunction, ProbePlan, SiteKind, Value, find_sites, resolve
from .plan import _site_values as site_values
from .trace import Call, FunctionTrace, Trace
from .values import Struct, Unavailable, Variant

# How many `{async_block#N}` of one enclosing fn are looked for.
MAX_ASYNC_BLOCKS = 8
STATE_ADDRESS = "__future_state_address"  # the extra value read at a poll's entry
DROPPED_ADDRESS = "to_drop"  # drop_in_place's one argument, read from rdi
DROPPED_STATE = "state"  # the state it points to, as it is when the drop begins
_HAND_WRITTEN = re.compile(r"^<(?P<type>.+) as core::future::future::Future>::poll$")


class FutureOutcomeUnknown(AssertionError):
    """Whether a future completed, or was dropped, cannot be known from what the probes
    saw."""


class FuturesNotProbeable(ProbeNameError):
    """An async fn (or fn returning an async block) whose constructor is not in the binary
    and whose poll bodies exist only as inlined copies no probe can count soundly: nothing
    is left that sees its futures. `.bodies` names the poll bodies, `.why` says why each
    copy is refused."""

    def __init__(self, name: str, binary: Any, style: str, bodies: Sequence[str], why: str) -> None:
        self.bodies = list(bodies)
        self.why = why
        super().__init__(
            name,
            binary,
            f"it is an {style} whose constructor was inlined away (no copy of it in the "
            f"binary or in DWARF), and its poll body ({', '.join(self.bodies)}) exists only "
            f"as inlined copies that cannot be probed soundly ({why}), so no probe can see "
            "its futures: neither their creation nor their polls",
            'build it without those inlinings: cargo_bin(..., profile="dev"); or probe '
            "the out-of-line function that awaits it",
        )


@dataclass(frozen=True)
class PollRecord:
    """One poll of a future: on which thread, when, and what it returned ("ready",
    "pending", "panicked", or why it is not known)."""

    tid: int
    ts_ns: int
    result: str
    return_ts_ns: int | None = None


@dataclass(repr=False)
class FutureCall(Call):
    """One future: created by a constructor call (`created`), polled (`polls`, each with its
    thread), and then completed (`retval` is its output), dropped unfinished, panicked in a
    poll, or still unfinished at the end of the program (`outcome` says which).

    `tid`/`ts_ns` are the constructor call's, or the first poll's when no constructor call
    was seen; `state_address` is where the pinned state lived."""

    polls: list[PollRecord] = field(default_factory=list)
    outcome: str = "not polled"
    created: bool = False  # a constructor call was seen for it
    creation_doubt: str | None = None  # why its creation's thread and time may be another's
    state_address: int | None = None
    drop_tid: int | None = None
    drop_ts_ns: int | None = None  # when the drop began, if it was seen
    # False when some polls of this function could not be attributed to a future (their
    # state's address is unknown): `polls` is then a lower bound.
    polls_complete: bool = True
    # Set when its polls may be another future's too (hand-written futures whose drops
    # cannot be seen): see FutureCall.polls.
    identity_doubt: str | None = None
    _completed: bool | None = False
    _settled: bool = False  # its end is known (or known to be unknown): not to be revised
    _proven: bool = False  # its end read from its own state when dropped: beyond doubt
    _unknown_why: str = ""
    _dropped: bool | None = False  # None: unknown, for the reason in _drop_unknown_why
    _drop_unknown_why: str = ""

    @property
    def completed(self) -> bool:
        """Whether it completed (a poll returned Poll::Ready). Raises FutureOutcomeUnknown
        when the probes cannot tell (a poll inlined into its caller has no return)."""
        __tracebackhide__ = True
        if self._completed is None:
            raise FutureOutcomeUnknown(
                f"whether {self.function} completed is unknown: {self._unknown_why}"
            )
        return self._completed

    @property
    def dropped(self) -> bool:
        """Whether it was dropped. Raises FutureOutcomeUnknown when the probes cannot tell
        (its drop glue inlined where the address dropped is unknown, ...): a confident
        False there would let `assert not fut.dropped` pass on a future the program
        dropped."""
        __tracebackhide__ = True
        if self._dropped is None:
            raise FutureOutcomeUnknown(
                f"whether {self.function} was dropped is unknown: {self._drop_unknown_why}"
            )
        return self._dropped

    @dropped.setter
    def dropped(self, value: bool) -> None:
        self._dropped = value

    def _drop_unknown(self, why: str) -> None:
        self._dropped = None
        self._drop_unknown_why = why

    @property
    def poll_count(self) -> int:
        return len(self.polls)

    @property
    def threads(self) -> list[int]:
        """The threads that polled it, in order of first poll."""
        return list(dict.fromkeys(p.tid for p in self.polls))

    def __repr__(self) -> str:
        args = (
            self.args
            if isinstance(self.args, Unavailable)
            else ", ".join(repr(a) for a in self.args)
        )
        threads = ", ".join(str(t) for t in self.threads) or "-"
        out = f" -> {self.retval!r}" if self._completed else ""
        return (
            f"{self.function}({args}){out}: {self.outcome}; polled {len(self.polls)}x "
            f"[tids {threads}]"
        )


@dataclass
class TrackedFuture:
    """One probe name that means futures, and the functions watched for it."""

    probe: str
    style: str  # "async fn", "async block", "hand-written Future"
    constructor: bool  # the probe itself is a constructor present in the binary
    polls: tuple[str, ...]  # probe names of the poll functions
    drop: str | None = None  # probe name of the state's drop glue
    drop_doubt: str | None = None  # why a drop cannot be attributed (None: it can)
    constructor_missing: str | None = None
    polls_doubt: str | None = None  # why no poll function could be probed (polls == ())
    polls_refused: list[str] = field(default_factory=list)  # poll functions planning refused


@dataclass
class FuturePlan:
    """The probe names a run must plan (the user's, plus those futures need), and what to
    make of their calls afterwards."""

    names: list[str]
    tracked: list[TrackedFuture]
    asked: frozenset[str]
    # Async fns a glob matched (exact name -> the glob): their futures take the place of
    # their constructor and poll calls under the glob, and have a FunctionTrace of their own.
    discovered: dict[str, str] = field(default_factory=dict)

    @property
    def internal(self) -> frozenset[str]:
        return frozenset(self.names) - self.asked - frozenset(self.discovered)

    def give_up(self, name: str, why: str) -> None:
        """Plan without `name` (a poll function or drop glue), which planning refused."""
        if name in self.discovered:
            # An async fn a glob matched, whose constructor planning refuses: left to the
            # glob as plain calls, as before globs picked up futures.
            del self.discovered[name]
            gone = next(t for t in self.tracked if t.probe == name)
            self.tracked.remove(gone)
            needed = {n for t in self.tracked for n in (t.probe, *t.polls, t.drop)}
            for extra in (name, *gone.polls, gone.drop):
                if extra in self.names and extra not in self.asked and extra not in needed:
                    self.names.remove(extra)
            return
        self.names.remove(name)
        for tracked in self.tracked:
            if name in tracked.polls:
                tracked.polls = tuple(p for p in tracked.polls if p != name)
                tracked.polls_refused.append(why)
                if not tracked.polls:
                    tracked.polls_doubt = "; ".join(tracked.polls_refused)
            if name == tracked.drop:
                tracked.drop, tracked.drop_doubt = None, why


def prepare(binary: ElfBinary, probes: Sequence[str]) -> FuturePlan:
    """Which probe names mean futures, and the extra names to plan for them."""
    names: list[str] = []
    tracked: list[TrackedFuture] = []
    discovered: dict[str, str] = {}

    def add(found: TrackedFuture) -> None:
        tracked.append(found)
        extra = [*found.polls, *([found.drop] if found.drop else [])]
        if found.constructor:
            extra.insert(0, found.probe)
        names.extend(n for n in extra if n not in names)

    for probe in probes:
        if is_glob(probe):
            names.append(probe)
            for name in _async_fns_under(binary, probe):
                if name in discovered:
                    continue
                if name in probes:  # tracked for its own name: the glob takes its futures
                    discovered[name] = probe
                    continue
                try:
                    found = _tracked(binary, name)
                except FuturesNotProbeable:
                    continue  # nothing of it runs where a probe sees it: the glob has none
                if found is not None:
                    discovered[name] = probe
                    add(found)
            continue
        found = _tracked(binary, probe)
        if found is None:
            names.append(probe)
            continue
        add(found)
    return FuturePlan(list(dict.fromkeys(names)), tracked, frozenset(probes), discovered)


def _async_fns_under(binary: ElfBinary, glob: str) -> list[str]:
    """The async fns a glob matches (by their own path; their bodies' and blocks' paths
    are left to `_tracked`), out of line or with a body DWARF describes as inlined."""
    if not binary.has_dwarf:
        return []
    matches = matcher(glob)
    parents = set(_closure_parents(binary))
    crate = crate_of(glob)
    if crate is not None:
        parents.update(
            m["parent"] for b in _inlinable_bodies(binary, crate) if (m := _CLOSURE.match(b))
        )
    return sorted(
        p
        for p in parents
        if matches(p) and not _CLOSURE.match(p) and _body_exists(binary, f"{p}::{{async_fn#0}}")
    )


def plan_with_futures(
    binary: ElfBinary, probes: Sequence[str], build: Callable[[list[str]], ProbePlan]
) -> ProbePlan:
    """`build`'s plan for the probes and the names their futures need. A name only futures
    need that planning refuses (no site a probe can count) is left out, and the futures
    say what that costs them; the user's own names fail as they always do."""
    future_plan = prepare(binary, probes)
    while True:
        try:
            plan = build(future_plan.names)
        except ProbeNameError as refused:
            if refused.name in future_plan.asked or (
                refused.name not in future_plan.internal
                and refused.name not in future_plan.discovered
            ):
                raise
            future_plan.give_up(refused.name, str(refused).split("\n", 1)[0])
            continue
        adapt_plan(plan, future_plan)
        plan.futures = future_plan
        return plan


def _exists(binary: ElfBinary, name: str) -> bool:
    """Whether a name means any code, out of line or inlined (without the cost of the
    suggestions a failed resolution computes)."""
    if inlined_sites(binary, name, matcher(name)):
        return True
    try:
        return bool(resolve(binary, name))
    except ProbeNameError:
        return False


def _probeable(binary: ElfBinary, name: str) -> bool:
    """Whether planning the name finds a site it can count: out of line, or an inlined
    copy whose executions can be told apart (a refused name would fail the whole run)."""
    try:
        sites = find_sites(binary, name)
    except ProbeNameError:
        return False
    return bool(sites.out_of_line) or any(c.doubt is None for c in sites.inlined)


def _why_unprobeable(binary: ElfBinary, name: str) -> str:
    try:
        sites = find_sites(binary, name)
    except ProbeNameError as error:
        return str(error).splitlines()[0]
    return "; ".join(f"{name} inlined into {c.describe()}: {c.doubt}" for c in sites.inlined)


def _closure_parents(binary: ElfBinary) -> frozenset[str]:
    """The paths of the functions that have a closure, async fn body or async block
    compiled out of line (legacy `f::{{closure}}`, v0 `f::{closure#0}`), once per binary."""
    memo = binary.memo("futures")
    parents = memo.get("closure_parents")
    if parents is None:
        parents = frozenset(
            m["parent"] for s in binary.functions if (m := _CLOSURE.match(s.path)) is not None
        )
        memo["closure_parents"] = parents
    return parents


_CLOSURE = re.compile(r"^(?P<parent>.+?)(::\{\{closure\}\}|::\{[a-z_]+#\d+\})+$")


def _may_be_async(binary: ElfBinary, probe: str) -> bool:
    """A cheap first look: a closure compiled out of line under the name, or an async body
    under it that DWARF describes as inlined. (Looking each body name up as a probe would
    scan the crate's DWARF once per name: 449 s for 133 names of a tokio binary.)"""
    if probe in _closure_parents(binary):
        return True
    crate = crate_of(probe)
    if crate is None or not binary.has_dwarf:
        return False
    prefix = f"{probe}::{{"
    return any(b.startswith(prefix) for b in _inlinable_bodies(binary, crate))


def _body_exists(binary: ElfBinary, name: str) -> bool:
    """Whether an async fn body or async block of this name exists, out of line or inlined."""
    crate = crate_of(name)
    return _named_function(binary, name) or (
        crate is not None and name in _inlinable_bodies(binary, crate)
    )


def _inlinable_bodies(binary: ElfBinary, crate: str) -> frozenset[str]:
    """The paths of the crate's async fn bodies and async blocks that DWARF describes as
    inlined somewhere (`crate::f::{async_fn#0}`): one pass over the crate's subprograms,
    once per binary and crate."""
    memo = binary.memo("futures")
    key = ("bodies", crate)
    found = memo.get(key)
    if found is None:
        paths: set[str] = set()
        for unit_offset in crate_unit_offsets(binary, crate):
            unit = unit_index(binary, unit_offset)
            for offset, entry in unit.subprograms.items():
                name = entry[4]
                if not entry[2] or not isinstance(name, str) or not name.startswith(_BODIES):
                    continue
                named = indexed_path(unit, offset, crate)
                if named is not None:
                    paths.add(named[0])
        found = memo[key] = frozenset(paths)
    return found


_BODIES = ("{async_fn#", "{async_block#")


def _named_function(binary: ElfBinary, name: str) -> bool:
    """Whether a function symbol has this exact path (DWARF's closure names included)."""
    crate = crate_of(name)
    memo = binary.memo("futures")
    key = ("paths", crate)
    paths = memo.get(key)
    if paths is None:
        aliases = closure_aliases(binary, crate) if crate is not None else {}
        paths = frozenset(s.path for s in binary.functions) | frozenset(aliases.values())
        memo[key] = paths
    return name in paths


def _tracked(binary: ElfBinary, probe: str) -> TrackedFuture | None:
    if is_glob(probe) or not binary.has_dwarf:
        return None
    hand = _HAND_WRITTEN.match(probe)
    if hand is None and not _may_be_async(binary, probe):
        return None
    if hand is not None:
        drop = f"core::ptr::drop_in_place<{hand['type']}>"
        glue = _exists(binary, drop)
        return TrackedFuture(probe, "hand-written Future", False, (probe,),
                             drop if glue else None, None if glue else _NO_GLUE,
                             constructor_missing=_FROM_FIRST_POLL)  # fmt: skip
    style = "async fn"
    bodies = [f"{probe}::{{async_fn#0}}"]
    if not _body_exists(binary, bodies[0]):
        # A fn that returns an async block: the blocks its return type is the state of (a
        # fn that only makes async blocks inside, like `#[tokio::main]`'s, is a plain fn).
        style = "async block"
        returned = _returned_blocks(binary, probe)
        bodies = [f"{probe}::{{async_block#{n}}}" for n in sorted(returned)]
        bodies = [b for b in bodies if _body_exists(binary, b)]
        if not bodies:
            return None
    # Only bodies with code the probes can find (an inlined copy DWARF describes without a
    # run-time entry has none): planning a name with no site would fail the run.
    polls = [b for b in bodies if _probeable(binary, b)]
    polls_doubt = None
    if not polls:
        polls_doubt = "; ".join(_why_unprobeable(binary, b) for b in bodies)
    constructor = _exists(binary, probe)
    if not polls and not constructor:
        # Nothing left to count: saying "no function of that name" would be wrong, since
        # DWARF records the body's inlined copies.
        raise FuturesNotProbeable(probe, binary.path, style, bodies, polls_doubt or "")
    missing: str | None = None
    if not constructor:
        missing = (
            f"{probe} itself is not in the binary (inlined without a trace in DWARF, or "
            "merged with an identical function): futures are seen from their first poll, "
            "so any created and never polled are not counted"
        )
    glue_name, doubt = _drop_glue(binary, probe, style)
    return TrackedFuture(
        probe, style, constructor, tuple(polls), glue_name, doubt, missing, polls_doubt
    )


_BLOCK_ENV = re.compile(r"\{async_block_env#(\d+)\}$")


def _returned_blocks(binary: ElfBinary, probe: str) -> set[int]:
    """The numbers of the async blocks whose state the function returns, from the return
    type DWARF gives its out-of-line instances and inlined copies."""
    try:
        sites = find_sites(binary, probe)
    except ProbeNameError:
        return set()
    dies = [c.origin for c in sites.inlined]
    dies += [_function_die(binary, s.address, "DW_AT_type") for s in sites.out_of_line]
    numbers: set[int] = set()
    for die in dies:
        holder = None if die is None else index.origin_holder(die, "DW_AT_type")
        if holder is None:
            continue
        returned = holder.get_DIE_from_attribute("DW_AT_type")
        name = returned.attributes.get("DW_AT_name")
        text = getattr(name, "value", b"")
        found = _BLOCK_ENV.search(text.decode(errors="replace") if isinstance(text, bytes) else "")
        if found is not None:
            numbers.add(int(found[1]))
    return numbers


_POLL_UNKNOWN = "a poll's result is unknown"

_FROM_FIRST_POLL = (
    "a hand-written Future has no constructor to probe: its futures are seen from their "
    "first poll, so any created and never polled are not counted"
)

_NO_GLUE = (
    "its type has no drop glue (nothing in it needs dropping), so a drop leaves no trace to probe"
)


def _drop_glue(binary: ElfBinary, probe: str, style: str) -> tuple[str | None, str | None]:
    """The drop glue of the probe's state type, when one probe name means it alone."""
    env = "async_fn_env" if style == "async fn" else "async_block_env"
    name = f"core::ptr::drop_in_place<{probe}::{{{{closure}}}}>"  # legacy mangling's spelling
    try:
        sites = find_sites(binary, name)
    except ProbeNameError:
        return None, _NO_GLUE
    # Legacy mangling calls every closure of `probe` `{{closure}}`: the name means the state
    # type alone only when DWARF names each copy `drop_in_place<probe::{async_fn_env#N}>`.
    wanted = re.compile(rf"^drop_in_place<{re.escape(probe)}::\{{{env}#\d+\}}>$")
    dies = [c.origin for c in sites.inlined]
    for symbol in sites.out_of_line:
        info = _function_die(binary, symbol.address)
        dies.append(info)
    for die in dies:
        attribute = None if die is None else die.attributes.get("DW_AT_name")
        text = getattr(attribute, "value", b"")
        text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
        if not wanted.match(text):
            return None, (
                f"{name} also names the drop glue of other closures of {probe} (legacy "
                "symbol mangling spells them alike), so a drop cannot be told to be of "
                "this future"
            )
    return name, None


def _function_die(binary: ElfBinary, address: int, attribute: str = "DW_AT_name") -> Any:
    info = index.function_at(binary, address)
    return None if info is None else index.origin_holder(info.die, attribute)


def adapt_plan(plan: ProbePlan, futures: FuturePlan) -> None:
    """Make the plan read what futures need: each poll function's state address (the
    pointer its first parameter holds, as a number), and each out-of-line drop glue's
    argument (rdi at its first instruction: DWARF gives drop glue no parameter). Idempotent:
    plans are memoized on their binary."""
    polls = {n for t in futures.tracked for n in t.polls}
    drops = {t.drop for t in futures.tracked if t.drop}
    only_entries: set[int] = set()
    for number, function in enumerate(plan.functions):
        names = set(function.probes)
        if names & polls:
            _read_state_address(function)
        if names & drops and function.inlined is None:
            _read_dropped_address(plan, number, function)
            if not names & futures.asked:
                only_entries.add(number)
        elif names & drops and not names & futures.asked:
            _read_inlined_dropped_address(plan, number, function)
    # Drop glue nobody asked for is watched for its entry alone: its returns would cost a
    # trap each and give nothing (and a ret too short for the in-process engine's patch
    # would refuse the whole run over a helper).
    plan.sites[:] = [
        site
        for site in plan.sites
        if site.function not in only_entries or site.kind is SiteKind.ENTRY
    ]


def _read_state_address(function: PlannedFunction) -> None:
    if not function.params or any(v.name == STATE_ADDRESS for v in function.params):
        return
    first = function.params[0]
    if first.type.size != 8:
        return
    function.params = (*function.params, dataclasses.replace(first, name=STATE_ADDRESS,
                                                              type=USIZE))  # fmt: skip


def _read_dropped_address(plan: ProbePlan, number: int, function: PlannedFunction) -> None:
    """drop_in_place's argument (rdi at its first instruction), and the state behind it:
    its variant tells a completed future (Returned) from one never polled (Unresumed) or
    dropped unfinished (SuspendN)."""
    if function.params or not function.arguments_known:
        return
    for i, site in enumerate(plan.sites):
        if site.function != number or site.kind is not SiteKind.ENTRY:
            continue
        if site.address != function.symbol.address:
            return  # not at the first instruction: rdi may hold something else by then
        if site.pieces and site.return_address_word != 0:
            return
        # The return address words (plan._read_return_addresses) name a copy as a call's
        # caller; an internal drop glue is nobody's caller and gives them up.
        site = dataclasses.replace(site, pieces=(), return_address_word=None)
        rdi = (Piece(RDI, 0, 8, memory=False),)
        state = _dropped_type(plan.binary, function.symbol.address)
        if state is None:
            plan.sites[i] = dataclasses.replace(site, pieces=rdi)
            function.params = (Value(DROPPED_ADDRESS, USIZE, rdi, 0, (0,)),)
            return
        pointer = RustType(f"*mut {state.name}", "pointer", 8, target_die=state.die)
        values, pieces, derefs = site_values([(DROPPED_STATE, pointer, rdi)], plan.caps)
        plan.sites[i] = dataclasses.replace(site, pieces=pieces, derefs=derefs)
        address = dataclasses.replace(values[0], name=DROPPED_ADDRESS, type=USIZE)
        function.params = (values[0], address)
        return


def _read_inlined_dropped_address(plan: ProbePlan, number: int, function: PlannedFunction) -> None:
    """The address an inlined copy of the state's drop glue drops, where its first
    instruction loads the state's discriminant to decide what to drop (`movzx ecx, byte
    ptr [r14 + 0x48]`): the base register holds the state's address there. DWARF gives
    drop glue no parameter, so this is the only witness; a copy that begins otherwise
    keeps its drops unattributed."""
    copy = function.inlined
    if copy is None or function.params or copy.origin is None:
        return
    state = _template_type(copy.origin)
    if state is None:
        return
    rust_type = type_of(state.die)
    if rust_type.discr is None:
        return
    discr = rust_type.discr
    for i, site in enumerate(plan.sites):
        if site.function != number or site.kind is not SiteKind.INLINED or site.pieces:
            continue
        raw = plan.binary.code(site.address, 16)
        base = None if raw is None else code.loaded_base(raw, site.address)
        if base is None or base.disp != discr.offset or base.size != discr.type.size:
            return
        if base.base not in REGISTER_NAMES[:16] or base.base == "rsp":
            return
        register = (Piece(REGISTER_NAMES.index(base.base), 0, 8, memory=False),)
        pointer = RustType(f"*mut {state.name}", "pointer", 8, target_die=state.die)
        values, pieces, derefs = site_values([(DROPPED_STATE, pointer, register)], plan.caps)
        plan.sites[i] = dataclasses.replace(site, pieces=pieces, derefs=derefs)
        address = dataclasses.replace(values[0], name=DROPPED_ADDRESS, type=USIZE)
        function.params = (values[0], address)
        return


def _template_type(holder: Any) -> _StateType | None:
    for child in holder.iter_children():
        if child.tag.startswith("DW_TAG_template_type_param") and "DW_AT_type" in child.attributes:
            die = child.get_DIE_from_attribute("DW_AT_type")
            name = die.attributes.get("DW_AT_name")
            text = getattr(name, "value", b"")
            text = text.decode(errors="replace") if isinstance(text, bytes) else "?"
            return _StateType(text, die)
    return None


@dataclass(frozen=True)
class _StateType:
    name: str
    die: Any


def _dropped_type(binary: ElfBinary, address: int) -> _StateType | None:
    """The type drop glue drops (its template parameter T), from DWARF."""
    holder = _function_die(binary, address)
    return None if holder is None else _template_type(holder)


def apply(trace: Trace, plan: ProbePlan, futures: FuturePlan, counts: Mapping[str, int]) -> None:
    """Replace each tracked probe's FunctionTrace by one of futures, and leave the names
    only futures needed out of the trace."""
    internal = futures.internal
    replaced: dict[int, FutureCall] = {}
    for tracked in futures.tracked:
        old = trace.functions.get(tracked.probe)
        # Grouped by reason: "2 poll sites left out (in f, g): why".
        by_reason: dict[str, list[str]] = {}
        for name in tracked.polls:
            for site in plan.coverage_of(name).left_out:
                by_reason.setdefault(site.why, []).append(site.where)
        polls_left_out = [
            f"{len(where)} poll site{'s' * (len(where) > 1)} left out ({'; '.join(where)}): {why}"
            for why, where in by_reason.items()
        ]
        result = _assemble(trace, tracked, counts, polls_left_out)
        for future, ctor in result.created_by:
            replaced[id(ctor)] = future
        trace.functions[tracked.probe] = FunctionTrace(
            tracked.probe,
            result.futures,
            call_count=len(result.futures) + result.unrecorded,
            lost_events=trace.lost_events,
            arguments_known=True,
            lost_events_policy=trace.lost_events_policy,
            left_out=result.left_out + (list(old.left_out) if old is not None else []),
            shares_address_with=old.shares_address_with if old is not None else (),
        )
    for name in internal:
        trace.functions.pop(name, None)
    absorbed = _absorb_into_globs(trace, futures, replaced)

    globs = frozenset(futures.discovered.values())

    def hidden(probes: Sequence[str]) -> bool:
        # Watched only for futures, or by a glob whose futures took the call in.
        return all(p in internal or p in absorbed for p in probes) or (
            any(p in absorbed for p in probes)
            and all(p in internal or p in absorbed or p in globs for p in probes)
        )

    calls: list[Call] = []
    shown: set[int] = set()
    for call in trace.calls:
        _hide_state_address(call)
        # Calls of functions only futures watch are nobody's caller: the nearest traced
        # caller is the one below them (an internal drop glue's frame also has no return).
        while (
            call.caller is not None
            and hidden(call.caller.probes)
            and id(call.caller) not in replaced
        ):
            call.caller = call.caller.caller
            call.depth = max(0, call.depth - 1)
        if hidden(call.probes) and id(call) not in replaced:
            continue
        if id(call) in replaced:
            future = replaced[id(call)]
            shown.add(id(future))
            calls.append(future)
        else:
            calls.append(call)
    for tracked in futures.tracked:
        for item in trace.functions[tracked.probe].calls:
            if id(item) not in shown:
                calls.append(item)
    calls.sort(key=lambda c: c.ts_ns)
    trace.calls = calls


def _absorb_into_globs(
    trace: Trace, futures: FuturePlan, replaced: Mapping[int, FutureCall]
) -> frozenset[str]:
    """Under a glob, the futures of each async fn it matched take the place of their
    constructor calls, and their polls and drops are no calls of their own. Returns the
    names whose calls were absorbed: their calls under a glob only are not shown."""
    names: set[str] = set()
    for glob in set(futures.discovered.values()):
        old = trace.functions.get(glob)
        if old is None:
            continue
        mine = [t for t in futures.tracked if futures.discovered.get(t.probe) == glob]
        watched = {n for t in mine for n in (t.probe, *t.polls, t.drop) if n is not None}
        names |= watched
        kept: list[Call] = []
        removed = 0
        for call in old.calls:
            if id(call) in replaced:
                kept.append(replaced[id(call)])  # a constructor call: its future
            elif any(p in watched for p in call.probes):
                removed += 1  # a poll or a drop: part of a future
            else:
                kept.append(call)
        added = [
            f
            for t in mine
            for f in trace.functions[t.probe].calls
            if isinstance(f, FutureCall) and not f.created
        ]
        kept.extend(added)
        kept.sort(key=lambda c: c.ts_ns)
        left_out = list(old.left_out)
        for t in mine:
            left_out.extend(w for w in trace.functions[t.probe].left_out if w not in left_out)
        trace.functions[glob] = FunctionTrace(
            glob,
            kept,
            call_count=int(old.call_count) - removed + len(added),
            lost_events=trace.lost_events,
            arguments_known=old.arguments_known,
            lost_events_policy=trace.lost_events_policy,
            left_out=left_out,
            shares_address_with=old.shares_address_with,
            unseen=old.unseen,
            merged_away=old.merged_away,
        )
    return frozenset(names - futures.asked)


def _hide_state_address(call: Call) -> None:
    """The extra value read for futures is no argument of the poll function."""
    if isinstance(call.kwargs, dict) and STATE_ADDRESS in call.kwargs:
        del call.kwargs[STATE_ADDRESS]
        if isinstance(call.args, tuple):
            call.args = call.args[:-1]


@dataclass
class Assembled:
    """Futures made from one probe's calls, and what could not be attributed."""

    futures: list[FutureCall]
    created_by: list[tuple[FutureCall, Call]]
    left_out: list[str]
    unrecorded: int  # constructor calls the kernel counted whose events were lost
    unattributed_polls: int = 0
    unattributed_drops: int = 0


@dataclass
class _Event:
    ts: int
    kind: str  # "create", "poll", "drop"
    call: Call
    address: Any = None


def _assemble(
    trace: Trace,
    tracked: TrackedFuture,
    counts: Mapping[str, int],
    polls_left_out: Sequence[str] = (),
) -> Assembled:
    def calls_of(names: Sequence[str]) -> list[Call]:
        return [c for c in trace.calls if any(n in c.probes for n in names)]

    events: list[_Event] = []
    constructors = calls_of([tracked.probe]) if tracked.constructor else []
    constructors = [c for c in constructors if not any(n in c.probes for n in tracked.polls)]
    for call in constructors:
        events.append(_Event(call.ts_ns, "create", call))
    poll_address_unknown: set[str] = set()
    for call in calls_of(tracked.polls):
        address = call.kwargs.get(STATE_ADDRESS) if isinstance(call.kwargs, dict) else None
        if not isinstance(address, int):
            poll_address_unknown.add(call.inlined_into or call.path)
        events.append(_Event(call.ts_ns, "poll", call, address))
    drop_address_unknown: set[str] = set()
    if tracked.drop:
        for call in calls_of([tracked.drop]):
            address = call.kwargs.get(DROPPED_ADDRESS) if isinstance(call.kwargs, dict) else None
            if not isinstance(address, int):
                drop_address_unknown.add(call.inlined_into or call.path)
            events.append(_Event(call.ts_ns, "drop", call, address))
    kinds = {"create": 0, "poll": 1, "drop": 2}
    events.sort(key=lambda e: (e.ts, kinds[e.kind]))

    futures: list[FutureCall] = []
    created_by: list[tuple[FutureCall, Call]] = []
    unpolled: list[FutureCall] = []
    ctor_of: dict[int, Call] = {}
    live: dict[int, FutureCall] = {}
    finished: dict[int, FutureCall] = {}  # completed or panicked, not yet seen dropped
    unattributed_polls = 0
    unattributed_drops = 0
    unpolled_drops: list[tuple[_Event, list[FutureCall]]] = []
    hand_written = tracked.style == "hand-written Future"
    for event in events:
        call = event.call
        if event.kind == "create":
            future = _future(tracked, call, created=True)
            futures.append(future)
            unpolled.append(future)
            ctor_of[id(future)] = call
            created_by.append((future, call))
            continue
        if event.kind == "drop":
            address = event.address
            if not isinstance(address, int):
                unattributed_drops += 1
                continue
            kwargs = call.kwargs if isinstance(call.kwargs, dict) else {}
            dropped_state = kwargs.get(DROPPED_STATE)
            variant = dropped_state.name if isinstance(dropped_state, Variant) else None
            candidates = [f for f in unpolled if f.ts_ns <= call.ts_ns]
            if variant == "Unresumed" and isinstance(dropped_state, Variant):
                # Never polled: which one, its arguments tell.
                _drop_never_polled(tracked, call, dropped_state, candidates, unpolled, futures)
                continue
            if variant is not None:  # polled: the future pinned there, if it was seen
                seen = live.pop(address, None) or finished.pop(address, None)
                if seen is None:
                    unattributed_drops += 1  # polled where no probe could give it a future
                    drop_address_unknown.add(f"a future at {address:#x} not seen polled")
                else:
                    _drop_polled(seen, call, variant)
                continue
            if address in finished:
                # The completed future there, whose drop was not seen yet, or a future never
                # polled whose state was moved into its freed memory: which, no probe tells.
                if candidates:
                    unpolled_drops.append((event, [*candidates, finished[address]]))
                else:
                    finished.pop(address).dropped = True
                continue
            gone = live.pop(address, None)
            if gone is not None:
                _drop_polled(gone, call, None)
                continue
            # Not pinned yet: one of the futures created and never polled.
            unpolled_drops.append((event, candidates))
            if len(candidates) == 1:
                _drop_unpolled(candidates[0], call)
                unpolled.remove(candidates[0])
            continue
        # A poll.
        address = event.address
        if not isinstance(address, int):
            unattributed_polls += 1
            continue
        state = _state(call)
        known = live.get(address)
        starts = known is None if hand_written or state is None else state == "Unresumed"
        if starts:
            finished.pop(address, None)
            if known is not None:
                _reused(known)
            future = _first_poll(tracked, call, state, unpolled, futures, created_by, hand_written)
            future.state_address = address
            live[address] = future
        elif known is None:
            future = _future(tracked, call, created=False)
            future.args = future.kwargs = Unavailable(
                "its first poll was not seen (polled where its state address is unknown?)"
            )
            future.state_address = address
            futures.append(future)
            live[address] = future
        else:
            future = known
        if state is not None and future.polls:
            _previous_poll_from_state(future, state)
        _record_poll(future, call)
        if future._completed or future.unwound:
            live.pop(address, None)
            finished[address] = future
    left_out: list[str] = []
    if tracked.constructor_missing:
        left_out.append(tracked.constructor_missing)
    unseen: list[str] = []  # why some polls of this function were not seen or not given
    if unattributed_polls:
        where = ", ".join(sorted(poll_address_unknown))
        unseen.append(f"{unattributed_polls} polls ran where the state's address is unknown "
                      f"(in {where})")  # fmt: skip
    if not tracked.polls:
        unseen.append(
            "its body's polls run only in copies inlined where no probe can count them "
            f"({tracked.polls_doubt or 'no code of the body was found'})"
        )
    unseen.extend(polls_left_out)
    if tracked.polls:
        unseen.extend(tracked.polls_refused)
    if unseen:
        why = "; ".join(unseen)
        if not tracked.constructor:  # futures are then seen from their first poll only
            left_out.append(f"{why}: the futures they polled may be missing")
        for future in futures:
            future.polls_complete = False
            if future._proven:
                future.outcome += f" ({why}: its polls are a lower bound)"
            elif future._completed is not True and not future.unwound:
                future._completed = None
                future._unknown_why = f"{why}: its polls are a lower bound"
                future.outcome = f"unknown: {future._unknown_why}"
                future.retval = Unavailable(future._unknown_why)
    _settle(futures, tracked, unattributed_drops, drop_address_unknown, unpolled_drops)
    if hand_written and (tracked.drop is None or unattributed_drops):
        # No state tells a first poll: a value abandoned unfinished whose memory then held a
        # new one would read as one future, and without its drops nothing shows it.
        for future in futures:
            if len(future.polls) > 1 and future._dropped is not True:
                future.identity_doubt = (
                    "its polls may include those of a later future at the same address (a "
                    "hand-written future abandoned unfinished, then its memory reused): "
                    + (tracked.drop_doubt or "its drops are not all seen")
                )
    for future in futures:
        if future._completed is not True and not future.unwound:
            future.ended = future.outcome  # what a log line says after "did not return"
    recorded = len(constructors)
    unrecorded = (
        max(0, counts.get(tracked.probe, recorded) - recorded) if tracked.constructor else 0
    )
    return Assembled(futures, created_by, left_out, unrecorded, unattributed_polls,
                     unattributed_drops)  # fmt: skip


def _future(tracked: TrackedFuture, call: Call, *, created: bool) -> FutureCall:
    return FutureCall(
        function=tracked.probe,
        path=call.path if created else tracked.probe,
        args=call.args,
        kwargs=call.kwargs if not isinstance(call.kwargs, dict) else dict(call.kwargs),
        tid=call.tid,
        ts_ns=call.ts_ns,
        retval=Unavailable("never completed"),
        probes=(tracked.probe,),
        inlined=call.inlined if created else False,
        inlined_into=call.inlined_into if created else None,
        caller=call.caller if created else None,
        depth=call.depth if created else 0,
        created=created,
    )


def _state(call: Call) -> str | None:
    """The state's variant name at a poll's entry (Unresumed, SuspendN, ...), if read."""
    pointee = _pointee(call)
    return pointee.name if isinstance(pointee, Variant) else None


def _pointee(call: Call) -> Any:
    if not isinstance(call.args, tuple) or not call.args:
        return None
    pinned = call.args[0]  # Pin<&mut State> decodes as the state (stdtypes: "pin")
    return None if isinstance(pinned, Unavailable) else pinned


def _state_arguments(
    call: Call, hand_written: bool
) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    pointee = _pointee(call)
    if hand_written:
        return None if pointee is None else ((pointee,), {"self": pointee})
    if not isinstance(pointee, Variant) or pointee.name != "Unresumed":
        return None
    value = pointee.value
    if not isinstance(value, Struct):
        return (), {}
    kwargs = value.fields
    return tuple(kwargs.values()), kwargs


def _first_poll(
    tracked: TrackedFuture,
    call: Call,
    state: str | None,
    unpolled: list[FutureCall],
    futures: list[FutureCall],
    created_by: list[tuple[FutureCall, Call]],
    hand_written: bool,
) -> FutureCall:
    """The future a first poll starts: the constructor call it came from when that can be
    told, else a future whose creation was not seen (arguments from its state)."""
    from_state = _state_arguments(call, hand_written)
    candidates = [f for f in unpolled if f.ts_ns <= call.ts_ns]
    chosen: FutureCall | None = None
    doubt: str | None = None
    if from_state is not None and candidates:
        args, kwargs = from_state
        equal = [f for f in candidates if _same_arguments(f, kwargs)]
        if equal:
            chosen = equal[0]
            if len(equal) > 1:
                doubt = (
                    f"one of {len(equal)} constructor calls with equal arguments (which one "
                    "is not known: the state moves before it is pinned)"
                )
                for other in equal[1:]:  # whichever first poll takes them: as uncertain
                    other.creation_doubt = doubt
    elif len(candidates) == 1:
        chosen = candidates[0]
    if chosen is not None:
        unpolled.remove(chosen)
        if doubt is not None:
            chosen.creation_doubt = doubt
        if from_state is not None:
            _fill_from_state(chosen, from_state)
        return chosen
    future = _future(tracked, call, created=False)
    if from_state is not None:
        future.args, future.kwargs = from_state
    else:
        future.args = future.kwargs = Unavailable("its state was not readable at its first poll")
    if candidates and from_state is None:
        future.creation_doubt = (
            f"created by one of {len(candidates)} constructor calls not yet polled, which "
            "one is not known"
        )
    if tracked.constructor and not candidates:
        future.creation_doubt = "no constructor call was seen for it"
    elif tracked.constructor and from_state is not None:
        future.creation_doubt = "no constructor call with its arguments was seen for it"
    futures.append(future)
    return future


def _fill_from_state(future: FutureCall, state: tuple[tuple[Any, ...], dict[str, Any]]) -> None:
    """Arguments the constructor's DWARF could not locate, taken from the state that holds
    them (by name); all of them when the constructor's parameter list is unknown."""
    args, kwargs = state
    if not isinstance(future.kwargs, dict) or not isinstance(future.args, tuple):
        future.args, future.kwargs = args, dict(kwargs)
        return
    names = list(future.kwargs)
    for name in names:
        if isinstance(future.kwargs[name], Unavailable) and name in kwargs:
            future.kwargs[name] = kwargs[name]
    future.args = tuple(future.kwargs[n] for n in names)


def _same_arguments(future: FutureCall, state: Mapping[str, Any]) -> bool:
    """Whether a constructor call's arguments are those stored in a state: by name, each
    known on both sides equal (an argument unread on one side proves nothing)."""
    if not isinstance(future.kwargs, dict):
        return True
    for name, value in future.kwargs.items():
        if name not in state:
            continue
        stored = state[name]
        if isinstance(value, Unavailable) or isinstance(stored, Unavailable):
            continue
        if value != stored:
            return False
    return True


def _record_poll(future: FutureCall, call: Call) -> None:
    result = "pending"
    retval = call.retval
    if call.unwound:
        result = "panicked"
        future.unwound = True
        future._completed = False
        future.outcome = f"panicked in its poll #{len(future.polls) + 1}"
        future.retval = Unavailable(f"it {future.outcome}")
    elif isinstance(retval, Variant) and retval.name == "Ready":
        result = "ready"
        future._completed = True
        future.returned = True
        future.retval = retval.value if retval.value is not None else None
        future.return_ts_ns = call.return_ts_ns
        future.outcome = "completed after " + (
            "1 poll" if not future.polls else f"{len(future.polls) + 1} polls"
        )
    elif isinstance(retval, Variant) and retval.name == "Pending":
        future.outcome = "pending"
    elif isinstance(retval, Unavailable):
        result = f"unknown: {retval.reason}"
        future._completed = None
        future._unknown_why = f"{_POLL_UNKNOWN} ({retval.reason})"
        future.outcome = f"unknown: {future._unknown_why}"
        future.retval = retval
    elif not call.returned:
        result = f"did not return: {call.ended}"
        future._completed = None
        future._unknown_why = f"its last poll did not return ({call.ended})"
        future.outcome = f"unknown: {future._unknown_why}"
        future.retval = Unavailable(future._unknown_why)
    future.polls.append(PollRecord(call.tid, call.ts_ns, result, call.return_ts_ns))


def _previous_poll_from_state(future: FutureCall, state: str) -> None:
    """A poll whose return no probe saw is told by the next poll's state: SuspendN means it
    returned Pending."""
    last = future.polls[-1]
    if not last.result.startswith("unknown") or not state.startswith("Suspend"):
        return
    future.polls[-1] = dataclasses.replace(last, result="pending")
    if future._unknown_why.startswith(_POLL_UNKNOWN) and not any(
        p.result.startswith("unknown") for p in future.polls
    ):
        future._completed = False
        future._unknown_why = ""
        future.outcome = "pending"
        future.retval = Unavailable("never completed")


def _polls(future: FutureCall) -> str:
    n = len(future.polls)
    return "1 poll" if n == 1 else f"{n} polls"


def _unfinished(future: FutureCall) -> str:
    return f"unfinished after {_polls(future)}" if future.polls else "never polled"


def _reused(future: FutureCall) -> None:
    future._completed = False
    future._settled = True
    future.outcome = (
        f"unfinished after {_polls(future)}, then its memory held a new future: it was "
        "dropped (or forgotten) where no probe saw"
    )
    future._drop_unknown("its memory held a new future: it was dropped or forgotten unseen")
    future.retval = Unavailable(future.outcome)


def _drop_polled(future: FutureCall, call: Call, variant: str | None) -> None:
    """A drop of a future seen polled; `variant`: its state's variant then, if read."""
    future.dropped = True
    future.drop_tid = call.tid
    future.drop_ts_ns = call.ts_ns
    future._settled = True
    future._proven = variant is not None
    if future._completed is True or future.unwound:
        return  # dropped after it completed or panicked: nothing more to say
    if variant == "Returned":  # completed by a poll whose return no probe saw
        future._completed = True
        future.outcome = (
            f"completed after {_polls(future)} (its state said so when dropped; the poll "
            "that returned its output was not seen returning)"
        )
        future.retval = Unavailable(future.outcome)
        return
    if variant == "Panicked":
        future.unwound = True
        future._completed = False
        future.outcome = f"panicked in a poll (its state said so when dropped), {_polls(future)}"
        future.retval = Unavailable(future.outcome)
        return
    if variant is not None or future._completed is False:  # SuspendN: it never finished
        future._completed = False
        future.outcome = f"dropped unfinished after {_polls(future)}"
        future.retval = Unavailable(f"dropped before completing ({future.outcome})")
        return
    # Its last poll's result is unknown and its state at the drop was not read.
    future.outcome = f"dropped after {_polls(future)}; completed or not is unknown: " + (
        future._unknown_why
    )


def _drop_never_polled(
    tracked: TrackedFuture,
    call: Call,
    state: Variant,
    candidates: list[FutureCall],
    unpolled: list[FutureCall],
    futures: list[FutureCall],
) -> None:
    """A drop whose state is Unresumed: a future never polled, matched by its arguments."""
    kwargs = state.value.fields if isinstance(state.value, Struct) else {}
    equal = [f for f in candidates if _same_arguments(f, kwargs)]
    if equal:
        chosen = equal[0]
        if len(equal) > 1:
            doubt = f"one of {len(equal)} constructor calls with equal arguments, all never polled"
            for f in equal:
                f.creation_doubt = doubt
        unpolled.remove(chosen)
        _drop_unpolled(chosen, call)
        chosen._proven = True
        return
    future = _future(tracked, call, created=False)
    future.args, future.kwargs = tuple(kwargs.values()), dict(kwargs)
    future.creation_doubt = "no constructor call with its arguments was seen for it"
    futures.append(future)
    _drop_unpolled(future, call)
    future._proven = True


def _drop_unpolled(future: FutureCall, call: Call) -> None:
    future._settled = True
    future.dropped = True
    future.drop_tid = call.tid
    future.drop_ts_ns = call.ts_ns
    future._completed = False
    future.outcome = "dropped without being polled"
    future.retval = Unavailable(future.outcome)


def _drop_unseen(
    tracked: TrackedFuture, unattributed_drops: int, drop_address_unknown: set[str]
) -> str:
    """Why a future not seen dropped may have been dropped all the same."""
    if unattributed_drops:
        return (
            f"{unattributed_drops} drops of this future type ran where the address dropped "
            f"is unknown (drop glue inlined into {', '.join(sorted(drop_address_unknown))})"
        )
    return tracked.drop_doubt or _NO_GLUE


def _settle(
    futures: list[FutureCall],
    tracked: TrackedFuture,
    unattributed_drops: int,
    drop_address_unknown: set[str],
    unpolled_drops: list[tuple[_Event, list[FutureCall]]],
) -> None:
    """What became of the futures still open when the program ended."""
    ambiguous = {id(f) for _, candidates in unpolled_drops if len(candidates) > 1
                 for f in candidates}  # fmt: skip
    for future in futures:
        if (future._completed is True or future.unwound) and future._dropped is False:
            if unattributed_drops or tracked.drop is None:  # its drop may be one not seen
                future._drop_unknown(_drop_unseen(tracked, unattributed_drops,
                                                  drop_address_unknown))  # fmt: skip
            continue
        if future._completed is True or future.unwound or future._dropped or future._settled:
            continue
        if future._completed is None:  # already unknown, and says why
            if unattributed_drops or tracked.drop is None:
                future._drop_unknown(_drop_unseen(tracked, unattributed_drops,
                                                  drop_address_unknown))  # fmt: skip
            continue
        if id(future) in ambiguous:
            future._completed = False
            why = "a drop ran while several unpolled futures of this function existed"
            future.outcome = f"never polled; dropped or not is unknown: {why}"
            future._drop_unknown(why)
        elif unattributed_drops:
            future._completed = False
            why = _drop_unseen(tracked, unattributed_drops, drop_address_unknown)
            future.outcome = f"{_unfinished(future)}; dropped or not is unknown: {why}"
            future._drop_unknown(why)
        elif tracked.drop is None:
            future._completed = False
            why = _drop_unseen(tracked, unattributed_drops, drop_address_unknown)
            future.outcome = (
                f"{_unfinished(future)} when the program ended; dropped or not is unknown: {why}"
            )
            future._drop_unknown(why)
        else:
            future._completed = False
            future.outcome = f"{_unfinished(future)} when the program ended, never dropped"
        future.retval = Unavailable(future.outcome)
