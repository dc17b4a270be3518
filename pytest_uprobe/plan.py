"""The probe plan: the seam between what the binary says and what the kernel runs.

For every probe name: the functions it resolves to, and for each function the sites to
attach (entry, return instructions or a uretprobe, tail-call jumps), what each site copies
(register and memory pieces), and how to decode the copied bytes. Everything here is pure
Python over files; nothing needs root.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path as FilePath
from typing import Any

from . import machine_code as code
from . import points
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
from .dwarf import detail, frames, index, locations, merging, recursion
from .dwarf.closures import closure_aliases
from .dwarf.inlined import InlinedSite, codeless_copies, inlined_sites
from .dwarf.locations import Cfa, Computed, Indirect, Location, Piece
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
    refuse,
)
from .names import closest, crate_of, instances_of, is_glob, matcher, may_match, strip_generics
from .options import MAX_ELEMENTS, MAX_FUNCTIONS, MAX_STRING
from .values import Unavailable

__all__ = ["AREA", "MAX_DEREFS", "MAX_PIECES", "WORDS", "Deref"]  # the BPF side's sizes
BIG_VALUE = 64  # bytes: a value in memory larger than this is copied as one block
RAX, RDX, RSP = 0, 1, 7
RIP = 16
RDI = 5
RFLAGS = 49  # DWARF's number; the BPF program reads it for conditional tail calls
# Not a register: the word a return site fills with the hidden return pointer its entry saved
# (the BPF side reads 0 for it as a register, then stores the saved pointer over it).
SAVED_POINTER = 0x1000
SAVE_WORD = 32  # Site.save_reg at SAVE_WORD + i: save the word of piece i, not a register


class SiteKind(enum.IntEnum):
    ENTRY = 0
    RETURN = 1  # a plain uprobe on a ret instruction
    URETPROBE = 2  # leaf functions only
    TAIL_CALL = 3  # a jmp that leaves the function: its frame ends here
    INLINED = 4  # the entry of a copy inlined into another function: no return of its own
    LINE = 5  # where an execution of a source line begins: one hit, no return (points.py)
    USDT = 6  # a USDT probe's nop: one hit, no return (points.py)

    @property
    def starts_a_call(self) -> bool:
        """Each hit of this site is one call: what the kernel's counters count."""
        return self in (SiteKind.ENTRY, SiteKind.INLINED, SiteKind.LINE, SiteKind.USDT)


class ReturnMode(str, enum.Enum):
    URETPROBE = "uretprobe"
    RET_SITES = "ret-sites"
    INLINED = "inlined"  # an inlined copy returns nowhere: nothing to probe
    NONE = "none"  # a source line or USDT probe: a point, not a call


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
        if isinstance(location, Computed):  # arithmetic on copied words, done here
            count = len(location.inputs)
            computed = location.compute(words[self.first_piece : self.first_piece + count])
            if isinstance(computed, Unavailable) or self.type.kind in SCALARS:
                return computed if isinstance(computed, Unavailable) else self.type.decode(computed)
            followed = self.root + ("*",) in self.copies  # planned by _site_values
            reader = Reader(data, failed, self.copies) if followed else _COMPUTED_READER
            return decode_value(self.type, computed, reader, self.root)
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


class _ComputedReader(Reader):
    """For values DWARF computes from registers: nothing behind their pointers was copied."""

    def fetch(self, path: Path, address: int, count: int | None = None) -> bytes | Unavailable:
        return Unavailable(
            f"DWARF computes this value from registers; the memory at {address:#x} it points "
            "to is not copied"
        )


_COMPUTED_READER = _ComputedReader(b"", 0, {})


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
    # ENTRY: the register to save for this frame's return site, or SAVE_WORD + i: the word
    # of its pieces[i]
    save_reg: int | None = None
    load_word: int | None = None  # RETURN: the word to fill with the register saved at entry
    semaphore: int | None = None  # USDT: the file offset of its semaphore, if it has one
    calls: int = 1  # INLINED: the executions one hit stands for (entries moved onto one probe)
    # ENTRY: the word holding the return address (the next: the instruction pointer), when
    # the plan probes inlined copies (a call made from inside one has it as its caller)
    return_address_word: int | None = None


