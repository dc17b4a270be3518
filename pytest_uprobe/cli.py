"""The `pytest-uprobe` console command (also `python -m pytest_uprobe`).

Each subcommand is a function `(args, out) -> exit status` registered in `_build_parser`:
`symbols` lists what can be probed, `trace` prints the call log of one run of a program,
`doctor` checks every prerequisite of tracing. Any UprobeError is printed to stderr (its
message already says what to do) and exits with status 2; `trace`, which passes the traced
program's own exit status through, uses 125 for its own errors instead (as env(1) and
timeout(1) do), and 124 for a timeout.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, NoReturn, TextIO

from . import options
from .bpf import prerequisites
from .dwarf.closures import closure_aliases
from .dwarf.inlined import inlined_sites
from .elf import ElfBinary, Symbol
from .errors import InlinedFunction, TraceTimeout, UnreadableFunction, UprobeError, UsageError
from .json_values import to_json
from .names import crate_of, matcher, strip_generics
from .plan import resolve, return_mode, shape_of
from .values import Unavailable

EXIT_OK = 0
EXIT_ERROR = 2  # as argparse's own usage errors

Handler = Callable[[argparse.Namespace, TextIO], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args, sys.stdout)
    except UprobeError as exc:
        # `trace` has a positional `command` (the program) that shadows the subcommand's name.
        name = "trace" if handler is _trace else args.command
        print(f"pytest-uprobe {name}: {exc}", file=sys.stderr)
        return EXIT_TRACE_ERROR if handler is _trace else EXIT_ERROR
    except BrokenPipeError:  # `pytest-uprobe symbols EXE | head`
        sys.stderr.close()
        return EXIT_OK


class _Parser(argparse.ArgumentParser):
    """A subcommand's parser: a usage error exits with `usage_error_status`."""

    usage_error_status = EXIT_ERROR

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(self.usage_error_status, f"{self.prog}: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytest-uprobe",
        description="Inspect what pytest-uprobe can probe in a compiled Rust binary, "
        "trace one run of a program, or check the prerequisites of tracing.",
    )
    commands = parser.add_subparsers(
        dest="command", title="commands", required=True, parser_class=_Parser
    )

    symbols = commands.add_parser(
        "symbols",
        help="list the functions a probe name can resolve to",
        description="One line per probe-able function (one per address): return mode, "
        "address, size, instances of its generic path, inlined copies, demangled path.",
    )
    symbols.add_argument("exe", help="the executable, e.g. target/debug/myapp")
    symbols.add_argument(
        "glob",
        nargs="?",
        help="a probe name or glob such as 'myapp::*' or '<* as myapp::Shape>::area' "
        "(`*` matches any run of characters, `::` included); default: every function",
    )
    symbols.add_argument("--json", action="store_true", help="print a JSON list instead")
    symbols.add_argument(
        "--inlined",
        action="store_true",
        help="count the copies DWARF shows inlined into callers, and with a GLOB list the "
        "functions that exist only as inlined copies (return mode `inlined`, SIZE 0, "
        "ADDRESS: where the first copy starts; slow on big binaries)",
    )
    symbols.set_defaults(handler=_symbols)

    lines_parser = commands.add_parser(
        "lines",
        help="list the source lines a probe such as 'src/main.rs:42' can name",
        description="One line per source line with code: the line, its probe name, how many "
        "sites count its executions (addresses where control enters the line), those "
        "addresses and the functions they are in ('loops' marks a site also reached from "
        "inside the line, so every arrival there counts). FILE is a path relative to the "
        "crate or any unique suffix; with --function, only that function's lines (FILE may "
        "then be left out).",
    )
    lines_parser.add_argument("exe", help="the executable, e.g. target/debug/myapp")
    lines_parser.add_argument("file", nargs="?", help="a source file, e.g. src/parser.rs")
    lines_parser.add_argument(
        "--function", metavar="NAME", help="only the lines of this function (a probe name)"
    )
    lines_parser.add_argument("--json", action="store_true", help="print a JSON list instead")
    lines_parser.set_defaults(handler=_lines)

    trace = commands.add_parser(
        "trace",
        help="run a program once with probes attached and print its call log",
        description="Run COMMAND with every probe attached from its first instruction and "
        "print one line per call, in time order: milliseconds since the first call, thread, "
        "the call (indented by its traced depth) with decoded arguments and return value, and "
        "whether it ran out of line (with its duration) or inlined. The program's own output "
        "goes to stderr. Exit status: the program's own (128+N if killed by signal N), 124 "
        "if the timeout expired, 125 for pytest-uprobe's own errors (a bad option, a probe "
        "name that matches nothing, missing privileges). If pytest-uprobe itself is killed, "
        "even with SIGKILL, the program and everything it started are killed with it. "
        "The bpf engine needs root (or CAP_BPF and CAP_PERFMON); --backend inprocess does "
        "not, and auto takes it where BPF is not allowed. The last line says which ran.",
        usage="%(prog)s -p NAME [-p NAME ...] [--json] [OPTION ...] [--timeline FILE] "
        "-- COMMAND [ARG ...]",
    )
    trace.add_argument(
        "-p",
        "--probe",
        action="append",
        required=True,
        metavar="NAME",
        help="a probe name or glob, e.g. 'args::hello' or 'myapp::*' (repeat for more)",
    )
    trace.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (argv, returncode, stdout, stderr, counts, calls)",
    )
    for setting in options.SETTINGS:
        if setting.command_flag is not None:
            _add_setting(trace, setting)
    trace.add_argument(
        "--timeline",
        metavar="FILE",
        help="also write the run as Chrome trace-event JSON to FILE (open it in "
        "ui.perfetto.dev or chrome://tracing): one track per thread, calls as slices",
    )
    trace.add_argument(
        "command", nargs=argparse.REMAINDER, help="the program and its arguments, after --"
    )
    trace.set_defaults(handler=_trace)
    trace.usage_error_status = EXIT_TRACE_ERROR

    for name, what in (
        ("abi", "how each function is called: signature, where each argument lives at the "
         "entry, how it returns, sizes and alignments"),
        ("inlining", "where each function's code is: out of line, and inlined into which "
         "callers how many times"),
    ):  # fmt: skip
        snapshot = commands.add_parser(
            name,
            help=f"print {what}",
            description=f"Print, for every function GLOB names, {what}: the stable text "
            "that snapshot tests compare (sorted, one fact per line, no addresses). Reads "
            "the binary only; needs no privileges.",
        )
        snapshot.add_argument("exe", help="the executable, e.g. target/release/myapp")
        snapshot.add_argument("glob", help="a probe name or glob, e.g. 'myapp::api::*'")
        snapshot.add_argument("--json", action="store_true", help="print a JSON list instead")
        snapshot.set_defaults(handler=_snapshot)

    doctor = commands.add_parser(
        "doctor",
        help="check every prerequisite of tracing and print how to fix what is missing",
        description="Checks privileges, the kernel's uprobe and BPF support, BCC, kernel "
        "headers, that a BPF program compiles and loads, cargo and bpftool; prints OK or "
        "what is missing and the command that fixes it. Exit status 1 if anything required "
        "is missing.",
    )
    doctor.set_defaults(handler=_doctor)
    return parser


