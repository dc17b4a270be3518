"""Which source file a line probe's path means (no root, no compiler): the traced crate's
own files before the standard library's and dependencies' of the same name."""

from __future__ import annotations

import pytest

from pytest_uprobe.dwarf import lines

FILES = [
    "/home/me/crate/src/a/mod.rs",
    "/home/me/crate/src/b/mod.rs",
    "/home/me/crate/src/lib.rs",
    "/root/.cargo/registry/src/index.crates.io-6f17d22bba15001f/tokio-1.38.0/src/lib.rs",
    "/rust/deps/hashbrown-0.15.5/src/lib.rs",
    "/rust/deps/hashbrown-0.15.5/src/raw/mod.rs",
    "/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/std/src/lib.rs",
    "/usr/share/cargo/registry/tokio-1.24.2/src/lib.rs",
]


@pytest.fixture(autouse=True)
def files(monkeypatch):
    monkeypatch.setattr(lines, "source_files", lambda binary: sorted(FILES))
    monkeypatch.setattr(lines, "crate_dirs", lambda binary: ["/home/me/crate"])


@pytest.mark.parametrize("wanted", ["src/lib.rs", "lib.rs", "/home/me/crate/src/lib.rs"])
def test_a_crate_relative_path_or_a_bare_name_means_the_crate_s_own_file(wanted):
    assert lines.match_file(None, wanted) == ["/home/me/crate/src/lib.rs"]


def test_an_ambiguous_name_lists_the_crate_s_own_files_first():
    found = lines.match_file(None, "mod.rs")
    assert found[:2] == ["/home/me/crate/src/a/mod.rs", "/home/me/crate/src/b/mod.rs"]
    assert found[2:] == ["/rust/deps/hashbrown-0.15.5/src/raw/mod.rs"]


def test_a_dependency_s_file_is_still_reachable_by_more_of_its_path():
    assert lines.match_file(None, "hashbrown-0.15.5/src/lib.rs") == [
        "/rust/deps/hashbrown-0.15.5/src/lib.rs"
    ]
