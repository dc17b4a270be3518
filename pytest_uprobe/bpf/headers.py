"""Kernel headers for BCC's compiler: find them, or assemble one tree from Debian's two halves.

Debian splits a kernel's headers into `/usr/src/linux-headers-<v>-common` and
`/usr/src/linux-headers-<v>-<arch>`; BCC needs them as one tree. We merge them into a
cache directory as a farm of symlinks (directories present in only one half are linked
whole), built under a private temporary name and renamed into place, so that no other
user can plant files in it and concurrent runs never see half a tree.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import tempfile
from pathlib import Path

from ..diskcache import cache_dir
from ..errors import PrerequisiteError

SOURCE_ROOT = Path("/usr/src")
INSTALL_HINT = "apt-get install linux-headers-amd64"


def kernel_source() -> Path | None:
    """A header tree BCC can compile against, or None if the running kernel's own is found.

    Order: $BCC_KERNEL_SOURCE as set by the user; the running kernel's
    /lib/modules/<release>/build; a cached merge of Debian's newest header packages.
    """
    user = os.environ.get("BCC_KERNEL_SOURCE")
    if user:
        if not Path(user, "include").is_dir():
            raise PrerequisiteError(
                "kernel headers",
                f"BCC_KERNEL_SOURCE={user} has no include/ directory",
                f"unset BCC_KERNEL_SOURCE, or point it at a kernel header tree ({INSTALL_HINT})",
            )
        return Path(user)
    if Path("/lib/modules", platform.release(), "build", "include").is_dir():
        return None
    common, arch = _debian_halves()
    return _merged(common, arch)


def export_kernel_source(source: Path | None) -> None:
    """Point BCC's compiler at `source` (None: the running kernel's own headers serve)."""
    if source is not None:
        os.environ["BCC_KERNEL_SOURCE"] = str(source)


def _debian_halves(root: Path = SOURCE_ROOT) -> tuple[Path, Path]:
    pattern = re.compile(r"linux-headers-(.+)-common$")
    pairs = []
    for candidate in root.glob("linux-headers-*-common"):
        match = pattern.match(candidate.name)
        if not match:
            continue
        arch = root / f"linux-headers-{match.group(1)}-amd64"
        if arch.is_dir():
            pairs.append((_version_key(match.group(1)), candidate, arch))
    if not pairs:
        raise PrerequisiteError(
            "kernel headers",
            f"no /lib/modules/{platform.release()}/build and no Debian header packages "
            f"under {root}",
            INSTALL_HINT,
        )
    _, common, arch = max(pairs)
    return common, arch


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version))


def _merged(common: Path, arch: Path) -> Path:
    target = cache_dir() / f"kernel-source-{arch.name}"
    if (target / "include").is_dir():
        return target
    scratch = Path(tempfile.mkdtemp(prefix=".kernel-source-", dir=target.parent))
    try:
        tree = scratch / "tree"
        _merge(tree, [common, arch])
        try:
            os.rename(tree, target)
        except OSError:
            if not (target / "include").is_dir():  # another process won the race if it exists
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _merge(destination: Path, sources: list[Path]) -> None:
    destination.mkdir()
    entries: dict[str, list[Path]] = {}
    for source in sources:
        for entry in sorted(source.iterdir()):
            entries.setdefault(entry.name, []).append(entry)
    for name, paths in entries.items():
        directories = [p for p in paths if p.is_dir() and not p.is_symlink()]
        if len(directories) > 1:
            _merge(destination / name, directories)
        else:  # the architecture half wins where both have a file
            os.symlink(paths[-1], destination / name)