def _add_setting(parser: argparse.ArgumentParser, setting: options.Setting) -> None:
    """`trace`'s flag for one setting of the options table (the default: Tracer's)."""
    assert setting.command_flag is not None
    if setting.kind is options.FLAG:
        action = "store_false" if setting.negated else "store_true"
        parser.add_argument(
            setting.command_flag,
            dest=setting.name,
            action=action,
            default=setting.default,
            help=setting.help_with_default(),
        )
        return

    def parse(text: str) -> Any:
        try:
            return setting.kind.parse(text)
        except ValueError as exc:  # argparse names the flag: "argument --timeout: ..."
            raise argparse.ArgumentTypeError(f"must be {exc}, got {text!r}") from None

    parser.add_argument(
        setting.command_flag,
        dest=setting.name,
        type=parse,
        default=setting.default,
        metavar=setting.metavar or f"{{{','.join(setting.choices or ())}}}",
        help=setting.help_with_default(),
    )


@dataclass(frozen=True)
class Row:
    path: str  # demangled; legacy closures and generic instances named as DWARF names them
    symbol: str  # as stored in .symtab
    address: int
    size: int
    instances: int  # functions sharing the path with generic arguments stripped
    inlined: int | None  # None: not looked up
    return_mode: str  # "uretprobe", "ret-sites", "unreadable", or "inlined" (no code of its own)
    # The other names of the same address (functions merged by the optimizer): a probe on
    # this name counts their calls too.
    shares_address_with: list[str] = field(default_factory=list)


