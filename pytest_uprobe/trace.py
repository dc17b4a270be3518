"""What a traced run saw, and unittest.mock-style assertions over it.

Failure messages follow unittest.mock's wording, then list every call seen, so a failed
test explains itself from its report alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_LISTED_CALLS = 50


@dataclass
class Call:
    """One call of a probed function."""

    function: str  # the probe name it was requested under
    path: str  # the demangled path of the instance that ran
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    tid: int
    ts_ns: int  # kernel monotonic time at entry
    retval: Any = None
    returned: bool = False
    unwound: bool = False
    tail_call: bool = False
    inlined: bool = False
    return_ts_ns: int | None = None

    @property
    def duration_ns(self) -> int | None:
        return None if self.return_ts_ns is None else self.return_ts_ns - self.ts_ns

    def __repr__(self) -> str:
        args = ", ".join(repr(a) for a in self.args)
        if self.returned:
            outcome = f" -> {self.retval!r}"
        elif self.unwound:
            outcome = " (unwound, no return)"
        else:
            outcome = " (did not return)"
        tail = " via tail call" if self.tail_call else ""
        return f"{self.path}({args}){outcome}{tail} [tid {self.tid}]"


class LostEventsError(AssertionError):
    pass


class FunctionTrace:
    """Every call of one probe name (all of its instances) in one run."""

    def __init__(
        self,
        name: str,
        calls: Sequence[Call],
        *,
        call_count: int | None = None,
        lost_events: int = 0,
        arguments_known: bool = True,
    ) -> None:
        self.name = name
        self.calls: list[Call] = list(calls)
        # Counted in the kernel: exact even when events were lost.
        self.call_count = len(self.calls) if call_count is None else call_count
        self.lost_events = lost_events
        self.arguments_known = arguments_known

    def __repr__(self) -> str:
        return f"<FunctionTrace {self.name!r}: {self.call_count} calls>"

    def __len__(self) -> int:
        return self.call_count

    def __iter__(self) -> Iterator[Call]:
        return iter(self.calls)

    @property
    def called(self) -> bool:
        return self.call_count > 0

    @property
    def call_args_list(self) -> list[tuple[Any, ...]]:
        self._require_complete()
        return [c.args for c in self.calls]

    args_list = call_args_list

    @property
    def retvals(self) -> list[Any]:
        self._require_complete()
        return [c.retval for c in self.calls]

    @property
    def call_args(self) -> tuple[Any, ...] | None:
        self._require_complete()
        return self.calls[-1].args if self.calls else None

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
                f"expected call not found.\nExpected: {expected}\n  Actual: {last!r}{self._seen()}"
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
            raise AssertionError(f"{self._describe(args, kwargs)} call not found{self._seen()}")

    def assert_has_calls(self, calls: Sequence[tuple[Any, ...]], any_order: bool = False) -> None:
        """The argument tuples appear in this order (contiguously), or in any order."""
        __tracebackhide__ = True
        seen = self.call_args_list
        wanted = [tuple(c) for c in calls]
        if any_order:
            remaining = list(seen)
            missing = []
            for c in wanted:
                if c in remaining:
                    remaining.remove(c)
                else:
                    missing.append(c)
            if missing:
                raise AssertionError(f"{missing!r} not all found in call list{self._seen()}")
            return
        n = len(wanted)
        if not any(seen[i : i + n] == wanted for i in range(len(seen) - n + 1)):
            raise AssertionError(f"Calls not found.\nExpected: {wanted!r}{self._seen()}")

    # -- helpers --------------------------------------------------------------------------

    def _matches(self, call: Call, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
        if kwargs:
            merged = dict(zip(call.kwargs, args))
            merged.update(kwargs)
            return len(args) + len(kwargs) == len(call.kwargs) and merged == call.kwargs
        return call.args == tuple(args)

    def _describe(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
        parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
        return f"{self.name}({', '.join(parts)})"

    def _require_complete(self) -> None:
        __tracebackhide__ = True
        if self.lost_events:
            raise LostEventsError(
                f"{self.lost_events} events with arguments or return values were lost in this "
                f"run, so {self.name!r}'s calls are incomplete ({len(self.calls)} recorded, "
                f"{self.call_count} counted); assertions on values would use partial data.\n"
                "  fix: trace fewer calls, or shorten the run"
            )
        if not self.arguments_known:
            raise AssertionError(
                f"the arguments of {self.name!r} are unknown: the binary has no debug info.\n"
                "  fix: build with debug info (the dev profile has it; for release set "
                "`debug = true` under [profile.release])"
            )

    def _seen(self) -> str:
        if not self.calls:
            return "\nCalls seen: none."
        lines = [f"\n  {i}: {c!r}" for i, c in enumerate(self.calls[:MAX_LISTED_CALLS])]
        if len(self.calls) > MAX_LISTED_CALLS:
            lines.append(f"\n  ... and {len(self.calls) - MAX_LISTED_CALLS} more")
        return f"\nCalls seen ({len(self.calls)}):" + "".join(lines)


def _times(n: int) -> str:
    return "1 time" if n == 1 else f"{n} times"


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
        counts = ", ".join(f"{n}: {f.call_count}" for n, f in self.functions.items())
        return f"<Trace {self.argv[0]!r} returncode={self.returncode} {{{counts}}}>"

    def log(self, limit: int = 200) -> str:
        """A readable call log: time offset, thread, call, return."""
        if not self.calls:
            return "(no calls)"
        start = self.calls[0].ts_ns
        lines = [
            f"{(c.ts_ns - start) / 1e6:10.3f} ms  tid {c.tid:<7} {c!r}" for c in self.calls[:limit]
        ]
        if len(self.calls) > limit:
            lines.append(f"... {len(self.calls) - limit} more calls not shown")
        return "\n".join(lines)

