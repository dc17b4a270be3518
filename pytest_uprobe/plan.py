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
    CONSTANT_SEGMENT,
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
from .dwarf import detail, frames, index, locations
from .dwarf.closures import LEGACY_CLOSURE, closure_aliases
from .dwarf.inlined import InlinedSite, inlined_sites
from .dwarf.locations import Cfa, Indirect, Location, Piece
from .dwarf.types import SCALARS, RustType
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
            piece.value
            if piece.value is not None  # a part DWARF gives as a constant
            else words[self.first_piece + i].to_bytes(8, "little")[: piece.size]
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
    unknown_why: str = ""  # why the parameter list is unknown (when arguments_known is False)

    @property
    def unknown_arguments(self) -> Unavailable | None:
        """What a call's `args` is when the parameter list itself is unknown."""
        if self.arguments_known:
            return None
        return Unavailable(self.unknown_why or detail.LIMITED)


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
    binary.save_caches()  # what was resolved, for the next process (see diskcache)
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
    spelled = may_match(probe)  # demangle only the symbols whose mangled name can match
    found: dict[int, Symbol] = {}
    data_kind: str | None = None
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
    unknown_why = _values_unknown(info)
    if unknown_why:
        info = None  # names only: nothing to locate or decode
    entry = _entry_point(info, shape)
    entry, cfa = _probe_point(binary, shape, entry, probe, f"the entry of {symbol.path}")
    located = (
        [
            (p.name, p.type, _argument_slot(_locate(p, entry, info.frame_base, cfa), p, entry, cfa))
            for p in info.params
        ]
        if info is not None
        else []
    )
    params, pieces, derefs = _site_values(located, plan.caps)
    if info is None:
        returns: Value | None = _unknown_return(unknown_why)
    else:
        returns = _return_value(info.return_type, plan.caps, detail.language(info.die.cu))
        if _abi_changed(info) and not _still_returned(binary, shape, returns):
            returns = _changed_return(info.return_type)
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
        PlannedFunction(
            probe,
            symbol,
            tuple(params),
            returns,
            mode,
            shape,
            info is not None,
            unknown_why=unknown_why,
        )
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
    if info is None or not info.params:
        return shape.start
    prologue_end = info.prologue_end
    if prologue_end is None and detail.language(info.die.cu) != detail.DW_LANG_RUST:
        # gcc marks no prologue_end: the body starts at the line table's second row.
        prologue_end = detail.body_start(
            info.die.cu.dwarfinfo, info.die.cu, shape.start, info.high_pc
        )
    if prologue_end is None:
        return shape.start
    if prologue_end == shape.start or prologue_end in shape.jump_targets:
        return shape.start
    needs_prologue = any(
        (p.die.attributes.get("DW_AT_location") is not None)
        and p.die.attributes["DW_AT_location"].form == "DW_FORM_exprloc"
        for p in info.params
    ) or any(_located_only_after(p, shape.start, prologue_end) for p in info.params)
    if not needs_prologue:
        return shape.start
    return prologue_end


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


def _argument_slot(where: Location, param: index.Parameter, at: int, cfa: Cfa) -> Location:
    """A Rust argument of more than 8 bytes that arrived in the caller's stack area (after
    the argument registers ran out), where DWARF gives a plain DW_OP_fbreg/DW_OP_breg
    location: the slot holds either the value (a newtype around u128, say) or a pointer to
    it (a struct passed by reference, where LLVM drops the DW_OP_deref that would follow
    it; tests/differential found both), and nothing in DWARF tells which. Unavailable,
    rather than a guess that could be wrong."""
    if not isinstance(where, tuple) or not where or param.type.size <= 8:
        return where
    first = where[0]
    in_caller_frame = all(p.memory and p.reg == cfa.reg for p in where) and (
        first.offset >= cfa.offset
    )
    if not in_caller_frame or detail.language(param.die.cu) != detail.DW_LANG_RUST:
        return where
    if param.type.kind == "int":
        return where  # an i128: its value, in two slots
    location = param.die.attributes.get("DW_AT_location")
    ops = locations.expression_at(location, param.die, at) if location is not None else None
    if not isinstance(ops, list) or len(ops) != 1:
        return where  # pieces: each part where DWARF says
    if not ops[0].op_name.startswith(("DW_OP_fbreg", "DW_OP_breg")):
        return where
    return Unavailable(
        "passed on the stack, where DWARF does not say whether the slot holds the value or a "
        "pointer to it (LLVM drops the DW_OP_deref of by-reference arguments there)"
    )


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
                (
                    rust_type,
                    tuple(
                        (8 * (first + i) if p.value is None else CONSTANT_SEGMENT, p.size)
                        for i, p in enumerate(where)
                    ),
                    path,
                )
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


def _return_value(
    rust_type: RustType, caps: tuple[int, int], language: int | None = detail.DW_LANG_RUST
) -> Value | None:
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
    if language in detail.C_LANGUAGES:
        return _c_return_value(rust_type)
    if language != detail.DW_LANG_RUST and rust_type.kind not in SCALARS:
        why = "a compound value returned by a function in a language other than Rust and C"
        return Value("return", rust_type, Unavailable(why))
    location = _rust_return(rust_type, newtypes=True)
    if isinstance(location, Unavailable):
        return Value("return", rust_type, location)
    other = _rust_return(rust_type, newtypes=False)
    if isinstance(other, Unavailable) or other != location:
        why = (
            "how rustc returns it depends on whether a one-field struct inside it is "
            "#[repr(C)], which DWARF does not record"
        )
        return Value("return", rust_type, Unavailable(why))
    return Value("return", rust_type, location, root=("return",))


