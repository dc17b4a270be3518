"""The byte parsers, tested directly: no root, no compiler, no BPF.

Oracles: pyelftools' own (slower, complete) readers over the small Rust binaries checked in
under tests/data/tiny (built by its build.sh from tiny.rs: no std, so a few KB of DWARF
each, in DWARF 4 and 5, optimized and not), expectations that follow from tiny.rs's source,
and BTF blobs built in memory.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from elftools.dwarf.dwarf_expr import DWARFExprParser
from elftools.elf.elffile import ELFFile

from pytest_uprobe.bpf import btf
from pytest_uprobe.dwarf import frames, index, locations, scan
from pytest_uprobe.dwarf.locations import Cfa, Indirect, Piece
from pytest_uprobe.dwarf.types import Field, RustType, type_of
from pytest_uprobe.elf import ElfBinary
from pytest_uprobe.values import Unavailable

TINY = Path(__file__).resolve().parent.parent / "data" / "tiny"
BINARIES = ["tiny-O0-dwarf4", "tiny-O1-dwarf4", "tiny-O1-dwarf5"]
RSP, RDI = 7, 5


@pytest.fixture(params=BINARIES)
def binary(request: pytest.FixtureRequest) -> ElfBinary:
    return ElfBinary.open(TINY / request.param)


def _tiny_unit(binary: ElfBinary):
    for cu in binary.dwarf.iter_CUs():
        if b"tiny.rs" in cu.get_top_DIE().attributes["DW_AT_name"].value:
            return cu
    raise AssertionError("no compile unit of tiny.rs")


def _subprogram(binary: ElfBinary, name: str):
    for die in _tiny_unit(binary).iter_DIEs():
        if die.tag == "DW_TAG_subprogram" and "DW_AT_low_pc" in die.attributes:
            found = index.attr(die, "DW_AT_name")
            if found is not None and found.value.decode() == name:
                return die
    raise AssertionError(f"no subprogram {name}")


# -- ELF symbols ---------------------------------------------------------------------------


def test_symbols_match_pyelftools(binary: ElfBinary) -> None:
    kinds = {"STT_FUNC": "function", "STT_OBJECT": "object", "STT_TLS": "tls"}
    with open(binary.path, "rb") as f:
        elf = ELFFile(f)
        expected = {
            (s.name, s["st_value"], s["st_size"], kinds[s["st_info"]["type"]])
            for s in elf.get_section_by_name(".symtab").iter_symbols()
            if s.name and s["st_info"]["type"] in kinds and s["st_shndx"] != "SHN_UNDEF"
        }
    mine = {(s.name, s.address, s.size, s.kind) for s in binary.symbols}
    assert mine == expected
    assert {"tiny::sum", "tiny::geo::area"} <= {s.path for s in binary.functions}


# -- .debug_aranges -------------------------------------------------------------------------


def test_aranges_match_pyelftools(binary: ElfBinary) -> None:
    expected = sorted(
        (entry.begin_addr, entry.begin_addr + entry.length, entry.info_offset)
        for entry in binary.dwarf.get_aranges().entries
        if entry.length
    )
    starts, ends, units = index._aranges(binary)
    assert list(zip(starts, ends, units)) == expected
    for symbol in binary.functions:
        if symbol.size and symbol.address:
            unit = index.unit_offset_at(binary, symbol.address)
            assert unit == binary.dwarf.get_aranges().cu_offset_at_addr(symbol.address)


# -- the raw .debug_info scanner ----------------------------------------------------------


def test_scanner_matches_pyelftools(binary: ElfBinary) -> None:
    for cu in binary.dwarf.iter_CUs():
        unit = scan.scan_unit(binary.dwarf, cu)
        subprograms = {}
        inlined = {}
        for die in cu.iter_DIEs():
            if die.tag == "DW_TAG_subprogram":
                subprograms[die.offset] = die
            elif die.tag == "DW_TAG_inlined_subroutine":
                inlined[die.offset] = die
        assert set(unit.subprograms) == set(subprograms)
        for offset, die in subprograms.items():
            row = unit.subprograms[offset]
            low = die.attributes.get("DW_AT_low_pc")
            linkage = die.attributes.get("DW_AT_linkage_name")
            name = die.attributes.get("DW_AT_name")
            assert row[1] == (low.value if low is not None else None)
            assert row[3] == (linkage.value.decode() if linkage is not None else None)
            assert row[4] == (name.value.decode() if name is not None else None)
            expected_params = [
                c.offset for c in die.iter_children() if c.tag == "DW_TAG_formal_parameter"
            ]
            assert list(unit.params.get(offset, ())) == expected_params
        assert {row[0] for row in unit.inlined} == set(inlined)
        for row in unit.inlined:
            die = inlined[row[0]]
            assert row[1] == die.attributes["DW_AT_abstract_origin"].value + (
                0
                if die.attributes["DW_AT_abstract_origin"].form == "DW_FORM_ref_addr"
                else cu.cu_offset
            )
            line = die.attributes.get("DW_AT_call_line")
            assert row[5] == (line.value if line is not None else None)


def test_the_optimized_build_inlines_read_volatile_into_start() -> None:
    for name in ("tiny-O1-dwarf4", "tiny-O1-dwarf5"):
        binary = ElfBinary.open(TINY / name)
        unit = scan.scan_unit(binary.dwarf, _tiny_unit(binary))
        copies = {
            (unit.subprograms[row[1]][4], unit.subprograms[row[6]][4]) for row in unit.inlined
        }
        assert ("read_volatile<u64>", "_start") in copies  # core's #[inline] fn, called once


# -- call frame information ---------------------------------------------------------------


def test_cfa_from_the_search_table_matches_a_full_decode(binary: ElfBinary) -> None:
    fast = frames._SearchTable(binary)
    full = frames._AllEntries(binary)
    checked = 0
    for symbol in binary.functions:
        if not symbol.size:
            continue
        for address in range(symbol.address, symbol.end, max(1, symbol.size // 7)):
            a, b = fast.fde_at(address), full.fde_at(address)
            assert (a is None) == (b is None)
            if a is not None:
                assert a.header["initial_location"] == b.header["initial_location"]
                checked += 1
    assert checked > 10
    start = next(s for s in binary.functions if s.path == "tiny::sum").address
    assert frames.cfa_at(binary, start) == Cfa(RSP, 8)  # the return address just pushed


# -- types ----------------------------------------------------------------------------------


def test_types_follow_the_source(binary: ElfBinary) -> None:
    params = {
        index.attr(p, "DW_AT_name").value.decode(): type_of(index.referenced(p, "DW_AT_type"))
        for p in _subprogram(binary, "sum").iter_children()
        if p.tag == "DW_TAG_formal_parameter"
    }
    assert list(params) == ["p", "name", "items", "flag"]
    point = params["p"]
    assert point.kind == "pointer" and point.size == 8
    assert point.target.name == "Point" and point.target.size == 16  # i64 alignment
    assert {f.name: (f.type.name, f.type.size) for f in point.target.fields} == {
        "x": ("i32", 4),
        "y": ("i64", 8),
    }
    assert (params["name"].kind, params["name"].size) == ("str", 16)
    assert params["items"].kind == "slice" and params["items"].element.name == "u8"
    flag = params["flag"]
    assert flag.kind == "enum" and flag.size == 2
    assert {v.name for v in flag.variants} == {"None", "Some"}

    (shape_ref,) = [
        type_of(index.referenced(p, "DW_AT_type"))
        for p in _subprogram(binary, "area").iter_children()
        if p.tag == "DW_TAG_formal_parameter"
    ]
    shape = shape_ref.target
    assert shape.kind == "enum"
    variants = {v.name: [(f.name, f.type.name) for f in v.fields] for v in shape.variants}
    assert variants == {"Circle": [("0", "u32")], "Rect": [("w", "u16"), ("h", "u16")], "Empty": []}


def test_a_dev_build_keeps_every_parameter_in_a_stack_slot() -> None:
    binary = ElfBinary.open(TINY / "tiny-O0-dwarf4")
    symbol = next(s for s in binary.functions if s.path == "tiny::sum")
    info = index.function_at(binary, symbol.address)
    assert info is not None and [p.name for p in info.params] == ["p", "name", "items", "flag"]
    assert info.prologue_end is not None and info.prologue_end > symbol.address
    at = info.prologue_end  # where a debugger breaks: the slots hold from here on
    cfa = frames.cfa_at(binary, at)
    for param in info.params:
        where = locations.locate(
            param.die.attributes["DW_AT_location"], param.die, at, param.type.size,
            info.frame_base, cfa,
        )  # fmt: skip
        assert isinstance(where, tuple), (param.name, where)
        assert sum(piece.size for piece in where) == param.type.size
        assert all(piece.memory and piece.reg == RSP for piece in where), (param.name, where)


def test_an_optimized_build_passes_the_first_reference_in_rdi() -> None:
    for name in ("tiny-O1-dwarf4", "tiny-O1-dwarf5"):
        binary = ElfBinary.open(TINY / name)
        symbol = next(s for s in binary.functions if s.path == "tiny::sum")
        info = index.function_at(binary, symbol.address)
        assert info is not None
        p = info.params[0]
        where = locations.locate(
            p.die.attributes["DW_AT_location"], p.die, symbol.address, 8, info.frame_base, None
        )
        assert where == (Piece(RDI, 0, 8, memory=False),)  # the System V first argument


# -- location expressions -----------------------------------------------------------------

_OPS = {"reg0": 0x50, "reg4": 0x54, "reg5": 0x55, "breg7": 0x77, "fbreg": 0x91, "deref": 0x06,
        "piece": 0x93, "lit1": 0x31, "stack_value": 0x9F, "constu": 0x10,
        "plus_uconst": 0x23, "call_frame_cfa": 0x9C}  # fmt: skip


def _uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _sleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        done = (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40)
        out.append(byte | (0 if done else 0x80))
        if done:
            return bytes(out)


class _Die:
    """Just what `evaluate` asks of a DIE: its unit's structs, for parsing operands."""

    def __init__(self, structs: object) -> None:
        self.cu = type("Unit", (), {"structs": structs})()