@dataclass
class PlannedFunction:
    probe: str  # the first probe name, as the user wrote it, that names this function
    symbol: Symbol
    params: tuple[Value, ...]
    returns: Value | None  # None: unit, nothing to read
    return_mode: ReturnMode
    shape: code.CodeShape | None  # None for an inlined copy: it has no code range of its own
    arguments_known: bool  # False without DWARF: the parameter list itself is unknown
    inlined: InlinedSite | None = None
    # Every other probe name that names this function too (`crate::*` beside `crate::f`):
    # its sites are attached once, and each of these names gets every call.
    also: list[str] = field(default_factory=list)
    # Not a probe of the user's: the run watches it to tell how frames ended ("exit",
    # "abort": the process ends in it; "panic": a panic starts in it). None: not watched.
    marker: str | None = None
    point: Any = None  # a LINE or USDT site's description (points.LinePoint, points.UsdtPoint)
    unknown_why: str = ""  # why the parameter list is unknown (when arguments_known is False)

    @property
    def probes(self) -> tuple[str, ...]:
        """Every probe name whose calls include this function's."""
        if self.marker is not None and not self.probe:
            return tuple(self.also)
        return (self.probe, *self.also)

    @property
    def unknown_arguments(self) -> Unavailable | None:
        """What a call's `args` is when the parameter list itself is unknown."""
        if self.arguments_known:
            return None
        return Unavailable(self.unknown_why or detail.LIMITED)


@dataclass(frozen=True)
class LeftOut:
    """A site of a probe that could not be attached: the calls through it are not counted."""

    where: str  # "the copy inlined into crate::f (src/lib.rs:12)", "the entry of crate::g"
    address: int | None  # None: a copy with no code of its own (dwarf.inlined.codeless_copies)
    why: str

    def __str__(self) -> str:
        at = f" at {self.address:#x}" if self.address is not None else ""
        return f"{self.where}{at}: {self.why}"


@dataclass
class Coverage:
    """How far a probe's count can be trusted: the sites left out of it (its count is then
    a lower bound) and the functions that share an address with the ones it names (their
    calls are in its count: an upper bound)."""

    left_out: list[LeftOut] = field(default_factory=list)
    shares_address_with: list[str] = field(default_factory=list)
    # Calls that run without entering the function (recursion made a loop): a lower bound.
    unseen: list[str] = field(default_factory=list)
    # Functions merged into one it names whose own names are gone: an upper bound.
    merged_away: list[str] = field(default_factory=list)
    # Other reasons the count may exceed what ran (a source line whose sites one execution
    # passes more than once, points.py): an upper bound.
    may_be_fewer: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not (
            self.left_out
            or self.shares_address_with
            or self.unseen
            or self.merged_away
            or self.may_be_fewer
        )

    def note(self, binary: ElfBinary, symbol: Symbol, matches: Any) -> None:
        """What the optimizer did to `symbol` that its count cannot see (see bounds.py);
        `matches` tells the names the probe means (a glob naming a merged function too
        counts its calls rightly)."""
        looped = recursion.looped_recursion(binary, symbol)
        if looped is not None and str(looped) not in self.unseen:
            self.unseen.append(str(looped))
        for merged in merging.merged_into(binary, symbol):
            if not matches(merged.path) and str(merged) not in self.merged_away:
                self.merged_away.append(str(merged))

    def note_copy(self, binary: ElfBinary, path: str, origin: Any, entry: int) -> None:
        """The same for a copy of `path` inlined at `entry`."""
        looped = recursion.looped_recursion_inlined(binary, path, origin, entry)
        if looped is not None and str(looped) not in self.unseen:
            self.unseen.append(str(looped))


