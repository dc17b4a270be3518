"""The on-disk resolution cache: keyed by build-id, checked against size and mtime,
written atomically into a private directory, and ignored (then rewritten) when corrupt."""

from __future__ import annotations

import os
import pickle
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_uprobe import diskcache
from pytest_uprobe.diskcache import DiskCache
from pytest_uprobe.elf import ElfBinary

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.delenv(diskcache.DISABLE_ENV, raising=False)
    return home


def make(size: int = 100, mtime_ns: int = 5, key: str = "abc") -> DiskCache:
    return DiskCache(key, "main", size, mtime_ns)


def test_entries_survive_into_a_new_cache_object(cache_home: Path) -> None:
    first = make()
    first.put("symbols", [("f", 1, 2, "function")])
    first.flush()
    assert make().get("symbols") == [("f", 1, 2, "function")]


def test_a_changed_size_or_mtime_invalidates(cache_home: Path) -> None:
    first = make(size=100, mtime_ns=5)
    first.put("k", 1)
    first.flush()
    assert make(size=101, mtime_ns=5).get("k") is None
    assert make(size=100, mtime_ns=6).get("k") is None
    assert make(size=100, mtime_ns=5).get("k") == 1


def test_corrupt_files_are_ignored_and_rewritten(cache_home: Path) -> None:
    first = make()
    first.put("k", 1)
    first.flush()
    path = first.path
    for garbage in (b"", b"not a pickle", pickle.dumps(["a", "list"]), b"\x80\x05\x95trunc"):
        path.write_bytes(garbage)
        again = make()
        assert again.get("k") is None
        again.put("k", 2)
        again.flush()
        assert make().get("k") == 2


def test_a_file_others_can_write_is_never_loaded(cache_home: Path) -> None:
    first = make()
    first.put("k", 1)
    first.flush()
    os.chmod(first.path, 0o666)
    assert make().get("k") is None


def test_directory_and_files_are_private(cache_home: Path) -> None:
    cache = make()
    cache.put("k", 1)
    cache.flush()
    directory = cache.path.parent
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600
    for path in (directory, cache.path):
        assert not path.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def test_written_atomically_through_a_renamed_temporary(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = make()
    cache.put("k", 1)
    cache.flush()
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        # When the rename happens the target still holds the old, whole file.
        assert make().get("k") == 1
        renames.append((str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(diskcache.os, "replace", replace)
    cache.put("k", 2)
    cache.flush()
    assert len(renames) == 1 and renames[0][1] == str(cache.path)
    assert Path(renames[0][0]).parent == cache.path.parent
    assert make().get("k") == 2
    assert [p.name for p in cache.path.parent.iterdir()] == [cache.path.name]  # no leftovers


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = make()
    cache.put("k", 1)
    cache.flush()

    def broken_dump(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patched:
        patched.setattr(diskcache.pickle, "dump", broken_dump)
        cache.put("k", 2)
        cache.flush()  # does not raise: a cache that cannot be written only costs time
    assert make().get("k") == 1
    assert [p.name for p in cache.path.parent.iterdir()] == [cache.path.name]


def test_can_be_disabled(cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(diskcache.DISABLE_ENV, "1")
    cache = make()
    cache.put("k", 1)
    cache.flush()
    assert not (cache_home / "pytest-uprobe" / diskcache.SUBDIR).exists() or not list(
        (cache_home / "pytest-uprobe" / diskcache.SUBDIR).iterdir()
    )


def _helloworld() -> Path:
    exe = ROOT / "example_crates" / "helloworld" / "target" / "debug" / "helloworld"
    if not exe.exists():
        if shutil.which("cargo") is None:
            pytest.skip("cargo is not installed")
        subprocess.run(
            ["cargo", "build", "-q", "--manifest-path", str(exe.parents[2] / "Cargo.toml")],
            check=True,
        )
    return exe


PLAN = """
import sys
from pytest_uprobe import Tracer
plan = Tracer().plan(sys.argv[1], [sys.argv[2]])
print(len(plan.functions), len(plan.sites), plan.functions[0].symbol.path)
"""


def _plan_in_new_process(exe: Path, probe: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", PLAN, str(exe), probe],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ),
        cwd=ROOT,
    ).stdout


def test_a_binary_is_cached_by_build_id_and_a_rebuild_is_read_afresh(
    cache_home: Path, tmp_path: Path
) -> None:
    exe = tmp_path / "helloworld"
    shutil.copy2(_helloworld(), exe)
    probe = "helloworld::main"
    cold = _plan_in_new_process(exe, probe)
    binary = ElfBinary.open(exe)
    files = sorted(p.name for p in (cache_home / "pytest-uprobe" / diskcache.SUBDIR).iterdir())
    assert binary.build_id is not None
    assert files and all(name.startswith(binary.build_id + ".") for name in files)
    assert _plan_in_new_process(exe, probe) == cold  # warm: the same plan

    # The same build-id with another mtime (a copy, a touch): nothing stale is used.
    main = DiskCache.for_binary(
        binary.build_id, exe, binary.identity.size, binary.identity.mtime_ns, "main"
    )
    assert main.get("symbols") is not None
    os.utime(exe, ns=(binary.identity.mtime_ns + 10**9, binary.identity.mtime_ns + 10**9))
    moved = DiskCache.for_binary(
        binary.build_id, exe, binary.identity.size, binary.identity.mtime_ns + 10**9, "main"
    )
    assert moved.get("symbols") is None
    assert _plan_in_new_process(exe, probe) == cold
    assert (
        moved.__class__.for_binary(
            binary.build_id, exe, binary.identity.size, binary.identity.mtime_ns + 10**9, "main"
        ).get("symbols")
        is not None
    )  # rewritten for the new mtime
