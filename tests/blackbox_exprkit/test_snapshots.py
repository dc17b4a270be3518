"""ABI and inlining snapshots (no --uprobe needed)."""

from pytest_uprobe import abi, inlining


def test_abi_stats(cargo_bin, crate, snapshot):
    exe = cargo_bin(crate, profile="release")
    rep = abi(exe, "exprkit::s*")
    assert rep == snapshot


def test_inlining_release(cargo_bin, crate, snapshot):
    exe = cargo_bin(crate, profile="release")
    assert inlining(exe, "exprkit::*") == snapshot


def test_abi_facts_match_rust(cargo_bin, crate):
    exe = cargo_bin(crate, profile="release")
    rep = abi(exe, "exprkit::summarize")
    f = rep["exprkit::summarize"]
    text = str(rep)
    print(text)
    assert "hidden pointer" in text  # Summary is 32 bytes
    rep2 = abi(exe, "exprkit::min_max")
    print(rep2)
    assert "xmm0" in str(rep2)
