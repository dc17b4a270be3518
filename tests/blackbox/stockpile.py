"""What the stockpile program prints, parsed: the expected values of tests/blackbox.

Every expected value is parsed from what the program prints (`CALL f (args) -> result`,
`COUNT name=n`, ...) or computed from its inputs; never taken from an earlier trace.
"""

import ast
import os
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
CRATE = HERE.parent.parent / "example_crates" / "stockpile"

ITEMS = ["apple:3:10", "pear:5:4", "fig:2:7", "bad"]
CMDS = ["add:5", "mul:3", "neg", "set:7", "div:0", "div:2", "add:-2", "bogus"]
ARGV_TAIL = ITEMS + ["--"] + CMDS

os.environ.setdefault("PATH", "")
if str(Path.home() / ".cargo/bin") not in os.environ["PATH"]:
    os.environ["PATH"] = str(Path.home() / ".cargo/bin") + os.pathsep + os.environ["PATH"]


def printed_calls(stdout, fn):
    """[(args_tuple, result)] for every `CALL fn (...) -> ...` line the program printed."""
    out = []
    pat = re.compile(r"^CALL " + re.escape(fn) + r" (\(.*\)) -> (.*)$")
    for line in stdout.splitlines():
        m = pat.match(line)
        if m:
            out.append((ast.literal_eval(m.group(1)), ast.literal_eval(m.group(2))))
    return out


def printed_counts(stdout):
    return {k: int(v) for k, v in re.findall(r"^COUNT (\w+)=(\d+)$", stdout, re.M)}


def printed_value(stdout, key):
    m = re.search(r"^" + re.escape(key) + r" (.*)$", stdout, re.M)
    assert m, f"{key} not printed"
    return ast.literal_eval(m.group(1))
