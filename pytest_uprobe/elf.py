"""One ELF binary: its function symbols, code bytes and identity (pyelftools: here and dwarf/).

Opened binaries are cached per (path, size, mtime), so every test of a session that
traces the same executable parses it once, and a rebuilt executable is parsed anew.
"""

from __future__ import annotations

import bisect
import os
import stat
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO, Any

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from .diskcache import DiskCache
from .errors import BinaryNotFound, NoSymbolTable, NotElfError, NotExecutable, WrongArchitecture
from .names import demangle

ELF_MAGIC = b"\x7fELF"
_SYM = struct.Struct("<IBBHQQ")  # Elf64_Sym
_KINDS = {2: "function", 1: "object", 6: "tls"}  # STT_FUNC, STT_OBJECT, STT_TLS


class Symbol:
    """One symbol of the binary: `name` as stored, `path` demangled without the hash.

    The path is demangled on first use: resolving a name demangles only the symbols whose
    mangled names can match it (see names.may_match).
    """

    __slots__ = ("name", "_path", "address", "size", "kind")

    def __init__(self, name: str, path: str | None, address: int, size: int, kind: str) -> None:
        self.name = name
        self._path = path
        self.address = address
        self.size = size
        self.kind = kind  # "function", "object", "tls" (or "inlined" for a plan's copies)

    @property
    def path(self) -> str:
        if self._path is None:
            self._path = demangle(self.name)
        return self._path

    @property
    def end(self) -> int:
        return self.address + self.size

    def _key(self) -> tuple[str, str, int, int, str]:
        return (self.name, self.path, self.address, self.size, self.kind)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Symbol) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash((self.name, self.address, self.size, self.kind))

    def __repr__(self) -> str:
        return (
            f"Symbol(name={self.name!r}, path={self.path!r}, address={self.address:#x}, "
            f"size={self.size}, kind={self.kind!r})"
        )


@dataclass(frozen=True)
class Identity:
    """What makes two looks at a path the same binary."""

    path: str
    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> Identity:
        st = path.stat()
        return cls(str(path), st.st_size, st.st_mtime_ns, st.st_ino)


