"""The errors the plugin raises on purpose (UprobeError and its subclasses; probe-name
errors of source lines and USDT probes subclass ProbeNameError in points.py). The failed
assertions live with what they assert on: LostEventsError and LostEventsWarning in
trace.py, InexactCount in bounds.py; all are exported by `pytest_uprobe`.

Each message names the thing that is wrong, says why, and says what to do, so a
user can act on the first line of a failed test report without reading our code.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol


class _Copy(Protocol):
    """What an error needs of an inlined copy (dwarf.inlined.InlinedSite has it)."""

    @property
    def caller(self) -> str: ...


class _PartialRun(Protocol):
    """What TraceTimeout needs of the partial trace.Trace it carries."""

    stdout: str
    stderr: str
    returncode: int
    calls: list[Any]
    orphans: list[Any]


class UprobeError(Exception):
    """Base class of every error raised by pytest-uprobe."""


class PrerequisiteError(UprobeError):
    """The machine lacks something tracing needs (privileges, bcc, kernel headers, BPF)."""

    def __init__(self, missing: str, why: str, fix: str) -> None:
        self.missing = missing
        self.fix = fix
        super().__init__(f"pytest-uprobe needs {missing}: {why}\n  fix: {fix}")


class BinaryError(UprobeError):
    """The executable to trace cannot be used as it is."""

    def __init__(self, path: Path | str, why: str, fix: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {why}\n  fix: {fix}")


class BinaryNotFound(BinaryError):
    def __init__(self, path: Path | str) -> None:
        super().__init__(
            path,
            "no such file",
            "check the path; build it first, e.g. with the cargo_bin fixture",
        )


class NotExecutable(BinaryError):
    def __init__(self, path: Path | str) -> None:
        super().__init__(path, "the file is not executable", f"chmod +x {path}")


class NotElfError(BinaryError):
    def __init__(self, path: Path | str) -> None:
        super().__init__(
            path,
            "not an ELF executable, so it has no functions to probe",
            "pass the compiled binary (target/<profile>/<name>), not a script or source file",
        )


class WrongArchitecture(BinaryError):
    def __init__(self, path: Path | str, machine: str) -> None:
        super().__init__(
            path,
            f"built for {machine}, but this machine runs x86-64 and probes only x86-64 code",
            "build for the host target (drop --target, or use x86_64-unknown-linux-gnu)",
        )


class BinaryChanged(BinaryError):
    """The file kept changing (rebuilt, replaced) while it was being resolved."""

    def __init__(self, path: Path | str, attempts: int) -> None:
        super().__init__(
            path,
            f"the file changed while its probes were being resolved, {attempts} times in a "
            "row, so no probe was attached (offsets from one build are wrong in another)",
            "wait for the build that writes it to finish before tracing it",
        )


class NoSymbolTable(BinaryError):
    def __init__(self, path: Path | str) -> None:
        super().__init__(
            path,
            "the binary has no symbol table (it was stripped), so functions cannot be found",
            "keep symbols: set `strip = false` in the [profile.*] of Cargo.toml "
            "and do not pass `-C strip=...` in RUSTFLAGS",
        )


class ProbeNameError(UprobeError):
    """A probe name does not resolve to something that can be probed."""

    def __init__(self, name: str, binary: Path | str, why: str, fix: str) -> None:
        self.name = name
        self.binary = Path(binary)
        self.why = why
        self.fix = fix
        super().__init__(f"probe {name!r} in {self.binary}: {why}\n  fix: {fix}")


class NoMatchingFunction(ProbeNameError):
    def __init__(
        self,
        name: str,
        binary: Path | str,
        suggestions: Sequence[str],
        *,
        has_debug_info: bool = True,
        in_source: str | None = None,
        merged_into: str | None = None,
        instances: Sequence[str] = (),
        unspelled: tuple[str, int] | None = None,
    ) -> None:
        self.suggestions = list(suggestions)
        # The instances of the generic path that exist, when the name is another instance.
        self.instances = list(instances)
        self.in_source = in_source  # where the crate's source defines it, if it does
        # The function its calls now run as (merged into it by the optimizer), if known.
        self.merged_into = merged_into
        if suggestions:
            fix = "did you mean " + ", ".join(repr(s) for s in suggestions) + "?"
        else:
            fix = "list the functions with `pytest-uprobe symbols " + str(binary) + "`"
        quoted = shlex.quote(str(binary))
        why = "no function of that name"
        if unspelled is not None:
            generic, count = unspelled
            why += (
                f" in the binary, but it has {count} function(s) named {generic} whose "
                "type arguments neither the symbol (legacy mangling) nor the debug info (too "
                "little of it: line tables only, or none) spells, and any may be this instance"
            )
            fix += (
                f" Probe {generic!r} (every instance), or build with `debug = 1` or more for "
                "DWARF to name each instance."
            )
        elif instances:
            why += (
                " in the binary, which has code of the generic function's instances "
                + ", ".join(self.instances)
                + " only: rustc makes an instance for the type arguments the program uses, "
                "and nothing in the binary (no symbol, no copy in its debug info) shows this "
                "one was ever made"
            )
        elif in_source is not None:
            why += (
                f" in the binary, although the source defines it ({in_source}): an optimized "
                "build may have merged it into a function with an identical body (its calls "
                "then run, and are counted, as that function's) or removed it (unused, or "
                "inlined where no debug info records the copy)"
            )
        if in_source is not None and not instances and unspelled is None:
            fix += (
                f" Check with `pytest-uprobe symbols {quoted}` (every name, with the names "
                "sharing its address), or trace a dev build, which keeps every function."
            )
        if merged_into is not None:
            why += (
                f"; its calls in the source run as {merged_into} (the optimizer merged the "
                "two identical bodies and kept that one)"
            )
            fix += (
                f" To count them, probe {merged_into!r}: its count then includes them, an "
                "upper bound that says so."
            )
        if not has_debug_info:
            why += (
                "; the binary has no debug info, so copies inlined into other functions "
                "cannot be found"
            )
            fix += (
                ' If it was inlined, set `debug = "line-tables-only"` (enough to count its '
                "calls) or `debug = true` (also its arguments) in the [profile.*] you build with."
            )
        super().__init__(name, binary, why, fix)


class GlobMatchesNothing(ProbeNameError):
    """A glob (a name with `*` or `?`) that matches no function of the binary."""

    def __init__(self, glob: str, binary: Path | str) -> None:
        self.glob = glob
        super().__init__(
            glob,
            binary,
            "the glob matches no function (`*` matches any run of characters, `::` included)",
            f"try `pytest-uprobe symbols {shlex.quote(str(binary))} {shlex.quote(glob)}` "
            "with a wider glob until it lists the functions you mean",
        )


class DataSymbolOnly(ProbeNameError):
    def __init__(self, name: str, binary: Path | str, symbol_kind: str) -> None:
        super().__init__(
            name,
            binary,
            f"it names a {symbol_kind} symbol, not a function, and only code can be probed",
            "probe the function that reads or writes it instead",
        )


class InlinedFunction(ProbeNameError):
    """The function exists only as copies inlined into its callers, and inlined copies are
    not probed (`inlined=False`); `.sites` lists the copies."""

    def __init__(self, name: str, binary: Path | str, sites: Sequence[_Copy]) -> None:
        self.sites: list[Any] = list(sites)  # the dwarf.inlined.InlinedSite copies
        self.callers = sorted({s.caller for s in sites})
        into = ", ".join(self.callers) if self.callers else "its callers"
        super().__init__(
            name,
            binary,
            f"it was inlined into {into} and has no out-of-line copy of its own to probe",
            "count its inlined copies (the default; turn on with inlined=True or drop "
            "--uprobe-no-inlined), or build without inlining it: "
            'cargo_bin(..., profile="dev"), or mark the function #[inline(never)]',
        )


class TooManyMatches(ProbeNameError):
    def __init__(self, name: str, binary: Path | str, count: int, limit: int) -> None:
        self.count = count
        self.limit = limit
        super().__init__(
            name,
            binary,
            f"it matches {count} functions, more than the limit of {limit}",
            "narrow the name or glob, or raise the limit with max_functions=... "
            "(ini: uprobe_max_functions)",
        )


class UnreadableFunction(ProbeNameError):
    """The machine code of a function cannot be decoded into probe sites."""


class ProbesRefused(UnreadableFunction):
    """Several probes of one run of which nothing can be probed (by either engine): one
    error naming them all, so a run is not refused again for each in turn. `.refusals`
    holds each probe's own error; `.names` their probe names."""

    def __init__(self, refusals: Sequence[ProbeNameError]) -> None:
        self.refusals = list(refusals)
        self.names = [refusal.name for refusal in self.refusals]
        each = "\n".join(
            f"  - {refusal.name!r}: {refusal.why}\n    fix: {refusal.fix}"
            for refusal in self.refusals
        )
        self.name = self.names[0]
        self.binary = self.refusals[0].binary
        self.why = f"nothing of these {len(self.names)} probes can be probed:\n{each}"
        self.fix = "fix each probe as its line says, or leave it out of this run"
        UprobeError.__init__(
            self,
            f"probes {', '.join(repr(n) for n in self.names)} in {self.binary}: {self.why}\n"
            f"  fix: {self.fix}",
        )