def _lines(args: argparse.Namespace, out: TextIO) -> int:
    from .lines_command import line_rows

    if args.file is None and args.function is None:
        raise UsageError("name a source FILE, or a function with --function NAME")
    rows = line_rows(ElfBinary.open(args.exe), args.file, args.function)
    if args.json:
        json.dump([asdict(row) for row in rows], out, indent=1)
        out.write("\n")
        return EXIT_OK
    out.write(f"{'SITES':>5}  {'PROBE':<40} ADDRESSES  FUNCTIONS\n")
    for row in rows:
        addresses = ",".join(f"{a:#x}" for a in row.addresses) or "-"
        loops = " (loops)" if row.loops_back else ""
        loops += f" (bound: {', '.join(row.bound)})" if row.bound else ""
        out.write(
            f"{len(row.addresses):>5}  {row.probe:<40} {addresses}{loops}  "
            f"{', '.join(row.functions)}\n"
        )
    return EXIT_OK


def _symbols(args: argparse.Namespace, out: TextIO) -> int:
    binary = ElfBinary.open(args.exe)
    rows = symbol_rows(binary, args.glob, inlined=args.inlined)
    if args.json:
        json.dump([asdict(row) for row in rows], out, indent=1)
        out.write("\n")
        return EXIT_OK
    out.write(f"{'RETURN':<10} {'ADDRESS':>10} {'SIZE':>7} {'INST':>4} {'INL':>4}  PATH\n")
    for row in rows:
        inlined = "-" if row.inlined is None else str(row.inlined)
        shared = f"  (same address as {', '.join(row.shares_address_with)})"
        out.write(
            f"{row.return_mode:<10} {row.address:#10x} {row.size:>7} {row.instances:>4} "
            f"{inlined:>4}  {row.path}{shared if row.shares_address_with else ''}\n"
        )
    return EXIT_OK


def symbol_rows(binary: ElfBinary, glob: str | None = None, *, inlined: bool = False) -> list[Row]:
    """The rows `pytest-uprobe symbols` prints; raises the probe-name errors a test would get."""
    functions = _probeable(binary)
    if glob is not None:
        try:
            chosen = resolve(binary, glob, max_functions=len(functions) + 1)
        except InlinedFunction:
            if not inlined:
                raise
            chosen = []  # the name means inlined copies only: listed below
    else:
        chosen = sorted(functions, key=lambda s: s.address)
    crate = crate_of(glob) if glob is not None else None
    aliases = closure_aliases(binary, crate) if crate is not None else {}

    def shown(symbol: Symbol) -> str:  # DWARF's name for a legacy closure or generic instance
        return aliases.get(symbol.address, symbol.path)

    instances = Counter(strip_generics(shown(s)) for s in functions)
    # Every name of each chosen address: merged functions keep one address, several names.
    matches = matcher(glob) if glob is not None else None
    named = [
        other
        for symbol in chosen
        for other in _unique_names(binary.functions_by_address.get(symbol.address, [symbol]))
        if matches is None or other is symbol or matches(other.path)
    ]
    rows = []
    for symbol in named:
        path = shown(symbol)
        copies = None
        if inlined:
            copies = len(inlined_sites(binary, symbol.path, matcher(symbol.path)))
        rows.append(
            Row(
                path,
                symbol.name,
                symbol.address,
                symbol.size,
                instances[strip_generics(path)],
                copies,
                _return_mode(binary, symbol),
                [
                    other.path
                    for other in _unique_names(binary.functions_by_address[symbol.address])
                    if other.path != symbol.path
                ],
            )
        )
    if inlined and glob is not None:
        rows.extend(_inlined_only_rows(binary, glob, {row.path for row in rows}))
    rows.sort(key=lambda r: (r.path, r.address))
    return rows


