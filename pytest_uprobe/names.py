"""Symbol names: demangling (behind one function) and matching probe names against demangled paths.

`demangle` (PyPI) matched Debian's `rustfilt` on every real symbol we compared, in both
Rust schemes (legacy `_ZN...17h<hash>E` and v0 `_R...`); `cxxfilt` handles C++ names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Callable

_LEGACY_RUST = re.compile(r"^_ZN.*17h[0-9a-f]{16}E(\.\S*)?$")
_GLOB_CHARS = frozenset("*?")


@lru_cache(maxsize=65536)
def demangle(name: str) -> str:
    """The path `rustfilt` would print for `name` (hash removed); `name` itself if not mangled."""
    if name.startswith("_R") or _LEGACY_RUST.match(name):
        return _demangle_rust(name)
    if name.startswith("_Z"):
        return _demangle_cxx(name)
    return name


def _demangle_rust(name: str) -> str:
    import demangle as demangler

    try:
        return str(demangler.demangle(name))
    except Exception:  # a malformed name is still a usable name
        return name


def _demangle_cxx(name: str) -> str:
    try:
        import cxxfilt

        return str(cxxfilt.demangle(name))
    except Exception:
        return _demangle_rust(name)


_PLAIN_SEGMENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def may_match(probe: str) -> Callable[[str], bool]:
    """A cheap test on a *mangled* name, true for every symbol whose demangled path the
    probe can match, so that only those need demangling.

    Both Rust schemes and C++ spell each identifier as its length then its bytes
    (`3mix`), so a probe whose last segment is a plain identifier can only match a mangled
    name containing that spelling. Names that are not mangled are their own paths, and
    anything else (globs in the last segment, closures) lets every name through.
    """
    segments = strip_generics(probe).split("::")
    last = segments[-1]
    if not _PLAIN_SEGMENT.match(last):
        return lambda name: True
    token = f"{len(last)}{last}"

    def test(name: str) -> bool:
        return token in name or not name.startswith(("_Z", "_R"))

    return test


@lru_cache(maxsize=1 << 16)  # matching a probe tests every inlined copy's path
def strip_generics(path: str) -> str:
    """`zoo::ident::<u8>` -> `zoo::ident`: drop every `::<...>` generic argument list."""
    if "::<" not in path:
        return path
    out: list[str] = []
    depth = 0
    i = 0
    while i < len(path):
        if depth == 0 and path.startswith("::<", i):
            depth = 1
            i += 3
            continue
        ch = path[i]
        if depth:
            if ch == "<":
                depth += 1
            elif ch == ">":
                depth -= 1
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def is_glob(name: str) -> bool:
    return any(ch in _GLOB_CHARS for ch in name)


# rustc numbers closures, async fn bodies and async blocks of one function with one counter:
# v0 symbols spell each `{closure#N}`, DWARF `{closure#N}`, `{async_fn#N}` or
# `{async_block#N}` (and their state types `{async_fn_env#N}`, `{async_block_env#N}`).
_NUMBERED = re.compile(
    r"\{(?:closure|async_fn|async_block|async_fn_env|async_block_env|coroutine)#(\d+)\}"
)


def same_closures(path: str) -> str:
    """`path` with every numbered closure-like segment spelled `{closure#N}`."""
    return _NUMBERED.sub(r"{closure#\1}", path) if "#" in path else path


def matcher(name: str) -> Callable[[str], bool]:
    """A predicate over demangled paths for one probe name.

    An exact path matches itself and all its generic instances (`zoo::ident` matches
    `zoo::ident::<u8>`); `*` matches any run of characters, `::` included, and `?` one.
    A numbered closure matches whichever way it is spelled (`{async_fn#0}` as DWARF
    names an async fn's body, `{closure#0}` as its v0 symbol does).
    """
    plain = _matcher(same_closures(name))
    return lambda path: plain(same_closures(path))


def _matcher(name: str) -> Callable[[str], bool]:
    if is_glob(name):
        pattern = re.compile(
            "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in name) + r"\Z"
        )
        return lambda path: bool(pattern.match(path)) or bool(pattern.match(strip_generics(path)))
    if "::<" in name:
        return lambda path: path == name
    return lambda path: path == name or strip_generics(path) == name


def closest(name: str, candidates: Iterable[str], count: int = 3) -> list[str]:
    """The `count` candidates nearest to `name` by edit distance (ties by name); for a
    generic instance (`m::largest::<u8>`), the instances of its generic path that exist
    come first (up to 8), however far their spelling."""
    unique = sorted(set(candidates))
    siblings = instances_of(name, unique)[:8]
    rest = [c for c in unique if c not in siblings]
    scored = sorted(rest, key=lambda c: (edit_distance(name, c, cap=len(name) + 1), c))
    return (siblings + scored)[: max(count, len(siblings))]


def instances_of(name: str, candidates: Iterable[str]) -> list[str]:
    """The other instances of the generic path `name` names an instance of (`m::f::<u8>`
    -> `m::f::<u32>`, `m::f::<char>`), among `candidates`; [] when `name` has no generic
    arguments."""
    generic = strip_generics(name)
    if generic == name:
        return []
    return sorted(
        {c for c in candidates if c != name and c != generic and strip_generics(c) == generic}
    )


def edit_distance(a: str, b: str, cap: int = 1 << 30) -> int:
    """Levenshtein distance, giving up (returning `cap`) once it must exceed `cap`."""
    if abs(len(a) - len(b)) >= cap:
        return cap
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) >= cap:
            return cap
        previous = current
    return min(previous[-1], cap)


_FIRST_CRATE = re.compile(r"<?([A-Za-z_][A-Za-z0-9_]*)(?:::|\Z)")


def crate_of(path: str) -> str | None:
    """The crate a demangled path or probe name starts with (`args::hello` -> `args`,
    `<zoo::Sq as zoo::Shape>::area` -> `zoo`); None when it is not plain (`*::fib`)."""
    found = _FIRST_CRATE.match(path)
    return found.group(1) if found else None


_PATH_STARTS = re.compile(r"(?:\A|[<\s&(,\[])([A-Za-z_][A-Za-z0-9_]*)::")


def crates_of(path: str) -> list[str]:
    """Every crate a probe name or path spells, first one first: `crate_of`'s, then those
    named inside it (`<* as geo::Shape>::area` -> ['geo']). Inlined copies of what it
    matches can only sit in these crates' compile units."""
    found = [crate] if (crate := crate_of(path)) is not None else []
    for match in _PATH_STARTS.finditer(path):
        if match.group(1) not in found:
            found.append(match.group(1))
    return found
