"""names.may_match: the cheap test on mangled names must let through every symbol the
probe can match, in both Rust mangling schemes."""

from __future__ import annotations

import pytest

from pytest_uprobe.names import demangle, matcher, may_match

NAMES = [
    "_ZN3zoo5ident17h0123456789abcdefE",
    "_ZN38_$LT$zoo..Sq$u20$as$u20$zoo..Shape$GT$4area17h0123456789abcdefE",
    "_RINvNtCs1234_3zoo8geometry5identhEB4_",
    "_RNvMNtCs1234_3zoo8geometryNtB2_2Sq4area",
    "main",
]


@pytest.mark.parametrize(
    "probe",
    [
        "zoo::ident",
        "zoo::ident::<u8>",
        "<zoo::Sq as zoo::Shape>::area",
        "*::area",
        "main",
        "zoo::geometry::*",
        "zoo::*",
        "zoo::geometry::Sq::area",
    ],
)
def test_never_drops_a_match(probe: str) -> None:
    matches, spelled = matcher(probe), may_match(probe)
    for name in NAMES:
        if matches(demangle(name)):
            assert spelled(name), (probe, name, demangle(name))


def test_drops_names_that_cannot_match() -> None:
    assert not may_match("zoo::ident")("_ZN3zoo4area17h0123456789abcdefE")
    assert may_match("zoo::ident")("ident")  # not mangled: its own path