@pytest.fixture
def ops() -> object:
    binary = ElfBinary.open(TINY / BINARIES[1])
    structs = next(binary.dwarf.iter_CUs()).structs
    parser = DWARFExprParser(structs)

    def parse(*parts: bytes) -> list:
        return list(parser.parse_expr(list(b"".join(parts))))

    parse.die = _Die(structs)  # type: ignore[attr-defined]
    return parse


def _op(name: str) -> bytes:
    return bytes([_OPS[name]])


def test_a_register(ops) -> None:
    where = locations.evaluate(ops(_op("reg5")), ops.die, 4, None, None)
    assert where == (Piece(RDI, 0, 4, memory=False),)


def test_a_stack_slot_from_the_frame_base(ops) -> None:
    frame_base = (Piece(RSP, 0, 8, memory=False),)
    where = locations.evaluate(ops(_op("fbreg"), _sleb(24)), ops.die, 16, frame_base, None)
    assert where == (Piece(RSP, 24, 8, memory=True), Piece(RSP, 32, 8, memory=True))


def test_relative_to_the_cfa(ops) -> None:
    where = locations.evaluate(ops(_op("call_frame_cfa")), ops.die, 8, None, Cfa(RSP, 8))
    assert where == (Piece(RSP, 8, 8, memory=True),)


