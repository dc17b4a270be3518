"""Plan every function of a real crate, one name at a time: each ends in a plan or in a clear
UprobeError, never in another exception (issue 13, class 9: on fd 8.6, 188 names ended in a
RecursionError reading types that reach themselves through pointers and 36 in a TypeError on
a DWARF attribute form, and `pytest-uprobe trace -p 'fd::*'` printed a Python traceback).

Planning needs no root. The full sweep of fd's ~1,700 names takes about two minutes here;
`make test` runs it (set PYTEST_UPROBE_SWEEP=N to plan only every N-th name)."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_uprobe.dwarf.types import RustType
from pytest_uprobe.elf import ElfBinary
from pytest_uprobe.errors import InternalError, NoMatchingFunction, UprobeError
from pytest_uprobe.tracer import Tracer
from pytest_uprobe.values import Unavailable

SWEEP_ENV = "PYTEST_UPROBE_SWEEP"


def _stride() -> int:
    value = os.environ.get(SWEEP_ENV, "1")
    if not value.isdigit() or int(value) < 1:
        raise pytest.UsageError(f"{SWEEP_ENV} must be a positive integer, got {value!r}")
    return int(value)


def test_every_function_plans_or_fails_clearly(fd_exe: Path) -> None:
    binary = ElfBinary.open(fd_exe)
    names = sorted({f.path for f in binary.functions})
    assert len(names) > 1000, "fd has about 1,700 function names: is this the right binary?"
    names = names[:: _stride()]
    tracer = Tracer()
    outcomes: collections.Counter[str] = collections.Counter()
    internal: list[str] = []
    for name in names:
        try:
            plan = tracer.plan(fd_exe, [name])
        except InternalError as exc:  # clear, but still a bug of ours
            internal.append(f"{name}: {exc}")
            outcomes["InternalError"] += 1
        except UprobeError as exc:
            first_line, _, fix = str(exc).partition("\n  fix: ")
            assert name in first_line and fix.strip(), f"unclear error for {name!r}: {exc}"
            # Every name swept is in the symbol table: "no function of that name" is wrong.
            assert not isinstance(exc, NoMatchingFunction), str(exc)
            outcomes[type(exc).__name__] += 1
        except Exception as exc:  # the very thing this test looks for
            internal.append(f"{name}: {type(exc).__name__}: {exc}")
            outcomes[type(exc).__name__] += 1
        else:
            assert plan.functions, f"{name!r} planned no function"
            outcomes["plan"] += 1
    summary = ", ".join(f"{kind} {count}" for kind, count in outcomes.most_common())
    print(f"\nswept {len(names)} function names of {fd_exe}: {summary}")
    assert not internal, f"{len(internal)} internal errors ({summary}):\n" + "\n".join(
        internal[:20]
    )
    # Most functions are out-of-line code with full debug info: nearly all must plan.
    assert outcomes["plan"] >= 0.9 * len(names), summary


def _reaches_itself(root: RustType, limit: int = 10_000) -> bool:
    """Whether `root`'s type graph (fields, variants, elements, pointer targets) leads back
    to `root` itself."""
    seen: set[int] = set()
    stack = [root]
    while stack and len(seen) < limit:
        value = stack.pop()
        inner = [f.type for f in value.fields]
        inner += [f.type for v in value.variants for f in v.fields]
        if value.kind in ("array", "slice", "vec") and value.element is not None:
            inner.append(value.element)
        if value.kind == "pointer":
            inner.append(value.target)
        for t in inner:
            if t is root:
                return True
            if id(t) not in seen:
                seen.add(id(t))
                stack.append(t)
    return False


def test_types_that_reach_themselves_are_cut_not_recursed(fd_exe: Path) -> None:
    """regex_syntax's Ast reaches itself through Box and Vec (a RecursionError before):
    its functions plan, and following its pointers stops, saying where and why."""
    tracer = Tracer()
    binary = ElfBinary.open(fd_exe)
    names = sorted({f.path for f in binary.functions if f.path.startswith("<regex_syntax::ast::")})
    assert names, "fd links regex_syntax: its ast functions should be there"
    recursive = cut = 0
    for name in names:
        plan = tracer.plan(fd_exe, [name])
        for function in plan.functions:
            for value in function.params:
                target = value.type.target if value.type.kind == "pointer" else value.type
                if not _reaches_itself(target):
                    continue
                recursive += 1
                # Followed breadth first until the event's area or the pointer depth ends:
                # the copies beyond are planned as Unavailable, with the reason.
                cut += any(isinstance(p, Unavailable) for p in value.copies.values())
    assert recursive, f"no parameter of {len(names)} regex_syntax::ast functions reaches itself"
    assert cut == recursive, f"{recursive - cut} values of self-reaching types were not cut"


@pytest.mark.uprobe
@pytest.mark.parametrize("options", [[], ["--no-inlined"]], ids=["inlined", "no-inlined"])
def test_trace_of_a_crate_wide_glob_prints_no_traceback(
    fd_exe: Path, tmp_path: Path, options: list[str]
) -> None:
    """`pytest-uprobe trace -p 'fd::*' -- fd ...`: a result or a clear error, never a
    Python traceback (one came from the DWARF reader before). Out of line only, every
    function of fd runs traced and its values are decoded."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.rs").write_text("fn main() {}\n")
    run = subprocess.run(
        [sys.executable, "-m", "pytest_uprobe", "trace", *options, "-p", "fd::*", "--",
         str(fd_exe), "--color", "never", "main"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert "Traceback" not in run.stderr + run.stdout, run.stderr[-3000:]
    if run.returncode == 0:  # the program's own output goes to stderr, the calls to stdout
        assert "src/main.rs" in run.stderr and "fd::construct_config(" in run.stdout
    else:  # refused before the run (an unprobe-able site: issue 13, class 3), saying why
        assert options == [] and run.returncode == 2, run.stderr[-3000:]
        assert "\n  fix: " in run.stderr, run.stderr[-3000:]
