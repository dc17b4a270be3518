"""One ELF binary: its function symbols, code bytes and identity (pyelftools: here and dwarf/).

Opened binaries are cached per (path, size, mtime), so every test of a session that
traces the same executable parses it once, and a rebuilt executable is parsed anew.
"""

from __future__ import annotations

import bisect
import os
import stat
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO, Any

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from .errors import BinaryNotFound, NoSymbolTable, NotElfError, NotExecutable, WrongArchitecture
from .names import demangle

ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class Symbol:
    """One symbol of the binary: `name` as stored, `path` demangled without the hash."""

    name: str
    path: str
    address: int
    size: int
    kind: str  # "function", "object" or "tls"

    @property
    def end(self) -> int:
        return self.address + self.size


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
    """A parsed executable. Use `ElfBinary.open(path)`, which validates and caches."""

    def __init__(self, path: Path, identity: Identity, stream: IO[bytes]) -> None:
        self.path = path
        self.identity = identity
        self._stream = stream
        self.elf = ELFFile(stream)

    _cache: dict[Identity, ElfBinary] = {}
    _cache_lock = threading.Lock()

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> ElfBinary:
        path = Path(path)
        check_file(path)
        path = path.resolve()
        identity = Identity.of(path)
        with cls._cache_lock:
            cached = cls._cache.get(identity)
            if cached is not None:
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
            return binary

    def is_current(self) -> bool:
        """False once the file on disk is no longer the one parsed (rebuilt, replaced)."""
        try:
            return Identity.of(self.path) == self.identity
        except OSError:
            return False

    @cached_property
    def build_id(self) -> str | None:
        section = self.elf.get_section_by_name(".note.gnu.build-id")
        if section is None:
            return None
        for note in section.iter_notes():  # type: ignore[attr-defined]
            if note["n_type"] == "NT_GNU_BUILD_ID":
                return str(note["n_desc"])
        return None

    @cached_property
    def symbols(self) -> tuple[Symbol, ...]:
        """Every defined function, object and TLS symbol of .symtab and .dynsym."""
        found: dict[tuple[str, int], Symbol] = {}
        tables = [s for s in self.elf.iter_sections() if isinstance(s, SymbolTableSection)]
        if not any(t.name == ".symtab" for t in tables):
            raise NoSymbolTable(self.path)
        for table in tables:
            for sym in table.iter_symbols():
                kind = {"STT_FUNC": "function", "STT_OBJECT": "object", "STT_TLS": "tls"}.get(
                    sym["st_info"]["type"]
                )
                if kind is None or sym["st_shndx"] == "SHN_UNDEF" or not sym.name:
                    continue
                key = (sym.name, sym["st_value"])
                if key not in found:
                    found[key] = Symbol(
                        sym.name, demangle(sym.name), sym["st_value"], sym["st_size"], kind
                    )
        return tuple(found.values())

    @cached_property
    def functions(self) -> tuple[Symbol, ...]:
        return tuple(s for s in self.symbols if s.kind == "function")

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
        for section in self.elf.iter_sections():
            if not section["sh_flags"] & 0x4:  # SHF_EXECINSTR
                continue
            start = section["sh_addr"]
            if start <= address and address + size <= start + section["sh_size"]:
                offset = section["sh_offset"] + address - start
                self._stream.seek(offset)
                return self._stream.read(size)
        return None

    @cached_property
    def has_dwarf(self) -> bool:
        return self.elf.get_section_by_name(".debug_info") is not None

    @cached_property
    def dwarf(self) -> Any:
        """pyelftools' DWARFInfo; only dwarf/ should look inside it."""
        return self.elf.get_dwarf_info(relocate_dwarf_sections=False)


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
