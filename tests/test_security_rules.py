"""Security rules on the package's own code, as ruff's bandit rules check them: never a shell,
never a fixed path in /tmp, never a predictable temporary file. `make lint` runs all of
ruff; this keeps these few in the test suite that CI runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RULES = {
    "S602": "subprocess with shell=True",
    "S604": "a function call with shell=True",
    "S605": "os.system and friends (a shell)",
    "S606": "os.exec*/spawn* without a shell, but outside subprocess",
    "S108": "a hard-coded path in /tmp",
    "S306": "tempfile.mktemp (a predictable name)",
    "S307": "eval",
    "S102": "exec",
}


def test_the_package_breaks_none_of_the_security_rules() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    result = subprocess.run(
        [ruff, "check", "--no-cache", "--select", ",".join(RULES), "--output-format",
         "concise", str(ROOT / "pytest_uprobe")],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
