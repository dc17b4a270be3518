"""Generate and build a large std-only crate for the resolution benchmark (issue 7, target 3).

    .venv/bin/python benchmarks/big_crate.py [--modules N]   (prints the executable's path)

The sources are written at bench time into benchmarks/build/big_crate (git-ignored) and
built in release with `debug = true`: MODULES modules, each with generic functions
instantiated over several integer types, a generic struct with methods, closures and
`#[inline]` helpers called from many places, so that the binary carries about 700,000
DIEs. The probes the benchmark resolves:

  EXACT    one non-generic `#[inline(never)]` function
  GENERIC  one generic function instantiated once per module (MODULES instances)
  INLINED  one `#[inline]` function inlined once into each module's driver
  (and `shared::mix`, inlined about 2,000 times, some copies in loops)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD = HERE / "build" / "big_crate"
NAME = "bench_big"
EXE = BUILD / "target" / "release" / NAME
MODULES = 53
FUNCTIONS = 8  # generic functions per module
TYPES = ("u16", "u64")

EXACT = f"{NAME}::m0012::driver"
GENERIC = f"{NAME}::shared::spread"
INLINED = f"{NAME}::shared::blend"  # `mix` has ~2,000 copies, some in loops

CARGO_TOML = f"""\
[package]
name = "{NAME}"
version = "0.1.0"
edition = "2021"

[[bin]]
name = "{NAME}"
path = "src/main.rs"

[profile.release]
debug = true

[workspace]
"""

SHARED = """\
use std::hint::black_box;

/// Inlined into every generated function: many inlined copies.
#[inline]
pub fn mix(a: u64, b: u64) -> u64 {
    let r = a.rotate_left((b & 31) as u32) ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    black_box(r)
}

/// Inlined once into each module's driver.
#[inline]
pub fn blend(a: u64, b: u64) -> u64 {
    black_box(a.wrapping_mul(b | 1).rotate_right(7))
}

/// One instance per module (each module passes its own marker type).
#[inline(never)]
pub fn spread<T: Default + std::fmt::Debug>(seed: u64, tag: T) -> u64 {
    let text = format!("{tag:?}");
    mix(seed, text.len() as u64)
}
"""


def module(m: int) -> str:
    lines = [
        "use std::hint::black_box;",
        "use crate::shared::{blend, mix, spread};",
        "",
        "#[derive(Debug, Default, Clone, Copy)]",
        f"pub struct Marker{m};",
        "",
        "#[derive(Debug, Clone)]",
        "pub struct Holder<T> {",
        "    pub items: Vec<T>,",
        "    pub total: u64,",
        "}",
        "",
        "impl<T: Copy + Into<u64>> Holder<T> {",
        "    #[inline(never)]",
        "    pub fn new(items: Vec<T>) -> Self {",
        f"        let total = items.iter().map(|&x| x.into()).fold({m}u64, |a, b| mix(a, b));",
        "        Holder { items, total }",
        "    }",
        "",
        "    #[inline(never)]",
        "    pub fn weigh(&self, k: u64) -> u64 {",
        "        self.items",
        "            .iter()",
        "            .enumerate()",
        f"            .filter(|(i, _)| (*i as u64 + k) % {m + 3} != 0)",
        "            .map(|(i, &x)| mix(x.into(), i as u64))",
        "            .sum::<u64>()",
        "            .wrapping_add(self.total)",
        "    }",
        "}",
        "",
    ]
    for f in range(FUNCTIONS):
        lines += [
            "#[inline(never)]",
            f"pub fn f{f}<T: Copy + Into<u64> + std::fmt::Debug>(x: T, y: u64) -> u64 {{",
            "    let v: Vec<u64> = (0..(y % 7 + 2)).map(|i| mix(i, x.into())).collect();",
            "    let mut acc = 0u64;",
            "    for (i, w) in v.iter().enumerate() {",
            f"        acc = mix(acc, w.wrapping_add(i as u64 + {m * FUNCTIONS + f}));",
            "    }",
            "    if acc % 5 == 0 {",
            '        acc = acc.wrapping_add(format!("{x:?}").len() as u64);',
            "    }",
            "    let h = Holder::new(vec![x, x]);",
            "    acc ^ h.weigh(y)",
            "}",
            "",
        ]
    lines += [
        "#[inline(never)]",
        "pub fn driver(n: u64) -> u64 {",
        "    let mut acc = 0u64;",
    ]
    for f in range(FUNCTIONS):
        for t in TYPES:
            lines.append(f"    acc = mix(acc, f{f}::<{t}>(black_box(n as {t}), n));")
    lines += [
        f"    acc = acc.wrapping_add(spread(n, Marker{m}));",
        f"    acc = blend(acc, {m});",
        "    black_box(acc)",
        "}",
        "",
    ]
    return "\n".join(lines)


def main_rs(modules: int) -> str:
    lines = ["pub mod shared;"]
    lines += [f"pub mod m{m:04};" for m in range(modules)]
    lines += [
        "",
        "fn main() {",
        "    let n: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1);",
        "    let mut acc = 0u64;",
    ]
    lines += [f"    acc ^= m{m:04}::driver(n);" for m in range(modules)]
    lines += ['    println!("{acc}");', "}", ""]
    return "\n".join(lines)


def write(path: Path, text: str) -> None:
    """Write only what changed, so cargo does not rebuild an unchanged crate."""
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def generate(modules: int = MODULES) -> Path:
    src = BUILD / "src"
    write(BUILD / "Cargo.toml", CARGO_TOML)
    write(src / "shared.rs", SHARED)
    write(src / "main.rs", main_rs(modules))
    for m in range(modules):
        write(src / f"m{m:04}.rs", module(m))
    for stale in src.glob("m[0-9]*.rs"):
        if int(stale.stem[1:]) >= modules:
            stale.unlink()
    return BUILD


def build(modules: int = MODULES) -> Path:
    """Generate the crate and build it (cargo skips the build when nothing changed)."""
    crate = generate(modules)
    subprocess.run(
        [
            "cargo",
            "build",
            "--release",
            "-q",
            "--offline",
            "--manifest-path",
            str(crate / "Cargo.toml"),
        ],
        check=True,
    )
    return EXE


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modules", type=int, default=MODULES)
    options = parser.parse_args()
    print(build(options.modules))
    return 0


if __name__ == "__main__":
    sys.exit(main())
