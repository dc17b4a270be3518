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
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Callable, NoReturn, TextIO

from . import code
from .dwarf.closures import LEGACY_CLOSURE, closure_aliases
from .dwarf.inlined import inlined_sites
from .elf import ElfBinary, Symbol
from .errors import PrerequisiteError, TraceTimeout, UprobeError, UsageError
from .names import crate_of, matcher, strip_generics
from .plan import ReturnMode, resolve
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
        help="count the copies DWARF shows inlined into callers (slow on big binaries)",
    )
    symbols.set_defaults(handler=_symbols)

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
        "Needs root, as tracing does.",
        usage="%(prog)s -p NAME [-p NAME ...] [--json] [--timeout S] [--no-inlined] "
        "[--follow-children] [--children {kill,wait,leave}] "
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
    trace.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="kill the program and everything it started after S s, exit status 124 "
        "(default: 60; 0: no timeout)",
    )
    trace.add_argument(
        "--no-inlined", action="store_true", help="do not probe copies inlined into callers"
    )
    trace.add_argument(
        "--follow-children",
        action="store_true",
        help="also trace the processes the program forks and execs",
    )
    trace.add_argument(
        "--children",
        choices=["kill", "wait", "leave"],
        default="kill",
        help="what happens to processes the program started that still run when it exits: "
        "kill them (default), wait for them (the timeout counts), or leave them running",
    )
    trace.add_argument(
        "command", nargs=argparse.REMAINDER, help="the program and its arguments, after --"
    )
    trace.set_defaults(handler=_trace)
    trace.usage_error_status = EXIT_TRACE_ERROR

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


@dataclass(frozen=True)
class Row:
    path: str  # demangled; a legacy `{{closure}}` shown with its DWARF number when known
    symbol: str  # as stored in .symtab
    address: int
    size: int
    instances: int  # functions sharing the path with generic arguments stripped
    inlined: int | None  # None: not looked up
    return_mode: str  # "uretprobe", "ret-sites" or "unreadable"


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
        out.write(
            f"{row.return_mode:<10} {row.address:#10x} {row.size:>7} {row.instances:>4} "
            f"{inlined:>4}  {row.path}\n"
        )
    return EXIT_OK


def symbol_rows(binary: ElfBinary, glob: str | None = None, *, inlined: bool = False) -> list[Row]:
    """The rows `pytest-uprobe symbols` prints; raises the probe-name errors a test would get."""
    functions = _probeable(binary)
    if glob is not None:
        chosen = resolve(binary, glob, max_functions=len(functions) + 1)
    else:
        chosen = sorted(functions, key=lambda s: s.address)
    crate = crate_of(glob) if glob is not None else None
    aliases = closure_aliases(binary, crate) if crate is not None else {}

    def shown(symbol: Symbol) -> str:
        if LEGACY_CLOSURE in symbol.path:
            return aliases.get(symbol.address, symbol.path)
        return symbol.path

    instances = Counter(strip_generics(shown(s)) for s in functions)
    rows = []
    for symbol in chosen:
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
            )
        )
    rows.sort(key=lambda r: (r.path, r.address))
    return rows


def _probeable(binary: ElfBinary) -> list[Symbol]:
    """One function symbol per address, of the functions that have code (size > 0)."""
    by_address: dict[int, Symbol] = {}
    for symbol in binary.functions:
        if symbol.size > 0:
            by_address.setdefault(symbol.address, symbol)
    return list(by_address.values())


