"""The facts in the ABI and inlining reports, checked against the crate's source and against
readers independent of pytest-uprobe: llvm-dwarfdump (LLVM's DWARF reader), nm and rustfilt
(symbols), readelf (sections). Nothing here compares with an earlier output of the tool.

Sizes come from the source by arithmetic (a u64 is 8 bytes, a `&str` and a `&[f64]` two
words, `Point` two i32s, `Rect` a Point and two u64s); parameter names and types from the
`pub fn` lines of src/main.rs; places and copies from llvm-dwarfdump's dump, read by the
small translator below.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_uprobe import abi, inlining
from pytest_uprobe.cli import main

from .test_abi_demo import CRATE
from .test_snapshot_diff import edited_copy

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / CRATE / "src" / "main.rs"
GLOB = "abi_demo::api::*"
WORD = 8
SIZES = {"u64": 8, "i32": 4, "usize": WORD, "f64": 8, "&str": 2 * WORD, "&[f64]": 2 * WORD}
SIZES["&Rect"] = WORD
SIZES["Point"] = 2 * SIZES["i32"]  # struct Point { x: i32, y: i32 }
SIZES["Rect"] = SIZES["Point"] + 2 * SIZES["u64"]  # struct Rect { origin, width, height }
# A scalar aligns to its size; a pointer (thin or fat) to a word; a struct to its widest field.
ALIGNS = {name: min(size, WORD) for name, size in SIZES.items()}
ALIGNS.update({"Point": SIZES["i32"], "Rect": SIZES["u64"]})
TWO_REGISTERS = 2 * WORD  # larger values return through a hidden pointer


@pytest.fixture(scope="module")
def exe(cargo_bin_module):
    return cargo_bin_module(CRATE, profile="release")


@pytest.fixture(scope="module")
def cargo_bin_module(request):
    from pytest_uprobe.cargo import cargo_bin

    def build(crate, **kwargs):
        return cargo_bin(crate, base=request.config.rootpath, **kwargs)

    return build


def source_functions() -> dict[str, tuple[list[tuple[str, str]], str | None]]:
    """`pub fn` signatures of the api module: path -> ([(param, type)], return type)."""
    text = SOURCE.read_text()
    api = text[text.index("pub mod api {") :]
    found = {}
    for name, params, returns in re.findall(r"pub fn (\w+)\(([^)]*)\)(?: -> ([^{]+?))? \{", api):
        pairs = [tuple(p.split(": ")) for p in params.split(", ") if p]
        found[f"abi_demo::api::{name}"] = (pairs, returns)
    return found


def short(type_name: str) -> str:
    return type_name.replace("abi_demo::api::", "")


# -- llvm-dwarfdump, read independently ------------------------------------------------------


@dataclass
class Die:
    tag: str
    attrs: dict[str, str]
    parent: Die | None
    children: list[Die] = field(default_factory=list)
    offset: int = 0

    def ref(self, name: str) -> int | None:
        """The DIE offset a reference attribute names."""
        value = self.attrs.get(name)
        return int(value.split()[0].rstrip(")"), 16) if value else None


@pytest.fixture(scope="module")
def dwarf(exe) -> list[Die]:
    return dwarf_dies(exe)


def dwarf_dies(exe) -> list[Die]:
    """Every DIE llvm-dwarfdump prints, with its parent."""
    if shutil.which("llvm-dwarfdump") is None:
        pytest.skip("llvm-dwarfdump is not installed (apt-get install llvm)")
    dump = subprocess.run(
        ["llvm-dwarfdump", "--debug-info", str(exe)], capture_output=True, text=True, check=True
    ).stdout
    dies: list[Die] = []
    stack: list[tuple[int, Die]] = []
    current: Die | None = None
    attr: str | None = None
    for line in dump.splitlines():
        head = re.match(r"^0x([0-9a-f]+):( +)(DW_TAG_\w+|NULL)", line)
        if head:
            depth = (len(head.group(2)) - 1) // 2
            while stack and stack[-1][0] >= depth:
                stack.pop()
            if head.group(3) == "NULL":
                current = None
                continue
            parent = stack[-1][1] if stack else None
            current = Die(head.group(3), {}, parent, offset=int(head.group(1), 16))
            if current.parent is not None:
                current.parent.children.append(current)
            stack.append((depth, current))
            dies.append(current)
            attr = None
            continue
        found = re.match(r"^\s+(DW_AT_\w+)\t\((.*)$", line)
        if found and current is not None:
            attr = found.group(1)
            current.attrs[attr] = found.group(2)
        elif current is not None and attr is not None and line.strip():
            current.attrs[attr] += "\n" + line.strip()
    return dies


def mangled(path: str) -> str:
    """The legacy mangling's spelling of a path: `_ZN8abi_demo3api3add17h`."""
    return "_ZN" + "".join(f"{len(s)}{s}" for s in path.split("::")) + "17h"


