"""Start the target held before `exec`, so probes are attached before its first instruction,
and make sure that nothing it starts outlives the run unless the user asks for it.

A tiny launcher (a fixed C program compiled once per machine, else fixed Python code;
arguments passed as argv, never through a shell) waits to read one byte from a pipe, then
execs the target; the pid stays the same across exec,
so probes filtered on that pid see the target from its very first instruction.

Every run is contained twice: the target leads its own session and process group, and,
where this machine's cgroup v2 hierarchy is writable, it is moved into a cgroup of its own
while still held (so every process it ever starts is inside, even one that calls setsid).
A timeout, an interrupted run or the `children="kill"` policy kills the whole cgroup
(`cgroup.kill`) and the process group. One watchdog process per traced Python process
(started once, on the first run) holds the read end of a pipe from it: when this process
dies in any way, SIGKILL included, the pipe reads EOF and the watchdog kills every run
still live. See docs/lifetime.md.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

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

# The same launcher in C, the same argv: the target cannot start before the launcher reads
# its byte, and a second Python takes 7 to 30 ms (more on a loaded machine) to get there,
# on the way of every run. Compiled once per machine into the cache directory (`launcher`);
# the Python one runs where no C compiler is, or with PYTEST_UPROBE_PYTHON_LAUNCHER=1.
_LAUNCHER_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc < 5)
        _exit(125);
    int fd = atoi(argv[1]), exe = atoi(argv[2]);
    char go = 0;
    ssize_t n;
    do
        n = read(fd, &go, 1);
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n != 1 || go != 'x')
        _exit(125);
    if (exe >= 0) {
        fcntl(exe, F_SETFD, FD_CLOEXEC);
        fexecve(exe, argv + 4, environ);
    } else {
        execv(argv[3], argv + 4);
    }
    dprintf(2, "pytest-uprobe: cannot execute %s: %s\n", argv[3], strerror(errno));
    _exit(127);
}
"""
PYTHON_LAUNCHER_ENV = "PYTEST_UPROBE_PYTHON_LAUNCHER"
_built: dict[str, Path | None] = {}  # the compiled launcher, once looked for
_built_lock = threading.Lock()


def launcher() -> list[str]:
    """The command (before its argv) that starts a held launcher: the compiled one, else
    Python's."""
    if not os.environ.get(PYTHON_LAUNCHER_ENV):
        with _built_lock:
            if "path" not in _built:
                _built["path"] = build_launcher()
        path = _built["path"]
        if path is not None:
            return [str(path)]
    return [sys.executable, "-I", "-S", "-c", _LAUNCHER]


