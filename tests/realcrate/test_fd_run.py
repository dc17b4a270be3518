"""fd on a directory tree the test makes, traced: each out-of-line function's count equals
what bpftrace counts on its symbol in the same run, and the decoded values equal what fd
prints (issue 13, point 8)."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pytest_uprobe.elf import ElfBinary
from pytest_uprobe.tracer import Tracer
from tests.conftest import attached_uprobes

pytestmark = pytest.mark.uprobe

SEPARATOR = "#"  # fd --path-separator: printed paths use it, replace_path_separator makes them
# Out-of-line functions of fd that run once per entry found, printed or visited.
PER_ENTRY = (
    "fd::output::replace_path_separator",  # each printed path (uncolored output)
    "fd::output::print_trailing_slash",  # each printed path
    "fd::filetypes::FileTypes::should_ignore",  # each entry visited, with --type
    "fd::walk::spawn_senders::{closure#0}::{closure#0}",  # each entry the walker threads send
)


def make_tree(root: Path) -> set[str]:
    """A small tree of directories and files; returns what fd prints for it."""
    printed = set()
    for d in range(3):
        directory = root / f"dir{d}" / f"sub{d}"
        directory.mkdir(parents=True)
        printed |= {f"dir{d}{SEPARATOR}", f"dir{d}{SEPARATOR}sub{d}{SEPARATOR}"}
        for f in range(4 + d):
            name = f"file{f}.{'rs' if f % 2 else 'txt'}"
            (directory / name).write_text("x" * f)
            printed.add(f"dir{d}{SEPARATOR}sub{d}{SEPARATOR}{name}")
    (root / "top.md").write_text("top\n")
    printed.add("top.md")
    return printed


class BpftraceCounter:
    """bpftrace counting hits of symbols of one binary, in every process that runs it,
    from before the traced run starts until `stop`."""

    def __init__(self, exe: Path, symbols: list[str]) -> None:
        if shutil.which("bpftrace") is None:
            pytest.skip("bpftrace is not installed (apt-get install bpftrace)")
        script = " ".join(
            f'uprobe:{exe}:"{symbol}" {{ @c{i} = count(); }}' for i, symbol in enumerate(symbols)
        )
        self.count = len(symbols)
        self.exe = exe
        self.process = subprocess.Popen(
            ["bpftrace", "-e", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while len(self._attached()) < self.count:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                out, err = self.process.communicate()
                pytest.fail(f"bpftrace did not attach its {self.count} probes:\n{out}\n{err}")
            time.sleep(0.1)

    def _attached(self) -> list[dict]:
        return [
            p
            for p in attached_uprobes()
            if p.get("pid") == self.process.pid and p.get("filename") == str(self.exe)
        ]

    def stop(self) -> list[int]:
        """Detach; the count of each symbol (bpftrace prints its maps as it exits). SIGINT
        is sent again every few seconds: once, under load, one went unanswered for a minute."""
        for _ in range(12):
            self.process.send_signal(signal.SIGINT)
            try:
                out, err = self.process.communicate(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            self.process.kill()
            self.process.communicate()
            pytest.fail("bpftrace did not exit within 60 s of SIGINT")
        counts = dict(re.findall(r"^@c(\d+): (\d+)$", out, re.MULTILINE))
        return [int(counts.get(str(i), 0)) for i in range(self.count)]


def test_fd_counts_match_bpftrace_and_values_match_its_output(fd_exe: Path, tmp_path: Path) -> None:
    expected = make_tree(tmp_path)
    binary = ElfBinary.open(fd_exe)
    tracer = Tracer(inlined=False)  # bpftrace sees the out-of-line symbol only
    symbols = []
    for probe in PER_ENTRY:
        (symbol,) = tracer.sites(fd_exe, probe).out_of_line
        symbols.append(symbol.name)
    assert all(s.address for s in binary.symbols if s.name in symbols)

    bpftrace = BpftraceCounter(fd_exe, symbols)
    try:
        trace = tracer.run(
            [fd_exe, "--color", "never", "--path-separator", SEPARATOR,
             "--type", "f", "--type", "d", "--threads", "2", "."],
            probes=list(PER_ENTRY),
            cwd=tmp_path,
        )  # fmt: skip
    finally:
        oracle = bpftrace.stop()

    printed = trace.stdout.decode() if isinstance(trace.stdout, bytes) else trace.stdout
    lines = printed.splitlines()
    assert set(lines) == expected and len(lines) == len(expected), printed

    counts = [trace[probe].call_count for probe in PER_ENTRY]
    assert counts == oracle, dict(zip(PER_ENTRY, zip(counts, oracle)))
    assert all(counts), dict(zip(PER_ENTRY, counts))
    # fd itself: one separator replaced and one trailing-slash check per printed path.
    assert trace["fd::output::print_trailing_slash"].call_count == len(lines)

    replaced = trace["fd::output::replace_path_separator"]
    assert replaced.call_count == len(lines)
    # Each call gets a path as fd found it and returns it as printed (a directory's
    # trailing separator is printed afterwards by print_trailing_slash).
    assert sorted(replaced.retvals) == sorted(line.rstrip(SEPARATOR) for line in lines)
    for call in replaced:
        path, separator = call.args
        assert separator == SEPARATOR
        assert path == call.retval.replace(SEPARATOR, "/"), call
    assert not [p for p in attached_uprobes() if p.get("filename") == str(fd_exe)]
