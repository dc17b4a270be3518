"""The Python shapes of decoded Rust values: equality as the README documents it."""

from __future__ import annotations

from pytest_uprobe import BadUtf8, Struct, Truncated, Unavailable, Variant
from pytest_uprobe.decode import DATA, FAILED, FULL, MAX_DEREFS, SOURCE, Copy, Reader, decode_value
from pytest_uprobe.dwarf.types import EnumVariant, Field, RustType


def test_struct_equals_its_fields_and_reads_like_an_object():
    point = Struct("Point", {"x": 1, "y": -2})
    assert point == {"x": 1, "y": -2} and point == Struct("Point", {"x": 1, "y": -2})
    assert point != {"x": 1} and point != Struct("Other", {"x": 1, "y": -2})
    assert (point.x, point["y"], point[0]) == (1, -2, 1)
    assert Struct("Pair", {"0": 3, "1": 4}, tuple_like=True) == (3, 4)
    assert repr(point) == "Point(x=1, y=-2)"


def test_variant_equals_name_and_payload():
    assert Variant("Ok", 5) == Variant("Ok", 5) != Variant("Err", 5)
    assert Variant("Empty") == "Empty" and Variant("Circle", 1) != "Circle"


def test_truncated_and_unavailable_equal_no_full_value():
    assert Truncated("ab", 3) != "ab" and Truncated([1], 2) != [1]
    assert Truncated("ab", 3) == Truncated("ab", 3)
    assert Unavailable("x") != Unavailable("x")


def test_bad_utf8_stays_visible():
    text = BadUtf8(b"a\xffb")
    assert text == "a\\xffb" and text.raw == b"a\xffb" and isinstance(text, str)


U32 = RustType("u32", "int", 4)
STR = RustType(
    "&str", "str", 16, fields=(Field("ptr", 0, U32), Field("len", 8, RustType("usize", "int", 8)))
)


def event_data(*copies: bytes | int) -> bytes:
    """An event's bytes after its words: the table of placements, then each copy's bytes
    one after another (an int instead of bytes: that table entry, FAILED or FULL)."""
    table, data, at = [], b"", DATA
    for copy in copies:
        if isinstance(copy, int):
            table.append(copy)
            continue
        table.append(at >> 3 | len(copy) << 19)
        padded = copy + bytes(-len(copy) % 8)
        data += padded
        at += len(padded)
    table += [0] * (MAX_DEREFS - len(table))
    return b"".join(e.to_bytes(4, "little") for e in table) + data


def test_a_str_is_decoded_from_the_copied_bytes_and_cut_at_the_cap():
    raw = (0x1000).to_bytes(8, "little") + (6).to_bytes(8, "little")
    copies = {(0, "*"): Copy(0, SOURCE, 4, 1, True)}
    data = event_data(b"h\xc3\xa9l")
    assert decode_value(STR, raw, Reader(data, 0, copies), (0,)) == Truncated("hél", 6)
    cut = {(0, "*"): Copy(0, SOURCE, 2, 1, True)}  # half of the é: left out, not mangled
    data = event_data(b"h\xc3")
    assert decode_value(STR, raw, Reader(data, 0, cut), (0,)) == Truncated("h", 6)
    failed = decode_value(STR, raw, Reader(event_data(FAILED), 0, copies), (0,))
    assert isinstance(failed, Unavailable) and "0x1000" in failed.reason
    full = decode_value(STR, raw, Reader(event_data(FULL), 0, copies), (0,))
    assert isinstance(full, Unavailable) and "filled the event's area" in full.reason


def test_an_enum_picks_its_variant_by_discriminant_or_niche():
    tag = Field("<discriminant>", 0, U32)
    some = EnumVariant("Some", 1, (Field("0", 4, U32),), True)
    none = EnumVariant("None", 0, (), False)
    option = RustType("Option<u32>", "enum", 8, variants=(none, some), discr=tag)
    reader = Reader(b"", 0, {})
    assert decode_value(option, bytes([1, 0, 0, 0, 7, 0, 0, 0]), reader, ()) == 7
    assert decode_value(option, bytes(8), reader, ()) is None
    result = RustType("Result<u32, ()>", "enum", 8, variants=(some, none), discr=tag)
    assert decode_value(result, bytes([1, 0, 0, 0, 7, 0, 0, 0]), reader, ()) == Variant("Some", 7)