@dataclass
class ProbePlan:
    binary: ElfBinary
    probes: tuple[str, ...]
    functions: list[PlannedFunction] = field(default_factory=list)
    sites: list[Site] = field(default_factory=list)
    caps: tuple[int, int] = (MAX_STRING.default, MAX_ELEMENTS.default)
    coverage: dict[str, Coverage] = field(default_factory=dict)  # by probe name
    # Functions watched for how frames end (PlannedFunction.marker), not asked for: their
    # sites number them after `functions` (see `function`).
    markers: list[PlannedFunction] = field(default_factory=list)
    futures: Any = None  # futures.FuturePlan: the probes that mean futures (futures.py)

    def function(self, index: int) -> PlannedFunction:
        """The function a site's `function` index means, markers included."""
        if index < len(self.functions):
            return self.functions[index]
        return self.markers[index - len(self.functions)]

    @property
    def probe_sites(self) -> list[Site]:
        """The sites of the probes asked for (the markers' left out)."""
        return [s for s in self.sites if s.function < len(self.functions)]

    def functions_of(self, probe: str) -> list[int]:
        return [i for i, f in enumerate(self.functions) if probe in f.probes]

    def coverage_of(self, probe: str) -> Coverage:
        return self.coverage.setdefault(probe, Coverage())

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
    max_functions: int = MAX_FUNCTIONS.default,
    inlined: bool = True,
    max_string: int = MAX_STRING.default,
    max_elements: int = MAX_ELEMENTS.default,
) -> ProbePlan:
    """Sites for every probe name: its out-of-line instances and, unless `inlined` is
    False, every copy of it inlined into other functions (DWARF tells where). Strings are
    copied up to `max_string` bytes, slices and Vecs up to `max_elements` elements."""
    plan = ProbePlan(binary, tuple(probes), caps=(max_string, max_elements))
    # A site belongs to every probe that names its function: attached once (the kernel
    # counts per site), its calls given to each of those names.
    planned: dict[Hashable, list[int]] = {}  # out-of-line address -> plan.functions indexes
    # An inlined copy by its first entry and its DIE (nested copies share entries) -> indexes
    copies_planned: dict[Hashable, list[int]] = {}
    left_out: dict[Hashable, LeftOut] = {}  # by the address of the function, or copy's key
    refused: dict[str, UnprobeableSite] = {}  # the first refusal of each probe, for errors
    for probe in probes:
        if points.is_point(probe):  # `src/main.rs:42` or `usdt:provider:name`
            points.plan_point(plan, probe)
            continue
        with _Planning(binary, probe) as planning:
            sites = find_sites(binary, probe, max_functions=max_functions, inlined=inlined)
            coverage = plan.coverage_of(probe)
            matches = matcher(probe)
            for symbol in sites.out_of_line:
                for name in _other_names(binary, symbol, matches):
                    if name not in coverage.shares_address_with:
                        coverage.shares_address_with.append(name)
                coverage.note(binary, symbol, matches)
                key: Hashable = symbol.address
                if _known(plan, probe, key, planned, left_out):
                    if key in left_out:  # an earlier probe's refusal, said for this one
                        refused.setdefault(probe, UnprobeableSite(probe, binary, left_out[key]))
                    continue
                planning.reading(symbol.path, symbol.address)
                try:
                    _plan_function(plan, probe, symbol, ret_sites_only)
                except UnprobeableSite as refusal:
                    left_out[key] = refusal.left_out
                    coverage.left_out.append(refusal.left_out)
                    refused.setdefault(probe, refusal)
                    continue
                planned[key] = [len(plan.functions) - 1]
            for copy in sites.inlined:
                coverage.note_copy(binary, copy.path, copy.origin, copy.entry)
                key = (copy.entry, copy.die)
                if _known(plan, probe, key, copies_planned, left_out):
                    if key in left_out:  # an earlier probe's refusal, said for this one
                        refused.setdefault(probe, UnprobeableSite(probe, binary, left_out[key]))
                    continue
                first = len(plan.functions)
                planning.reading(f"the copy inlined into {copy.describe()}", None)
                try:
                    _plan_inlined(plan, probe, copy)
                except UnprobeableSite as refusal:
                    left_out[key] = refusal.left_out
                    coverage.left_out.append(refusal.left_out)
                    refused.setdefault(probe, refusal)
                    continue
                copies_planned[key] = list(range(first, len(plan.functions)))  # one per entry
            if inlined:  # copies whose calls no probe sees: the count may be more
                for unseen in codeless_copies(binary, probe, matches):
                    coverage.left_out.append(LeftOut(unseen.where, None, unseen.why))
    # Nothing of these can be probed: fail before the run, naming every one at once.
    refuse([refused[p] for p in dict.fromkeys(probes) if not plan.functions_of(p) and p in refused])
    _read_return_addresses(plan)
    _plan_markers(plan)
    binary.save_caches()  # what was resolved, for the next process (see diskcache)
    return plan