def _inlined_only_rows(binary: ElfBinary, glob: str, listed: set[str]) -> list[Row]:
    """A row per function `glob` names that has no code of its own, only inlined copies."""
    by_path: dict[str, list[int]] = {}
    for copy in inlined_sites(binary, glob, matcher(glob)):
        if copy.path not in listed:
            by_path.setdefault(copy.path, []).append(copy.entry)
    instances = Counter(strip_generics(path) for path in by_path)
    return [
        Row(path, "", min(entries), 0, instances[strip_generics(path)], len(entries), "inlined")
        for path, entries in by_path.items()
    ]


def _unique_names(symbols: list[Symbol]) -> list[Symbol]:
    """One symbol per demangled name (a local and a global symbol may spell one name)."""
    by_path: dict[str, Symbol] = {}
    for symbol in symbols:
        by_path.setdefault(symbol.path, symbol)
    return list(by_path.values())


def _probeable(binary: ElfBinary) -> list[Symbol]:
    """One function symbol per address, of the functions that have code (size > 0)."""
    by_address: dict[int, Symbol] = {}
    for symbol in binary.functions:
        if symbol.size > 0:
            by_address.setdefault(symbol.address, symbol)
    return list(by_address.values())


def _return_mode(binary: ElfBinary, symbol: Symbol) -> str:
    """How a probe would read the return value (plan.return_mode, the plan's own rule)."""
    try:
        shape = shape_of(binary, symbol, symbol.path)
    except UnreadableFunction:
        return "unreadable"
    return return_mode(shape).value


def _snapshot(args: argparse.Namespace, out: TextIO) -> int:
    from .abi_snapshot import abi
    from .inlining_snapshot import inlining

    report = (abi if args.command == "abi" else inlining)(args.exe, args.glob)
    if args.json:
        json.dump([asdict(record) for record in report.values()], out, indent=1)
    else:
        out.write(report.text)
    out.write("\n")
    return EXIT_OK


# -- trace ------------------------------------------------------------------------------

EXIT_TIMEOUT = 124  # as timeout(1)
EXIT_TRACE_ERROR = 125  # pytest-uprobe's own errors in `trace`, as env(1) and timeout(1)


