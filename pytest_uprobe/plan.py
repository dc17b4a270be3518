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
from .decode import (
    AREA,
    MAX_DEREFS,
    MAX_PIECES,
    NO_READER,
    WORDS,
    Deref,
    Layout,
    Path,
    Planned,
    Reader,
    Segments,
    decode_value,
)
from .decode import Copy as DataCopy
from .dwarf import frames, index, locations
from .dwarf.closures import LEGACY_CLOSURE, closure_aliases
from .dwarf.inlined import InlinedSite, inlined_sites
from .dwarf.locations import Cfa, Indirect, Location, Piece
from .dwarf.types import SCALARS, RustType
from .elf import ElfBinary, Symbol
from .errors import (
    DataSymbolOnly,
    GlobMatchesNothing,
    InlinedFunction,
    InternalError,
    NoMatchingFunction,
    TooManyMatches,
    UnreadableFunction,
    UprobeError,
    UsageError,
)
from .names import closest, crate_of, is_glob, matcher, may_match
from .values import Unavailable

__all__ = ["AREA", "MAX_DEREFS", "MAX_PIECES", "WORDS", "Deref"]  # the BPF side's sizes
DEFAULT_MAX_FUNCTIONS = 1000
DEFAULT_MAX_STRING = 256  # bytes of a str or String
DEFAULT_MAX_ELEMENTS = 16  # elements of a slice, Vec or array whose pointers are followed
BIG_VALUE = 64  # bytes: a value in memory larger than this is copied as one block
RAX, RDX, RSP = 0, 1, 7
RDI = 5
RFLAGS = 49  # DWARF's number; the BPF program reads it for conditional tail calls
# Not a register: the word a return site fills with the hidden return pointer its entry saved
# (the BPF side reads 0 for it as a register, then stores the saved pointer over it).
SAVED_POINTER = 0x1000


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
    """One value to decode from an event: its name, its type, where its pieces sit, and
    where the copies of the memory behind its pointers land (`copies`, by path from `root`;
    `top`: the value itself, when it lives behind a run-time address)."""

    name: str
    type: RustType
    location: Location
    first_piece: int = 0  # index into the event's pieces
    root: Path = ()
    copies: dict[Path, Planned] = field(default_factory=dict, compare=False, repr=False)
    top: Planned | None = None

    def decode(self, words: Sequence[int], data: bytes = b"", failed: int = 0) -> Any:
        location = self.location
        if isinstance(location, Unavailable):
            return location
        if isinstance(location, bytes):  # a constant DWARF gives outright
            return decode_value(self.type, location, NO_READER, self.root)
        if isinstance(location, Indirect):
            address = words[self.first_piece] + location.add
            reader = Reader(data, failed, self.copies)
            raw = reader.fetch(self.root + ("^",), address & (2**64 - 1))
            if isinstance(raw, Unavailable):
                return raw
            return decode_value(self.type, raw, reader, self.root)
        raw = b"".join(
            words[self.first_piece + i].to_bytes(8, "little")[: piece.size]
            for i, piece in enumerate(location)
        )
        if self.type.kind in SCALARS:
            return self.type.decode(raw)
        return decode_value(self.type, raw, Reader(data, failed, self.copies), self.root)


@dataclass(frozen=True)
class Site:
    kind: SiteKind
    address: int
    function: int  # index into ProbePlan.functions
    cfa: Cfa  # how the BPF side computes the frame's CFA here
    pieces: tuple[Piece, ...] = ()
    target: int | None = None  # TAIL_CALL: the address jumped to, when it is known
    condition: str | None = None  # TAIL_CALL by a jcc: its mnemonic; pieces[0] is RFLAGS
    derefs: tuple[Deref, ...] = ()  # copies from behind pointers, in order (a big event)
    save_reg: int | None = None  # ENTRY: the register to save for this frame's return site
    load_word: int | None = None  # RETURN: the word to fill with the register saved at entry


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
    caps: tuple[int, int] = (DEFAULT_MAX_STRING, DEFAULT_MAX_ELEMENTS)

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
    max_string: int = DEFAULT_MAX_STRING,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> ProbePlan:
    """Sites for every probe name: its out-of-line instances and, unless `inlined` is
    False, every copy of it inlined into other functions (DWARF tells where). Strings are
    copied up to `max_string` bytes, slices and Vecs up to `max_elements` elements."""
    plan = ProbePlan(binary, tuple(probes), caps=(max_string, max_elements))
    attached: set[int] = set()
    copies_attached: set[int] = set()
    for probe in probes:
        with _Planning(binary, probe) as planning:
            sites = find_sites(binary, probe, max_functions=max_functions, inlined=inlined)
            for symbol in sites.out_of_line:
                if symbol.address in attached:
                    continue  # two names for one function: probe it once, under the first name
                attached.add(symbol.address)
                planning.reading(symbol.path, symbol.address)
                _plan_function(plan, probe, symbol, ret_sites_only)
            for copy in sites.inlined:
                if copy.entry in copies_attached:
                    continue
                copies_attached.add(copy.entry)
                planning.reading(f"the copy inlined into {copy.describe()}", None)
                _plan_inlined(plan, probe, copy)
    binary.save_caches()  # what was resolved, for the next process (see diskcache)
    return plan