def _read_return_addresses(plan: ProbePlan) -> None:
    """With inlined copies probed, each entry also copies its return address (at CFA - 8 on
    x86-64), where there is room: a call made from the code of a probed copy then names
    that copy's call as its caller, as a call from a frame names the frame's."""
    if not any(f.inlined is not None for f in plan.functions):
        return
    for number, site in enumerate(plan.sites):
        if site.kind is SiteKind.ENTRY and len(site.pieces) + 2 <= MAX_PIECES:
            # The instruction pointer too: the code's load address is its distance from
            # the site's address in the file.
            words = (Piece(site.cfa.reg, site.cfa.offset - 8, 8, True), Piece(RIP, 0, 8, False))
            plan.sites[number] = replace(
                site, pieces=(*site.pieces, *words), return_address_word=len(site.pieces)
            )


def _known(
    plan: ProbePlan,
    probe: str,
    key: Hashable,
    planned: dict[Hashable, list[int]],
    left_out: dict[Hashable, LeftOut],
) -> bool:
    """Whether an earlier probe planned (or left out) the function or copy at `key`: if so,
    `probe` shares it."""
    if key in planned:
        for number in planned[key]:
            function = plan.functions[number]
            if probe not in function.probes:
                function.also.append(probe)
        return True
    if key in left_out:
        coverage = plan.coverage_of(probe)
        if left_out[key] not in coverage.left_out:
            coverage.left_out.append(left_out[key])
        return True
    return False


def _other_names(binary: ElfBinary, symbol: Symbol, matches: Any) -> list[str]:
    """The other functions at `symbol`'s address (LLVM's function merging leaves one body
    with several symbols) that the probe does not name: their calls are in its count."""
    names: list[str] = []
    for other in binary.functions_by_address.get(symbol.address, ()):
        if other.name == symbol.name or matches(other.path):
            continue
        # A second symbol that demangles alike (two legacy `{{closure}}`s) is another
        # function all the same: name it by its symbol.
        name = other.path if other.path != symbol.path else f"{other.path} ({other.name})"
        if name not in names:
            names.append(name)
    return names


# Functions whose entry tells how the frames below it end: the process exits in them, or
# a panic starts in them (`rust_panic` is where every Rust panic begins to unwind).
_MARKERS = {
    "std::process::exit": "exit",
    "std::process::abort": "abort",
    "std::sys::pal::unix::os::exit": "exit",
    "__rustc::rust_panic": "panic",
    "rust_panic": "panic",
    "std::panicking::rust_panic": "panic",
}


