"""How much a compile unit's DWARF says about values: parameters and types, or names only.

`debug = 1` ("limited") and `debug = "line-tables-only"` builds keep DW_TAG_subprogram
entries (names, code ranges, inlined copies) but no DW_TAG_formal_parameter and no type
entries, so "no parameters" and "parameters unknown" look alike function by function. The
unit tells them apart: its abbreviation table lists every tag the unit uses, so a unit
whose table has no parameter and no type tag describes no values at all.
"""

from __future__ import annotations

import bisect
from typing import Any

from ..elf import dwarf_memo

FIX = (
    "set `debug = true` (or `debug = 2`) under [profile.release] in Cargo.toml, or the "
    "profile you build with"
)
LIMITED = (
    "the debug info of its compile unit has no parameters or types (built with "
    '`debug = 1` / "limited" or "line-tables-only", as Rust\'s standard library ships); '
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


def describes_values(cu: Any) -> bool:
    """The unit has parameter, variable or type entries (full debug info)."""
    memo = dwarf_memo(cu.dwarfinfo, "describes_values")  # by abbreviation table
    known: bool | None = memo.get(cu["debug_abbrev_offset"])
    if known is None:
        table = cu.get_abbrev_table()
        known = any(decl["tag"] in _VALUE_TAGS for decl in table._abbrev_map.values())
        memo[cu["debug_abbrev_offset"]] = known
    return known


DW_LANG_RUST = 0x1C
C_LANGUAGES = frozenset({0x01, 0x02, 0x0C, 0x1D, 0x2C})  # C89, C, C99, C11, C17


def language(cu: Any) -> int | None:
    """The unit's DW_AT_language (DW_LANG_*), if given."""
    attr = cu.get_top_DIE().attributes.get("DW_AT_language")
    return int(attr.value) if attr is not None and isinstance(attr.value, int) else None


def body_start(dwarf: Any, cu: Any, low: int, high: int) -> int | None:
    """The address of the second line-table row in [low, high): where a compiler that marks
    no prologue_end (gcc) starts the body, after the prologue stored the arguments in their
    stack slots. This is how debuggers place a breakpoint on such a function."""
    memo = dwarf_memo(dwarf, "statement_rows")  # by unit
    rows: list[int] | None = memo.get(cu.cu_offset)
    if rows is None:
        rows = []
        program = dwarf.line_program_for_CU(cu)
        if program is not None:
            for entry in program.get_entries():
                state = entry.state
                if state is not None and state.is_stmt and not state.end_sequence:
                    rows.append(state.address)
        rows.sort()
        memo[cu.cu_offset] = rows
    i = bisect.bisect_right(rows, low)
    return rows[i] if i < len(rows) and rows[i] < high else None
