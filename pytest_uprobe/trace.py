"""What a traced run saw, and unittest.mock-style assertions over it.

Failure messages follow unittest.mock's wording, then list every call seen, so a failed
test explains itself from its report alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

from .bounds import CallCount, InexactCount
from .errors import UsageError
from .lazylist import LazyList
from .options import CHILDREN, LOST_EVENTS, LostEvents
from .values import Struct, Truncated, Unavailable, Variant

if TYPE_CHECKING:
    from .launch import Finished
    from .plan import ProbePlan

MAX_LISTED_CALLS = 50


@dataclass
class Call:
    """One call of a probed function.

    A call is one call however many probe names name its function (`crate::*` beside
    `crate::f`): `probes` lists every one of them, and each name's FunctionTrace holds it.
    `function` is the first of them in the order the probes were given to `run`."""

    function: str  # the first probe name that names it (see `probes`)
    path: str  # the demangled path of the instance that ran
    # Unavailable(why) instead of a tuple/dict when the parameter list itself is unknown
    # (no debug info, or names and lines only): never () for "unknown".
    args: tuple[Any, ...] | Unavailable
    kwargs: dict[str, Any] | Unavailable
    tid: int
    ts_ns: int  # kernel monotonic time at entry
    retval: Any = None  # None also for a call that did not return: see `returned`
    returned: bool = False
    unwound: bool = False  # proven gone without returning: a panic unwound it
    # Did not return, and why, when the process ended with it running: "the process
    # exited in it" (std::process::exit, abort), "... was killed while it ran", ...
    ended: str | None = None
    probes: tuple[str, ...] = ()  # every probe name it answers to; () means (function,)
    tail_call: bool = False
    inlined: bool = False
    return_ts_ns: int | None = None
    inlined_into: str | None = None  # for an inlined copy: "caller (file:line)"
    # A source-line or USDT hit (not a call): where it was ("main.rs:33 in crate::f"), and
    # for a line the variables in scope there by name (also its kwargs).
    at: str | None = None
    locals: dict[str, Any] | Unavailable = field(default_factory=dict)
    # The nearest traced caller on the same thread (from entry/return nesting; None if no
    # traced function was running there), and how many traced frames were below this one.
    caller: Call | None = field(default=None, repr=False, compare=False)
    depth: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if not self.probes:
            self.probes = (self.function,)

    @property
    def duration_ns(self) -> int | None:
        return None if self.return_ts_ns is None else self.return_ts_ns - self.ts_ns

    def answers_to(self, name: str) -> bool:
        """Whether `name` (a probe name, or the instance's demangled path) means this call."""
        return name in self.probes or name == self.path

    def __repr__(self) -> str:
        if self.at is not None:
            return f"{describe(self)} at {self.at} [tid {self.tid}]"
        inlined = f" (inlined into {self.inlined_into})" if self.inlined else ""
        return f"{describe(self)}{inlined} [tid {self.tid}]"


def _no_return(call: Call) -> str:
    if call.unwound:
        return " (unwound, no return)"
    if call.ended:
        return f" (did not return: {call.ended})"
    return " (did not return)"


class LostEventsError(AssertionError):
    """Events with arguments or return values were lost, so a list of calls is incomplete."""


class LostEventsWarning(UserWarning):
    """Events were lost and the lost-event policy is `warn`: assertions use partial data."""

    def __init__(self, lost: int, argv: Sequence[str]) -> None:
        super().__init__(
            f"{lost} events with arguments or return values were lost while tracing "
            f"{' '.join(argv)}; assertions on calls use the ones recorded "
            "(uprobe_lost_events = warn)"
        )


def _expected_call(expected: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(args, kwargs) of one expected call: a unittest.mock.call object (named calls such as
    `call.method(...)` refused: a function trace has no methods) or a plain argument tuple."""
    if isinstance(expected, mock._Call):
        if len(expected) == 3:
            name, args, kwargs = expected
        else:
            name, (args, kwargs) = "", expected
        if name:
            raise UsageError(
                f"assert_has_calls got {expected!r}: a call of the method {name!r}; "
                "a function's calls are call(*args, **kwargs) or argument tuples"
            )
        return tuple(args), dict(kwargs)
    return tuple(expected), {}


def _lost_events_error(lost: int, what: str, recorded: int, counted: int | None) -> LostEventsError:
    counts = f"{recorded} recorded" + (f", {counted} counted" if counted is not None else "")
    return LostEventsError(
        f"{lost} events with arguments or return values were lost in this run, so {what} "
        f"incomplete ({counts}); assertions on them would use partial data.\n"
        "  fix: trace fewer calls, or shorten the run; or accept partial data with "
        "--uprobe-lost-events=warn (ini: uprobe_lost_events = warn)"
    )


class FunctionTrace:
    """Every call of one probe name (all of its instances) in one run.

    `call_count` is how many calls were made; iterating (and `len()`) gives the calls
    recorded, which are fewer when events were lost and none with record=False."""

    def __init__(
        self,
        name: str,
        calls: Sequence[Call],
        *,
        call_count: int | None = None,
        lost_events: int = 0,
        arguments_known: bool = True,
        lost_events_policy: LostEvents | str = LostEvents.FAIL,
        left_out: Sequence[str] = (),
        shares_address_with: Sequence[str] = (),
        unseen: Sequence[str] = (),
        merged_away: Sequence[str] = (),
        may_be_fewer: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.calls: list[Call] = calls if isinstance(calls, LazyList) else list(calls)
        # Sites of this probe no uprobe could take (each "where at address: why"): the
        # calls through them are not counted, so the count is a lower bound.
        self.left_out: tuple[str, ...] = tuple(left_out)
        # Functions at the same address as one this name means (merged by the optimizer)
        # that the name does not mean: their calls are in the count, an upper bound.
        self.shares_address_with: tuple[str, ...] = tuple(shares_address_with)
        # Why calls ran that never entered a function it names (recursion the optimizer
        # turned into a loop): a lower bound. And functions merged into one it names whose
        # names are gone, their calls counted as its own: an upper bound.
        self.unseen: tuple[str, ...] = tuple(unseen)
        self.merged_away: tuple[str, ...] = tuple(merged_away)
        # Other reasons the count may exceed what ran (plan.Coverage.may_be_fewer).
        self.may_be_fewer: tuple[str, ...] = tuple(may_be_fewer)
        # Counted in the kernel: exact even when events were lost, unless sites were left
        # out or the address is shared; then a CallCount whose undecidable comparisons
        # (== n, assert_called_once...) raise InexactCount with the reason.
        counted = len(self.calls) if call_count is None else call_count
        self.call_count: int = CallCount(
            counted,
            name,
            may_be_more=[f"left out {site}" for site in self.left_out] + list(self.unseen),
            may_be_fewer=[
                f"{name!r} shares its address with {other!r} (functions with identical "
                "bodies merged by the optimizer), whose calls it counts too"
                for other in self.shares_address_with
            ]
            + list(self.merged_away)
            + list(self.may_be_fewer),
            # Each of those reasons still means the code counted ran at least once.
            fewest=1 if self.may_be_fewer and not (shares_address_with or merged_away) else 0,
        )
        self.lost_events = lost_events
        self.arguments_known = arguments_known
        # FAIL: assertions that need every call raise LostEventsError when events were
        # lost; WARN: they use the calls that were recorded (the run warned already).
        self.lost_events_policy: LostEvents = LOST_EVENTS.check(lost_events_policy)

    @property
    def complete(self) -> bool:
        """The count and the calls are exactly those of the functions the name means."""
        return not (
            self.left_out
            or self.shares_address_with
            or self.unseen
            or self.merged_away
            or self.may_be_fewer
        )

    def __repr__(self) -> str:
        return f"<FunctionTrace {self.name!r}: {self.call_count!r} calls>"

    def __len__(self) -> int:
        """The number of calls recorded: what iterating yields. The number of calls made
        is `call_count` (counted in the kernel: exact even when events were lost or with
        record=False, and a bound that says so where the count is not exact)."""
        return len(self.calls)

    def __iter__(self) -> Iterator[Call]:
        """The calls recorded, in time order."""
        return iter(self.calls)

    @property
    def called(self) -> bool:
        return self.call_count > 0

    @property
    def call_args_list(self) -> list[tuple[Any, ...] | Unavailable]:
        """Each call's arguments; Unavailable(why) where the parameter list is unknown."""
        self._require_complete()
        return [c.args for c in self.calls]

    args_list = call_args_list

    @property
    def retvals(self) -> list[Any]:
        self._require_complete()
        return [c.retval for c in self.calls]

    @property
    def call_args(self) -> tuple[Any, ...] | Unavailable | None:
        self._require_complete()
        return self.calls[-1].args if self.calls else None

    # -- callers --------------------------------------------------------------------------

    @property
    def callers(self) -> dict[str | None, int]:
        """How many calls each nearest traced caller made (None: no traced caller), by the
        caller's probe name."""
        self._require_all_calls()
        counts: dict[str | None, int] = {}
        for call in self.calls:
            name = call.caller.function if call.caller is not None else None
            counts[name] = counts.get(name, 0) + 1
        return counts

    def called_from(self, name: str | None) -> FunctionTrace:
        """The calls whose nearest traced caller is `name` (a probe name or demangled path
        of the caller, which must be probed too; None: calls with no traced caller), as a
        FunctionTrace: `assert hello.called_from("args::main").call_count == 4`."""
        self._require_all_calls()
        chosen = [c for c in self.calls if _caller_is(c, name)]
        return FunctionTrace(
            f"{self.name} called from {name}",
            chosen,
            arguments_known=self.arguments_known,
            lost_events_policy=self.lost_events_policy,
            left_out=self.left_out,
            shares_address_with=self.shares_address_with,
            # The calls a loop stands for are calls of a function by itself: from `name`
            # only if the function answers to it.
            unseen=self.unseen if any(c.answers_to(name or "") for c in self.calls) else (),
            merged_away=self.merged_away,
            may_be_fewer=self.may_be_fewer,
        )

    def assert_only_called_from(self, name: str | None) -> None:
        """Every call's nearest traced caller is `name`."""
        __tracebackhide__ = True
        self._require_all_calls()
        others = [c for c in self.calls if not _caller_is(c, name)]
        if others:
            raise AssertionError(
                f"Expected every call of {self.name!r} to come from {name!r}; "
                f"{len(others)} of {len(self.calls)} did not. Callers: "
                + ", ".join(f"{k}: {_times(v)}" for k, v in self.callers.items())
                + self._seen()
            )

    # -- assertions, as in unittest.mock ------------------------------------------------

    def assert_called(self) -> None:
        __tracebackhide__ = True
        if self.call_count == 0:
            raise AssertionError(f"Expected {self.name!r} to have been called.")

    def assert_not_called(self) -> None:
        __tracebackhide__ = True
        if self.call_count != 0:
            raise AssertionError(
                f"Expected {self.name!r} to not have been called. "
                f"Called {_times(self.call_count)}.{self._seen()}"
            )

    def assert_called_once(self) -> None:
        __tracebackhide__ = True
        if self.call_count != 1:
            raise AssertionError(
                f"Expected {self.name!r} to have been called once. "
                f"Called {_times(self.call_count)}.{self._seen()}"
            )

    def assert_called_with(self, *args: Any, **kwargs: Any) -> None:
        """The last call had exactly these arguments."""
        __tracebackhide__ = True
        self._require_complete()
        expected = self._describe(args, kwargs)
        if not self.calls:
            raise AssertionError(
                f"expected call not found.\nExpected: {expected}\n  Actual: not called."
            )
        last = self.calls[-1]
        if not self._matches(last, args, kwargs):
            raise AssertionError(
                f"expected call not found.\nExpected: {expected}\n  Actual: {last!r}"
                f"{self._why_unreadable([last])}{self._seen()}"
            )

    def assert_called_once_with(self, *args: Any, **kwargs: Any) -> None:
        __tracebackhide__ = True
        if self.call_count != 1:
            raise AssertionError(
                f"Expected {self.name!r} to be called once. "
                f"Called {_times(self.call_count)}.{self._seen()}"
            )
        self.assert_called_with(*args, **kwargs)

    def assert_any_call(self, *args: Any, **kwargs: Any) -> None:
        __tracebackhide__ = True
        self._require_complete()
        if not any(self._matches(c, args, kwargs) for c in self.calls):
            raise AssertionError(
                f"{self._describe(args, kwargs)} call not found"
                f"{self._why_unreadable(self.calls)}{self._seen()}"
            )

    def assert_has_calls(self, calls: Sequence[Any], any_order: bool = False) -> None:
        """The calls appear in this order (contiguously), or in any order. Each call is an
        argument tuple `(1, 3)` or, as unittest.mock takes them, `call(1, 3)`,
        `call(i=1, len=3)` or `call(1, len=3)` (unittest.mock.call objects)."""
        __tracebackhide__ = True
        self._require_complete()
        wanted = [_expected_call(c) for c in calls]
        shown = [self._describe(a, k) for a, k in wanted]
        if any_order:
            remaining = list(self.calls)
            missing = []
            for (args, kwargs), text in zip(wanted, shown):
                hit = next((c for c in remaining if self._matches(c, args, kwargs)), None)
                if hit is not None:
                    remaining.remove(hit)
                else:
                    missing.append(text)
            if missing:
                raise AssertionError(
                    f"[{', '.join(missing)}] not all found in call list"
                    f"{self._why_unreadable(self.calls)}{self._seen()}"
                )
            return
        n = len(wanted)
        seen = self.calls
        if not any(
            all(self._matches(c, a, k) for c, (a, k) in zip(seen[i : i + n], wanted))
            for i in range(len(seen) - n + 1)
        ):
            raise AssertionError(
                f"Calls not found.\nExpected: [{', '.join(shown)}]"
                f"{self._why_unreadable(self.calls)}{self._seen()}"
            )

    # -- helpers --------------------------------------------------------------------------

    def _matches(self, call: Call, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
        if isinstance(call.args, Unavailable) or isinstance(call.kwargs, Unavailable):
            return False  # unknown arguments match nothing; _why_unreadable says why
        if kwargs:
            merged = dict(zip(call.kwargs, args))
            merged.update(kwargs)
            return len(args) + len(kwargs) == len(call.kwargs) and merged == call.kwargs
        return call.args == tuple(args)

    def _describe(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
        parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
        return f"{self.name}({', '.join(parts)})"

    def _why_unreadable(self, calls: Sequence[Call]) -> str:
        """For a failed comparison: the values that could not be read, with the reasons, so
        the failure says "unknown" rather than only "different"."""
        unknown = next((c.args for c in calls if isinstance(c.args, Unavailable)), None)
        if isinstance(unknown, Unavailable):
            return (
                f"\nThe arguments of {self.name!r} are unknown, so no call can match: "
                f"{unknown.reason}"
            )
        parts: list[str] = []
        for call in calls:
            assert not isinstance(call.kwargs, Unavailable)
            for name, value in call.kwargs.items():
                parts += unreadable(value, name)
        if not parts:
            return ""
        shown = list(dict.fromkeys(parts))[:10]
        return (
            "\nSome argument values could not be read (Unavailable equals nothing), so they "
            "cannot match:\n  " + "\n  ".join(shown)
        )

    def _require_all_calls(self) -> None:
        __tracebackhide__ = True
        if self.lost_events and self.lost_events_policy is not LostEvents.WARN:
            raise _lost_events_error(
                self.lost_events, f"{self.name!r}'s calls are", len(self.calls), self.call_count
            )

    def _require_complete(self) -> None:
        __tracebackhide__ = True
        self._require_all_calls()
        if not self.complete:
            count = self.call_count
            reasons = count.reasons() if isinstance(count, CallCount) else ""
            raise InexactCount(
                f"the calls of {self.name!r} are not exactly the calls of the functions it "
                f"names, so assertions on their list cannot be trusted.{reasons}\n"
                "  fix: remove the cause named above: probe only names whose sites can all be "
                "attached and that share no address with other functions (`pytest-uprobe "
                "symbols` shows shared addresses), or trace a dev build"
            )

    def _seen(self) -> str:
        if not self.calls:
            return "\nCalls seen: none."
        lines = [f"\n  {i}: {c!r}{_from(c)}" for i, c in enumerate(self.calls[:MAX_LISTED_CALLS])]
        if len(self.calls) > MAX_LISTED_CALLS:
            lines.append(f"\n  ... and {len(self.calls) - MAX_LISTED_CALLS} more")
        return f"\nCalls seen ({len(self.calls)}):" + "".join(lines)


def _times(n: int) -> str:
    count = int(n)
    times = "1 time" if count == 1 else f"{count} times"
    if isinstance(n, CallCount) and not n.exact:
        bound = "at least" if not n.may_be_fewer else "at most" if not n.may_be_more else "~"
        return f"{bound} {times}"
    return times


def _caller_is(call: Call, name: str | None) -> bool:
    if name is None:
        return call.caller is None
    return call.caller is not None and call.caller.answers_to(name)


def _from(call: Call) -> str:
    return f" from {call.caller.path}" if call.caller is not None else ""


def _named(call: Call, names: Sequence[str]) -> frozenset[str]:
    """The names in `names` that `call` answers to (its probe names, its instance's path)."""
    return frozenset(n for n in names if call.answers_to(n))


@dataclass
class Trace:
    """The result of one traced run."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    functions: dict[str, FunctionTrace] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)  # every call of every probe, in time order
    lost_events: int = 0
    timed_out: bool = False
    lost_events_policy: LostEvents = LostEvents.FAIL  # see FunctionTrace.lost_events_policy
    probes_attached: int = 0  # probe sites attached for this run
    compile_seconds: float = 0.0  # building and loading its BPF program
    pid: int | None = None  # the traced process (its main thread's tid)
    # Processes the program started that still ran when it exited (launch.Process: pid and
    # command), and what was done with them: `children` is "kill", "wait" or "leave".
    orphans: list[Any] = field(default_factory=list)
    children: str = CHILDREN.default
    # When the program exited, some of them still held its stdout or stderr open: what they
    # wrote after that is in stdout/stderr only with children="wait".
    orphans_held_output: bool = False

    def __post_init__(self) -> None:
        self.lost_events_policy = LOST_EVENTS.check(self.lost_events_policy)

    @classmethod
    def from_run(
        cls,
        plan: ProbePlan,
        finished: Finished,
        *,
        argv: list[str],
        calls: list[Call],
        counts: Mapping[str, int],
        lost: int,
        lost_events_policy: LostEvents,
        calls_of: Callable[[str], list[Call]] | None = None,
        also_left_out: Mapping[str, list[str]] | None = None,
        children: str,
        record: bool,
        compile_seconds: float,
        pid: int | None,
    ) -> Trace:
        """The Trace of one finished run: `calls` built from its events, `counts` per
        probe name counted in the kernel, `lost` events the ring buffer dropped.
        `calls_of(probe)` gives one probe's calls in time order (a call store makes them as
        they are used); without it `calls` are sorted by time and filtered here.
        `also_left_out[probe]`: sites found after the run to have calls no hit counted."""
        if calls_of is None:
            calls = sorted(calls, key=lambda c: c.ts_ns)  # time order across CPUs (stable)
        trace = cls(
            argv=argv,
            returncode=finished.returncode,
            stdout=finished.stdout,
            stderr=finished.stderr,
            calls=calls,
            lost_events=lost,
            timed_out=finished.timed_out,
            lost_events_policy=lost_events_policy,
            probes_attached=sum(record or s.kind.starts_a_call for s in plan.sites),
            compile_seconds=compile_seconds,
            pid=pid,
            orphans=finished.orphans,
            children=children,
            orphans_held_output=finished.output_held,
        )
        for probe in plan.probes:
            coverage = plan.coverage_of(probe)
            trace.functions[probe] = FunctionTrace(
                probe,
                (
                    calls_of(probe)
                    if calls_of is not None
                    else [c for c in calls if probe in c.probes]  # one Call may answer to several
                ),
                call_count=counts[probe],
                lost_events=lost,
                arguments_known=all(
                    plan.functions[i].arguments_known for i in plan.functions_of(probe)
                ),
                lost_events_policy=lost_events_policy,
                left_out=[str(site) for site in coverage.left_out]
                + list((also_left_out or {}).get(probe, [])),
                shares_address_with=coverage.shares_address_with,
                unseen=coverage.unseen,
                merged_away=coverage.merged_away,
                may_be_fewer=coverage.may_be_fewer,
            )
        return trace

    def __getitem__(self, name: str) -> FunctionTrace:
        try:
            return self.functions[name]
        except KeyError:
            raise KeyError(
                f"{name!r} was not probed in this run; probed: {sorted(self.functions)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.functions

    def __repr__(self) -> str:
        counts = ", ".join(f"{n}: {f.call_count!r}" for n, f in self.functions.items())
        return f"<Trace {self.argv[0]!r} returncode={self.returncode} {{{counts}}}>"

    def save_timeline(self, path: str | os.PathLike[str]) -> Path:
        """Write this run's calls as a Chrome trace-event JSON file, which ui.perfetto.dev
        and chrome://tracing open as is: one track per thread, out-of-line calls as slices
        nested by time, inlined hits as instant events. Returns the path written."""
        from .timeline import save_timeline

        return save_timeline(self, path)

    def assert_sequence(self, names: Sequence[str], *, exact: bool = False) -> None:
        """The calls of the functions `names` mentions came in this order (by entry time,
        all threads together). Calls of functions the list does not mention are ignored.
        exact=False: `names` is a subsequence of that order (other calls may come between);
        exact=True: that order is exactly `names`. A name is a probe name or an instance's
        demangled path."""
        __tracebackhide__ = True
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise TypeError(f"names must be a list of function names, got {names!r}")
        wanted = list(names)
        if self.lost_events and self.lost_events_policy is not LostEvents.WARN:
            raise _lost_events_error(
                self.lost_events, "the order of calls is", len(self.calls), None
            )
        mentioned = list(dict.fromkeys(wanted))
        # A call may answer to several of the names (`crate::*` and `crate::f`): it
        # matches any of them, and is still one call.
        seen = [(c, n) for c in self.calls for n in [_named(c, mentioned)] if n]
        answers = [n for _, n in seen]
        actual = [_shown(n, mentioned) for n in answers]
        if exact:
            if len(answers) == len(wanted) and all(w in n for n, w in zip(answers, wanted)):
                return
            how = "exactly this order"
            mismatch = next(
                (i for i, (n, w) in enumerate(zip(answers, wanted)) if w not in n),
                min(len(answers), len(wanted)),
            )
            detail = f"first difference at position {mismatch}"
        else:
            matched = 0
            for names_of_call in answers:
                if matched < len(wanted) and wanted[matched] in names_of_call:
                    matched += 1
            if matched == len(wanted):
                return
            how = "this order as a subsequence (other calls may come between)"
            detail = (
                f"matched {matched} of {len(wanted)}: no call of {wanted[matched]!r} "
                f"(position {matched}) came after the calls matched before it"
            )
        shown = [f"\n  {i}: {c!r}{_from(c)}" for i, (c, _) in enumerate(seen[:MAX_LISTED_CALLS])]
        if len(seen) > MAX_LISTED_CALLS:
            shown.append(f"\n  ... and {len(seen) - MAX_LISTED_CALLS} more")
        raise AssertionError(
            f"Expected the calls of {', '.join(repr(n) for n in dict.fromkeys(wanted))} in "
            f"{how}:\n  {wanted!r}\nActual order ({len(actual)} calls):\n  {actual!r}\n"
            f"{detail}.\nCalls seen ({len(seen)}):" + "".join(shown)
        )

    def log(self, limit: int | None = 200) -> str:
        """The call log, one line per call in time order: milliseconds since the first
        call, thread, the call (indented by its traced depth) with its arguments and return
        value, and in brackets either `out-of-line` with its duration or `inlined into ...`.
        More than `limit` calls: the first and the last ones, with a count of those left out.
        """
        if not self.calls:
            return "(no calls)"
        start = self.calls[0].ts_ns
        if limit is None or len(self.calls) <= limit:
            return "\n".join(_log_line(c, start) for c in self.calls)
        tail = limit // 4
        head = limit - tail
        left_out = len(self.calls) - head - tail
        lines = [_log_line(c, start) for c in self.calls[:head]]
        lines.append(
            f"... {left_out} calls left out (of {len(self.calls)}; all are in trace.calls) ..."
        )
        lines += [_log_line(c, start) for c in self.calls[len(self.calls) - tail :]]
        return "\n".join(lines)


def _shown(names: frozenset[str], order: Sequence[str]) -> str:
    """One call's names among those asked about, for the message: `a` or `a|b`."""
    return "|".join(n for n in order if n in names)


def _shown_args(args: tuple[Any, ...] | Unavailable) -> str:
    if isinstance(args, Unavailable):
        return f"<arguments unknown: {args.reason.split('; fix:')[0]}>"
    return ", ".join(repr(a) for a in args)


def _shown_retval(call: Call) -> str:
    """The return value as the log shows it: shortened where it is unknown for the reason
    the arguments already gave."""
    unknown = call.args
    if (
        isinstance(unknown, Unavailable)
        and isinstance(call.retval, Unavailable)
        and call.retval.reason == unknown.reason
    ):
        return "<unknown>"
    return repr(call.retval)


def unreadable(value: Any, where: str) -> list[str]:
    """Every Unavailable inside a decoded value, as "where: reason"."""
    if isinstance(value, Unavailable):
        return [f"{where}: {value.reason}"]
    found: list[str] = []
    if isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            found += unreadable(item, f"{where}[{i}]")
    elif isinstance(value, Struct):
        for name, item in value.fields.items():
            found += unreadable(item, f"{where}.{name}")
    elif isinstance(value, Variant):
        found += unreadable(value.value, f"{where}::{value.name}")
    elif isinstance(value, Truncated):
        found += unreadable(value.prefix, where)
    return found


def describe(call: Call) -> str:
    """One call as the log and `repr` show it: `path(args) -> retval`, or how it ended
    (a source-line or USDT hit: its name and locals)."""
    args = _shown_args(call.args)
    if call.at is not None:
        if isinstance(call.locals, Unavailable):
            return f"{call.function}({_shown_args(call.locals)})"
        shown = ", ".join(f"{k}={v!r}" for k, v in call.locals.items()) or args
        return f"{call.function}({shown})"
    if call.returned:
        outcome = f" -> {_shown_retval(call)}"
    elif call.inlined:
        outcome = ""
    else:
        outcome = _no_return(call)
    if call.tail_call:
        outcome += " via tail call"
    return f"{call.path}({args}){outcome}"


def _log_line(call: Call, start_ns: int) -> str:
    if call.at is not None:
        where = f"at {call.at}"
    elif call.inlined:
        where = f"inlined into {call.inlined_into}" if call.inlined_into else "inlined"
    elif call.duration_ns is not None:
        where = f"out-of-line, {call.duration_ns / 1e3:.1f} us"
    else:
        where = "out-of-line"
    return (
        f"{(call.ts_ns - start_ns) / 1e6:10.3f} ms  tid {call.tid:<7} "
        f"{'  ' * call.depth}{describe(call)}  [{where}]"
    )
