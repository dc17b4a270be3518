"""The worked example of docs/snapshots.md: the ABI and the inlining decisions of the
`abi_demo` release build, pinned by syrupy snapshots (`__snapshots__/test_abi_demo.ambr`).

Refresh after an intended change with `pytest tests/snapshots --snapshot-update`, and
review the diff of the .ambr file. Nothing runs and nothing needs root: these tests read
the binary only. test_snapshot_diff.py runs these very tests against modified builds.
"""

from __future__ import annotations

import os

import pytest

from pytest_uprobe import abi, inlining

CRATE = "example_crates/abi_demo"
EXE_VARIABLE = "ABI_DEMO_EXE"  # set by test_snapshot_diff.py to a modified build


@pytest.fixture
def abi_demo(cargo_bin):
    return os.environ.get(EXE_VARIABLE) or cargo_bin(CRATE, profile="release")


def test_abi(abi_demo, snapshot):
    assert abi(abi_demo, "abi_demo::api::*") == snapshot


def test_inlining(abi_demo, snapshot):
    assert inlining(abi_demo, "abi_demo::api::*") == snapshot
