"""Each binary and probe-name error, triggered for real, with the key words of its message.

Resolution needs no root: `Tracer().plan(exe, [name])` resolves without running anything."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pytest_uprobe.errors import (
    BinaryNotFound,
    DataSymbolOnly,
    GlobMatchesNothing,
    NoMatchingFunction,
    NoSymbolTable,
    NotElfError,
    NotExecutable,
    ProbeNameError,
)
from pytest_uprobe.tracer import Tracer

ZOO = "example_crates/zoo"


@pytest.fixture
def zoo(cargo_bin):
    return cargo_bin(ZOO)


def plan(exe, name="zoo::fib"):
    return Tracer().plan(exe, [name])


def test_missing_path(tmp_path):
    missing = tmp_path / "no-such-binary"
    with pytest.raises(BinaryNotFound) as info:
        plan(missing)
    message = str(info.value)
    assert str(missing) in message and "no such file" in message and "cargo_bin" in message


def test_text_file(tmp_path):
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    with pytest.raises(NotElfError, match="not an ELF executable") as info:
        plan(script)
    assert str(script) in str(info.value)


def test_not_executable_copy(zoo, tmp_path):
    copy = tmp_path / "zoo"
    shutil.copyfile(zoo, copy)  # copies the bytes, not the mode
    copy.chmod(0o644)
    with pytest.raises(NotExecutable) as info:
        plan(copy)
    message = str(info.value)
    assert "not executable" in message and f"chmod +x {copy}" in message


@pytest.mark.skipif(shutil.which("strip") is None, reason="binutils' strip is not installed")
def test_stripped_copy(zoo, tmp_path):
    stripped = tmp_path / "zoo-stripped"
    subprocess.run(["strip", "-o", str(stripped), str(zoo)], check=True)
    with pytest.raises(NoSymbolTable) as info:
        plan(stripped)
    message = str(info.value)
    assert "stripped" in message and "Cargo.toml" in message and "strip = false" in message


def test_unknown_name_suggests_the_three_closest(zoo):
    with pytest.raises(NoMatchingFunction) as info:
        plan(zoo, "zoo::fibb")
    error = info.value
    assert isinstance(error, ProbeNameError)
    assert len(error.suggestions) == 3
    assert error.suggestions[0] == "zoo::fib"
    assert "no function of that name" in str(error)
    assert "did you mean " + ", ".join(repr(s) for s in error.suggestions) in str(error)


def test_data_symbol(zoo):
    with pytest.raises(DataSymbolOnly) as info:
        plan(zoo, "zoo::FIB_CALLS")
    message = str(info.value)
    assert "'zoo::FIB_CALLS'" in message
    assert "object symbol, not a function" in message and "only code can be probed" in message


def test_glob_matching_nothing(zoo):
    with pytest.raises(GlobMatchesNothing) as info:
        plan(zoo, "zoo::geometry::*::rotate")
    error = info.value
    assert isinstance(error, ProbeNameError)
    message = str(error)
    assert str(zoo) in message and "'zoo::geometry::*::rotate'" in message
    assert "matches no function" in message and "pytest-uprobe symbols" in message


def test_glob_matching_something_is_not_an_error(zoo):
    functions = plan(zoo, "zoo::geometry::*").functions
    assert [f.symbol.path for f in functions] == ["zoo::geometry::inner::scale"]
