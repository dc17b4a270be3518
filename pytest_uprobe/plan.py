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
from .dwarf import frames, index, locations
from .dwarf.closures import LEGACY_CLOSURE, closure_aliases
from .dwarf.inlined import InlinedSite, inlined_sites
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
    INLINED = 4  # the entry of a copy inlined into another function: no return of its own

    @property
    def starts_a_call(self) -> bool:
        """Each hit of this site is one call: what the kernel's counters count."""
        return self in (SiteKind.ENTRY, SiteKind.INLINED)


class ReturnMode(str, enum.Enum):
    URETPROBE = "uretprobe"
    RET_SITES = "ret-sites"
    INLINED = "inlined"  # an inlined copy returns nowhere: nothing to probe


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
        if isinstance(self.location, bytes):  # a constant DWARF gives outright
            return self.type.decode(self.location)
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
    shape: code.CodeShape | None  # None for an inlined copy: it has no code range of its own
    arguments_known: bool  # False without DWARF: the parameter list itself is unknown
    inlined: InlinedSite | None = None


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
    inlined: bool = True,
) -> ProbePlan:
    """Sites for every probe name: its out-of-line instances and, unless `inlined` is
    False, every copy of it inlined into other functions (DWARF tells where)."""
    plan = ProbePlan(binary, tuple(probes))
    attached: set[int] = set()
    copies_attached: set[int] = set()
    for probe in probes:
        sites = find_sites(binary, probe, max_functions=max_functions, inlined=inlined)
        for symbol in sites.out_of_line:
            if symbol.address in attached:
                continue  # two names for one function: probe it once, under the first name
            attached.add(symbol.address)
            _plan_function(plan, probe, symbol, ret_sites_only)
        for copy in sites.inlined:
            if copy.entry in copies_attached:
                continue
            copies_attached.add(copy.entry)
            _plan_inlined(plan, probe, copy)
    return plan


@dataclass(frozen=True)
class FunctionSites:
    """Where a probe name's code runs: out-of-line instances and inlined copies."""

    name: str
    out_of_line: tuple[Symbol, ...]
    inlined: tuple[InlinedSite, ...]

    @property
    def callers(self) -> list[str]:
        """The functions the copies were inlined into, each once, sorted."""
        return sorted({s.caller for s in self.inlined})


