"""`pytest-uprobe symbols`, in-process through `main()` and as `python -m pytest_uprobe`.

Needs cargo (to build example_crates/zoo), not root."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pytest_uprobe.cli import main

ZOO = "example_crates/zoo"
V0 = "-C symbol-mangling-version=v0"


@pytest.fixture
def zoo_legacy(cargo_bin):
    return cargo_bin(ZOO, profile="release")


@pytest.fixture
def zoo_v0(cargo_bin):
    return cargo_bin(ZOO, profile="release", rustflags=V0)


def table(text: str) -> list[list[str]]:
    """The rows under the header, split into columns (the path, last, may hold spaces)."""
    lines = text.splitlines()
    assert lines[0].split() == ["RETURN", "ADDRESS", "SIZE", "INST", "INL", "PATH"]
    return [line.split(None, 5) for line in lines[1:]]


def nm_address(exe, demangled_prefix: str) -> set[int]:
    """Addresses of the symbols nm lists whose rustfilt-demangled name starts with a prefix."""
    out = subprocess.run(["nm", str(exe)], capture_output=True, text=True, check=True).stdout
    names = [line.split() for line in out.splitlines() if len(line.split()) == 3]
    plain = subprocess.run(
        ["rustfilt"], input="".join(n[2] + "\n" for n in names), capture_output=True,
        text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    return {int(n[0], 16) for n, p in zip(names, plain) if p.startswith(demangled_prefix)}


def test_symbols_generic_path_lists_every_instance(zoo_v0, capsys):
    assert main(["symbols", str(zoo_v0), "zoo::ident"]) == 0
    rows = table(capsys.readouterr().out)
    paths = sorted(r[5] for r in rows)
    assert paths == ["zoo::ident::<i32>", "zoo::ident::<u64>", "zoo::ident::<u8>"]
    assert {int(r[1], 16) for r in rows} == nm_address(zoo_v0, "zoo::ident::<")
    assert all(r[3] == "3" for r in rows)  # three instances of one generic path
    assert all(r[4] == "-" for r in rows)  # inlined copies not looked up by default


def test_symbols_json(zoo_v0, capsys):
    assert main(["symbols", str(zoo_v0), "zoo::*", "--json"]) == 0
    rows = {r["path"]: r for r in json.loads(capsys.readouterr().out)}
    expected = {"zoo::fib", "zoo::main", "zoo::main::{closure#0}", "zoo::geometry::inner::scale"}
    assert expected <= set(rows)
    # fib calls itself: never a leaf; the identity function of a release build calls nothing.
    assert rows["zoo::fib"]["return_mode"] == "ret-sites"
    assert rows["zoo::ident::<u8>"]["return_mode"] == "uretprobe"
    assert rows["zoo::fib"]["symbol"].startswith("_R")
    assert rows["zoo::fib"]["address"] in nm_address(zoo_v0, "zoo::fib")
    assert rows["zoo::fib"]["size"] > 0 and rows["zoo::fib"]["inlined"] is None


def test_symbols_legacy_closures_get_their_dwarf_numbers(zoo_legacy, capsys):
    assert main(["symbols", str(zoo_legacy), "zoo::main::*", "--inlined"]) == 0
    rows = table(capsys.readouterr().out)
    assert [r[5] for r in rows] == ["zoo::main::{closure#0}", "zoo::main::{closure#1}"]
    assert {int(r[1], 16) for r in rows} == nm_address(zoo_legacy, "zoo::main::{{closure}}")
    assert all(r[4].isdigit() for r in rows)


def test_symbols_without_glob_lists_everything(zoo_legacy, capsys):
    assert main(["symbols", str(zoo_legacy)]) == 0
    paths = [r[5] for r in table(capsys.readouterr().out)]
    assert "zoo::fib" in paths and "<zoo::Sq as zoo::Shape>::area" in paths
    assert len(paths) > 100  # std's functions too


def test_glob_matching_nothing_exits_2(zoo_legacy, capsys):
    assert main(["symbols", str(zoo_legacy), "zoo::nothing*"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "matches no function" in captured.err and "pytest-uprobe symbols" in captured.err


def test_missing_binary_exits_2(tmp_path, capsys):
    assert main(["symbols", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "symbols" in capsys.readouterr().err


def test_python_dash_m(zoo_legacy):
    result = subprocess.run(
        [sys.executable, "-m", "pytest_uprobe", "symbols", str(zoo_legacy),
         "<* as zoo::Shape>::area"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    paths = sorted(r[5] for r in table(result.stdout))
    assert paths == ["<zoo::Circle as zoo::Shape>::area", "<zoo::Sq as zoo::Shape>::area"]


def test_python_dash_m_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pytest_uprobe", "symbols", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert "not an ELF executable" in result.stderr and result.stdout == ""