def test_behind_a_pointer_in_a_stack_slot(ops) -> None:
    expression = ops(_op("breg7"), _sleb(16), _op("deref"), _op("plus_uconst"), _uleb(4))
    where = locations.evaluate(expression, ops.die, 8, None, None)
    assert where == Indirect(Piece(RSP, 16, 8, memory=True), 4)


def test_a_constant_value(ops) -> None:
    where = locations.evaluate(ops(_op("lit1"), _op("stack_value")), ops.die, 2, None, None)
    assert where == b"\x01\x00"


def test_pieces_in_two_registers(ops) -> None:
    expression = ops(_op("reg0"), _op("piece"), _uleb(4), _op("reg5"), _op("piece"), _uleb(4))
    where = locations.evaluate(expression, ops.die, 8, None, None)
    assert where == (Piece(0, 0, 4, memory=False), Piece(RDI, 0, 4, memory=False))


def test_a_piece_with_no_location_is_optimized_out(ops) -> None:
    where = locations.evaluate(ops(_op("piece"), _uleb(8)), ops.die, 8, None, None)
    assert isinstance(where, Unavailable) and "optimized out" in where.reason


def _duration_like() -> RustType:
    """A struct of u64 + u32 (Duration's secs and nanos): 16 bytes, the last 4 padding."""
    u64, u32 = RustType("u64", "int", 8), RustType("u32", "int", 4)
    return RustType(
        "Duration", "struct", 16, fields=(Field("secs", 0, u64), Field("nanos", 8, u32))
    )