def _trace(args: argparse.Namespace, out: TextIO) -> int:
    from .tracer import Tracer

    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise UsageError(
            "give the program to run after --, e.g. "
            "pytest-uprobe trace -p 'args::hello' -- ./target/debug/args 1 2"
        )
    timed_out = False
    engine: str | None = None
    # SIGTERM unwinds like Ctrl-C, so the program is killed and the probes detached before
    # this process exits (after SIGKILL, the watchdog of launch.py does the killing).
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        settings = {
            setting.name: getattr(args, setting.name)
            for setting in options.SETTINGS
            if setting.command_flag is not None
        }
        with Tracer(**settings) as tracer:
            engine = tracer.backend_used  # what "auto" chose
            tracer.timeout_option = f"{options.TIMEOUT.command_flag} S (0: no timeout)"
            try:
                trace = tracer.run(command, probes=args.probe)
            except TraceTimeout as exc:
                trace, timed_out = exc.trace, True
                sys.stderr.write(f"pytest-uprobe trace: {exc}\n")
    except _Terminated:
        sys.stderr.write(
            "pytest-uprobe trace: terminated (SIGTERM): the program and every process it "
            "started were killed\n"
        )
        return 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.timeline:
        written = trace.save_timeline(args.timeline)
        sys.stderr.write(f"pytest-uprobe trace: timeline written to {written}\n")
    if args.json:
        json.dump({**trace_json(trace), "engine": engine}, out, indent=1, default=_json_value)
        out.write("\n")
    else:
        sys.stderr.write(trace.stdout)
        sys.stderr.write(trace.stderr)
        out.write(trace.log(limit=None) + "\n")
        counts = ", ".join(f"{n}: {f.call_count!r}" for n, f in trace.functions.items())
        for name, function in trace.functions.items():
            for site in function.left_out:
                sys.stderr.write(f"pytest-uprobe trace: {name}: left out {site}\n")
            for other in function.shares_address_with:
                sys.stderr.write(
                    f"pytest-uprobe trace: {name}: counts {other} too (same address)\n"
                )
            for why in function.unseen + function.merged_away + function.may_be_fewer:
                sys.stderr.write(f"pytest-uprobe trace: {name}: {why}\n")
        status = "timed out" if timed_out else f"exit status {trace.returncode}"
        lost = f"; {trace.lost_events} events lost" if trace.lost_events else ""
        sys.stderr.write(
            f"pytest-uprobe trace: {status}; calls counted: {counts}{lost}; engine: {engine}\n"
        )
        if trace.orphans and not timed_out:
            done = options.CHILDREN_DONE[trace.children]
            running = ", ".join(str(p) for p in trace.orphans)
            sys.stderr.write(
                f"pytest-uprobe trace: processes it started outlived it ({done}): {running}\n"
            )
    if timed_out:
        return EXIT_TIMEOUT
    return trace.returncode if trace.returncode >= 0 else 128 - trace.returncode


class _Terminated(KeyboardInterrupt):
    """SIGTERM, unwinding as Ctrl-C does."""


def _terminated(signum: int, frame: object) -> None:
    raise _Terminated


def trace_json(trace: Any) -> dict[str, Any]:
    """What `pytest-uprobe trace --json` prints. A call's `caller` is the index of its
    nearest traced caller in `calls` (null: none); values as json_values.to_json gives
    them (values that could not be read: {"unavailable": why}). A source-line or USDT hit
    has `at` (where) and, for a line, `locals`."""
    index = {id(call): i for i, call in enumerate(trace.calls)}
    start = trace.calls[0].ts_ns if trace.calls else 0
    calls = [
        {
            "function": c.function,
            "probes": list(c.probes),
            "path": c.path,
            "args": to_json(c.args if isinstance(c.args, Unavailable) else list(c.args)),
            "kwargs": _named_json(c.kwargs),
            "retval": to_json(c.retval),
            "returned": c.returned,
            "unwound": c.unwound,
            "ended": c.ended,
            "tail_call": c.tail_call,
            "inlined": c.inlined,
            "inlined_into": c.inlined_into,
            "at": c.at,
            "locals": _named_json(c.locals),
            "tid": c.tid,
            "offset_ns": c.ts_ns - start,
            "duration_ns": c.duration_ns,
            "depth": c.depth,
            "caller": index.get(id(c.caller)) if c.caller is not None else None,
            **_future_json(c, start),
        }
        for c in trace.calls
    ]
    return {
        "argv": trace.argv,
        "returncode": trace.returncode,
        "timed_out": trace.timed_out,
        "stdout": trace.stdout,
        "stderr": trace.stderr,
        "lost_events": trace.lost_events,
        "orphans": [{"pid": p.pid, "command": p.command} for p in trace.orphans],
        "children": trace.children,
        "orphans_held_output": trace.orphans_held_output,
        "counts": {name: f.call_count for name, f in trace.functions.items()},
        "inexact": {  # the names whose count is a bound, and why
            name: {
                "left_out": list(f.left_out),
                "shares_address_with": list(f.shares_address_with),
                "unseen": list(f.unseen),
                "merged_away": list(f.merged_away),
                "may_be_fewer": list(f.may_be_fewer),
            }
            for name, f in trace.functions.items()
            if not f.complete
        },
        "calls": calls,
    }