class _Planning:
    """Turns an exception no part of planning meant to raise (a bug of ours, say a DWARF
    form nobody expected) into an InternalError naming the probe, the function being read
    and the DIE: the one place where no internal exception gets past to a user."""

    def __init__(self, binary: ElfBinary, probe: str) -> None:
        self.binary = binary
        self.probe = probe
        self.function: str | None = None
        self.address: int | None = None

    def reading(self, function: str, address: int | None) -> None:
        self.function, self.address = function, address

    def __enter__(self) -> _Planning:
        return self

    def __exit__(self, kind: Any, error: Any, _traceback: Any) -> None:
        if error is None or isinstance(error, UprobeError) or not isinstance(error, Exception):
            return
        die = getattr(error, "dwarf_die", None)
        if die is None and self.address is not None:
            try:
                info = index.function_at(self.binary, self.address)
                die = info.die.offset if info is not None else None
            except Exception:
                die = None  # the function's own DIE is what failed: name no DIE
        raise InternalError(self.probe, self.binary.path, self.function, die, error) from error


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
    spelled = may_match(probe)  # demangle only the symbols whose mangled name can match
    found: dict[int, Symbol] = {}
    data_kind: str | None = None
    sizeless: Symbol | None = None
    for symbol in binary.symbols:
        if not (aliases or spelled(symbol.name)):
            continue
        alias = aliases.get(symbol.address) if aliases and LEGACY_CLOSURE in symbol.path else None
        if not (matches(symbol.path) or (alias is not None and matches(alias))):
            continue
        if symbol.kind != "function":
            data_kind = data_kind or symbol.kind
        elif symbol.size > 0:
            found.setdefault(symbol.address, symbol)
        else:
            sizeless = symbol
    if not found:
        if data_kind is not None:
            raise DataSymbolOnly(probe, binary.path, data_kind)
        copies = inlined_sites(binary, probe, matches)
        if copies:
            raise InlinedFunction(probe, binary.path, copies)
        if sizeless is not None and not is_glob(probe):
            raise UnreadableFunction(
                probe,
                binary.path,
                f"{sizeless.path} is a function symbol without a size (C start-up code such "
                "as crt1.o's), so where its code ends, and so its returns, are unknown",
                "probe a function the compiler emitted with its size (any Rust function)",
            )
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
    disk = binary.cache("code")  # decoded shapes are plain data: kept for the next process
    shape = disk.get((symbol.address, symbol.size))
    if isinstance(shape, code.CodeShape):
        _shapes[key] = shape
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
    disk.put((symbol.address, symbol.size), shape)
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
    located = (
        [(p.name, p.type, _locate(p, entry, info.frame_base, cfa)) for p in info.params]
        if info is not None
        else []
    )
    params, pieces, derefs = _site_values(located, plan.caps)
    returns = _return_value(info.return_type, plan.caps) if info is not None else _unknown_return()
    save_reg = None
    if returns is not None and _hidden_pointer(returns):
        # The caller's buffer for the return value arrives in rdi; save it at the entry,
        # unless the code before the entry probe overwrote it.
        before = binary.code(shape.start, entry - shape.start) if entry > shape.start else b""
        if before is not None and code.keeps_rdi(before, shape.start):
            save_reg = RDI
        else:
            why = "the hidden return pointer (rdi) is overwritten before the entry probe"
            returns = Value("return", returns.type, Unavailable(why))

    # A uretprobe sits on the first instruction, so that instruction must take a probe.
    leaf = shape.is_leaf and not ret_sites_only and shape.start not in shape.unprobeable
    if symbol.address in shape.returns:
        leaf = True  # the function is a lone `ret`: a leaf whatever the option says
    mode = ReturnMode.URETPROBE if leaf else ReturnMode.RET_SITES
    number = len(plan.functions)
    plan.functions.append(
        PlannedFunction(probe, symbol, tuple(params), returns, mode, shape, info is not None)
    )
    plan.sites.append(
        Site(SiteKind.ENTRY, entry, number, cfa, pieces, derefs=derefs, save_reg=save_reg)
    )
    return_pieces: tuple[Piece, ...] = ()
    return_derefs: tuple[Deref, ...] = ()
    if returns is not None and returns.root == ("return",):
        return_pieces, return_derefs = _returns_layout(returns, plan.caps)
    load_word = 0 if save_reg is not None else None  # the hidden pointer is the first piece
    if mode is ReturnMode.URETPROBE:
        # After the ret the stack pointer is the CFA itself.
        plan.sites.append(
            Site(
                SiteKind.URETPROBE,
                symbol.address,
                number,
                Cfa(RSP, 0),
                return_pieces,
                derefs=return_derefs,
                load_word=load_word,
            )
        )
        return
    at_ret = Cfa(RSP, 8)  # the return address is on top of the stack
    for address in shape.returns:
        plan.sites.append(
            Site(
                SiteKind.RETURN,
                address,
                number,
                at_ret,
                return_pieces,
                derefs=return_derefs,
                load_word=load_word,
            )
        )
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
    located = [(p.name, p.type, _locate(p, entry, copy.frame_base, cfa)) for p in copy.params]
    params, pieces, derefs = _site_values(located, plan.caps)
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
    plan.sites.append(Site(SiteKind.INLINED, entry, number, cfa, pieces, derefs=derefs))


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
    ) or any(_located_only_after(p, shape.start, info.prologue_end) for p in info.params)
    if not needs_prologue:
        return shape.start
    return info.prologue_end


