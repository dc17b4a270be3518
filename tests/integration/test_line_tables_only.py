"""`debug = "line-tables-only"`: DWARF names an inlined function by its bare name only
(`prec`, `parse<f64>`), without namespace or linkage name, so the name cannot tell the
crate's `parse` from core's `str::parse::<f64>` inlined into the crate's code. Expected
counts come from what the program prints (`@@ NAME` per call); what DWARF says is checked
with pyelftools."""

from __future__ import annotations

import pytest
from elftools.elf.elffile import ELFFile

from pytest_uprobe import Tracer, inlining
from pytest_uprobe.errors import NoMatchingFunction

CRATE = "example_crates/ltonly"
PROFILES = ["dev", "release", "release-lines", "release-d1"]
ARGV = ["12", "3.5", "7"]
PROBES = ["ltonly::parse", "ltonly::Parser::prec", "ltonly::ops::weight", "ltonly::tally"]


def printed(stdout: str, name: str) -> int:
    return sum(1 for line in stdout.splitlines() if line.startswith(f"@@ {name} "))


def bare_abstract_names(exe) -> set[str]:
    """The inlined functions of the crate's unit that DWARF names without a namespace or
    linkage name (the oracle for the premise of these tests)."""
    found: set[str] = set()
    with open(exe, "rb") as stream:
        dwarf = ELFFile(stream).get_dwarf_info()
        for cu in dwarf.iter_CUs():
            top = cu.get_top_DIE()
            if b"/@/ltonly." not in top.attributes["DW_AT_name"].value:
                continue
            for die in top.iter_children():
                attrs = die.attributes
                if (
                    die.tag == "DW_TAG_subprogram"
                    and "DW_AT_inline" in attrs
                    and "DW_AT_linkage_name" not in attrs
                    and "DW_AT_name" in attrs
                ):
                    found.add(attrs["DW_AT_name"].value.decode())
    return found


def test_line_tables_only_dwarf_names_the_crates_and_cores_functions_alike(cargo_bin):
    names = bare_abstract_names(cargo_bin(CRATE, profile="release-lines"))
    assert {"prec", "weight", "parse<usize>", "parse<f64>"} <= names
    assert not bare_abstract_names(cargo_bin(CRATE, profile="release-d1")) & {"prec", "weight"}


@pytest.mark.parametrize("glob", PROBES[:3])  # tally's split copy has no path to report
def test_inlining_report_is_the_same_with_line_tables_only_as_with_debug_1(cargo_bin, glob):
    lines = inlining(cargo_bin(CRATE, profile="release-lines"), glob)
    assert str(lines) == str(inlining(cargo_bin(CRATE, profile="release-d1"), glob))


def test_cores_parse_is_not_the_crates_parse(cargo_bin):
    report = str(inlining(cargo_bin(CRATE, profile="release-lines"), "ltonly::*"))
    assert "ltonly::parse::<" not in report
    assert "ltonly::Parser::prec\n  out of line: no\n  inlined into ltonly::Parser::parse_expr" in (
        report
    )
    assert "ltonly::prec" not in report and "ltonly::weight" not in report


def test_sites_find_a_methods_inlined_copy_with_line_tables_only(cargo_bin):
    sites = Tracer().sites(cargo_bin(CRATE, profile="release-lines"), "ltonly::Parser::prec")
    assert [s.caller for s in sites.inlined] == ["ltonly::Parser::parse_expr"]
    assert sites.inlined[0].call_file.endswith("src/main.rs")


@pytest.mark.uprobe
@pytest.mark.parametrize("profile", PROFILES)
def test_counts_are_exact_and_match_what_the_program_printed(uprobe_trace, cargo_bin, profile):
    trace = uprobe_trace.run([cargo_bin(CRATE, profile=profile), *ARGV], probes=PROBES)
    assert printed(trace.stdout, "parse") == len(ARGV)
    for probe in PROBES:
        count = trace[probe].call_count
        calls = printed(trace.stdout, probe.rsplit("::", 1)[1])
        if probe == "ltonly::tally" and profile != "dev":
            # LLVM splits the second call's copy in two DWARF copies (one without a column,
            # their code side by side): counting both counted that call twice (4 for 2).
            assert count.exact or (count.may_be_more and int(count) <= calls), count
            if not count.exact:
                continue
        assert count.exact, (probe, count.may_be_more, count.may_be_fewer)
        assert count == calls, probe


@pytest.mark.uprobe
def test_unidentified_copies_make_a_glob_count_a_lower_bound(uprobe_trace, cargo_bin):
    # The closures of `parse` and `main` are named `{closure#0}` only: no `fn` names them.
    exe = cargo_bin(CRATE, profile="release-lines")
    trace = uprobe_trace.run([exe, *ARGV], probes=["ltonly::*"])
    count = trace["ltonly::*"].call_count
    assert not count.exact
    reasons = count.may_be_more
    assert any("`{closure#0}` (a closure" in why and "debug = 1" in why for why in reasons)
    with pytest.raises(AssertionError):
        assert count == int(count)


def test_an_instance_never_made_suggests_the_instances_that_exist(cargo_bin):
    with pytest.raises(NoMatchingFunction) as info:
        Tracer().plan(cargo_bin(CRATE, profile="release"), ["ltonly::largest::<u8>"])
    instances = ["ltonly::largest::<char>", "ltonly::largest::<u32>"]
    assert info.value.suggestions[:2] == instances == info.value.instances
    assert "merged" not in str(info.value) and "removed" not in str(info.value)


def test_instances_no_name_spells_may_be_the_instance(cargo_bin):
    # Line tables only: no DWARF subprogram for `largest` (nothing was inlined into it), and
    # the legacy symbols say `ltonly::largest` twice: either may be `::<u8>` for all it says.
    with pytest.raises(NoMatchingFunction) as info:
        Tracer().plan(cargo_bin(CRATE, profile="release-lines"), ["ltonly::largest::<u8>"])
    message = str(info.value)
    assert "2 function(s) named ltonly::largest" in message and "any may be" in message
    assert "Probe 'ltonly::largest' (every instance)" in message
    assert "merged" not in message