def subprogram(dies: list[Die], path: str) -> Die:
    found = [
        d
        for d in dies
        if d.tag == "DW_TAG_subprogram"
        and d.attrs.get("DW_AT_linkage_name", "").startswith(f'"{mangled(path)}')
    ]
    concrete = [d for d in found if "DW_AT_low_pc" in d.attrs]
    assert len(concrete) == 1, f"llvm-dwarfdump shows {len(concrete)} out-of-line {path}"
    return concrete[0]


def entry_ops(die: Die, low_pc: int) -> str | None:
    """The location expression that holds at `low_pc`, as llvm-dwarfdump spells it."""
    value = die.attrs.get("DW_AT_location")
    if value is None:
        return None
    if not value.startswith("0x"):
        return value.rstrip(")")
    for line in value.splitlines()[1:]:
        entry = re.match(r"\[0x([0-9a-f]+), 0x([0-9a-f]+)\): (.*?)\)?$", line)
        if entry and int(entry.group(1), 16) <= low_pc < int(entry.group(2), 16):
            return entry.group(3)
    return None


def words_for(ops: str | None, constant: str | None) -> str:
    """What the report should say for a parameter DWARF places with `ops` at the entry of a
    function whose frame base is rsp (so the CFA is rsp+8 there)."""
    if constant is not None:
        return f"constant {int(constant.rstrip(')'))}"
    if ops is None:
        return "optimized out"
    parts = ops.split(", ")
    reg = re.fullmatch(r"DW_OP_reg\d+ (\w+)", parts[0])
    if len(parts) == 1 and reg:
        return f"in {reg.group(1).lower()}"
    fbreg = re.fullmatch(r"DW_OP_fbreg ([+-]\d+)", ops)
    if fbreg:
        offset = int(fbreg.group(1))
        return f"on the stack at CFA{offset - 8:+d} (rsp{offset:+d})"
    breg = re.fullmatch(r"DW_OP_breg\d+ (\w+)([+-]\d+)", ops)
    if breg:
        return f"by reference: memory at {breg.group(1).lower()}{int(breg.group(2)):+d}"
    pieces, start = [], 0
    for register, size in zip(parts[0::2], parts[1::2]):
        name = re.fullmatch(r"DW_OP_reg\d+ (\w+)", register)
        assert name and size.startswith("DW_OP_piece "), f"not translated: {ops}"
        length = int(size.split()[1], 16)
        pieces.append(f"{name.group(1).lower()} (bytes {start}..{start + length})")
        start += length
    return "split: " + ", ".join(pieces)


# -- the tests ---------------------------------------------------------------------------------


def test_signatures_are_the_sources(exe):
    report = abi(exe, GLOB)
    source = source_functions()
    assert sorted(report) == sorted(source)
    for path, (params, returns) in source.items():
        record = report[path]
        assert [(p.name, short(p.type.name)) for p in record.params] == params, path
        shown = None if record.returns.type is None else short(record.returns.type.name)
        assert shown == returns, path


def test_sizes_and_alignments_follow_from_the_source(exe):
    report = abi(exe, GLOB)
    seen = set()
    for record in report.values():
        types = [p.type for p in record.params]
        types += [record.returns.type] if record.returns.type is not None else []
        for layout in types:
            name = short(layout.name)
            assert (layout.size, layout.align) == (SIZES[name], ALIGNS[name]), (record.path, name)
            seen.add(name)
    assert seen == set(SIZES)  # every type of the table was checked somewhere
    assert [(t.name, t.size, t.align) for t in report.layouts] == [
        ("abi_demo::api::Point", SIZES["Point"], ALIGNS["Point"]),
        ("abi_demo::api::Rect", SIZES["Rect"], ALIGNS["Rect"]),
    ]


