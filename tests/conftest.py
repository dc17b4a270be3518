from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

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
    return [p for p in json.loads(out or "[]") if p.get("fd_type") in ("uprobe", "uretprobe")]


def uprobe_events() -> list[str]:
    path = Path("/sys/kernel/tracing/uprobe_events")
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if line.strip()]


def processes_running(executable: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.readlink(proc / "exe") == str(executable):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids
