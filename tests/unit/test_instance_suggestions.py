"""A generic instance that was never made (`m::largest::<u8>`): the suggestions are the
instances that exist, and the error does not claim it was merged or removed."""

from __future__ import annotations

from pytest_uprobe.errors import NoMatchingFunction
from pytest_uprobe.names import closest, instances_of

KNOWN = [
    "m::largest::<u32>",
    "m::largest::<i64>",
    "m::largest::<char>",
    "m::largest",  # a legacy symbol's path, without the generic arguments
    "m::latest",
    "m::Parser::new",
]


def test_the_existing_instances_come_first_however_far_their_spelling():
    assert closest("m::largest::<u8>", KNOWN) == [
        "m::largest::<char>",
        "m::largest::<i64>",
        "m::largest::<u32>",
    ]


def test_a_name_without_generic_arguments_is_suggested_by_spelling():
    assert closest("m::largets", KNOWN)[:2] == ["m::largest", "m::latest"]
    assert instances_of("m::largets", KNOWN) == []


def test_the_error_names_the_instances_and_claims_no_merging():
    error = NoMatchingFunction(
        "m::largest::<u8>",
        "/bin/x",
        closest("m::largest::<u8>", KNOWN),
        in_source="src/lib.rs:3",
        instances=instances_of("m::largest::<u8>", KNOWN),
    )
    text = str(error)
    assert "m::largest::<char>, m::largest::<i64>, m::largest::<u32> only" in text
    assert "merged" not in text and "removed" not in text
    assert "fix: did you mean 'm::largest::<char>'" in text