def test_struct_fields_as_llvm_dwarfdump_lays_them_out(exe, dwarf):
    report = abi(exe, GLOB)
    for layout in report.layouts:
        name = layout.name.rsplit("::", 1)[1]
        (die,) = [
            d
            for d in dwarf
            if d.tag == "DW_TAG_structure_type" and d.attrs.get("DW_AT_name") == f'"{name}")'
        ]
        assert int(die.attrs["DW_AT_alignment"].rstrip(")")) == layout.align
        assert int(die.attrs["DW_AT_byte_size"].rstrip(")"), 16) == layout.size
        members = [
            (
                c.attrs["DW_AT_name"].strip('()"'),
                int(c.attrs["DW_AT_data_member_location"].rstrip(")"), 16),
            )
            for c in die.children
            if c.tag == "DW_TAG_member"
        ]
        assert [(f.name, f.offset) for f in layout.fields] == members


def test_entry_places_are_llvm_dwarfdumps(exe, dwarf):
    checked = check_entry_places(abi(exe, GLOB), dwarf)
    assert checked == sum(len(p) for p, _ in source_functions().values()) - 2  # scale's two


def test_places_of_rewritten_functions_are_llvm_dwarfdumps(cargo_bin_module, tmp_path):
    """sum7 and area called directly: LLVM folds sum7's constant arguments in (DWARF gives
    their values and DW_CC_nocall) and passes area fields instead of its reference (DWARF
    gives `r` no place)."""
    crate = edited_copy(
        tmp_path,
        (
            "    let sum7: fn(u64, u64, u64, u64, u64, u64, u64) -> u64 = black_box(api::sum7);\n",
            "",
        ),
        ("    let area: fn(&api::Rect) -> u64 = black_box(api::area);\n", ""),
        ("sum7(1, 2, 3, 4, 5, 6, n)", "api::sum7(1, 2, 3, 4, 5, 6, n)"),
        ("area(&rect)", "api::area(&rect)"),
    )
    exe = cargo_bin_module(crate, profile="release")
    dies = dwarf_dies(exe)
    report = abi(exe, GLOB)
    check_entry_places(report, dies)
    for record in report.values():
        if not record.out_of_line:
            continue
        nocall = "DW_CC_nocall" in subprogram(dies, record.path).attrs.get(
            "DW_AT_calling_convention", ""
        )
        assert any("DW_CC_nocall" in note for note in record.notes) == nocall, record.path
    # The cases this build is for are really there.
    sum7 = report["abi_demo::api::sum7"]
    assert [p.location for p in sum7.params[:6]] == [f"constant {v}" for v in range(1, 7)]
    assert report["abi_demo::api::area"].params[0].location == "optimized out"


def check_entry_places(report, dies) -> int:
    """Each out-of-line parameter's place in the report is llvm-dwarfdump's at the entry."""
    dwarf = dies
    checked = 0
    for record in report.values():
        if not record.out_of_line:
            continue
        die = subprogram(dwarf, record.path)
        assert die.attrs["DW_AT_frame_base"] == "DW_OP_reg7 RSP)"
        low_pc = int(die.attrs["DW_AT_low_pc"].strip("()"), 16)
        params = [c for c in die.children if c.tag == "DW_TAG_formal_parameter"]
        assert [c.attrs["DW_AT_name"].strip('()"') for c in params] == [
            p.name for p in record.params
        ]
        for child, param in zip(params, record.params):
            expected = words_for(entry_ops(child, low_pc), child.attrs.get("DW_AT_const_value"))
            assert param.location == expected, (record.path, param.name)
            checked += 1
    return checked


def test_returns_follow_the_calling_convention(exe, dwarf):
    report = abi(exe, GLOB)
    for path, (_, returns) in source_functions().items():
        record = report[path]
        if not record.out_of_line:
            assert record.returns.location is None  # inlined only: no convention at all
        elif returns is None:
            assert record.returns.location == "nothing"
        elif returns == "f64":
            assert record.returns.location == "in xmm0"
        elif SIZES[returns] > TWO_REGISTERS:
            assert record.returns.location.startswith("through a hidden pointer")
        elif returns == "Point":  # two i32 scalars: one register each
            assert record.returns.location == "split: rax (bytes 0..4), rdx (bytes 4..8)"
        else:
            assert record.returns.location == "in rax"
    # The hidden pointer takes rdi: llvm-dwarfdump puts make_rect's first argument in rsi.
    make_rect = subprogram(dwarf, "abi_demo::api::make_rect")
    first = next(c for c in make_rect.children if c.tag == "DW_TAG_formal_parameter")
    assert first.attrs["DW_AT_location"] == "DW_OP_reg4 RSI)"


