"""DWARF 5 (`-C dwarf-version=5`: strx/addrx names and addresses, loclistx and rnglistx
lists, data16 constants) decodes every value of example_crates/types exactly as the
program prints it, as DWARF 4 does (issue 13, point 7). std's units stay DWARF 4: one
binary mixes both versions."""

from __future__ import annotations

import pytest

from tests.integration.test_types import CRATE, PROBES, PROFILES, check_trace

DWARF5 = "-C dwarf-version=5"


@pytest.mark.parametrize("profile", PROFILES)
def test_every_value_equals_what_the_program_printed_with_dwarf5(uprobe_trace, cargo_bin, profile):
    exe = cargo_bin(CRATE, profile=profile, rustflags=DWARF5)
    info = exe.read_bytes()
    assert b".debug_str_offsets" in info and b".debug_addr" in info, "not DWARF 5?"
    trace = uprobe_trace.run([exe, "all"], probes=PROBES)
    assert trace.lost_events == 0
    assert check_trace(trace, profile=f"{profile}, DWARF 5") > 100
