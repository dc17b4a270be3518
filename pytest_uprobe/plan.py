"""The probe plan: the seam between what the binary says and what the kernel runs.

For every probe name: the functions it resolves to, and for each function the sites to
attach (entry, return instructions or a uretprobe, tail-call jumps), what each site copies
(register and memory pieces), and how to decode the copied bytes. Everything here is pure
Python over files; nothing needs root.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import code
from .dwarf import frames, index, inlined, locations
from .dwarf.closures import LEGACY_CLOSURE, closure_aliases
from .dwarf.locations import Cfa, Location, Piece
from .dwarf.types import RustType
from .elf import ElfBinary, Symbol
from .errors import (
    DataSymbolOnly,
    GlobMatchesNothing,
    InlinedFunction,
    NoMatchingFunction,
    TooManyMatches,
    UnreadableFunction,
    UsageError,
)
from .names import closest, crate_of, is_glob, matcher
from .values import Unavailable

MAX_PIECES = 16  # values one event can carry; the BPF program is built for this many
DEFAULT_MAX_FUNCTIONS = 1000
RAX, RDX, RSP = 0, 1, 7
RFLAGS = 49  # DWARF's number; the BPF program reads it for conditional tail calls


class SiteKind(enum.IntEnum):
    ENTRY = 0
    RETURN = 1  # a plain uprobe on a ret instruction
    URETPROBE = 2  # leaf functions only
    TAIL_CALL = 3  # a jmp that leaves the function: its frame ends here


class ReturnMode(str, enum.Enum):
    URETPROBE = "uretprobe"
    RET_SITES = "ret-sites"


@dataclass(frozen=True)
class Value:
    """One value to decode from an event: its name, its type and where its pieces sit."""

    name: str
    type: RustType
    location: Location
    first_piece: int = 0  # index into the event's pieces

    def decode(self, words: Sequence[int]) -> Any:
        if isinstance(self.location, Unavailable):
            return self.location
        raw = b"".join(
            words[self.first_piece + i].to_bytes(8, "little")[: piece.size]
            for i, piece in enumerate(self.location)
        )
        return self.type.decode(raw)


@dataclass(frozen=True)
class Site:
    kind: SiteKind
    address: int
    function: int  # index into ProbePlan.functions
    cfa: Cfa  # how the BPF side computes the frame's CFA here
    pieces: tuple[Piece, ...] = ()
    target: int | None = None  # TAIL_CALL: the address jumped to, when it is known
    condition: str | None = None  # TAIL_CALL by a jcc: its mnemonic; pieces[0] is RFLAGS


@dataclass
class PlannedFunction:
    probe: str  # the name as the user wrote it
    symbol: Symbol
    params: tuple[Value, ...]
    returns: Value | None  # None: unit, nothing to read
    return_mode: ReturnMode
    shape: code.CodeShape
    arguments_known: bool  # False without DWARF: the parameter list itself is unknown


@dataclass
class ProbePlan:
    binary: ElfBinary
    probes: tuple[str, ...]
    functions: list[PlannedFunction] = field(default_factory=list)
    sites: list[Site] = field(default_factory=list)

    def functions_of(self, probe: str) -> list[int]:
        return [i for i, f in enumerate(self.functions) if f.probe == probe]

    def symbol_name_at(self, address: int | None) -> str:
        """The demangled function at `address`, for messages."""
        if address is None:
            return "an address computed at run time"
        for symbol in self.binary.functions:
            if symbol.address == address:
                return symbol.path
        return f"code at {address:#x}"


def build_plan(
    binary: ElfBinary,
    probes: Sequence[str],
    *,
    ret_sites_only: bool = False,
    max_functions: int = DEFAULT_MAX_FUNCTIONS,
) -> ProbePlan:
    plan = ProbePlan(binary, tuple(probes))
    attached: set[int] = set()
    for probe in probes:
        for symbol in resolve(binary, probe, max_functions=max_functions):
            if symbol.address in attached:
                continue  # two names for one function: probe it once, under the first name
            attached.add(symbol.address)
            _plan_function(plan, probe, symbol, ret_sites_only)
    return plan


def resolve(
    binary: ElfBinary, probe: str, *, max_functions: int = DEFAULT_MAX_FUNCTIONS
) -> list[Symbol]:
    """The function symbols a probe name means, one per address."""
    if not isinstance(probe, str) or not probe.strip():
        raise UsageError(f"probe names must be non-empty strings, got {probe!r}")
    matches = matcher(probe)
    aliases = _closure_aliases(binary, probe)
    found: dict[int, Symbol] = {}
    data_kind: str | None = None
    for symbol in binary.symbols:
        alias = aliases.get(symbol.address) if LEGACY_CLOSURE in symbol.path else None
        if not (matches(symbol.path) or (alias is not None and matches(alias))):
            continue
        if symbol.kind != "function":
            data_kind = data_kind or symbol.kind
        elif symbol.size > 0:
            found.setdefault(symbol.address, symbol)
    if not found:
        if data_kind is not None:
            raise DataSymbolOnly(probe, binary.path, data_kind)
        sites = inlined.inlined_sites(binary, probe, matches)
        if sites:
            raise InlinedFunction(probe, binary.path, sorted({s.caller for s in sites}))
        if is_glob(probe):
            raise GlobMatchesNothing(probe, binary.path)
        raise NoMatchingFunction(
            probe, binary.path, closest(probe, (f.path for f in binary.functions))
        )
    if len(found) > max_functions:
        raise TooManyMatches(probe, binary.path, len(found), max_functions)
    return sorted(found.values(), key=lambda s: s.address)


def _closure_aliases(binary: ElfBinary, probe: str) -> dict[int, str]:
    """For a name with a numbered closure (`zoo::main::{closure#0}`): the numbered paths of
    the binary's legacy-mangled `{{closure}}` symbols, by address, taken from DWARF."""
    if "{closure#" not in probe:
        return {}
    crate = crate_of(probe)
    return closure_aliases(binary, crate) if crate is not None else {}