def _plan_markers(plan: ProbePlan) -> None:
    """An entry site on each marker function the binary has (or a mark on the user's own
    probe of it), so the run can tell "the process exited in it" from "unwound"."""
    binary = plan.binary
    by_address = {f.symbol.address: f for f in plan.functions if f.inlined is None}
    seen: set[int] = set()
    spelled = [may_match(path) for path in _MARKERS]
    for symbol in binary.functions:
        if symbol.size == 0 or not any(s(symbol.name) for s in spelled):
            continue  # demangle only the names that can be a marker's
        kind = _MARKERS.get(symbol.path)
        if kind is None or symbol.address in seen:
            continue
        seen.add(symbol.address)
        own = by_address.get(symbol.address)
        if own is not None:
            own.marker = kind
            continue
        try:
            shape = shape_of(binary, symbol, symbol.path)
            entry, cfa = _probe_point(binary, shape, shape.start, symbol.path, "its entry")
        except (UnreadableFunction, UnprobeableSite):
            continue  # without it, such frames read "did not return", never "unwound"
        number = len(plan.functions) + len(plan.markers)
        plan.markers.append(
            PlannedFunction("", symbol, (), None, ReturnMode.RET_SITES, shape, True, marker=kind)
        )
        plan.sites.append(Site(SiteKind.ENTRY, entry, number, cfa))


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
    max_functions: int = MAX_FUNCTIONS.default,
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
    binary: ElfBinary, probe: str, *, max_functions: int = MAX_FUNCTIONS.default
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
        if not (spelled(symbol.name) or symbol.address in aliases):
            continue
        alias = aliases.get(symbol.address) if aliases else None
        if not (matches(symbol.path) or (alias is not None and matches(alias))):
            continue
        if symbol.kind != "function":
            data_kind = data_kind or symbol.kind
        elif symbol.size > 0:
            if alias is not None:  # DWARF's name: `{closure#1}`, `largest::<u8>`
                symbol = Symbol(symbol.name, alias, symbol.address, symbol.size, symbol.kind)
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
        known = [*(f.path for f in binary.functions), *aliases.values()]  # with instances
        raise NoMatchingFunction(
            probe,
            binary.path,
            closest(probe, known),
            has_debug_info=binary.has_dwarf,
            in_source=_defined_in_source(binary, probe),
            merged_into=_survivor(binary, probe),
            instances=instances_of(probe, known),
            unspelled=_unspelled_instances(binary, probe, aliases),
        )
    if len(found) > max_functions:
        raise TooManyMatches(probe, binary.path, len(found), max_functions)
    return sorted(found.values(), key=lambda s: s.address)


def _unspelled_instances(
    binary: ElfBinary, probe: str, aliases: dict[int, str]
) -> tuple[str, int] | None:
    """For a generic instance (`m::f::<u8>`): its generic path and how many functions are
    named by it only (`m::f`: a legacy symbol, no DWARF name to add the type arguments),
    any of which may be the instance; None when there are none."""
    generic = strip_generics(probe)
    count = sum(1 for f in binary.functions if f.path == generic and f.address not in aliases)
    return (generic, count) if generic != probe and count else None


def _survivor(binary: ElfBinary, probe: str) -> str | None:
    """The function the probe's calls in the source now call (it was merged into it)."""
    merged = None
    if not is_glob(probe) and _defined_in_source(binary, probe) is not None:
        merged = merging.survivor_of(binary, probe)
    return merged.survivor if merged is not None else None


def _defined_in_source(binary: ElfBinary, probe: str) -> str | None:
    """Where the crate's own source defines a function of the probe's last name
    (`src/main.rs:47`), when the binary's DWARF points at that source and it is readable:
    a function written there that the binary lacks was merged or removed by the optimizer.
    """
    crate = crate_of(probe)
    last = strip_generics(probe).rsplit("::", 1)[-1]
    if crate is None or not binary.has_dwarf or not last.isidentifier():
        return None
    pattern = re.compile(rf"\bfn\s+{re.escape(last)}\b")
    roots: set[FilePath] = set()
    try:
        for unit in binary.dwarf.iter_CUs():
            top = unit.get_top_DIE().attributes
            name = _text(top.get("DW_AT_name"))
            directory = _text(top.get("DW_AT_comp_dir"))
            source, _, cgu = name.partition("/@/")
            if not cgu.startswith(f"{crate}.") or not source.endswith(".rs"):
                continue
            roots.add((FilePath(directory) / source).parent)
    except Exception:  # DWARF this reader cannot walk: no hint, the error stands
        return None
    for root in sorted(roots):
        for file in sorted(root.rglob("*.rs"))[:500]:
            try:
                text = file.read_text(errors="replace")
            except OSError:
                continue
            found = pattern.search(text)
            if found is not None:
                line = text.count("\n", 0, found.start()) + 1
                return f"{file}:{line}"
    return None


