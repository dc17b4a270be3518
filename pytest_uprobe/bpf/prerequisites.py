"""What tracing needs from the machine, as a list of small named checks.

`check_prerequisites` walks the checks tracing needs and raises a PrerequisiteError from the
first that fails; `pytest-uprobe doctor` walks every check (also those only this project's
tools need) and prints them all. Each check is written once, here.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PrerequisiteError
from . import headers, program
from .bcc import load_bcc

UPROBE_PMU = Path("/sys/bus/event_source/devices/uprobe")
MIN_KERNEL = (5, 8)  # the BPF ring buffer
_CAP_SYS_ADMIN, _CAP_PERFMON, _CAP_BPF = 21, 38, 39


@dataclass
class Check:
    """The outcome of one check. `ok` None: not tried, because something it needs is
    missing. `missing` names what is missing, as a PrerequisiteError says it."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""
    required: bool = True
    missing: str = ""

    def error(self) -> PrerequisiteError:
        return PrerequisiteError(self.missing or self.name, self.detail, self.fix)


@dataclass
class Findings:
    """What earlier checks found that later ones use."""

    bcc: Any = None
    kernel_source: Path | None = None
    failed: list[str] = field(default_factory=list)


def _capabilities() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def tracing_privilege() -> str | None:
    """What lets this process load BPF programs and attach uprobes, or None if nothing does."""
    caps = _capabilities()
    has = lambda bit: bool(caps >> bit & 1)  # noqa: E731
    if has(_CAP_SYS_ADMIN):
        return "CAP_SYS_ADMIN (root)"
    if has(_CAP_BPF) and has(_CAP_PERFMON):
        return "CAP_BPF and CAP_PERFMON"
    return None


def privileges(found: Findings) -> Check:
    privilege = tracing_privilege()
    if privilege is not None:
        return Check("privileges", True, privilege)
    return Check(
        "privileges",
        False,
        "loading BPF programs and attaching uprobes is privileged, and this process is "
        "neither root nor has CAP_BPF and CAP_PERFMON",
        f"run as root: sudo -E {sys.executable} -m pytest --uprobe ...  "
        "(sudo -E pytest-uprobe doctor checks the rest)",
        missing="root, or CAP_BPF and CAP_PERFMON",
    )


def kernel(found: Findings) -> Check:
    release = platform.release()
    version = tuple(int(n) for n in re.findall(r"\d+", release)[:2])
    if version >= MIN_KERNEL:
        return Check("kernel", True, f"Linux {release} (BPF ring buffer: 5.8 or newer)")
    return Check(
        "kernel",
        False,
        f"Linux {release} is older than 5.8, which has the BPF ring buffer",
        "boot a kernel 5.8 or newer (Debian 12: apt-get install linux-image-amd64)",
        missing="Linux 5.8 or newer",
    )


def uprobe_pmu(found: Findings) -> Check:
    if UPROBE_PMU.exists():
        return Check("uprobe PMU", True, str(UPROBE_PMU))
    return Check(
        "uprobe PMU",
        False,
        f"{UPROBE_PMU} is missing (kernel built without CONFIG_UPROBE_EVENTS?)",
        "boot a kernel built with CONFIG_UPROBES=y and CONFIG_UPROBE_EVENTS=y",
        missing="a kernel with uprobes",
    )


def bcc(found: Findings) -> Check:
    try:
        found.bcc = load_bcc()
    except PrerequisiteError as exc:
        return _from_error("bcc", exc)
    where = os.path.dirname(getattr(found.bcc, "__file__", "") or "") or "loaded"
    return Check("bcc", True, f"BCC's Python bindings from {where}")


def kernel_headers(found: Findings) -> Check:
    try:
        found.kernel_source = headers.kernel_source()
    except PrerequisiteError as exc:
        return _from_error("kernel headers", exc)
    except OSError as exc:  # assembling Debian's two halves in the cache failed
        cache = headers.cache_dir()
        return Check(
            "kernel headers",
            False,
            f"assembling them in {cache} failed: {exc}",
            f"rm -rf {cache}",
            missing="kernel headers",
        )
    where = found.kernel_source or f"/lib/modules/{platform.release()}/build"
    return Check("kernel headers", True, str(where))


