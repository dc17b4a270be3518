"""How much a compile unit's DWARF says about values: parameters and types, or names only.

`debug = 1` ("limited") and `debug = "line-tables-only"` builds keep DW_TAG_subprogram
entries (names, code ranges, inlined copies) but no DW_TAG_formal_parameter and no type
entries, so "no parameters" and "parameters unknown" look alike function by function. The
unit tells them apart: its abbreviation table lists every tag the unit uses, so a unit
whose table has no parameter and no type tag describes no values at all.
"""

from __future__ import annotations

from typing import Any

FIX = (
    "set `debug = true` (or `debug = 2`) under [profile.release] in Cargo.toml, or the "
    "profile you build with"
)
LIMITED = (
    "the debug info of its compile unit has no parameters or types (built with "
    "`debug = 1` / \"limited\" or \"line-tables-only\", as Rust's standard library ships); "
    "fix: " + FIX
)
NO_DEBUG_INFO = (
    "no debug info describes this function (the binary, or the compile unit that holds "
    "it, was built without debug info); fix: " + FIX
)
_VALUE_TAGS = frozenset(
    {
        "DW_TAG_formal_parameter",
        "DW_TAG_base_type",
        "DW_TAG_structure_type",
        "DW_TAG_pointer_type",
        "DW_TAG_variable",
    }
)
_known: dict[tuple[int, int], bool] = {}


def describes_values(cu: Any) -> bool:
    """The unit has parameter, variable or type entries (full debug info)."""
    key = (id(cu.dwarfinfo), cu["debug_abbrev_offset"])
    known = _known.get(key)
    if known is None:
        table = cu.get_abbrev_table()
        known = any(decl["tag"] in _VALUE_TAGS for decl in table._abbrev_map.values())
        _known[key] = known
    return known
