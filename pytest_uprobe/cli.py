"""The `pytest-uprobe` console command (also `python -m pytest_uprobe`).

Each subcommand is a function `(args, out) -> exit status` registered in `_build_parser`;
add `trace` or `doctor` there the same way as `symbols`. Any UprobeError is printed to
stderr (its message already says what to do) and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Callable, TextIO

from . import code
from .dwarf.closures import LEGACY_CLOSURE, closure_aliases
from .dwarf.inlined import inlined_sites
from .elf import ElfBinary, Symbol
from .errors import UprobeError
from .names import crate_of, matcher, strip_generics
from .plan import ReturnMode, resolve

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
        print(f"pytest-uprobe {args.command}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # `pytest-uprobe symbols EXE | head`
        sys.stderr.close()
        return EXIT_OK


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytest-uprobe",
        description="Inspect what pytest-uprobe can probe in a compiled Rust binary.",
    )
    commands = parser.add_subparsers(dest="command", title="commands", required=True)

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

