"""The held launcher: the compiled one and the Python fallback hold the target before exec,
keep its pid, and fail the same ways."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_uprobe import launch
from pytest_uprobe.launch import PYTHON_LAUNCHER_ENV, HeldProcess, build_launcher, launcher

needs_cc = pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler here"
)


@pytest.fixture(params=["compiled", "python"])
def which(request, monkeypatch):
    if request.param == "python":
        monkeypatch.setenv(PYTHON_LAUNCHER_ENV, "1")
    elif launch.launcher()[0] == sys.executable:
        pytest.skip("no compiled launcher on this machine (no C compiler)")
    return request.param


def test_the_launcher_is_compiled_once_into_a_private_cache(tmp_path, monkeypatch):
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler here")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = build_launcher()
    assert path is not None and path.parent == tmp_path / "pytest-uprobe" / "launcher"
    assert os.stat(path.parent).st_mode & 0o077 == 0 and os.stat(path).st_mode & 0o777 == 0o700
    mtime = path.stat().st_mtime_ns
    assert build_launcher() == path and path.stat().st_mtime_ns == mtime  # not rebuilt
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left


def test_without_a_compiler_the_python_launcher_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # no cc, no gcc
    assert build_launcher() is None
    monkeypatch.setenv(PYTHON_LAUNCHER_ENV, "1")
    assert launcher()[:2] == [sys.executable, "-I"]


def held(argv, **options):
    return HeldProcess(Path(argv[0]), argv, env=None, cwd=None, stdin_data=False, **options)


@needs_cc
def test_the_target_runs_with_the_launchers_pid_only_once_released(which):
    process = held(["/bin/sh", "-c", "echo $$; echo $0 $1", "zero", "one"])
    try:
        assert process.popen.poll() is None  # held: waiting for its byte
        process.release()
        finished = process.wait(None, 30)
    finally:
        process.reap()
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.split("\n")[:2] == [str(process.pid), "zero one"]


@needs_cc
def test_an_executable_fd_is_what_runs_and_the_target_does_not_inherit_it(which, tmp_path):
    fd = os.open("/bin/sh", os.O_RDONLY | os.O_CLOEXEC)
    try:  # the path names nothing: the fd is what runs
        process = held([str(tmp_path / "elsewhere"), "-c", "ls /proc/$$/fd"], executable_fd=fd)
        try:
            process.release()
            finished = process.wait(None, 30)
        finally:
            process.reap()
    finally:
        os.close(fd)
    assert finished.returncode == 0, finished.stderr
    assert "0" in finished.stdout.split() and str(fd) not in finished.stdout.split()


@needs_cc
def test_a_target_that_cannot_run_exits_127_and_says_why(which, tmp_path):
    missing = tmp_path / "missing"
    process = held([str(missing)])
    try:
        process.release()
        finished = process.wait(None, 30)
    finally:
        process.reap()
    assert finished.returncode == 127
    assert f"pytest-uprobe: cannot execute {missing}" in finished.stderr


@needs_cc
def test_a_launcher_never_released_runs_nothing_and_exits_125(which):
    read_end, write_end = os.pipe()
    command = [*launcher(), str(read_end), "-1", "/bin/echo", "/bin/echo", "ran"]
    child = subprocess.Popen(command, pass_fds=(read_end,), stdout=subprocess.PIPE)
    os.close(read_end)
    os.close(write_end)  # EOF: never released
    out, _ = child.communicate(timeout=30)
    assert child.returncode == 125 and out == b""
