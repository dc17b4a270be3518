"""Run the same integration tests on both engines and list where their outcomes differ:

    python tests/inprocess/parity.py [PYTEST ARGS...]      (root, for the BPF engine)

Default: tests/integration. Each engine's run writes a JUnit XML report; a test that passes
on one engine and not on the other is printed with the first line of its failure."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET  # noqa: S405  (our own pytest's report)
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def outcomes(backend: str, args: list[str], report: Path) -> dict[str, tuple[str, str]]:
    subprocess.run(
        [sys.executable, "-m", "pytest", "--uprobe", f"--uprobe-backend={backend}", "-q",
         "-p", "no:cacheprovider", f"--junitxml={report}", *args],
        cwd=ROOT, check=False, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    found = {}
    for case in ET.parse(report).iter("testcase"):  # noqa: S314
        name = f"{case.get('classname')}::{case.get('name')}"
        outcome, why = "passed", ""
        for kind in ("failure", "error", "skipped"):
            element = case.find(kind)
            if element is not None:
                outcome = "skipped" if kind == "skipped" else "failed"
                why = (element.get("message") or "").strip().splitlines()[0:1]
                why = why[0][:200] if why else ""
                break
        found[name] = (outcome, why)
    return found


def main() -> None:
    args = sys.argv[1:] or ["tests/integration"]
    with tempfile.TemporaryDirectory() as tmp:
        bpf = outcomes("bpf", args, Path(tmp) / "bpf.xml")
        inprocess = outcomes("inprocess", args, Path(tmp) / "inprocess.xml")
    same = [n for n in bpf if inprocess.get(n, ("missing", ""))[0] == bpf[n][0]]
    print(f"{len(same)} of {len(bpf)} tests have the same outcome on both engines")
    for name in sorted(bpf):
        theirs = inprocess.get(name, ("missing", ""))
        if theirs[0] != bpf[name][0]:
            print(
                f"  {name}: bpf {bpf[name][0]}, inprocess {theirs[0]}: {theirs[1] or bpf[name][1]}"
            )


if __name__ == "__main__":
    main()
