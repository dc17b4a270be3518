"""Offsets of kernel struct fields, from the running kernel's own BTF (/sys/kernel/btf/vmlinux).

Following children needs `task_struct.pid` and `.tgid`. The header tree BCC compiles against
may belong to another kernel version (Debian's headers on a newer kernel), so the program
never takes those offsets from a header: it gets them at run time, as numbers in a map.
"""

from __future__ import annotations

import struct
from functools import cache
from pathlib import Path

from ..errors import PrerequisiteError

VMLINUX = Path("/sys/kernel/btf/vmlinux")
_MAGIC = 0xEB9F
_STRUCT = 4
# Bytes after the 12-byte common header, per BTF kind (index), times vlen where noted.
_EXTRA = {1: 4, 3: 12, 14: 4, 17: 4}
_PER_MEMBER = {4: 12, 5: 12, 6: 8, 13: 8, 15: 12, 19: 12}


@cache
def struct_offsets(name: str, fields: tuple[str, ...], path: Path = VMLINUX) -> tuple[int, ...]:
    """Byte offsets of `fields` (direct members) in struct `name` of the kernel's BTF."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _missing(f"cannot read {path}: {exc.strerror}") from None
    magic, _version, _flags, hdr_len, type_off, type_len, str_off, _str_len = struct.unpack_from(
        "<HBBIIIII", data
    )
    if magic != _MAGIC:
        raise _missing(f"{path} is not BTF")
    strings = hdr_len + str_off

    def text(offset: int) -> str:
        end = data.index(b"\0", strings + offset)
        return data[strings + offset : end].decode()

    at, end = hdr_len + type_off, hdr_len + type_off + type_len
    wanted = name.encode()
    while at < end:
        name_off, info, _size = struct.unpack_from("<III", data, at)
        kind, vlen, bitfield = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
        at += 12
        members = at
        at += _EXTRA.get(kind, 0) + _PER_MEMBER.get(kind, 0) * vlen
        if kind != _STRUCT or data[strings + name_off : strings + name_off + len(wanted) + 1] != (
            wanted + b"\0"
        ):
            continue
        found: dict[str, int] = {}
        for i in range(vlen):
            m_name, _type, m_offset = struct.unpack_from("<III", data, members + 12 * i)
            bits = m_offset & 0xFFFFFF if bitfield else m_offset
            found[text(m_name)] = bits // 8
        if all(f in found for f in fields):
            return tuple(found[f] for f in fields)
    raise _missing(f"struct {name} with fields {', '.join(fields)} is not in {path}")


def _missing(why: str) -> PrerequisiteError:
    return PrerequisiteError(
        "kernel BTF to follow child processes",
        why,
        "boot a kernel built with CONFIG_DEBUG_INFO_BTF, or trace without follow_children",
    )