def refuse(refusals: Sequence[ProbeNameError]) -> None:
    """Raise the refusal of a run's probes: the one error, or all of them as one."""
    if len(refusals) == 1:
        raise refusals[0]
    if refusals:
        raise ProbesRefused(refusals)


class InternalError(ProbeNameError):
    """Planning a probe raised an exception pytest-uprobe did not expect: a bug of ours,
    turned into an error that names the probe, the function and the DWARF DIE being read
    (`.error` is the original exception, also chained as its cause)."""

    def __init__(
        self,
        name: str,
        binary: Path | str,
        function: str | None,
        die: int | None,
        error: BaseException,
    ) -> None:
        self.function = function
        self.die = die
        self.error = error
        where = f"reading {function}" if function else "resolving it"
        if die is not None:
            where += f" (DWARF DIE {die:#x})"
        detail = f"{type(error).__name__}: {error}".strip()
        if len(detail) > 300:
            detail = detail[:300] + "..."
        look = f" (`llvm-dwarfdump --debug-info={die:#x} {binary}` shows the DIE)" if die else ""
        super().__init__(
            name,
            binary,
            f"pytest-uprobe failed {where}: {detail}",
            "this is a bug in pytest-uprobe: please report it with this message"
            + look
            + "; meanwhile probe other functions (a narrower glob), or trace a dev build",
        )