def _rust_return(rust_type: RustType, newtypes: bool) -> Location:
    """Where rustc's Rust ABI on x86-64 returns a value (checked by tests/differential
    against what programs print): a Scalar in rax (an i128 in rax:rdx), a ScalarPair in rax
    and rdx, one scalar each; any other value of at most 8 bytes packed into rax; anything
    larger in the caller's buffer (a hidden pointer), even at 9..16 bytes. `newtypes`:
    whether one-field structs count as their field (not under #[repr(C)])."""
    parts = rust_type.scalars(newtypes) if rust_type.size <= 16 else None
    if parts is not None and len(parts) == 2:
        (first, first_type), (second, second_type) = parts
        if "float" in (first_type.kind, second_type.kind):
            return Unavailable(
                "part of it returns in an SSE register, which a uprobe's BPF program cannot read"
            )
        return (
            Piece(RAX, 0, second, memory=False),
            Piece(RDX, 0, rust_type.size - second, memory=False),  # with padding
        )
    if parts is not None and rust_type.size == 16:
        return (Piece(RAX, 0, 8, memory=False), Piece(RDX, 0, 8, memory=False))
    if rust_type.size <= 8:
        return (Piece(RAX, 0, rust_type.size, memory=False),)
    # Returned through a hidden pointer: the caller's buffer, whose address arrives in
    # rdi. rax need not hold it at the return (optimized code does not keep it there),
    # so the entry saves rdi for the frame and the return site reads it back.
    return Indirect(Piece(SAVED_POINTER, 0, 8, memory=False))


def _c_return_value(rust_type: RustType) -> Value:
    """The System V x86-64 C ABI: up to 16 bytes come back in registers, each eightbyte
    classified alone (integers in rax then rdx, floats in SSE registers, which a uprobe
    cannot read); anything larger in the caller's buffer (a hidden pointer)."""
    if rust_type.size > 16:
        return Value("return", rust_type, Indirect(Piece(SAVED_POINTER, 0, 8, memory=False)),
                     root=("return",))  # fmt: skip
    leaves = _c_leaves(rust_type, 0)
    if leaves is None:
        why = f"the C ABI's return of {rust_type.name} is not decoded"
        return Value("return", rust_type, Unavailable(why))
    if any(kind == "float" for _, kind in leaves):
        why = "part of it returns in an SSE register, which a uprobe's BPF program cannot read"
        return Value("return", rust_type, Unavailable(why))
    location: tuple[Piece, ...] = (Piece(RAX, 0, min(8, rust_type.size), memory=False),)
    if rust_type.size > 8:
        location += (Piece(RDX, 0, rust_type.size - 8, memory=False),)
    return Value("return", rust_type, location, root=("return",))


def _c_leaves(rust_type: RustType, offset: int) -> list[tuple[int, str]] | None:
    """The scalars inside a C value (offset, kind); None for what C's ABI rules here do not
    cover (unions, bit fields we cannot see)."""
    kind = rust_type.kind
    if kind in SCALARS or kind == "c_enum":
        return [(offset, kind)]
    if kind == "struct" or kind == "tuple":
        found: list[tuple[int, str]] = []
        for f in rust_type.fields:
            inner = _c_leaves(f.type, offset + f.offset)
            if inner is None:
                return None
            found += inner
        return found
    if kind == "array" and rust_type.element is not None:
        found = []
        for i in range(rust_type.count):
            inner = _c_leaves(rust_type.element, offset + i * rust_type.element.size)
            if inner is None:
                return None
            found += inner
        return found
    return None


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


def _unknown_return(why: str) -> Value:
    return Value("return", RustType("?", "unsupported", 0), Unavailable(why))


def _values_unknown(info: index.FunctionInfo | None) -> str:
    """Why DWARF cannot tell this function's parameters and return type ("" if it can):
    no entry for the function at all, or a unit built with names and lines only."""
    if info is None:
        return detail.NO_DEBUG_INFO
    if not detail.describes_values(info.die.cu):
        return detail.LIMITED
    return ""


DW_CC_NOCALL = 3


def _abi_changed(info: index.FunctionInfo) -> bool:
    """LLVM changed how this function is called (DW_CC_nocall): dead-argument elimination
    dropped its return value (no caller uses it) or rewrote its parameters, so the
    registers at its return hold nothing of the value DWARF's type describes."""
    convention = info.die.attributes.get("DW_AT_calling_convention")
    return convention is not None and convention.value == DW_CC_NOCALL


_RAX_NAMES = frozenset({"rax", "eax", "ax", "al", "ah"})


def _still_returned(binary: ElfBinary, shape: code.CodeShape, returns: Value | None) -> bool:
    """In a function whose calling convention LLVM changed (DW_CC_nocall), the registers a
    return value travels in are written before every `ret` (after the last call): the value
    is still returned. A dropped return value leaves rax as the last callee set it."""
    if returns is None or not isinstance(returns.location, tuple):
        return returns is None or isinstance(returns.location, (bytes, Unavailable))
    first = returns.location[0]
    if first.memory or first.reg != RAX:
        return False
    # rax only: a path that returns None of an Option<u64> pair leaves rdx alone.
    raw = binary.code(shape.start, shape.end - shape.start)
    return raw is not None and code.written_before_returns(
        raw, shape.start, shape, (_RAX_NAMES,)
    )


def _changed_return(rust_type: RustType) -> Value | None:
    if rust_type.kind == "unit":
        return None
    why = (
        "the optimizer removed this function's return value (DWARF marks it DW_CC_nocall: "
        "no caller uses the value, so it is never returned)"
    )
    return Value("return", rust_type, Unavailable(why))