def _text(attribute: Any) -> str:
    value = getattr(attribute, "value", b"")
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _closure_aliases(binary: ElfBinary, probe: str) -> dict[int, str]:
    """The paths DWARF gives the binary's legacy-mangled closures and generic instances
    (`zoo::main::{closure#0}`, `zoo::ident::<u8>`), by address."""
    crate = crate_of(probe)
    return closure_aliases(binary, crate) if crate is not None else {}


def shape_of(binary: ElfBinary, symbol: Symbol, probe: str) -> code.CodeShape:
    """The decoded machine code of one function symbol, cached per binary."""
    shapes = binary.memo("code_shapes")  # by address
    shape: code.CodeShape | None = shapes.get(symbol.address)
    if shape is not None:
        return shape
    disk = binary.cache("code")  # decoded shapes are plain data: kept for the next process
    shape = disk.get((symbol.address, symbol.size))
    if isinstance(shape, code.CodeShape):
        shapes[symbol.address] = shape
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
    shapes[symbol.address] = shape
    disk.put((symbol.address, symbol.size), shape)
    return shape


def return_mode(shape: code.CodeShape, *, ret_sites_only: bool = False) -> ReturnMode:
    """How a probe reads the return value of the function `shape` decodes (the rule the
    plan follows and `pytest-uprobe symbols` prints): a uretprobe on a leaf (a uretprobe
    turns a panic unwinding through it into an abort) whose first instruction takes a
    probe (the uretprobe sits there), unless `ret_sites_only`; a lone `ret` is a leaf
    whatever the option says; else a probe on each return instruction."""
    if shape.start in shape.returns:
        return ReturnMode.URETPROBE
    if shape.is_leaf and not ret_sites_only and shape.start not in shape.unprobeable:
        return ReturnMode.URETPROBE
    return ReturnMode.RET_SITES


class UnprobeableSite(UnreadableFunction):
    """A site no uprobe can take, and no instruction that runs exactly as often nearby."""

    def __init__(self, probe: str, binary: ElfBinary, left_out: LeftOut) -> None:
        self.left_out = left_out
        super().__init__(
            probe,
            binary.path,
            f"{left_out.where} at {left_out.address:#x} {left_out.why}",
            "probe a function that calls it instead",
        )


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
        why = (
            "is an instruction a uprobe cannot take (LOCK or segment prefix), and no "
            "instruction next to it runs exactly as often"
            if moved is None
            else f"moved to {moved:#x}, where .eh_frame gives no rule for the frame address"
        )
        raise UnprobeableSite(probe, binary, LeftOut(what, address, why))
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
    located = _filled_later(binary, shape, entry, located)
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
        slot = code.rdi_slot(before, shape.start) if before else None
        if before is not None and code.keeps_rdi(before, shape.start):
            save_reg = RDI
        elif slot is not None and len(pieces) < MAX_PIECES:
            # A dev build spilled it to a stack slot in the prologue: the entry event
            # carries that slot's word as one more piece, and saves it for the return.
            save_reg = SAVE_WORD + len(pieces)
            pieces = (*pieces, Piece(RSP, slot, 8, memory=True))
        else:
            why = "the hidden return pointer (rdi) is overwritten before the entry probe"
            returns = Value("return", returns.type, Unavailable(why))

    mode = return_mode(shape, ret_sites_only=ret_sites_only)
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
    """An INLINED site wherever an execution of the copy begins (several for a copy that a
    loop unrolled), each reading the parameters where DWARF puts them there (the caller's
    frame base; the CFA from .eh_frame when the frame base needs it)."""
    where = f"the copy inlined into {copy.describe()}"
    if copy.doubt is not None:
        reason = f"cannot be counted exactly: {copy.doubt}"
        raise UnprobeableSite(probe, plan.binary, LeftOut(where, copy.entry, reason))
    # Entries on instructions a uprobe refuses (`lock inc`) move to the next one that takes
    # a probe; several entries of a vectorized loop can land on the same instruction.
    moved: dict[int, tuple[Cfa, int]] = {}
    addresses = [a for a in copy.entries or (copy.entry,) if plan.binary.code(a, 1) is not None]
    if not addresses:
        return  # code the linker discarded, its DWARF left pointing nowhere: no copy runs
    for address in addresses:
        host = plan.binary.function_containing(address)
        if host is None:
            outside = "lies outside every function symbol"
            raise UnprobeableSite(probe, plan.binary, LeftOut(where, address, outside))
        entry, cfa = _probe_point(
            plan.binary, shape_of(plan.binary, host, probe), address, probe, where
        )
        moved[entry] = (cfa, moved[entry][1] + 1 if entry in moved else 1)
    no_return = f"inlined into {copy.caller}: an inlined copy has no return to probe"
    # A limited (`debug = 1`) unit keeps the copy's declaration but no parameters at all.
    known = copy.params_known and (
        copy.origin is None or detail.describes_values(copy.origin.cu)
    )
    for entry, (cfa, calls) in moved.items():
        if calls == 1:
            located = [
                (p.name, p.type, _locate(p, entry, copy.frame_base, cfa)) for p in copy.params
            ]
        else:
            why = Unavailable(
                f"{calls} executions of this copy share one probe point at {entry:#x} "
                "(the instructions that start them cannot take a uprobe)"
            )
            located = [(p.name, p.type, why) for p in copy.params]
        site_params, pieces, derefs = _site_values(located, plan.caps)
        # One PlannedFunction per site: each site places the values in its own pieces.
        number = len(plan.functions)
        plan.sites.append(
            Site(SiteKind.INLINED, entry, number, cfa, pieces, derefs=derefs, calls=calls)
        )
        plan.functions.append(
            PlannedFunction(
                probe,
                Symbol("", copy.path, copy.entry, 0, "inlined"),
                tuple(site_params),
                Value("return", RustType("?", "unsupported", 0), Unavailable(no_return)),
                ReturnMode.INLINED,
                None,
                arguments_known=known,
                inlined=copy,
                unknown_why="" if known else detail.LIMITED,
            )
        )


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