def nm_functions(exe) -> Counter[str]:
    """Function symbols with code, by rustfilt-demangled path (hash removed)."""
    if shutil.which("nm") is None or shutil.which("rustfilt") is None:
        pytest.skip("nm (binutils) and rustfilt are needed")
    listing = subprocess.run(
        ["nm", "-S", "--defined-only", str(exe)], capture_output=True, text=True, check=True
    ).stdout
    demangled = subprocess.run(
        ["rustfilt"], input=listing, capture_output=True, text=True, check=True
    ).stdout
    found: Counter[str] = Counter()
    for line in demangled.splitlines():
        fields = line.split(" ", 3)
        if len(fields) == 4 and fields[2] in "tT" and int(fields[1], 16) > 0:
            found[fields[3]] += 1
    return found


def test_inlining_is_what_nm_and_llvm_dwarfdump_show(exe, dwarf):
    report = inlining(exe, GLOB)
    symbols = nm_functions(exe)
    linkage_paths = {}
    for die in dwarf:
        name = die.attrs.get("DW_AT_linkage_name", "").strip('()"')
        if name:
            linkage_paths[name] = None
    names = list(linkage_paths)
    demangled = subprocess.run(
        ["rustfilt"], input="\n".join(names), capture_output=True, text=True, check=True
    ).stdout.splitlines()
    linkage_paths = dict(zip(names, demangled))
    for path in source_functions():
        expected: Counter[str] = Counter()
        for die in dwarf:
            origin = die.attrs.get("DW_AT_abstract_origin", "")
            if die.tag != "DW_TAG_inlined_subroutine" or mangled(path) not in origin:
                continue
            host = die.parent
            while host is not None and not (
                host.tag == "DW_TAG_subprogram" and "DW_AT_low_pc" in host.attrs
            ):
                host = host.parent
            assert host is not None
            expected[linkage_paths[host.attrs["DW_AT_linkage_name"].strip('()"')]] += 1
        record = report[path]
        assert record.out_of_line == symbols[path], path
        assert dict(record.copies) == dict(expected), path
    # The worked example's point: scale has no code of its own, one copy in area, two in
    # perimeter (it is called once there and twice here in the source).
    assert symbols["abi_demo::api::scale"] == 0
    assert report["abi_demo::api::scale"].copies == (
        ("abi_demo::api::area", 1),
        ("abi_demo::api::perimeter", 2),
    )


def test_no_addresses_in_the_text(exe):
    for report in (abi(exe, GLOB), inlining(exe, GLOB)):
        assert not re.search(r"0x[0-9a-f]{3,}", repr(report))
        assert all(line.strip() for line in repr(report).splitlines())  # no blank lines


def test_limited_debug_info_says_unknown(cargo_bin_module):
    exe = cargo_bin_module(CRATE, profile="release", rustflags="-C debuginfo=1")
    dump = subprocess.run(
        ["readelf", "--debug-dump=info", str(exe)], capture_output=True, text=True, check=True
    ).stdout
    assert "DW_TAG_subprogram" in dump and "DW_TAG_formal_parameter" not in dump  # the oracle
    report = abi(exe, GLOB)
    assert sorted(report) == sorted(source_functions())
    for record in report.values():
        assert record.unknown is not None and record.unknown.startswith("limited debug info")
        assert record.signature is None and not record.params
        assert f"{record.path}\n  exists: " in repr(report)
    assert "unknown: limited debug info" in repr(report)
    # Inlined copies are still in the DWARF: the inlining report needs no types.
    assert inlining(exe, GLOB)["abi_demo::api::scale"].copies == (
        ("abi_demo::api::area", 1),
        ("abi_demo::api::perimeter", 2),
    )