def build_launcher() -> Path | None:
    """The compiled launcher in the cache directory, compiled there first if missing; None
    where there is no C compiler, or it failed (then the Python launcher is used)."""
    from .diskcache import cache_dir
    from .errors import PrerequisiteError

    digest = hashlib.sha256(_LAUNCHER_C.encode()).hexdigest()[:16]
    try:
        directory = cache_dir() / "launcher"
        directory.mkdir(mode=0o700, exist_ok=True)
    except (OSError, PrerequisiteError):
        return None
    path = directory / f"held-{digest}"
    if path.is_file() and os.access(path, os.X_OK):
        return path
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    with tempfile.TemporaryDirectory(dir=directory) as building:
        source, output = Path(building, "held.c"), Path(building, "held")
        source.write_text(_LAUNCHER_C)
        try:
            done = subprocess.run(
                [compiler, "-O2", "-o", str(output), str(source)],
                capture_output=True,
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        if done.returncode != 0 or not output.is_file():
            return None
        os.chmod(output, 0o700)
        os.replace(output, path)  # atomic: a concurrent build writes the same bytes
    return path


# Reads "+ PGID CGROUP" (a run started; CGROUP may be empty) and "- PGID" (it ended) from
# stdin until EOF, which comes when the process that started it is gone, however it died;
# then kills every run still live. It ignores the signals a terminal or a job runner sends
# to a whole group or session, so that it outlives the process it watches and cleans up.
_WATCHDOG = (
    "import os, signal, time\n"
    "for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):\n"
    "    signal.signal(s, signal.SIG_IGN)\n"
    "runs, rest = {}, b''\n"
    "while True:\n"
    "    try:\n"
    "        chunk = os.read(0, 4096)\n"
    "    except InterruptedError:\n"
    "        continue\n"
    "    if not chunk:\n"
    "        break\n"
    "    *lines, rest = (rest + chunk).split(b'\\n')\n"
    "    for line in lines:\n"
    "        op, pgid, group = (line.decode() + '  ').split(' ', 2)\n"
    "        if op == '+':\n"
    "            runs[int(pgid)] = group.strip()\n"
    "        else:\n"
    "            runs.pop(int(pgid), None)\n"
    "def procs(group):\n"
    "    try:\n"
    "        with open(group + '/cgroup.procs') as f:\n"
    "            return [int(p) for p in f.read().split()]\n"
    "    except OSError:\n"
    "        return []\n"
    "for pgid, group in runs.items():\n"
    "    if group:\n"
    "        try:\n"
    "            with open(group + '/cgroup.kill', 'w') as f:\n"
    "                f.write('1')\n"
    "        except OSError:\n"
    "            for pid in procs(group):\n"
    "                try: os.kill(pid, signal.SIGKILL)\n"
    "                except OSError: pass\n"
    "    try:\n"
    "        os.killpg(pgid, signal.SIGKILL)\n"
    "    except OSError:\n"
    "        pass\n"
    "deadline = time.monotonic() + 10\n"
    "for group in [g for g in runs.values() if g]:\n"
    "    while time.monotonic() < deadline:\n"
    "        for pid in procs(group):\n"
    "            try: os.kill(pid, signal.SIGKILL)\n"
    "            except OSError: pass\n"
    "        try:\n"
    "            os.rmdir(group)\n"
    "            break\n"
    "        except FileNotFoundError:\n"
    "            break\n"
    "        except OSError:\n"
    "            time.sleep(0.01)\n"
)

_CGROUP_PREFIX = "pytest-uprobe-run-"
CGROUP_SWITCH = "PYTEST_UPROBE_CGROUP"  # "0": contain runs by their process group only
_READ_SIZE = 1 << 16
_POLL_S = 0.01  # how often `children="wait"` looks whether the run's processes are gone
_DRAIN_AFTER_KILL_S = 2.0  # at most this long for the pipes to close once all is killed
_ARGV_LOOKS = 50  # 1 ms apart
_DRAIN_GRACE_S = 0.05  # reading what is already in the pipes may take this much longer


class Process(NamedTuple):
    """A process of a traced run, as /proc showed it."""

    pid: int
    command: str  # its argv joined by spaces, or [name] when /proc shows no argv

    def __str__(self) -> str:
        return f"{self.pid} ({self.command})"


@dataclass
class Finished:
    returncode: int  # the program's exit status; negative: killed by that signal
    stdout: str
    stderr: str
    timed_out: bool  # the timeout expired (see `exited` for what was still running)
    exited: bool = True  # the program itself exited before the timeout
    # Processes the program started that still ran when it exited (or at the timeout).
    orphans: list[Process] = field(default_factory=list)
    # When the program exited, some of those still held its stdout or stderr open.
    output_held: bool = False


def _read_command(pid: int) -> str:
    # A process in the middle of exec shows an empty argv for a moment: look again.
    for _ in range(_ARGV_LOOKS):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return "?"
        if raw:
            return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
        time.sleep(0.001)
    with contextlib.suppress(OSError):
        return "[" + Path(f"/proc/{pid}/comm").read_text().strip() + "]"
    return "?"


def _stat_fields(pid: int | str) -> list[str] | None:
    """/proc/PID/stat after the command: state, ppid, pgrp, ..."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


# -- containment: a cgroup per run where possible, its process group always --------------


class _CgroupRoot:
    """Where this process may make cgroups for its runs: a directory of the writable cgroup
    v2 hierarchy below its own cgroup, or None with the reason why not."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.why_not = ""
        self._counter = 0
        self._lock = threading.Lock()
        try:
            self.path = self._find()
        except OSError as exc:
            self.why_not = f"cgroup v2 unusable: {exc}"

    def _find(self) -> Path | None:
        if os.environ.get(CGROUP_SWITCH, "1") == "0":
            self.why_not = f"{CGROUP_SWITCH}=0 in the environment"
            return None
        mount = None
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            if right.split()[:1] == ["cgroup2"]:
                mount = left.split()[4]
                break
        if mount is None:
            self.why_not = "no cgroup v2 hierarchy is mounted"
            return None
        own = None
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                own = line[3:]
        if own is None:
            self.why_not = "this process is in no cgroup v2 group"
            return None
        path = Path(mount) / own.lstrip("/")
        if not (path / "cgroup.kill").exists() and own != "/":
            self.why_not = f"{path} has no cgroup.kill (Linux 5.14 or newer has it)"
            return None
        if not os.access(path, os.W_OK):
            self.why_not = f"{path} is not writable (a read-only /sys/fs/cgroup, or not root)"
            return None
        _remove_stale(path)
        return path

    def make(self) -> Path | None:
        """A new empty cgroup for one run; None when cgroups cannot be used (and why_not
        then says why, once for the whole process)."""
        if self.path is None:
            return None
        with self._lock:
            self._counter += 1
            name = f"{_CGROUP_PREFIX}{os.getpid()}-{self._counter}"
        group = self.path / name
        try:
            os.mkdir(group)
        except OSError as exc:
            self.give_up(f"cannot make a cgroup in {self.path}: {exc}")
            return None
        return group

    def give_up(self, why: str) -> None:
        self.why_not = why
        self.path = None


def _remove_stale(path: Path) -> None:
    """Remove the empty run cgroups of processes that died before removing them (killed
    between making one and starting the run; their watchdog removes all others)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(path):
            if not entry.name.startswith(_CGROUP_PREFIX):
                continue
            owner = entry.name[len(_CGROUP_PREFIX) :].split("-")[0]
            if owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
                with contextlib.suppress(OSError):
                    os.rmdir(entry.path)


_cgroup_root: _CgroupRoot | None = None
_cgroup_root_pid = -1


_setup_lock = threading.Lock()  # runs may start from several threads at once


def cgroup_root() -> _CgroupRoot:
    global _cgroup_root, _cgroup_root_pid
    with _setup_lock:
        if _cgroup_root is None or _cgroup_root_pid != os.getpid():
            _cgroup_root, _cgroup_root_pid = _CgroupRoot(), os.getpid()
        return _cgroup_root


def containment() -> str:
    """How runs are contained in this process: 'cgroup (PATH)' or 'process group (WHY)'."""
    root = cgroup_root()
    if root.path is not None:
        return f"cgroup v2 ({root.path})"
    return f"process group only: {root.why_not}"


class _Watchdog:
    """The one process per traced Python process that kills its live runs when it dies."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._lock = threading.Lock()
        # Any Python runs it: a user may run an interpreter it cannot exec again by path.
        python = sys.executable
        if not os.access(python, os.X_OK):
            python = shutil.which("python3") or python
        self.popen = subprocess.Popen(
            [python, "-I", "-S", "-c", _WATCHDOG],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not killed with this process's group or session
        )
        assert self.popen.stdin is not None
        self._fd = self.popen.stdin.fileno()

    def send(self, line: str) -> None:
        with self._lock, contextlib.suppress(OSError):
            os.write(self._fd, line.encode() + b"\n")

    def stop(self) -> None:
        """At a normal exit: the watchdog reads EOF, finds no live run, and exits."""
        with contextlib.suppress(OSError, ValueError):
            assert self.popen.stdin is not None
            self.popen.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)