def find_sites(
    binary: ElfBinary,
    probe: str,
    *,
    max_functions: int = DEFAULT_MAX_FUNCTIONS,
    inlined: bool = True,
) -> FunctionSites:
    try:
        symbols = resolve(binary, probe, max_functions=max_functions)
    except InlinedFunction as only_inlined:
        if not inlined:
            raise
        return FunctionSites(probe, (), tuple(only_inlined.sites))
    copies = inlined_sites(binary, probe, matcher(probe)) if inlined else []
    return FunctionSites(probe, tuple(symbols), tuple(copies))


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
        copies = inlined_sites(binary, probe, matches)
        if copies:
            raise InlinedFunction(probe, binary.path, copies)
        if is_glob(probe):
            raise GlobMatchesNothing(probe, binary.path)
        raise NoMatchingFunction(
            probe,
            binary.path,
            closest(probe, (f.path for f in binary.functions)),
            has_debug_info=binary.has_dwarf,
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


_shapes: dict[tuple[object, int], code.CodeShape] = {}


def shape_of(binary: ElfBinary, symbol: Symbol, probe: str) -> code.CodeShape:
    """The decoded machine code of one function symbol, cached per binary."""
    key = (binary.identity, symbol.address)
    shape = _shapes.get(key)
    if shape is not None:
        return shape
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
    _shapes[key] = shape
    return shape


def _probe_point(
    binary: ElfBinary, shape: code.CodeShape, address: int, probe: str, what: str
) -> tuple[int, Cfa]:
    """Where to put a probe meant for `address` (moved past instructions the kernel refuses
    to probe), and the CFA rule there."""
    moved = shape.probe_point(address)
    cfa = None
    if moved is not None:
        cfa = Cfa(RSP, 8) if moved == shape.start else frames.cfa_at(binary, moved)
    if moved is None or cfa is None:
        raise UnreadableFunction(
            probe,
            binary.path,
            f"{what} at {address:#x} is an instruction a uprobe cannot take (LOCK or segment "
            "prefix), and no probe-able instruction follows it in straight-line code",
            "probe a function that calls it instead",
        )
    return moved, cfa


def _plan_function(plan: ProbePlan, probe: str, symbol: Symbol, ret_sites_only: bool) -> None:
    binary = plan.binary
    shape = shape_of(binary, symbol, probe)
    info = index.function_at(binary, symbol.address)
    entry = _entry_point(info, shape)
    entry, cfa = _probe_point(binary, shape, entry, probe, f"the entry of {symbol.path}")
    params: list[Value] = []
    pieces: list[Piece] = []
    if info is not None:
        for param in info.params:
            located = _locate(param, entry, info.frame_base, cfa)
            params.append(_with_room(param.name, param.type, located, pieces))
    returns = _return_value(info.return_type) if info is not None else _unknown_return()

    # A uretprobe sits on the first instruction, so that instruction must take a probe.
    leaf = shape.is_leaf and not ret_sites_only and shape.start not in shape.unprobeable
    if symbol.address in shape.returns:
        leaf = True  # the function is a lone `ret`: a leaf whatever the option says
    mode = ReturnMode.URETPROBE if leaf else ReturnMode.RET_SITES
    number = len(plan.functions)
    plan.functions.append(
        PlannedFunction(probe, symbol, tuple(params), returns, mode, shape, info is not None)
    )
    plan.sites.append(Site(SiteKind.ENTRY, entry, number, cfa, tuple(pieces)))
    return_pieces = returns.location if returns is not None else ()
    if not isinstance(return_pieces, tuple):  # unavailable: nothing to copy
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


def _plan_inlined(plan: ProbePlan, probe: str, copy: InlinedSite) -> None:
    """One INLINED site at the copy's entry, reading its parameters where DWARF puts them
    there (the caller's frame base; the CFA from .eh_frame when the frame base needs it)."""
    host = plan.binary.function_containing(copy.entry)
    if host is None:
        raise UnreadableFunction(
            probe,
            plan.binary.path,
            f"its copy inlined into {copy.describe()} lies outside every function symbol",
            "probe the function it was inlined into instead",
        )
    where = f"the copy inlined into {copy.describe()}"
    entry, cfa = _probe_point(
        plan.binary, shape_of(plan.binary, host, probe), copy.entry, probe, where
    )
    params: list[Value] = []
    pieces: list[Piece] = []
    for param in copy.params:
        located = _locate(param, entry, copy.frame_base, cfa)
        params.append(_with_room(param.name, param.type, located, pieces))
    returns = Value(
        "return",
        RustType("?", "unsupported", 0),
        Unavailable(f"inlined into {copy.caller}: an inlined copy has no return to probe"),
    )
    symbol = Symbol("", copy.path, copy.entry, 0, "inlined")
    number = len(plan.functions)
    plan.functions.append(
        PlannedFunction(
            probe,
            symbol,
            tuple(params),
            returns,
            ReturnMode.INLINED,
            None,
            arguments_known=copy.params_known,
            inlined=copy,
        )
    )
    plan.sites.append(Site(SiteKind.INLINED, entry, number, cfa, tuple(pieces)))


def _entry_point(info: index.FunctionInfo | None, shape: code.CodeShape) -> int:
    """Where to read the arguments: the first instruction, or after the prologue when the
    DWARF locations (single stack slots, as in debug builds) hold only from there on."""
    if info is None or not info.params or info.prologue_end is None:
        return shape.start
    if info.prologue_end == shape.start or info.prologue_end in shape.jump_targets:
        return shape.start
    needs_prologue = any(
        (p.die.attributes.get("DW_AT_location") is not None)
        and p.die.attributes["DW_AT_location"].form == "DW_FORM_exprloc"
        for p in info.params
    )
    if not needs_prologue:
        return shape.start
    return info.prologue_end


def _locate(param: index.Parameter, at: int, frame_base: Any, cfa: Cfa) -> Location:
    if param.type.kind == "unsupported":
        return Unavailable(f"values of type {param.type.name} are not decoded yet")
    constant = param.die.attributes.get("DW_AT_const_value")
    if constant is not None:
        return locations.constant(constant, param.type.size, param.type.signed)
    location = param.die.attributes.get("DW_AT_location")
    if location is None:
        return Unavailable("optimized out")
    return locations.locate(location, param.die, at, param.type.size, frame_base, cfa)


def _with_room(name: str, rust_type: RustType, located: Location, pieces: list[Piece]) -> Value:
    if not isinstance(located, tuple):  # a constant, or unavailable: nothing to copy
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