def _located_only_after(param: index.Parameter, start: int, prologue_end: int) -> bool:
    """A location list that begins after the first instruction but covers the prologue's
    end (a dev build's argument passed by reference, say)."""
    location = param.die.attributes.get("DW_AT_location")
    if location is None or location.form == "DW_FORM_exprloc":
        return False
    at_start = locations.expression_at(location, param.die, start)
    at_end = locations.expression_at(location, param.die, prologue_end)
    return isinstance(at_start, Unavailable) and not isinstance(at_end, Unavailable)


def _locate(param: index.Parameter, at: int, frame_base: Any, cfa: Cfa) -> Location:
    if param.type.kind == "unsupported":
        return param.type.decode(b"")  # Unavailable, with the reason
    if param.type.size == 0:
        return b""  # unit and other zero-sized values: nothing to read
    constant = param.die.attributes.get("DW_AT_const_value")
    if constant is not None:
        return locations.constant(constant, param.type.size, param.type.signed)
    location = param.die.attributes.get("DW_AT_location")
    if location is None:
        return Unavailable("optimized out")
    return locations.locate(location, param.die, at, param.type.size, frame_base, cfa)


def _site_values(
    located: Sequence[tuple[str, RustType, Location]], caps: tuple[int, int], root: Any = None
) -> tuple[list[Value], tuple[Piece, ...], tuple[Deref, ...]]:
    """The Values of one site, the pieces its event carries and the copies it makes from
    behind pointers: values first get their own bytes (pieces, or one block copied from a
    run-time address), then every pointer inside them is followed, breadth first."""
    values: list[Value] = []
    pieces: list[Piece] = []
    layout = Layout(*caps)
    roots: list[tuple[RustType, Segments, Path]] = []
    for number, (name, rust_type, where) in enumerate(located):
        path: Path = (number,) if root is None else root
        where = _as_block(where)
        if not isinstance(where, (tuple, Indirect)):  # a constant, or unavailable
            values.append(Value(name, rust_type, where, root=path))
            continue
        needed = (where.address,) if isinstance(where, Indirect) else where
        if len(pieces) + len(needed) > MAX_PIECES:
            why = Unavailable("too many values to copy in one event")
            values.append(Value(name, rust_type, why, root=path))
            continue
        first = len(pieces)
        pieces.extend(needed)
        top: Planned | None = None
        if isinstance(where, Indirect):
            top = layout.add(path + ("^",), 8 * first, where.add, rust_type.size)
            if isinstance(top, DataCopy):
                roots.append((rust_type, ((top.dst, rust_type.size),), path))
        elif rust_type.kind not in SCALARS:
            roots.append(
                (rust_type, tuple((8 * (first + i), p.size) for i, p in enumerate(where)), path)
            )
        values.append(Value(name, rust_type, where, first, path, layout.copies, top))
    layout.follow(roots)
    return values, tuple(pieces), tuple(layout.derefs)