class UsageError(UprobeError, ValueError):
    """An argument to the public API has the wrong type or value."""


class CargoBuildError(UprobeError):
    def __init__(self, crate: Path | str, command: Sequence[str], output: str) -> None:
        self.crate = Path(crate)
        self.output = output
        super().__init__(
            f"cargo could not build {self.crate} (`{' '.join(command)}`):\n{output.rstrip()}\n"
            "  fix: make the crate build with that command, then run the test again"
        )


class TraceTimeout(UprobeError, subprocess.TimeoutExpired):
    """The traced run outlasted its timeout: either the program itself did not exit, or
    (with children="wait") it exited but processes it started kept running. Everything
    was killed; `.trace` holds what was seen, `.program_exited` says which case it was."""

    def __init__(
        self,
        cmd: Any,
        timeout: float,
        trace: _PartialRun,
        *,
        program_exited: bool = False,
        option: str = "timeout=... (of Tracer or run(); None: no timeout)",
    ) -> None:
        subprocess.TimeoutExpired.__init__(self, cmd, timeout, trace.stdout, trace.stderr)
        self.trace: Any = trace  # the partial trace.Trace
        self.program_exited = program_exited
        self.option = option

    def __str__(self) -> str:
        calls = len(self.trace.calls)
        running = ", ".join(str(p) for p in self.trace.orphans) or "none listed"
        if self.program_exited:
            what = (
                f"{self.cmd!r} exited with status {self.trace.returncode}, but processes it "
                f"started were still running {self.timeout} s after it began (children="
                f"'wait' waits for them): {running}. They were killed; {calls} calls were "
                "recorded (see .trace)\n  fix: raise the timeout with "
                f"{self.option}, or let them be killed when the program exits "
                "(children='kill', the default)"
            )
        else:
            what = (
                f"{self.cmd!r} did not finish within {self.timeout} s: the program did not "
                f"exit, and was killed with every process it started; {calls} calls were "
                "recorded before that (see .trace)"
            )
            if self.trace.orphans:
                what += f"\n  it had started: {running}"
            what += f"\n  fix: raise the timeout with {self.option}, or find why it hangs"
        return what