_watchdog: _Watchdog | None = None


def watchdog() -> _Watchdog:
    global _watchdog
    with _setup_lock:
        if _watchdog is None or _watchdog.pid != os.getpid():  # a forked child needs its own
            _watchdog = _Watchdog()
            atexit.register(_watchdog.stop)
        return _watchdog


class _Run:
    """Kills, lists and forgets the processes of one run."""

    def __init__(self, pgid: int, group: Path | None) -> None:
        self.pgid = pgid
        self.group = group

    def processes(self) -> list[Process]:
        """The run's live processes (zombies left out)."""
        if self.group is not None:
            try:
                pids = [int(p) for p in (self.group / "cgroup.procs").read_text().split()]
            except OSError:
                pids = []
            alive = [p for p in pids if (_stat_fields(p) or ["Z"])[0] != "Z"]
        else:
            try:
                os.killpg(self.pgid, 0)
            except OSError:
                return []
            alive = []
            for proc in os.listdir("/proc"):
                if proc.isdigit():
                    fields = _stat_fields(proc)
                    if fields is not None and fields[0] != "Z" and fields[2] == str(self.pgid):
                        alive.append(int(proc))
        return [Process(pid, _read_command(pid)) for pid in sorted(alive)]

    def kill(self) -> None:
        if self.group is not None:
            try:
                (self.group / "cgroup.kill").write_text("1")
            except OSError:
                for pid in self._group_pids():
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGKILL)

    def _group_pids(self) -> list[int]:
        assert self.group is not None
        try:
            return [int(p) for p in (self.group / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def release(self) -> None:
        """Hand whatever still runs over to this process's own cgroup (`children="leave"`)."""
        if self.group is None:
            return
        parent = self.group.parent / "cgroup.procs"
        for _ in range(100):  # a process that forks while being moved leaves a child behind
            pids = self._group_pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(OSError):
                    parent.write_text(str(pid))

    def remove(self, wait_s: float = 10.0) -> None:
        """Remove the cgroup once it is empty (the processes killed just before may take a
        moment to go)."""
        if self.group is None:
            return
        deadline = time.monotonic() + wait_s
        while True:
            try:
                os.rmdir(self.group)
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    return
            time.sleep(0.001)


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
        dog = watchdog()
        group = cgroup_root().make()
        read_end, self._release_fd = os.pipe()
        exe_fd = -1 if executable_fd is None else executable_fd
        try:
            self.popen = subprocess.Popen(
                [
                    *launcher(),
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
            if group is not None:
                _Run(0, group).remove(0)
            raise
        finally:
            os.close(read_end)
        self.pid = self.popen.pid
        self._run = _Run(self.pid, group)
        self._dog = dog
        self._released = False
        self._done = False
        dog.send(f"+ {self.pid} {group or ''}")
        # Moving a process between cgroups waits for an RCU grace period (1 to 20 ms on
        # this VM), so it runs beside the launcher's start-up and the probes' attaching;
        # `release` waits for it, so the target's first instruction runs inside.
        self._move_error: OSError | None = None
        self._mover: threading.Thread | None = None
        if group is not None:
            self._mover = threading.Thread(target=self._move, name="uprobe-cgroup", daemon=True)
            self._mover.start()

    def _move(self) -> None:
        assert self._run.group is not None
        try:
            (self._run.group / "cgroup.procs").write_text(str(self.pid))
        except OSError as exc:
            self._move_error = exc

    def _contain(self) -> None:
        """Wait until the launcher is in the run's cgroup; where it could not be moved,
        the process group alone holds the run, and later runs skip cgroups."""
        if self._mover is None:
            return
        self._mover.join()
        self._mover = None
        group = self._run.group
        if self._move_error is not None and group is not None:
            self._run.remove(0)
            cgroup_root().give_up(f"cannot move a process into {group}: {self._move_error}")
            self._run.group = None

    @property
    def cgroup(self) -> Path | None:
        """The run's cgroup, None where only its process group holds it."""
        return self._run.group

    def release(self) -> None:
        """Let the child exec the target."""
        if not self._released:
            self._released = True
            self._contain()
            os.write(self._release_fd, b"x")
            os.close(self._release_fd)

    def wait(self, input: bytes | None, timeout: float | None, children: str = "kill") -> Finished:
        """Collect output until the program exits (with `children="wait"`: until every
        process it started has exited too), or the timeout. Whatever outlives it is killed,
        or with `children="leave"` handed over to this process's cgroup and left running."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pipes = _Pipes(self.popen, input)
        pidfd = _pidfd(self.pid)
        try:
            exited = pipes.pump(deadline, pidfd, self.popen)
        finally:
            if pidfd is not None:
                os.close(pidfd)
        timed_out = not exited
        orphans: list[Process] = []
        held = False
        if exited:
            # Reaped at once: a zombie leader still counts as a member of its process group.
            self.popen.wait()
            pipes.pump(time.monotonic(), None, None)  # what is there already, without waiting
            held = pipes.open
            orphans = self._run.processes()
            if orphans and children == "wait" and not self._wait_for_children(pipes, deadline):
                timed_out = True
                orphans = self._run.processes() or orphans
        else:
            orphans = [p for p in self._run.processes() if p.pid != self.pid]
        if children == "leave" and not timed_out:
            self._run.release()
            pipes.hand_over()
            self.popen.stdout = self.popen.stderr = None  # the draining thread's now
        else:
            self._run.kill()
            pipes.pump(time.monotonic() + _DRAIN_AFTER_KILL_S, None, None)
            pipes.close()
        self.popen.wait()
        self._forget()
        return Finished(
            self.popen.returncode,
            pipes.text(1),
            pipes.text(2),
            timed_out,
            exited=exited,
            orphans=orphans,
            output_held=held,
        )

    def _wait_for_children(self, pipes: _Pipes, deadline: float | None) -> bool:
        """Collect output until none of the run's processes is alive; False at the timeout."""
        while self._run.processes():
            step = time.monotonic() + _POLL_S
            if deadline is not None and step > deadline:
                if time.monotonic() >= deadline:
                    return False
                step = deadline
            if pipes.open:
                pipes.pump(step, None, None)
            else:
                time.sleep(max(0.0, step - time.monotonic()))
        return True

    def _forget(self) -> None:
        if not self._done:
            self._done = True
            self._run.remove()
            self._dog.send(f"- {self.pid}")

    def kill(self) -> None:
        """Kill the program and everything it started; safe to call at any time, more than
        once."""
        if not self._released:
            self._released = True
            os.close(self._release_fd)  # the launcher reads EOF and exits without exec
            self._contain()
            self._run.kill()
        elif not self._done:
            self._run.kill()

    def reap(self) -> None:
        """Kill and wait, for cleanup paths."""
        self.kill()
        if self.popen.returncode is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=10)
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._forget()


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # Linux before 5.3: poll instead
        return None


class _Pipes:
    """The program's stdin, stdout and stderr, pumped without blocking."""

    def __init__(self, popen: subprocess.Popen[bytes], input: bytes | None) -> None:
        self.selector = selectors.DefaultSelector()
        self.chunks: dict[int, list[bytes]] = {1: [], 2: []}
        self.input = memoryview(input or b"")
        self.streams = {}
        for number, stream in ((1, popen.stdout), (2, popen.stderr)):
            if stream is not None:
                os.set_blocking(stream.fileno(), False)
                self.streams[stream.fileno()] = (number, stream)
                self.selector.register(stream.fileno(), selectors.EVENT_READ, number)
        self.stdin = popen.stdin
        if self.stdin is not None:
            if input:
                os.set_blocking(self.stdin.fileno(), False)
                self.selector.register(self.stdin.fileno(), selectors.EVENT_WRITE, 0)
            else:
                self._close_stdin()

    @property
    def open(self) -> bool:
        """Some process still holds stdout or stderr open."""
        return bool(self.streams)

    def pump(
        self, deadline: float | None, pidfd: int | None, popen: subprocess.Popen[bytes] | None
    ) -> bool:
        """Move data until `popen` exits (True), or the deadline (False); without `popen`,
        until both output pipes close or the deadline."""
        if pidfd is not None:
            self.selector.register(pidfd, selectors.EVENT_READ, -1)
        try:
            while True:
                if popen is not None and pidfd is None and popen.poll() is not None:
                    return True
                if popen is None and not self.streams:
                    return True
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                if popen is not None and pidfd is None:
                    wait = _POLL_S if wait is None else min(wait, _POLL_S)
                ready = self.selector.select(wait)
                for key, _ in ready:
                    if key.data == -1:
                        return True
                    if key.data == 0:
                        self._write()
                    else:
                        self._read(key.fd)
                if deadline is not None:
                    now = time.monotonic()
                    # A process that writes without pause cannot hold this loop for ever.
                    if now >= deadline and (not ready or now >= deadline + _DRAIN_GRACE_S):
                        return False
        finally:
            if pidfd is not None:
                self.selector.unregister(pidfd)

    def _read(self, fd: int) -> None:
        number, stream = self.streams[fd]
        try:
            data = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            return
        if data:
            self.chunks[number].append(data)
        else:
            self.selector.unregister(fd)
            del self.streams[fd]
            stream.close()

    def _write(self) -> None:
        assert self.stdin is not None
        try:
            written = os.write(self.stdin.fileno(), self.input[:_READ_SIZE])
        except BlockingIOError:
            return
        except BrokenPipeError:  # the program stopped reading
            written = len(self.input)
        self.input = self.input[written:]
        if not self.input:
            self.selector.unregister(self.stdin.fileno())
            self._close_stdin()

    def _close_stdin(self) -> None:
        if self.stdin is not None:
            with contextlib.suppress(OSError):
                self.stdin.close()
            self.stdin = None

    def close(self) -> None:
        for fd, (_, stream) in list(self.streams.items()):
            self.selector.unregister(fd)
            stream.close()
        self.streams.clear()
        if self.stdin is not None:
            self.selector.unregister(self.stdin.fileno())
            self._close_stdin()
        self.selector.close()

    def hand_over(self) -> None:
        """The processes left running keep writing to pipes nobody reads: a thread drains
        and drops it until they close, so that they get no SIGPIPE while this process
        lives."""
        self._close_stdin()
        streams = [stream for _, stream in self.streams.values()]
        self.streams.clear()
        self.selector.close()
        if streams:
            threading.Thread(
                target=_drain, args=(streams,), name="uprobe-left-output", daemon=True
            ).start()

    def text(self, number: int) -> str:
        return b"".join(self.chunks[number]).decode("utf-8", "replace")


def _drain(streams: list[object]) -> None:
    selector = selectors.DefaultSelector()
    for stream in streams:
        selector.register(stream, selectors.EVENT_READ)  # type: ignore[arg-type]
    while selector.get_map():
        for key, _ in selector.select():
            try:
                data = os.read(key.fd, _READ_SIZE)
            except BlockingIOError:
                continue
            if not data:
                selector.unregister(key.fileobj)
                key.fileobj.close()  # type: ignore[union-attr]
    selector.close()