def _as_block(where: Location) -> Location:
    """A value of more than BIG_VALUE bytes at one register plus an offset, copied as one
    block from that address rather than word by word."""
    if not isinstance(where, tuple) or sum(p.size for p in where) <= BIG_VALUE:
        return where
    first = where[0]
    contiguous = all(
        p.memory and p.reg == first.reg and p.offset == first.offset + 8 * i
        for i, p in enumerate(where)
    )
    if not contiguous:
        return where
    return Indirect(Piece(first.reg, 0, 8, memory=False), first.offset)


def _return_value(rust_type: RustType, caps: tuple[int, int]) -> Value | None:
    if rust_type.kind == "unit" or (rust_type.size == 0 and rust_type.kind != "unsupported"):
        return None if rust_type.kind == "unit" else Value("return", rust_type, b"")
    if rust_type.kind == "unsupported":
        return Value("return", rust_type, rust_type.decode(b""))
    if rust_type.float_return:
        return Value(
            "return",
            rust_type,
            Unavailable(
                "floats return in xmm0, and a uprobe's BPF program cannot read SSE registers "
                "(the kernel gives it the general-purpose registers only)"
            ),
        )
    location: Location
    pair = rust_type.scalars() if rust_type.size <= 16 else None
    if pair is not None and len(pair) == 2:
        # rustc's ScalarPair: each scalar in a register of its own (rax, then rdx).
        (first, first_type), (second, second_type) = pair
        if "float" in (first_type.kind, second_type.kind):
            why = "part of it returns in an SSE register, which a uprobe's BPF program cannot read"
            return Value("return", rust_type, Unavailable(why))
        if first != 0 or second > 8:
            return Value("return", rust_type, Unavailable("an unexpected register layout"))
        location = (
            Piece(RAX, 0, second, memory=False),
            Piece(RDX, 0, min(8, rust_type.size - second), memory=False),  # with padding
        )
    elif rust_type.size <= 8:
        location = (Piece(RAX, 0, rust_type.size, memory=False),)
    elif rust_type.size <= 16:
        location = (Piece(RAX, 0, 8, memory=False), Piece(RDX, 0, rust_type.size - 8, memory=False))
    else:
        # Returned through a hidden pointer: the caller's buffer, whose address arrives in
        # rdi. rax need not hold it at the return (optimized code does not keep it there),
        # so the entry saves rdi for the frame and the return site reads it back.
        location = Indirect(Piece(SAVED_POINTER, 0, 8, memory=False))
    return Value("return", rust_type, location, root=("return",))


def _hidden_pointer(returns: Value) -> bool:
    where = returns.location
    return isinstance(where, Indirect) and where.address.reg == SAVED_POINTER


def _returns_layout(
    returns: Value, caps: tuple[int, int]
) -> tuple[tuple[Piece, ...], tuple[Deref, ...]]:
    """The pieces and copies of a return site; fills `returns`' copies and top in place."""
    (planned,), pieces, derefs = _site_values(
        [(returns.name, returns.type, returns.location)], caps, root=("return",)
    )
    returns.copies.update(planned.copies)
    if planned.top is not None:
        object.__setattr__(returns, "top", planned.top)
    return pieces, derefs


def _unknown_return() -> Value:
    why = "the binary has no debug info, so the return type is unknown"
    return Value("return", RustType("?", "unsupported", 0), Unavailable(why))