def _filled_later(
    binary: ElfBinary, shape: code.CodeShape, entry: int,
    located: list[tuple[str, RustType, Location]],
) -> list[tuple[str, RustType, Location]]:  # fmt: skip
    """Arguments DWARF places in a stack slot for the whole function (DW_OP_fbreg) that the
    code fills only after the entry probe, from the register the argument came in (a
    release build's spill after prologue_end): each such word is read from the register,
    not from the slot, which still holds an earlier call's value there."""
    body = binary.code(shape.start, shape.end - shape.start)
    filled = code.spilled_after(body, shape.start, entry) if body else {}
    in_registers = {p.reg for _, _, where in located if isinstance(where, tuple)
                    for p in where if not p.memory}  # fmt: skip
    if not filled:
        return located
    found: list[tuple[str, RustType, Location]] = []
    for name, rust_type, where in located:
        if isinstance(where, tuple) and any(
            p.memory and p.reg == RSP and any(p.offset <= w < p.offset + p.size for w in filled)
            for p in where
        ):
            words: list[Piece] = []
            for p in where:
                if not (p.memory and p.reg == RSP) or p.offset % 8 or p.size % 8:
                    words.append(p)
                    continue
                for w in range(p.offset, p.offset + p.size, 8):
                    reg = filled.get(w)
                    if reg is not None and reg not in in_registers:
                        words.append(Piece(reg, 0, 8, False))
                    else:
                        words.append(Piece(RSP, w, 8, True))
            where = tuple(words)
        found.append((name, rust_type, where))
    return found


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
    padding = locations.padding_of(param.type)
    return locations.locate(location, param.die, at, param.type.size, frame_base, cfa, padding)


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
        if not isinstance(where, (tuple, Indirect, Computed)):  # a constant, or unavailable
            values.append(Value(name, rust_type, where, root=path))
            continue
        if isinstance(where, Computed):
            needed: tuple[Piece, ...] = where.inputs
        else:
            needed = (where.address,) if isinstance(where, Indirect) else where
        if len(pieces) + len(needed) > MAX_PIECES:
            why = Unavailable("too many values to copy in one event")
            values.append(Value(name, rust_type, why, root=path))
            continue
        first = len(pieces)
        pieces.extend(needed)
        top: Planned | None = None
        if isinstance(where, Computed):
            # A reference computed as one word plus a constant: copy what it points to (the
            # BPF side adds the constant); other computed pointers are not followed.
            word_plus = where.word_plus() if rust_type.kind == "pointer" else None
            target = rust_type.target if word_plus is not None else None
            if word_plus is not None and target is not None and target.size:
                behind = path + ("*",)
                word, add = word_plus
                planned = layout.add(behind, 8 * (first + word), add, target.size)
                if isinstance(planned, DataCopy):
                    roots.append((target, ((planned.dst, target.size),), behind))
        elif isinstance(where, Indirect):
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
                f"floats return in xmm0, and a uprobe's BPF program cannot read {SSE_WHY}s "
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
                f"part of it returns in an {SSE_WHY}, which a uprobe's BPF program cannot read"
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
        why = f"part of it returns in an {SSE_WHY}, which a uprobe's BPF program cannot read"
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
# Named in the reason of every return value the plan leaves to SSE registers (read by the
# in-process engine only: inprocess/sse.py replaces exactly these).
SSE_WHY = "SSE register"


