from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_uprobe.plugin import option

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def attached_uprobes() -> list[dict]:
    """Every uprobe and uretprobe attached on this machine, as bpftool reports them."""
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed (apt-get install bpftool)")
    out = subprocess.run(
        ["bpftool", "perf", "show", "--json"], capture_output=True, text=True, check=True
    ).stdout
    probes = [p for p in json.loads(out or "[]") if p.get("fd_type") in ("uprobe", "uretprobe")]
    return probes + uprobe_multi_links()


def uprobe_multi_links() -> list[dict]:
    """The probes of this process's uprobe_multi BPF links (which `bpftool perf show` does not
    list), one entry per address, shaped like bpftool's: fd_type, filename, offset, pid."""
    probes = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:bpf_link":
                continue
            info = Path(f"/proc/self/fdinfo/{fd}").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        kind = fields.get("link_type", "").strip()
        if kind not in ("uprobe_multi", "uretprobe_multi"):
            continue
        table = info.split("ref_ctr_offset", 1)[1].split()
        for offset in table[1::3]:
            probes.append(
                {
                    "fd_type": kind.removesuffix("_multi"),
                    "filename": fields["path"].strip(),
                    "offset": int(offset, 16),
                    "pid": os.getpid(),
                }
            )
    return probes


def uprobe_events() -> list[str]:
    path = Path("/sys/kernel/tracing/uprobe_events")
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if line.strip()]


def processes_running(executable: Path, parent: int | None = None) -> list[int]:
    """Processes running `executable`; with `parent`, only that process's children (other
    pytest-xdist workers may run the same binary at the same time)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.readlink(proc / "exe") != str(executable):
                continue
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent is None or ppid == parent:
            pids.append(int(proc.name))
    return pids


@contextlib.contextmanager
def neighbour_running(argv: list) -> Iterator[list[int]]:
    """Run `argv` over and over in the background (the same binary as the traced one, a
    process we do not trace) until the block ends; yields a one-item list of runs so far."""
    stop = threading.Event()
    runs = [0]

    def loop() -> None:
        while not stop.is_set():
            subprocess.run(argv, capture_output=True)
            runs[0] += 1

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield runs
    finally:
        stop.set()
        thread.join()


NO_CARGO = "cargo is not on PATH: these tests build the example crates (install Rust)"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that build example crates need cargo, even when they trace nothing: without it
    they are skipped with the reason, so the rest of the suite runs on any machine."""
    if shutil.which("cargo") is not None:
        return
    skip = pytest.mark.skip(reason=NO_CARGO)
    for item in items:
        if any(name.startswith("cargo_bin") for name in getattr(item, "fixturenames", ())):
            item.add_marker(skip)  # cargo_bin and module-scoped twins (cargo_bin_module)


def leftovers(root: Path = ROOT) -> list[str]:
    """Processes running a program built under `root` (example crates, benchmarks), and
    probes attached in such programs: what a finished test suite must not leave behind."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            exe = os.readlink(proc / "exe")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if exe.startswith(f"{root}/") and "/target/" in exe and state != "Z":
            found.append(f"process {proc.name} runs {exe}")
    if shutil.which("bpftool") is not None:
        for probe in attached_uprobes():
            name = str(probe.get("filename", ""))
            if f"{root}/" in name:
                found.append(f"a {probe['fd_type']} stays attached in {name}")
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the whole suite (in the controller, once every xdist worker is done): nothing
    started by it runs and nothing stays attached, or the session fails saying what."""
    config = session.config
    if hasattr(config, "workerinput") or not option(config, "uprobe"):
        return
    left: list[str] = []
    for _ in range(100):  # what was killed last may take a moment to go
        left = leftovers()
        if not left:
            return
        time.sleep(0.05)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_line("left behind by this test session (it fails):", red=True)
        for line in left:
            reporter.write_line(f"  {line}", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
