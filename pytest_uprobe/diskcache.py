"""An on-disk cache of what resolving names in one binary computed, for the next process.

One file per binary and part (`<build-id>.<part>.pickle` under
`~/.cache/pytest-uprobe/resolution/`, the directory private to its user, 0700), holding
plain data only (ints, strings, tuples, dicts): the symbol table with demangled paths, the
per-unit DWARF indexes, the inlined copies of each name asked for. The file names the
binary by build-id, and the cache holds the size and modification time it was computed
from: a rebuilt binary (another size or mtime) starts an empty cache, and so does a file
that does not load. Writes go to a private temporary file renamed into place, so readers
see a whole file or none, and concurrent writers leave one of their files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import stat
import tempfile
from pathlib import Path
from typing import Any

from .errors import PrerequisiteError

FORMAT = 13  # bump when what is cached changes shape (or how it is computed)
SUBDIR = "resolution"
DISABLE_ENV = "PYTEST_UPROBE_NO_DISK_CACHE"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "pytest-uprobe"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    # Its owner: this user, root, or under `sudo -E` the user whose HOME it is.
    sudo_uid = os.environ.get("SUDO_UID", "")
    owners = {os.geteuid(), 0} | ({int(sudo_uid)} if sudo_uid.isdigit() else set())
    if not stat.S_ISDIR(st.st_mode) or st.st_uid not in owners:
        raise PrerequisiteError(
            "a private cache directory",
            f"{path} is not a directory owned by this user, so another user could plant "
            "the kernel headers BPF programs are compiled against",
            f"remove {path}, or set XDG_CACHE_HOME to a directory of your own",
        )
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)  # made by an older version or by hand: close it to others
    return path


def directory() -> Path:
    path = cache_dir() / SUBDIR
    path.mkdir(mode=0o700, exist_ok=True)
    return path


class DiskCache:
    """One part of one binary's cache: a dict loaded on first use, written by `flush`."""

    def __init__(self, key: str, part: str, size: int, mtime_ns: int) -> None:
        self.key = key
        self.part = part
        self.size = size
        self.mtime_ns = mtime_ns
        self._entries: dict[Any, Any] | None = None
        self._dirty = False
        self.enabled = not os.environ.get(DISABLE_ENV)

    @classmethod
    def for_binary(
        cls, build_id: str | None, path: Path, size: int, mtime_ns: int, part: str
    ) -> DiskCache:
        key = build_id or "path-" + hashlib.sha256(str(path).encode()).hexdigest()[:32]
        return cls(key, part, size, mtime_ns)

    @property
    def path(self) -> Path:
        return directory() / f"{self.key}.{self.part}.pickle"

    def _load(self) -> dict[Any, Any]:
        if self._entries is not None:
            return self._entries
        self._entries = {}
        if not self.enabled:
            return self._entries
        try:
            path = self.path
            with path.open("rb") as f:
                st = os.fstat(f.fileno())
                if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                    return self._entries  # not ours alone: never unpickle it
                stored = pickle.load(f)  # noqa: S301  (our own 0600 file, checked above)
        except Exception:  # missing, unreadable, truncated or corrupt: start afresh
            return self._entries
        if (
            isinstance(stored, dict)
            and stored.get("format") == FORMAT
            and stored.get("size") == self.size
            and stored.get("mtime_ns") == self.mtime_ns
            and isinstance(stored.get("entries"), dict)
        ):
            self._entries = stored["entries"]
        return self._entries

    def get(self, key: Any) -> Any:
        return self._load().get(key)

    def put(self, key: Any, value: Any) -> None:
        self._load()[key] = value
        self._dirty = True

    def flush(self) -> None:
        """Write the entries if any changed; failing to write only costs the next run time."""
        if not self._dirty or not self.enabled:
            return
        self._dirty = False
        stored = {
            "format": FORMAT,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "entries": self._entries,
        }
        try:
            target = self.path
            fd, scratch = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as f:  # mkstemp creates it 0600
                pickle.dump(stored, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(scratch, target)
        except Exception:
            with contextlib.suppress(OSError):
                os.unlink(scratch)