def bpf_program(found: Findings) -> Check:
    """Compile and load the program tracing uses, with room for one site, then unload it."""
    needs = [n for n in ("privileges", "bcc", "kernel headers") if n in found.failed]
    if needs:
        return Check("BPF program", None, "not tried: needs " + ", ".join(needs))
    before = os.environ.get("BCC_KERNEL_SOURCE")
    if found.kernel_source is not None:
        os.environ["BCC_KERNEL_SOURCE"] = str(found.kernel_source)
    started = time.perf_counter()
    loaded = None
    try:
        loaded = found.bcc.BPF(text=program.source(program.capacity(1)).encode())
        loaded.load_func(program.function_name(0).encode(), found.bcc.BPF.KPROBE)
    except Exception as exc:
        return Check(
            "BPF program",
            False,
            f"BCC could not build or load it: {str(exc).strip().splitlines()[-1:]}",
            "check the kernel headers match the running kernel (apt-get install "
            f"linux-headers-{platform.release()}), and that no LSM forbids bpf()",
            missing="a BPF program the kernel accepts",
        )
    finally:
        if loaded is not None:
            loaded.cleanup()
        if before is None:
            os.environ.pop("BCC_KERNEL_SOURCE", None)
        else:
            os.environ["BCC_KERNEL_SOURCE"] = before
    seconds = time.perf_counter() - started
    return Check("BPF program", True, f"compiled and loaded in {seconds:.2f} s")


def cargo(found: Findings) -> Check:
    path = shutil.which("cargo")
    if path:
        return Check("cargo", True, f"{path} ({_version([path, '--version'])})")
    return Check(
        "cargo",
        False,
        "not on PATH (the cargo_bin fixture builds crates with it; under sudo, PATH "
        "may lose ~/.cargo/bin)",
        "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh   "
        "(or apt-get install cargo; under sudo: sudo -E env PATH=$PATH pytest --uprobe)",
        missing="cargo",
    )


def bpftool(found: Findings) -> Check:
    path = shutil.which("bpftool")
    if path:
        return Check("bpftool", True, path, required=False)
    return Check(
        "bpftool",
        False,
        "not on PATH (only this project's leak checks use it)",
        "apt-get install bpftool",
        required=False,
    )


CheckFunction = Callable[[Findings], Check]
# What tracing needs, in the order a user should fix it.
FOR_TRACING: tuple[CheckFunction, ...] = (privileges, uprobe_pmu, bcc, kernel_headers)
# What `pytest-uprobe doctor` shows.
EVERY_CHECK: tuple[CheckFunction, ...] = (
    privileges, kernel, uprobe_pmu, bcc, kernel_headers, bpf_program, cargo, bpftool,
)  # fmt: skip


def run_checks(checks: tuple[CheckFunction, ...]) -> list[Check]:
    """Every check of `checks`, in order, each told what the ones before it found."""
    found = Findings()
    results = []
    for check in checks:
        result = check(found)
        if result.ok is False:
            found.failed.append(result.name)
        results.append(result)
    return results


def check_prerequisites() -> None:
    """Raise PrerequisiteError naming the first missing piece, with the command that fixes
    it; then point BCC at the kernel headers found."""
    found = Findings()
    for check in FOR_TRACING:
        result = check(found)
        if result.ok is False:
            raise result.error()
    headers.export_kernel_source(found.kernel_source)


def _from_error(name: str, exc: PrerequisiteError) -> Check:
    why = str(exc).split("\n  fix: ")[0]
    prefix = f"pytest-uprobe needs {exc.missing}: "
    detail = why[len(prefix) :] if why.startswith(prefix) else why
    return Check(name, False, detail, exc.fix, missing=exc.missing)


def _version(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run: {exc}"
    return result.stdout.strip() or result.stderr.strip()