def _abi_changed(info: index.FunctionInfo) -> bool:
    """LLVM changed how this function is called (DW_CC_nocall): dead-argument elimination
    dropped its return value (no caller uses it) or rewrote its parameters, so the
    registers at its return hold nothing of the value DWARF's type describes."""
    convention = info.die.attributes.get("DW_AT_calling_convention")
    return convention is not None and convention.value == DW_CC_NOCALL




def _still_returned(binary: ElfBinary, shape: code.CodeShape, returns: Value | None) -> bool:
    """In a function whose calling convention LLVM changed (DW_CC_nocall), the registers a
    return value travels in are written before every `ret` (after the last call): the value
    is still returned. A dropped return value leaves rax as the last callee set it."""
    if returns is not None and isinstance(returns.location, Unavailable):
        # Only general registers are checked: a float return (in SSE registers, which the
        # in-process engine reads) is not known to be written, so it is not trusted.
        return SSE_WHY not in returns.location.reason
    if returns is None or not isinstance(returns.location, tuple):
        return returns is None or isinstance(returns.location, (bytes, Unavailable))
    # Trusted when every path writes each register the value travels in, at least as wide
    # as its part: a part left alone (the payload of an Option whose callers only ask
    # `is_some()`), or written narrower (an `al` set for them), is stale.
    needed: list[frozenset[str]] = []
    for piece in returns.location:
        names = _REGISTER_WIDTHS.get(piece.reg)
        if piece.memory or names is None:
            return False
        needed.append(frozenset(name for name, width in names if width >= piece.size))
    raw = binary.code(shape.start, shape.end - shape.start)
    if raw is None:
        return False
    rows = code.written_at_returns(raw, shape.start, shape, tuple(needed))
    # rax on every path; a second register on some path at least (a path that returns
    # None of an Option<u64> legitimately leaves rdx alone; one whose callers only ask
    # `is_some()` writes it on none).
    return bool(rows) and all(row[0] for row in rows) and all(
        any(row[i] for row in rows) for i in range(1, len(needed))
    )


# The names of rax and rdx and of their parts, with how many low bytes a write to each
# defines (a 32-bit write zero-extends: all 8).
_REGISTER_WIDTHS = {
    RAX: (("rax", 8), ("eax", 8), ("ax", 2), ("al", 1)),
    RDX: (("rdx", 8), ("edx", 8), ("dx", 2), ("dl", 1)),
}


def _changed_return(rust_type: RustType) -> Value | None:
    if rust_type.kind == "unit":
        return None
    why = (
        "the optimizer changed how this function returns (DWARF marks it DW_CC_nocall: its "
        "callers use none or only part of the value, so what the registers hold is not it)"
    )
    return Value("return", rust_type, Unavailable(why))