def _plan_function(plan: ProbePlan, probe: str, symbol: Symbol, ret_sites_only: bool) -> None:
    binary = plan.binary
    raw = binary.code(symbol.address, symbol.size)
    if raw is None:
        raise UnreadableFunction(
            probe,
            binary.path,
            f"{symbol.path} at {symbol.address:#x} is not inside an executable section",
            "probe another function; this symbol does not name code",
        )
    try:
        shape = code.analyze(raw, symbol.address)
    except code.UndecodableCode as exc:
        raise UnreadableFunction(
            probe,
            binary.path,
            f"the machine code of {symbol.path} does not decode as x86-64 ({exc})",
            "probe another function, and report this binary to pytest-uprobe",
        ) from None

    info = index.function_at(binary, symbol.address)
    entry, cfa = _entry_point(binary, info, shape)
    params: list[Value] = []
    pieces: list[Piece] = []
    if info is not None:
        for param in info.params:
            located = _locate_param(param, info, entry, cfa)
            params.append(_with_room(param.name, param.type, located, pieces))
    returns = _return_value(info.return_type) if info is not None else _unknown_return()

    leaf = shape.is_leaf and not ret_sites_only
    if symbol.address in shape.returns:
        leaf = True  # the function is a lone `ret`: a leaf whatever the option says
    mode = ReturnMode.URETPROBE if leaf else ReturnMode.RET_SITES
    number = len(plan.functions)
    plan.functions.append(
        PlannedFunction(probe, symbol, tuple(params), returns, mode, shape, info is not None)
    )
    plan.sites.append(Site(SiteKind.ENTRY, entry, number, cfa, tuple(pieces)))
    return_pieces = returns.location if returns is not None else ()
    if isinstance(return_pieces, Unavailable):
        return_pieces = ()
    if mode is ReturnMode.URETPROBE:
        # After the ret the stack pointer is the CFA itself.
        plan.sites.append(
            Site(SiteKind.URETPROBE, symbol.address, number, Cfa(RSP, 0), return_pieces)
        )
        return
    at_ret = Cfa(RSP, 8)  # the return address is on top of the stack
    for address in shape.returns:
        plan.sites.append(Site(SiteKind.RETURN, address, number, at_ret, return_pieces))
    for jump in shape.tail_calls:
        flags = (Piece(RFLAGS, 0, 8, memory=False),) if jump.condition is not None else ()
        plan.sites.append(
            Site(
                SiteKind.TAIL_CALL, jump.address, number, at_ret, flags, jump.target, jump.condition
            )
        )


def _entry_point(
    binary: ElfBinary, info: index.FunctionInfo | None, shape: code.CodeShape
) -> tuple[int, Cfa]:
    """Where to read the arguments: the first instruction, or after the prologue when the
    DWARF locations (single stack slots, as in debug builds) hold only from there on."""
    at_start = Cfa(RSP, 8)
    if info is None or not info.params or info.prologue_end is None:
        return shape.start, at_start
    if info.prologue_end == shape.start or info.prologue_end in shape.jump_targets:
        return shape.start, at_start
    needs_prologue = any(
        (p.die.attributes.get("DW_AT_location") is not None)
        and p.die.attributes["DW_AT_location"].form == "DW_FORM_exprloc"
        for p in info.params
    )
    if not needs_prologue:
        return shape.start, at_start
    cfa = frames.cfa_at(binary, info.prologue_end)
    if cfa is None:
        return shape.start, at_start
    return info.prologue_end, cfa


def _locate_param(param: index.Parameter, info: index.FunctionInfo, at: int, cfa: Cfa) -> Location:
    location = param.die.attributes.get("DW_AT_location")
    if location is None:
        return Unavailable("optimized out")
    if param.type.kind == "unsupported":
        return Unavailable(f"values of type {param.type.name} are not decoded yet")
    return locations.locate(location, param.die, at, param.type.size, info.frame_base, cfa)


def _with_room(name: str, rust_type: RustType, located: Location, pieces: list[Piece]) -> Value:
    if isinstance(located, Unavailable):
        return Value(name, rust_type, located)
    if len(pieces) + len(located) > MAX_PIECES:
        return Value(name, rust_type, Unavailable("too many values to copy in one event"))
    value = Value(name, rust_type, located, len(pieces))
    pieces.extend(located)
    return value


def _return_value(rust_type: RustType) -> Value | None:
    if rust_type.kind == "unit":
        return None
    if rust_type.kind == "unsupported":
        return Value(
            "return", rust_type, Unavailable(f"values of type {rust_type.name} are not decoded yet")
        )
    if rust_type.kind == "float":
        return Value(
            "return", rust_type, Unavailable("floats return in xmm0, which a uprobe cannot read")
        )
    if rust_type.size <= 8:
        return Value("return", rust_type, (Piece(RAX, 0, rust_type.size, memory=False),))
    if rust_type.size <= 16:
        return Value(
            "return",
            rust_type,
            (Piece(RAX, 0, 8, memory=False), Piece(RDX, 0, rust_type.size - 8, memory=False)),
        )
    return Value("return", rust_type, Unavailable(f"{rust_type.size}-byte values return in memory"))


def _unknown_return() -> Value:
    why = "the binary has no debug info, so the return type is unknown"
    return Value("return", RustType("?", "unsupported", 0), Unavailable(why))
