"""A real Rust program nobody here wrote: fd, built from Debian's fd-find source package
against Debian's librust-*-dev crates by build-fd.sh (`make realcrate`, which `make test`
runs first)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FD_ENV = "PYTEST_UPROBE_FD"  # another fd binary to test instead (release, debug = true)


@pytest.fixture(scope="session")
def fd_exe() -> Path:
    """The fd binary (release, full debug info, symbols kept)."""
    path = Path(os.environ.get(FD_ENV) or HERE / "build" / "fd")
    if not path.exists():
        pytest.skip(f"{path} is not built: run `make realcrate` (as root; about 5 minutes)")
    return path