def test_padding_is_the_bytes_of_no_field_at_any_depth() -> None:
    duration = _duration_like()
    assert locations.padding_of(duration) == frozenset(range(12, 16))
    pair = RustType(
        "(u8, Duration)", "tuple", 24,
        fields=(Field("0", 0, RustType("u8", "int", 1)), Field("1", 8, duration)),
    )  # fmt: skip
    assert locations.padding_of(pair) == frozenset([*range(1, 8), *range(20, 24)])
    assert locations.padding_of(RustType("u64", "int", 8)) == frozenset()
    assert locations.padding_of(RustType("X", "unsupported", 16)) == frozenset()


def test_undescribed_padding_still_describes_the_whole_value(ops) -> None:
    # Duration in a release build: secs in rdi, nanos in esi, the 4 padding bytes in nothing
    expression = ops(_op("reg5"), _op("piece"), _uleb(8), _op("reg4"), _op("piece"), _uleb(4))
    padding = locations.padding_of(_duration_like())
    where = locations.evaluate(expression, ops.die, 16, None, None, padding)
    assert where == (
        Piece(RDI, 0, 8, memory=False),
        Piece(4, 0, 4, memory=False),
        Piece(locations.CONSTANT_REG, 0, 4, False, b"\0" * 4),
    )
    # without the type's padding, or where a field's byte is missing, it stays unknown
    where = locations.evaluate(expression, ops.die, 16, None, None)
    assert isinstance(where, Unavailable) and "only 12 of its 16 bytes" in where.reason
    short = ops(_op("reg5"), _op("piece"), _uleb(8), _op("reg4"), _op("piece"), _uleb(2))
    where = locations.evaluate(short, ops.die, 16, None, None, padding)
    assert isinstance(where, Unavailable) and "only 10 of its 16 bytes" in where.reason
    # an empty piece over padding in the middle: (u32 in eax, 4 bytes padding, u64 in rdi)
    middle = ops(
        _op("reg0"), _op("piece"), _uleb(4), _op("piece"), _uleb(4),
        _op("reg5"), _op("piece"), _uleb(8),
    )  # fmt: skip
    where = locations.evaluate(middle, ops.die, 16, None, None, frozenset(range(4, 8)))
    assert isinstance(where, tuple) and where[1].value == b"\0" * 4 and where[2].reg == RDI
    where = locations.evaluate(middle, ops.die, 16, None, None, frozenset(range(4, 7)))
    assert isinstance(where, Unavailable) and "part of the value (4 bytes)" in where.reason


# -- BTF ------------------------------------------------------------------------------------


def _btf(types: list[bytes], strings: list[str]) -> bytes:
    """A BTF blob: header, type section, string section (offset 0 is the empty string)."""
    table = b"\0" + b"".join(s.encode() + b"\0" for s in strings)
    body = b"".join(types)
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(body), len(body), len(table))
    return header + body + table


def _name_at(strings: list[str], name: str) -> int:
    return 1 + sum(len(s) + 1 for s in strings[: strings.index(name)])


def test_btf_struct_offsets_skip_every_kind_before_it(tmp_path: Path) -> None:
    strings = ["int", "E", "A", "V", "task_struct", "state", "pid", "tgid", "flags"]
    at = lambda name: _name_at(strings, name)  # noqa: E731
    types = [
        struct.pack("<III", at("int"), 1 << 24, 4) + struct.pack("<I", 32),  # INT + 4 bytes
        struct.pack("<III", at("E"), (6 << 24) | 2, 4) + b"\0" * 16,  # ENUM, 2 x 8 bytes
        struct.pack("<III", at("A"), 3 << 24, 0) + b"\0" * 12,  # ARRAY + 12 bytes
        struct.pack("<III", at("V"), 14 << 24, 1) + b"\0" * 4,  # VAR + 4 bytes
        struct.pack("<III", 0, (13 << 24) | 1, 1) + b"\0" * 8,  # FUNC_PROTO, 1 x 8
        # A bitfield struct of the same name that lacks `tgid`: not the one asked for.
        struct.pack("<III", at("task_struct"), (4 << 24) | (1 << 31) | 1, 8)
        + struct.pack("<III", at("pid"), 1, (3 << 24) | 64),
        struct.pack("<III", at("task_struct"), (4 << 24) | 4, 64)
        + struct.pack("<III", at("state"), 1, 0)
        + struct.pack("<III", at("flags"), 1, 32)
        + struct.pack("<III", at("pid"), 1, 8 * 40)
        + struct.pack("<III", at("tgid"), 1, 8 * 44),
    ]
    blob = tmp_path / "vmlinux"
    blob.write_bytes(_btf(types, strings))
    assert btf.struct_offsets("task_struct", ("pid", "tgid"), blob) == (40, 44)


