"""`names.demangle` against Debian's `rustfilt`, line by line, on every Rust symbol of real
binaries in both mangling schemes. Needs cargo and rustfilt, not root."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from pytest_uprobe.elf import ElfBinary
from pytest_uprobe.names import demangle

V0 = "-C symbol-mangling-version=v0"
_LEGACY = re.compile(r"^_ZN.*17h[0-9a-f]{16}E")  # other `_Z` names are C++: not compared

BUILDS = [
    pytest.param(crate, profile, flags, id=f"{crate.rsplit('/', 1)[1]}-{profile}-{mangling}")
    for crate, profiles in [
        ("example_crates/args", ["dev"]),
        ("example_crates/helloworld", ["dev"]),
        ("example_crates/zoo", ["dev", "release"]),
    ]
    for profile in profiles
    for mangling, flags in [("legacy", None), ("v0", V0)]
]


def rust_symbol_names(exe: object) -> list[str]:
    names = {s.name for s in ElfBinary.open(str(exe)).symbols}
    return sorted(n for n in names if n.startswith("_R") or _LEGACY.match(n))


@pytest.mark.skipif(shutil.which("rustfilt") is None, reason="rustfilt is not installed")
@pytest.mark.parametrize(("crate", "profile", "rustflags"), BUILDS)
def test_demangle_matches_rustfilt(cargo_bin, crate, profile, rustflags):
    exe = cargo_bin(crate, profile=profile, rustflags=rustflags)
    names = rust_symbol_names(exe)
    crate_name = crate.rsplit("/", 1)[1]
    # The build really uses the scheme asked for: its own `main` is mangled that way.
    own_main = [
        n for n in names if n.startswith("_R" if rustflags else "_ZN") and crate_name in n
        and "4main" in n
    ]  # fmt: skip
    assert own_main, f"no {crate_name}::main mangled as asked ({rustflags or 'legacy'})"

    result = subprocess.run(
        ["rustfilt"], input="".join(n + "\n" for n in names), capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    expected = result.stdout.splitlines()
    assert len(expected) == len(names)
    mismatches = [
        (name, want, demangle(name))
        for name, want in zip(names, expected)
        if demangle(name) != want
    ]
    assert mismatches == []