class ElfBinary:
    """A parsed executable. Use `ElfBinary.open(path)`, which validates and caches.

    What the layers above compute about this binary (decoded code, DWARF indexes, CFA
    tables, types, plans, ...) lives in its `memo` dicts: kept while the binary is, dropped
    with it. Each holds at most one entry per thing of this binary (unit, function, DIE,
    crate name asked about), the plans excepted, which the Tracer bounds.
    """

    def __init__(self, path: Path, identity: Identity, stream: IO[bytes]) -> None:
        self.path = path
        self.identity = identity
        self._stream = stream
        self.elf = ELFFile(stream)
        self._disk: dict[str, DiskCache] = {}
        self._memos: dict[str, dict[Any, Any]] = {}

    # The binaries opened last, by identity: a session tracing a few executables parses
    # each once; a rebuilt one is a new identity, and the oldest beyond this many go.
    MAX_OPEN = 8
    _cache: OrderedDict[Identity, ElfBinary] = OrderedDict()
    _cache_lock = threading.Lock()

    def memo(self, name: str) -> dict[Any, Any]:
        """This binary's in-memory cache `name` (one dict per name)."""
        found = self._memos.get(name)
        if found is None:
            found = self._memos[name] = {}
        return found

    def close(self) -> None:
        """Drop what was computed and close the file. Plans made from this binary must not
        be used afterwards; `ElfBinary.open` parses the file anew."""
        with ElfBinary._cache_lock:
            if ElfBinary._cache.get(self.identity) is self:
                del ElfBinary._cache[self.identity]
        self._memos.clear()
        self._stream.close()

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> ElfBinary:
        path = Path(path)
        check_file(path)
        path = path.resolve()
        identity = Identity.of(path)
        with cls._cache_lock:
            cached = cls._cache.get(identity)
            if cached is not None:
                cls._cache.move_to_end(identity)
                return cached
            stream = path.open("rb")
            try:
                binary = cls(path, identity, stream)
            except ELFError as exc:
                stream.close()
                raise NotElfError(path) from exc
            machine = binary.elf["e_machine"]
            if machine != "EM_X86_64":
                stream.close()
                raise WrongArchitecture(path, str(machine).removeprefix("EM_"))
            cls._cache[identity] = binary
            while len(cls._cache) > cls.MAX_OPEN:
                # Dropped, not closed: a plan may still hold it; its file closes with it.
                cls._cache.popitem(last=False)
            return binary

    @cached_property
    def build_id(self) -> str | None:
        section = self.elf.get_section_by_name(".note.gnu.build-id")
        if section is None:
            return None
        for note in section.iter_notes():  # type: ignore[attr-defined]
            if note["n_type"] == "NT_GNU_BUILD_ID":
                return str(note["n_desc"])
        return None

    def cache(self, part: str) -> DiskCache:
        """This binary's on-disk cache `part` (see diskcache), one object per part."""
        found = self._disk.get(part)
        if found is None:
            found = DiskCache.for_binary(
                self.build_id, self.path, self.identity.size, self.identity.mtime_ns, part
            )
            self._disk[part] = found
        return found

    def save_caches(self) -> None:
        """Write what resolution computed to the on-disk cache, for the next process."""
        main = self.cache("main")
        if "symbols" in self.__dict__:
            paths = {s.name: s._path for s in self.symbols if s._path is not None}
            if len(paths) > len(main.get("paths") or ()):
                main.put("paths", paths)
        for cache in self._disk.values():
            cache.flush()

    @cached_property
    def symbols(self) -> tuple[Symbol, ...]:
        """Every defined function, object and TLS symbol of .symtab and .dynsym."""
        main = self.cache("main")
        rows = main.get("symbols")
        if rows is None:
            rows = self._read_symbols()
            main.put("symbols", rows)
        paths = main.get("paths") or {}
        return tuple(
            Symbol(name, paths.get(name), address, size, kind) for name, address, size, kind in rows
        )

    def _read_symbols(self) -> list[tuple[str, int, int, str]]:
        tables = [
            s
            for s in self.elf.iter_sections()
            if s["sh_type"] in ("SHT_SYMTAB", "SHT_DYNSYM") and s["sh_entsize"] == _SYM.size
        ]
        if not any(t.name == ".symtab" for t in tables):
            raise NoSymbolTable(self.path)
        found: dict[tuple[str, int], tuple[str, int, int, str]] = {}
        for table in tables:
            strings = self.elf.get_section(table["sh_link"]).data()
            for name_at, info, _, shndx, value, size in _SYM.iter_unpack(table.data()):
                kind = _KINDS.get(info & 0xF)
                if kind is None or shndx == 0 or not name_at:  # SHN_UNDEF, or no name
                    continue
                end = strings.find(b"\0", name_at)
                name = strings[name_at:end].decode("utf-8", "replace")
                if name and (name, value) not in found:
                    found[(name, value)] = (name, value, size, kind)
        return list(found.values())

    @cached_property
    def functions(self) -> tuple[Symbol, ...]:
        return tuple(s for s in self.symbols if s.kind == "function")

    @cached_property
    def functions_by_address(self) -> dict[int, list[Symbol]]:
        """The function symbols of each address that has code: more than one where a
        function answers to several names (aliases left by LLVM's function merging)."""
        at: dict[int, list[Symbol]] = {}
        for symbol in self.functions:
            if symbol.size > 0:
                at.setdefault(symbol.address, []).append(symbol)
        return at

    @cached_property
    def _by_address(self) -> tuple[list[int], list[Symbol]]:
        ordered = sorted((s for s in self.functions if s.size > 0), key=lambda s: s.address)
        return [s.address for s in ordered], ordered

    def function_containing(self, address: int) -> Symbol | None:
        """The function symbol whose code range holds `address`."""
        starts, ordered = self._by_address
        i = bisect.bisect_right(starts, address) - 1
        if i >= 0 and ordered[i].address <= address < ordered[i].end:
            return ordered[i]
        return None

    def code(self, address: int, size: int) -> bytes | None:
        """The bytes of an executable section at [address, address + size), or None."""
        for start, length, offset in self._executable_sections:
            if start <= address and address + size <= start + length:
                self._stream.seek(offset + address - start)
                return self._stream.read(size)
        return None

    @cached_property
    def _executable_sections(self) -> list[tuple[int, int, int]]:
        """(address, size, file offset) of each SHF_EXECINSTR section."""
        return [
            (s["sh_addr"], s["sh_size"], s["sh_offset"])
            for s in self.elf.iter_sections()
            if s["sh_flags"] & 0x4
        ]

    @cached_property
    def has_dwarf(self) -> bool:
        return self.elf.get_section_by_name(".debug_info") is not None

    @cached_property
    def dwarf(self) -> Any:
        """pyelftools' DWARFInfo; only dwarf/ should look inside it. It carries this
        binary's memos, for code that holds only one of its DIEs (see dwarf_memo)."""
        info = self.elf.get_dwarf_info(relocate_dwarf_sections=False)
        vars(info)[_MEMOS] = self._memos
        return info


_MEMOS = "_pytest_uprobe_memos"


def dwarf_memo(dwarf: Any, name: str) -> dict[Any, Any]:
    """The memo `name` (as ElfBinary.memo) of the binary whose DWARF `dwarf` (pyelftools'
    DWARFInfo) is: for readers that hold a DIE and not the binary. Kept on the DWARFInfo,
    which the binary owns: dropped with it, cleared by its close()."""
    memos: dict[str, dict[Any, Any]] = vars(dwarf).setdefault(_MEMOS, {})
    found = memos.get(name)
    if found is None:
        found = memos[name] = {}
    return found


def check_file(path: Path) -> None:
    """Fail with a clear error unless `path` is an existing executable ELF file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise BinaryNotFound(path) from None
    if not stat.S_ISREG(st.st_mode):
        raise NotElfError(path)
    with path.open("rb") as f:
        if f.read(4) != ELF_MAGIC:
            raise NotElfError(path)
    if not os.access(path, os.X_OK):
        raise NotExecutable(path)
