"""Start the target held before `exec`, so probes are attached before its first instruction.

A tiny Python launcher (fixed code, arguments passed as argv, never through a shell) waits
to read one byte from a pipe, then execs the target; the pid stays the same across exec,
so probes filtered on that pid see the target from its very first instruction. The target
gets its own process group, so a timeout kills it with everything it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# argv: release fd, executable fd (-1: exec by path), executable path, target argv...
# With an fd, the target is exactly the file that fd opened (fexecve), whatever the path
# holds by then; the fd is made close-on-exec first, so the target does not inherit it.
_LAUNCHER = (
    "import os, sys\n"
    "fd = int(sys.argv[1])\n"
    "exe = int(sys.argv[2])\n"
    "go = os.read(fd, 1)\n"
    "os.close(fd)\n"
    "if go != b'x':\n"
    "    os._exit(125)\n"
    "try:\n"
    "    if exe >= 0:\n"
    "        os.set_inheritable(exe, False)\n"
    "        os.execve(exe, sys.argv[4:], os.environ)\n"
    "    os.execv(sys.argv[3], sys.argv[4:])\n"
    "except OSError as exc:\n"
    "    sys.stderr.write(f'pytest-uprobe: cannot execute {sys.argv[3]}: {exc}\\n')\n"
    "    os._exit(127)\n"
)


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool


class HeldProcess:
    """A child that has not run a single instruction of the target yet."""

    def __init__(
        self,
        executable: Path,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None,
        cwd: str | os.PathLike[str] | None,
        stdin_data: bool,
        executable_fd: int | None = None,
    ) -> None:
        read_end, self._release_fd = os.pipe()
        exe_fd = -1 if executable_fd is None else executable_fd
        try:
            self.popen = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-S",
                    "-c",
                    _LAUNCHER,
                    str(read_end),
                    str(exe_fd),
                    str(executable),
                    *argv,
                ],
                stdin=subprocess.PIPE if stdin_data else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                pass_fds=(read_end,) if exe_fd < 0 else (read_end, exe_fd),
                start_new_session=True,
            )
        except BaseException:
            os.close(self._release_fd)
            raise
        finally:
            os.close(read_end)
        self.pid = self.popen.pid
        self._released = False

    def release(self) -> None:
        """Let the child exec the target."""
        if not self._released:
            self._released = True
            os.write(self._release_fd, b"x")
            os.close(self._release_fd)

    def wait(self, input: bytes | None, timeout: float | None) -> Finished:
        timed_out = False
        try:
            out, err = self.popen.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            self.kill()
            out, err = self.popen.communicate()
        return Finished(
            self.popen.returncode,
            out.decode("utf-8", "replace"),
            err.decode("utf-8", "replace"),
            timed_out,
        )

    def kill(self) -> None:
        """Kill the whole process group; safe to call at any time, more than once."""
        if not self._released:
            self._released = True
            os.close(self._release_fd)  # the launcher reads EOF and exits without exec
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def reap(self) -> None:
        """Kill and wait, for cleanup paths."""
        if self.popen.returncode is None:
            self.kill()
            with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
                self.popen.communicate(timeout=10)
