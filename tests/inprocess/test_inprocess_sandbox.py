"""`pytest --uprobe` inside a container-like sandbox that refuses bpf(): a seccomp filter
(installed with prctl, as Docker's default profile refuses bpf()) makes every bpf() call
fail with EPERM, inherited by everything the sandboxed pytest starts. There, "auto" takes
the in-process engine (root or not) and traces as outside; the BPF engine cannot work.
Needs frida; x86_64 (the filter names the system call by its number)."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

from tests.integration.test_cleanup import use_tool_homes

pytest.importorskip("frida")
pytestmark = [
    pytest.mark.uprobe,
    pytest.mark.skipif(os.uname().machine != "x86_64", reason="the filter is x86_64's"),
]

_NR_BPF = 321  # x86_64
_AUDIT_ARCH_X86_64 = 0xC000003E
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2
_RET_ALLOW, _RET_ERRNO, _RET_KILL = 0x7FFF0000, 0x00050000, 0x00000000
_LD_W_ABS, _JEQ_K, _RET_K = 0x20, 0x15, 0x06
_EPERM = 1


class _Filter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_Filter))]


def refuse_bpf() -> None:
    """Install, in this process, a seccomp filter under which bpf() fails with EPERM (an
    unknown architecture is killed, as a filter must check it). For preexec_fn."""
    rules = [
        (_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        (_JEQ_K, 1, 0, _AUDIT_ARCH_X86_64),
        (_RET_K, 0, 0, _RET_KILL),
        (_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        (_JEQ_K, 0, 1, _NR_BPF),
        (_RET_K, 0, 0, _RET_ERRNO | _EPERM),
        (_RET_K, 0, 0, _RET_ALLOW),
    ]
    filters = (_Filter * len(rules))(*[_Filter(*rule) for rule in rules])
    program = _Program(len(rules), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")


INNER_TEST = """
import ctypes, errno

def test_bpf_is_refused_here():
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(321, 0xFFFF, None, 0) == -1
    assert ctypes.get_errno() == errno.EPERM  # EINVAL outside the sandbox

def test_traced(uprobe_trace):
    trace = uprobe_trace.run([{exe!r}, '3', '4'], probes=['args::hello'])
    assert trace['args::hello'].args_list == [(3, 3), (4, 3)]
    assert [c.retval for c in trace['args::hello'].calls] == [6, 7]
"""


@pytest.mark.parametrize("backend", ["auto", "inprocess"])
def test_pytest_uprobe_works_in_a_sandbox_that_refuses_bpf(
    cargo_bin, pytester, monkeypatch, backend
):
    use_tool_homes(monkeypatch)  # pytester moved HOME, where rustup looks
    exe = cargo_bin("example_crates/args")
    pytester.makepyfile(test_it=INNER_TEST.format(exe=str(exe)))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--uprobe", f"--uprobe-backend={backend}", "-q",
         "-p", "no:cacheprovider", "test_it.py"],
        cwd=pytester.path, capture_output=True, text=True, preexec_fn=refuse_bpf,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    assert "engine: inprocess" in result.stdout


def test_the_bpf_engine_in_that_sandbox_fails_naming_the_fix(cargo_bin, pytester, monkeypatch):
    """Forced onto BPF inside the sandbox, the run fails with an error, never a run
    without probes."""
    use_tool_homes(monkeypatch)
    exe = cargo_bin("example_crates/args")
    pytester.makepyfile(test_it=INNER_TEST.format(exe=str(exe)))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--uprobe", "--uprobe-backend=bpf", "-q",
         "-p", "no:cacheprovider", "test_it.py::test_traced"],
        cwd=pytester.path, capture_output=True, text=True, preexec_fn=refuse_bpf,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "1 failed" in out
    assert "PrerequisiteError: pytest-uprobe needs a BPF program the kernel accepts" in out