def _return_mode(binary: ElfBinary, symbol: Symbol) -> str:
    """How a probe would read the return value, by the rule of plan._plan_function."""
    raw = binary.code(symbol.address, symbol.size)
    if raw is None:
        return "unreadable"
    try:
        shape = code.analyze(raw, symbol.address)
    except code.UndecodableCode:
        return "unreadable"
    leaf = shape.is_leaf or symbol.address in shape.returns
    return (ReturnMode.URETPROBE if leaf else ReturnMode.RET_SITES).value



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
    if not args.timeout >= 0:
        raise UsageError(f"--timeout must be a number of seconds, 0 for none, got {args.timeout}")
    timed_out = False
    # SIGTERM unwinds like Ctrl-C, so the program is killed and the probes detached before
    # this process exits (after SIGKILL, the watchdog of launch.py does the killing).
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        with Tracer(
            timeout=args.timeout or None,
            inlined=not args.no_inlined,
            follow_children=args.follow_children,
            children=args.children,
        ) as tracer:
            tracer.timeout_option = "--timeout S (0: no timeout)"
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
    if args.json:
        json.dump(trace_json(trace), out, indent=1, default=_json_value)
        out.write("\n")
    else:
        sys.stderr.write(trace.stdout)
        sys.stderr.write(trace.stderr)
        out.write(trace.log(limit=None) + "\n")
        counts = ", ".join(f"{n}: {f.call_count}" for n, f in trace.functions.items())
        status = "timed out" if timed_out else f"exit status {trace.returncode}"
        lost = f"; {trace.lost_events} events lost" if trace.lost_events else ""
        sys.stderr.write(f"pytest-uprobe trace: {status}; calls counted: {counts}{lost}\n")
        if trace.orphans and not timed_out:
            done = {"kill": "killed", "wait": "waited for", "leave": "left running"}
            running = ", ".join(str(p) for p in trace.orphans)
            sys.stderr.write(
                f"pytest-uprobe trace: processes it started outlived it ({done[trace.children]}): "
                f"{running}\n"
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
    nearest traced caller in `calls` (null: none); values that could not be read are
    {"unavailable": why}."""
    index = {id(call): i for i, call in enumerate(trace.calls)}
    start = trace.calls[0].ts_ns if trace.calls else 0
    calls = [
        {
            "function": c.function,
            "path": c.path,
            "args": list(c.args),
            "kwargs": c.kwargs,
            "retval": c.retval,
            "returned": c.returned,
            "unwound": c.unwound,
            "tail_call": c.tail_call,
            "inlined": c.inlined,
            "inlined_into": c.inlined_into,
            "tid": c.tid,
            "offset_ns": c.ts_ns - start,
            "duration_ns": c.duration_ns,
            "depth": c.depth,
            "caller": index.get(id(c.caller)) if c.caller is not None else None,
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
        "calls": calls,
    }


def _json_value(value: Any) -> Any:
    if isinstance(value, Unavailable):
        return {"unavailable": value.reason}
    if isinstance(value, bytes):
        return list(value)
    return repr(value)


# -- doctor -----------------------------------------------------------------------------

EXIT_MISSING = 1
MIN_KERNEL = (5, 8)  # the BPF ring buffer


@dataclass
class Check:
    name: str
    ok: bool | None  # None: not checked, because something it needs is missing
    detail: str
    fix: str = ""
    required: bool = True


def _doctor(args: argparse.Namespace, out: TextIO) -> int:
    checks = doctor_checks()
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


def doctor_checks() -> list[Check]:
    """Every prerequisite, each checked on its own (unlike check_prerequisites, which stops
    at the first missing one)."""
    from .bpf import headers
    from .bpf import session as bpf

    checks = []
    privilege = bpf.tracing_privilege()
    if privilege is not None:
        checks.append(Check("privileges", True, privilege))
    else:
        checks.append(
            Check(
                "privileges",
                False,
                "not root and without CAP_BPF + CAP_PERFMON: BPF programs and uprobes "
                "are privileged",
                "sudo -E pytest-uprobe doctor   (and run tests with: sudo -E pytest --uprobe)",
            )
        )
    privileged = checks[-1].ok

    release = platform.release()
    version = tuple(int(n) for n in re.findall(r"\d+", release)[:2])
    if version >= MIN_KERNEL:
        checks.append(Check("kernel", True, f"Linux {release} (BPF ring buffer: 5.8 or newer)"))
    else:
        checks.append(
            Check(
                "kernel",
                False,
                f"Linux {release} is older than 5.8, which has the BPF ring buffer",
                "boot a kernel 5.8 or newer (Debian 12: apt-get install linux-image-amd64)",
            )
        )

    pmu = "/sys/bus/event_source/devices/uprobe"
    if os.path.exists(pmu):
        checks.append(Check("uprobe PMU", True, pmu))
    else:
        checks.append(
            Check(
                "uprobe PMU",
                False,
                f"{pmu} is missing (kernel built without CONFIG_UPROBE_EVENTS?)",
                "boot a kernel built with CONFIG_UPROBES=y and CONFIG_UPROBE_EVENTS=y",
            )
        )

    bcc_module: Any = None
    try:
        bcc_module = bpf.load_bcc()
        where = os.path.dirname(getattr(bcc_module, "__file__", "") or "") or "loaded"
        checks.append(Check("bcc", True, f"BCC's Python bindings from {where}"))
    except PrerequisiteError as exc:
        checks.append(_missing("bcc", exc))

    source: Any = None
    headers_ok = False
    try:
        source = headers.kernel_source()
        found = f"/lib/modules/{release}/build" if source is None else str(source)
        checks.append(Check("kernel headers", True, found))
        headers_ok = True
    except PrerequisiteError as exc:
        checks.append(_missing("kernel headers", exc))
    except OSError as exc:  # assembling Debian's two halves in the cache failed
        why = f"assembling them in {headers.cache_dir()} failed: {exc}"
        checks.append(Check("kernel headers", False, why, f"rm -rf {headers.cache_dir()}"))

    needs = [n for n, ok in (("privileges", privileged), ("bcc", bcc_module is not None),
                             ("kernel headers", headers_ok)) if not ok]  # fmt: skip
    if needs:
        checks.append(Check("BPF program", None, "not tried: needs " + ", ".join(needs)))
    else:
        checks.append(_load_program(bcc_module, source))

    cargo = shutil.which("cargo")
    if cargo:
        checks.append(Check("cargo", True, f"{cargo} ({_version([cargo, '--version'])})"))
    else:
        checks.append(
            Check(
                "cargo",
                False,
                "not on PATH (the cargo_bin fixture builds crates with it; under sudo, PATH "
                "may lose ~/.cargo/bin)",
                "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh   "
                "(or apt-get install cargo; under sudo: sudo -E env PATH=$PATH pytest --uprobe)",
            )
        )

    from .launch import cgroup_root

    root = cgroup_root()
    if root.path is not None:
        detail = f"a cgroup per run in {root.path}: whatever a traced program starts is killed"
        checks.append(Check("containment", True, detail, required=False))
    else:
        checks.append(
            Check(
                "containment",
                False,
                f"process group only ({root.why_not}): a process a traced program starts "
                "that leaves its process group (setsid) is not killed with it",
                "mount cgroup2 read-write (e.g. a privileged container)",
                required=False,
            )
        )

    bpftool = shutil.which("bpftool")
    if bpftool:
        checks.append(Check("bpftool", True, bpftool, required=False))
    else:
        checks.append(
            Check(
                "bpftool",
                False,
                "not on PATH (only this project's leak checks use it)",
                "apt-get install bpftool",
                required=False,
            )
        )
    return checks


def _missing(name: str, exc: PrerequisiteError) -> Check:
    why = str(exc).split("\n  fix: ")[0]
    prefix = f"pytest-uprobe needs {exc.missing}: "
    return Check(name, False, why[len(prefix) :] if why.startswith(prefix) else why, exc.fix)


def _load_program(bcc: Any, source: Any) -> Check:
    """Compile and load the program tracing uses, with room for one site, then unload it."""
    from .bpf import program

    before = os.environ.get("BCC_KERNEL_SOURCE")
    if source is not None:
        os.environ["BCC_KERNEL_SOURCE"] = str(source)
    started = time.perf_counter()
    loaded = None
    try:
        loaded = bcc.BPF(text=program.source(program.capacity(1)).encode())
        loaded.load_func(program.function_name(0).encode(), bcc.BPF.KPROBE)
    except Exception as exc:
        return Check(
            "BPF program",
            False,
            f"BCC could not build or load it: {str(exc).strip().splitlines()[-1:]}",
            "check the kernel headers match the running kernel (apt-get install "
            f"linux-headers-{platform.release()}), and that no LSM forbids bpf()",
        )
    finally:
        if loaded is not None:
            loaded.cleanup()
        if before is None:
            os.environ.pop("BCC_KERNEL_SOURCE", None)
        else:
            os.environ["BCC_KERNEL_SOURCE"] = before
    seconds = time.perf_counter() - started
    return Check("BPF program", True, f"compiled and loaded in {seconds:.2f} s")


def _version(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run: {exc}"
    return result.stdout.strip() or result.stderr.strip()
