"""The command line: symbols, lines, trace (text and --json), abi, inlining."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.blackbox_exprkit.rdebug import printed

CLI = str(Path(sys.executable).parent / "pytest-uprobe")


def cli(*args, check=True):
    p = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=300)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def test_symbols_lists_monomorphs_and_trait_impls(cargo_bin, crate):
    exe = cargo_bin(crate)
    out = cli("symbols", exe, "exprkit::largest*").stdout
    for inst in ("u32", "i64", "char"):
        assert f"exprkit::largest::<{inst}>" in out
    out = cli("symbols", exe, "<* as exprkit::Function>::apply").stdout
    for ty in ("Hypot", "Clamp", "Poly"):
        assert f"<exprkit::{ty} as exprkit::Function>::apply" in out
    js = json.loads(cli("symbols", "--json", exe, "exprkit::largest*").stdout)
    assert len(js) >= 3


def test_lines_lists_histogram_body(cargo_bin, crate):
    exe = cargo_bin(crate)
    out = cli("lines", exe, "src/lib.rs", "--function", "exprkit::histogram").stdout
    from tests.blackbox_exprkit.test_lines import line_of

    assert f"src/lib.rs:{line_of('counted += 1;')}" in out


@pytest.mark.uprobe
def test_trace_text_and_json_agree_with_program(cargo_bin, crate):
    exe = cargo_bin(crate)
    p = cli("trace", "-p", "exprkit::span_of", "-p", "exprkit::largest", "--", exe, "sync")
    ((args, ret),) = printed(p.stderr, "exprkit::span_of")  # program output goes to stderr
    assert "exprkit::span_of([17, -4, 99, 23, 5, 42, -11, 64]) -> Span(lo=-11, hi=99)" in p.stdout
    assert "exit status 0" in p.stderr.splitlines()[-1]
    pj = cli("trace", "--json", "-p", "exprkit::largest::<char>", "--", exe, "sync")
    d = json.loads(pj.stdout)
    ((cargs, cret),) = printed(d["stdout"], "exprkit::largest::<char>")
    assert d["counts"] == {"exprkit::largest::<char>": 1}
    assert d["calls"][0]["args"] == [list(cargs[0])]
    assert d["calls"][0]["retval"] == cret


@pytest.mark.uprobe
def test_trace_json_struct_values_are_json(cargo_bin, crate):
    exe = cargo_bin(crate)
    d = json.loads(cli("trace", "--json", "-p", "exprkit::span_of", "--", exe, "sync").stdout)
    ((args, ret),) = printed(d["stdout"], "exprkit::span_of")
    # a struct should come out as a JSON object, not as a Python repr string: tagged
    # {"struct": name, "fields": {...}} as docs/guide/commands.md documents it
    assert d["calls"][0]["retval"] == {"struct": "Span", "fields": ret}, d["calls"][0]["retval"]


@pytest.mark.uprobe
def test_trace_exit_status_and_typo(cargo_bin, crate):
    exe = cargo_bin(crate)
    p = cli("trace", "-p", "exprkit::spanof", "--", exe, "sync", check=False)
    assert p.returncode == 125
    assert "exprkit::span_of" in p.stderr


def test_abi_and_inlining_cli(cargo_bin, crate):
    exe = cargo_bin(crate, profile="release")
    out = cli("abi", exe, "exprkit::min_max").stdout
    assert "xmm0 (bytes 0..8), xmm1 (bytes 8..16)" in out
    out = cli("inlining", exe, "exprkit::Parser::*").stdout
    assert "exprkit::Parser::prec" in out and "inlined into exprkit::Parser::parse_expr" in out
