"""A change of the crate makes the committed snapshots fail, with a diff that names the
changed facts; an unrelated change leaves them alone.

Each test copies example_crates/abi_demo to a temporary directory, edits its source, builds
it in release, and runs test_abi_demo.py (with the committed .ambr file) in an inner
pytest against that build. The expected lines come from the edit itself: the argument
added is a `u64` (8 bytes), the helper marked `#[inline(never)]` must get code of its own
and lose its copies.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_uprobe import abi, inlining

from .test_abi_demo import CRATE, EXE_VARIABLE

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SNAPSHOT_TESTS = HERE / "test_abi_demo.py"
SNAPSHOT_FILE = HERE / "__snapshots__" / "test_abi_demo.ambr"
# pytester points HOME at a temporary directory, where rustup would find no toolchain.
TOOLCHAIN_HOMES = {
    "RUSTUP_HOME": os.environ.get("RUSTUP_HOME", str(Path.home() / ".rustup")),
    "CARGO_HOME": os.environ.get("CARGO_HOME", str(Path.home() / ".cargo")),
}


@pytest.fixture(autouse=True)
def toolchain(monkeypatch):
    for name, value in TOOLCHAIN_HOMES.items():
        monkeypatch.setenv(name, value)


def edited_copy(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    """A copy of the example crate with each (old, new) edit applied to src/main.rs."""
    crate = tmp_path / "abi_demo"
    crate.mkdir()
    for name in ("Cargo.toml", "Cargo.lock"):
        shutil.copy(ROOT / CRATE / name, crate / name)
    shutil.copytree(ROOT / CRATE / "src", crate / "src")
    main = crate / "src" / "main.rs"
    source = main.read_text()
    for old, new in edits:
        assert source.count(old) == 1, f"the example crate no longer contains {old!r}"
        source = source.replace(old, new)
    main.write_text(source)
    return crate


def run_snapshot_tests(pytester: pytest.Pytester, monkeypatch, exe: Path) -> pytest.RunResult:
    """test_abi_demo.py against `exe`, compared with the committed snapshots, in a
    pytest of its own (-vv: pytest shows a long diff whole)."""
    shutil.copy(SNAPSHOT_TESTS, pytester.path / SNAPSHOT_TESTS.name)
    snapshots = pytester.path / "__snapshots__"
    snapshots.mkdir(exist_ok=True)
    shutil.copy(SNAPSHOT_FILE, snapshots / SNAPSHOT_FILE.name)
    monkeypatch.setenv(EXE_VARIABLE, str(exe))
    return pytester.runpytest_subprocess("-vv", "-p", "no:cacheprovider", "--tb=short")


def diff_lines(result: pytest.RunResult) -> tuple[list[str], list[str]]:
    """The snapshot lines a failure shows removed (-) and added (+), stripped."""
    removed, added = [], []
    for line in result.outlines:
        found = re.match(r"^\s*([-+])   (.*)$", line)
        if found:
            (removed if found.group(1) == "-" else added).append(found.group(2).strip())
    return removed, added


def test_the_unchanged_crate_matches_its_snapshots(pytester, monkeypatch, cargo_bin):
    # The harness itself: the very tests, with the committed file, pass on the real build.
    exe = cargo_bin(CRATE, profile="release")
    result = run_snapshot_tests(pytester, monkeypatch, exe)
    result.assert_outcomes(passed=2)


def test_a_new_argument_fails_the_abi_snapshot_with_its_lines(
    pytester, monkeypatch, cargo_bin, tmp_path
):
    crate = edited_copy(
        tmp_path,
        ("pub fn add(a: u64, b: u64) -> u64 {", "pub fn add(a: u64, b: u64, c: u64) -> u64 {"),
        ("a.wrapping_add(b)\n", "a.wrapping_add(b).wrapping_add(c)\n"),
        ("api::add(n, black_box(4))", "api::add(n, black_box(4), black_box(5))"),
    )
    exe = cargo_bin(crate, profile="release")
    result = run_snapshot_tests(pytester, monkeypatch, exe)
    result.assert_outcomes(failed=1, passed=1)  # the ABI changed; the inlining did not
    result.stdout.fnmatch_lines(["*FAILED*test_abi_demo.py::test_abi*"])
    removed, added = diff_lines(result)
    assert "signature: fn(a: u64, b: u64) -> u64" in removed
    assert "signature: fn(a: u64, b: u64, c: u64) -> u64" in added
    new_param = [line for line in added if line.startswith("param c: ")]
    assert len(new_param) == 1 and new_param[0].startswith("param c: u64 (8 bytes, align 8): ")
    # Only add changed: every other function's lines are the snapshot's.
    changed = {line.split(":")[0] for line in removed + added}
    assert changed <= {"signature", "param c"}, (removed, added)


def test_inline_never_fails_both_snapshots_with_their_lines(
    pytester, monkeypatch, cargo_bin, tmp_path
):
    crate = edited_copy(
        tmp_path,
        ("    #[inline]\n    pub fn scale", "    #[inline(never)]\n    pub fn scale"),
    )
    exe = cargo_bin(crate, profile="release")
    result = run_snapshot_tests(pytester, monkeypatch, exe)
    result.assert_outcomes(failed=2)
    removed, added = diff_lines(result)
    # inlining: scale gets code of its own and loses its copies in area and perimeter.
    assert "out of line: no" in removed and "out of line: yes" in added
    assert "inlined into abi_demo::api::area: 1 copy" in removed
    assert "inlined into abi_demo::api::perimeter: 2 copies" in removed
    assert "inlined: nowhere" in added
    # abi: scale now has a calling convention, so its arguments have places.
    assert "exists: inlined only" in removed and "exists: out of line" in added
    assert any(line.startswith("param value: u64 (8 bytes, align 8): ") for line in added)
    # The snapshot file names no address: the diff shows no other function's lines.
    assert not any(re.search(r"0x[0-9a-f]{4,}", line) for line in removed + added)

    # --snapshot-update takes the new facts in; the next run passes on them.
    updated = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--snapshot-update")
    updated.assert_outcomes(passed=2)
    rewritten = (pytester.path / "__snapshots__" / SNAPSHOT_FILE.name).read_text()
    scale = rewritten[rewritten.index("  abi_demo::api::scale\n    out of line:") :]
    assert scale.splitlines()[1:3] == ["    out of line: yes", "    inlined: nowhere"]
    assert "inlined into abi_demo::api::area" not in rewritten
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_an_unrelated_function_growing_leaves_the_snapshots_alone(cargo_bin, tmp_path):
    """A new function placed before the api in the binary moves every address after it;
    the reports do not change, since they hold no address."""
    original = cargo_bin(CRATE, profile="release")
    crate = edited_copy(
        tmp_path,
        (
            "pub mod api {",
            "#[inline(never)]\npub fn unrelated(n: u64) -> u64 {\n"
            + "".join(f'    println!("line {i} {{n}}");\n' for i in range(40))
            + "    n\n}\n\npub mod api {",
        ),
        ("let n = black_box(", "let n = unrelated(black_box("),
        (".unwrap_or(3));", ".unwrap_or(3)));"),
    )
    changed = cargo_bin(crate, profile="release")
    assert symbol_address(changed, "abi_demo::api::add") != symbol_address(
        original, "abi_demo::api::add"
    )
    assert abi(changed, "abi_demo::api::*") == abi(original, "abi_demo::api::*")
    assert inlining(changed, "abi_demo::api::*") == inlining(original, "abi_demo::api::*")


def symbol_address(exe: Path, path: str) -> int:
    """The address nm and rustfilt (independent of pytest-uprobe) give a function."""
    if shutil.which("nm") is None or shutil.which("rustfilt") is None:
        pytest.skip("nm (binutils) and rustfilt are needed to read symbol addresses")
    listing = subprocess.run(["nm", str(exe)], capture_output=True, text=True, check=True).stdout
    demangled = subprocess.run(
        ["rustfilt"], input=listing, capture_output=True, text=True, check=True
    ).stdout
    for line in demangled.splitlines():
        address, _, name = line.split(" ", 2)
        if name == path:
            return int(address, 16)
    raise AssertionError(f"nm lists no {path} in {exe}")
