"""Build a crate with cargo and take the executable's path from cargo's own JSON messages."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .errors import CargoBuildError, UsageError

_cache: dict[tuple[object, ...], Path] = {}


def cargo_bin(
    crate_dir: str | os.PathLike[str],
    *,
    bin: str | None = None,
    profile: str = "dev",
    features: Sequence[str] = (),
    rustflags: str | None = None,
    base: Path | None = None,
) -> Path:
    """The path of `crate_dir`'s executable built with `profile`; cached per arguments.

    Builds with other RUSTFLAGS go to their own target directory, so that an executable
    returned earlier is never overwritten by a build with different flags.
    """
    crate = Path(crate_dir)
    if not crate.is_absolute():
        crate = (base or Path.cwd()) / crate
    crate = crate.resolve()
    manifest = crate / "Cargo.toml"
    if not manifest.is_file():
        raise UsageError(f"{crate} has no Cargo.toml: pass the directory of a Rust crate")
    key = (str(crate), bin, profile, tuple(features), rustflags)
    cached = _cache.get(key)
    if cached is not None and cached.exists():
        return cached

    command = [
        "cargo", "build", "--message-format=json-render-diagnostics",
        "--manifest-path", str(manifest), "--profile", profile,
    ]  # fmt: skip
    if bin is not None:
        command += ["--bin", bin]
    if features:
        command += ["--features", ",".join(features)]
    env = dict(os.environ)
    if rustflags is not None:
        env["RUSTFLAGS"] = rustflags
        digest = hashlib.sha256(rustflags.encode()).hexdigest()[:12]
        command += ["--target-dir", str(crate / "target" / f"rustflags-{digest}")]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=crate)
    if result.returncode != 0:
        raise CargoBuildError(crate, command, result.stderr)
    executables = _executables(result.stdout)
    if bin is not None:
        executables = {name: path for name, path in executables.items() if name == bin}
    if len(executables) != 1:
        names = ", ".join(sorted(executables)) or "none"
        raise UsageError(
            f"{crate} builds {len(executables)} executables ({names}): choose one with bin=..."
        )
    path = next(iter(executables.values()))
    _cache[key] = path
    return path


def _executables(messages: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for line in messages.splitlines():
        if not line.startswith("{"):
            continue
        message = json.loads(line)
        if message.get("reason") != "compiler-artifact" or not message.get("executable"):
            continue
        if "bin" in message["target"]["kind"]:
            found[message["target"]["name"]] = Path(message["executable"])
    return found