def _future_json(call: Any, start: int) -> dict[str, Any]:
    """A future's own fields (docs/async.md) under "future": its polls (thread, time,
    result), outcome, and whether it completed (null: the probes cannot tell)."""
    from .futures import FutureCall, FutureOutcomeUnknown

    if not isinstance(call, FutureCall):
        return {}
    try:
        completed: bool | None = call.completed
    except FutureOutcomeUnknown:
        completed = None
    polls = [
        {
            "tid": p.tid,
            "offset_ns": p.ts_ns - start,
            "duration_ns": None if p.return_ts_ns is None else p.return_ts_ns - p.ts_ns,
            "result": to_json(p.result),
        }
        for p in call.polls
    ]
    return {
        "future": {
            "polls": polls,
            "polls_complete": call.polls_complete,
            "outcome": call.outcome,
            "completed": completed,
            "created": call.created,
            "creation_doubt": call.creation_doubt,
            "dropped": call.dropped,
            "drop_tid": call.drop_tid,
            "state_address": call.state_address,
            "identity_doubt": call.identity_doubt,
        }
    }


def _named_json(values: Any) -> Any:
    """Values by name (a call's kwargs, a line hit's locals) as a JSON object."""
    if isinstance(values, dict):
        return {name: to_json(value) for name, value in values.items()}
    return to_json(values)  # None (not a line hit), or Unavailable


def _json_value(value: Any) -> Any:
    return to_json(value)  # what the fields above leave: a future's outcome, ...


# -- doctor -----------------------------------------------------------------------------


def _containment() -> prerequisites.Check:
    """How traced runs are contained here: a cgroup each, or only their process group."""
    from .bpf.prerequisites import Check
    from .launch import cgroup_root

    root = cgroup_root()
    if root.path is not None:
        detail = f"a cgroup per run in {root.path}: whatever a traced program starts is killed"
        return Check("containment", True, detail, required=False)
    return Check(
        "containment",
        False,
        f"process group only ({root.why_not}): a process a traced program starts "
        "that leaves its process group (setsid) is not killed with it",
        "mount cgroup2 read-write (e.g. a privileged container)",
        required=False,
    )


EXIT_MISSING = 1


def _doctor(args: argparse.Namespace, out: TextIO) -> int:
    from .bpf.prerequisites import EVERY_CHECK, run_checks

    checks = run_checks(EVERY_CHECK)
    checks.insert(-1, _containment())  # before the optional bpftool
    width = max(len(c.name) for c in checks)
    for check in checks:
        if check.ok:
            mark = "ok"
        elif check.ok is None:
            mark = "skipped"
        else:
            mark = "MISSING" if check.required else "missing (optional)"
        out.write(f"{mark:<8} {check.name:<{width}}  {check.detail}\n")
        if check.fix and not check.ok:
            out.write(f"{'':<8} {'':<{width}}  fix: {check.fix}\n")
    missing = [c.name for c in checks if c.required and c.ok is False]
    if missing:
        out.write(f"\n{len(missing)} missing: {', '.join(missing)}\n")
        return EXIT_MISSING
    out.write("\neverything pytest-uprobe needs is here: run `sudo -E pytest --uprobe`\n")
    return EXIT_OK