def test_btf_of_the_running_kernel_has_task_struct_pid_and_tgid() -> None:
    if not btf.VMLINUX.exists():
        pytest.skip("this kernel has no /sys/kernel/btf/vmlinux")
    pid, tgid = btf.struct_offsets("task_struct", ("pid", "tgid"))
    assert 0 < pid < tgid  # tgid follows pid in every kernel's task_struct


# -- the binary owns what is computed about it --------------------------------------------


def test_a_binary_keeps_its_memos_until_it_is_closed() -> None:
    binary = ElfBinary.open(TINY / "tiny-O1-dwarf4")
    assert ElfBinary.open(TINY / "tiny-O1-dwarf4") is binary  # parsed once per identity
    start = next(s for s in binary.functions if s.path == "tiny::sum").address
    frames.cfa_at(binary, start)
    assert "table" in binary.memo("frames")
    binary.close()
    assert binary.memo("frames") == {}
    reopened = ElfBinary.open(TINY / "tiny-O1-dwarf4")
    assert reopened is not binary and frames.cfa_at(reopened, start) == Cfa(RSP, 8)


def test_only_the_binaries_opened_last_stay_open(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ElfBinary, "MAX_OPEN", 2)
    copies = []
    for number in range(3):
        copy = tmp_path / f"tiny-{number}"
        copy.write_bytes((TINY / "tiny-O1-dwarf4").read_bytes())
        copy.chmod(0o755)
        copies.append(ElfBinary.open(copy))
    kept = set(ElfBinary._cache.values())
    assert copies[0] not in kept and {copies[1], copies[2]} <= kept


def test_what_a_plan_computes_lives_on_the_binary(tmp_path: Path, monkeypatch) -> None:
    """Planning a binary grows no module-level dict of the package (no cache keyed by a
    binary's identity or id() outlives it): everything goes to the binary's memos, which
    close() empties."""
    import sys
    import types as pytypes

    from pytest_uprobe.plan import build_plan

    monkeypatch.setenv("PYTEST_UPROBE_NO_DISK_CACHE", "1")
    copies = [tmp_path / "tiny", tmp_path / "tiny-2"]  # two identities: a cache by identity grows
    for copy in copies:
        copy.write_bytes((TINY / "tiny-O0-dwarf4").read_bytes())
        copy.chmod(0o755)

    def module_dicts() -> dict[str, int]:
        return {
            f"{name}.{attr}": len(value)
            for name, module in list(sys.modules.items())
            if name.startswith("pytest_uprobe") and isinstance(module, pytypes.ModuleType)
            for attr, value in vars(module).items()
            if isinstance(value, dict)
        }

    binary = ElfBinary.open(copies[0])
    build_plan(binary, ["tiny::sum", "tiny.rs:24"])  # imports what planning needs, fills memos
    before = module_dicts()
    binary.close()
    binary = ElfBinary.open(copies[1])
    plan = build_plan(binary, ["tiny::sum", "tiny::*", "tiny.rs:24"])
    assert plan.functions
    grown = {k: (before.get(k, 0), n) for k, n in module_dicts().items() if n > before.get(k, 0)}
    assert grown == {}
    for memo in ("unit_indexes", "sections", "code_shapes", "types", "crate_units", "cfa_rules"):
        assert binary.memo(memo), memo
    binary.close()
    assert binary.memo("unit_indexes") == {} and binary.memo("types") == {}