def test_no_debug_info_says_unknown(cargo_bin_module):
    exe = cargo_bin_module(CRATE, profile="release", rustflags="-C debuginfo=0 -C strip=debuginfo")
    sections = subprocess.run(
        ["readelf", "-S", "-W", str(exe)], capture_output=True, text=True, check=True
    ).stdout
    assert ".debug_info" not in sections  # the oracle
    report = abi(exe, GLOB)
    symbols = nm_functions(exe)
    assert sorted(report) == sorted(p for p in source_functions() if symbols[p])
    for record in report.values():
        assert record.unknown is not None and "no debug info" in record.unknown
    for record in inlining(exe, GLOB).values():
        assert "  inlined: unknown: the binary has no debug info" in "\n".join(record.lines())


def test_cli_prints_the_report_text_and_json(exe, capsys):
    assert main(["abi", str(exe), GLOB]) == 0
    assert capsys.readouterr().out == repr(abi(exe, GLOB)) + "\n"
    assert main(["inlining", str(exe), "abi_demo::api::scale"]) == 0
    assert capsys.readouterr().out == repr(inlining(exe, "abi_demo::api::scale")) + "\n"
    assert main(["abi", "--json", str(exe), "abi_demo::api::add"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["path"] == "abi_demo::api::add"
    assert [p["name"] for p in record["params"]] == ["a", "b"]


def test_cli_glob_matching_nothing_exits_2(exe, capsys):
    assert main(["inlining", str(exe), "abi_demo::nothing_here::*"]) == 2
    err = capsys.readouterr().err
    assert "pytest-uprobe inlining:" in err and "matches no function" in err


def test_tracer_methods_are_the_same_reports(exe):
    from pytest_uprobe import Tracer

    tracer = Tracer()  # no privileges needed: nothing runs
    assert tracer.abi(exe, GLOB) == abi(exe, GLOB)
    assert tracer.inlining(exe, GLOB) == inlining(exe, GLOB)


def test_the_docs_quote_the_committed_snapshot():
    """docs/snapshots.md shows excerpts of the .ambr file and diffs against it: every line
    it quotes from the snapshot (and every line a quoted diff removes) is in the file."""
    root = ROOT
    committed = (Path(__file__).parent / "__snapshots__" / "test_abi_demo.ambr").read_text()
    lines = {line.strip() for line in committed.splitlines()}
    docs = (root / "docs" / "snapshots.md").read_text()
    excerpt = docs[docs.index("```text\n# name: test_abi") :]
    excerpt = excerpt[: excerpt.index("```", 3)]
    quoted = [line.strip() for line in excerpt.splitlines()[1:] if line.strip() != "..."]
    removed = [
        line.split("-   ", 1)[1].strip() for line in docs.splitlines() if "E     -   " in line
    ]
    assert quoted and removed
    assert [line for line in quoted + removed if line not in lines] == []


def test_generic_instances_and_closures_keep_their_own_records(cargo_bin_module):
    """zoo's `ident::<T>` runs for u8, i32 and u64 (legacy mangling names all three
    `zoo::ident`), and its two closures are both `{{closure}}` in the symbol table: each
    keeps its own record, and each closure its own inlined copies, as llvm-dwarfdump shows
    them by abstract origin."""
    exe = cargo_bin_module("example_crates/zoo", profile="release")
    report = abi(exe, "zoo::*")
    for name, size in (("u8", 1), ("i32", 4), ("u64", 8)):
        record = report[f"zoo::ident::<{name}>"]
        assert [(p.name, p.type.name, p.type.size) for p in record.params] == [("x", name, size)]
        assert record.returns.type.name == name
    copies = inlining(exe, "zoo::main::*")
    dies = dwarf_dies(exe)
    for number in (0, 1):
        path = f"zoo::main::{{closure#{number}}}"
        assert [(p.name, p.type.name) for p in report[path].params][1:] == [("x", "u64")]
        (abstract,) = [
            d
            for d in dies
            if d.tag == "DW_TAG_subprogram"
            and d.attrs.get("DW_AT_name") == f'"{{closure#{number}}}")'
            and d.attrs.get("DW_AT_linkage_name", "").startswith('"_ZN3zoo4main')
        ]
        refers = [d for d in dies if d.ref("DW_AT_abstract_origin") == abstract.offset]
        out_of_line = [d for d in refers if d.tag == "DW_TAG_subprogram"]
        inlined = [d for d in refers if d.tag == "DW_TAG_inlined_subroutine"]
        assert len(out_of_line) == 1 and copies[path].out_of_line == 1, path
        assert sum(n for _, n in copies[path].copies) == len(inlined), path
        assert report[path].inlined == bool(inlined)
