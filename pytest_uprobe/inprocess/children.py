"""follow_children on the in-process engine: Frida's child gating.

The BPF engine counts, in every process the target forks (and their forks, through any
exec), the hits of the traced file's uprobes: a process that execs the traced binary again
counts, one running another binary does not (the probes are on the file's inode). This
module gives the in-process engine the same answers:

- a forked child inherits the hooks and the shared mapping (MAP_SHARED): it counts as the
  target does, on its own pid (the agent's fork handler, see agent.py);
- a process that execs loses both: Frida stops it right after the exec, before its first
  instruction; when its image is the traced file (the same device and inode), it gets the
  agent and the same site table, else it runs as it is;
- every followed process is gated in turn (its forks and execs are reported too), whatever
  it runs, so that a shell that execs the traced binary again is followed as on BPF.

Frida reports a gated child on its own thread and holds it until it is resumed; attaching
and loading a script there could deadlock Frida's loop, so a worker thread of the run does
it.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FollowedProcess:
    """A process the run followed: how it came (Frida's origin: "fork", "exec", "spawn"),
    what it runs, and whether it got the agent (an exec of the traced file)."""

    pid: int
    origin: str
    path: str
    instrumented: bool


@dataclass(frozen=True)
class MissedProcess:
    """A followed process whose calls may be missing: it could not be instrumented."""

    pid: int
    path: str
    why: str


class ChildGate:
    """The children of one run: gate them, instrument the ones that exec the traced file,
    let every one go on. `instrument(session)` loads the agent into a stopped process and
    returns why it failed (None: every site attached)."""

    def __init__(
        self,
        device: Any,
        traced: os.stat_result,
        instrument: Callable[[Any], str | None],
        in_run: Callable[[int], bool],
    ) -> None:
        self._device = device
        self._traced = (traced.st_dev, traced.st_ino)
        self._instrument = instrument
        self._in_run = in_run
        self._pids: set[int] = set()
        self._sessions: list[Any] = []
        self._queue: queue.Queue[Any] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._on_child = self._report  # one object: `off` finds what `on` registered
        self.followed: list[FollowedProcess] = []
        self.missed: list[MissedProcess] = []

    def start(self, pid: int, session: Any) -> None:
        """Follow the children of process `pid` (stopped, `session` attached to it)."""
        self._pids.add(pid)
        self._device.on("child-added", self._on_child)
        self._worker = threading.Thread(target=self._work, name="uprobe-children", daemon=True)
        self._worker.start()
        session.enable_child_gating()

    def _report(self, child: Any) -> None:
        self._queue.put(child)

    def _work(self) -> None:
        while (child := self._queue.get()) is not None:
            if self._ours(child):
                self._adopt(child)

    def _ours(self, child: Any) -> bool:
        """One of this run's processes (another run of this pytest process may follow
        children at the same time: the device reports both runs' children). An exec'd
        child names itself as its parent, and its forker may be gone: the run's cgroup or
        process group says."""
        pid = int(child.pid)
        with self._lock:
            known = pid in self._pids or child.parent_pid in self._pids
            if known or _parent(pid) in self._pids or self._in_run(pid):
                self._pids.add(pid)
                return True
        return False

    def _adopt(self, child: Any) -> None:
        pid, origin = int(child.pid), str(child.origin)
        path = _exe(pid)
        instrumented = False
        try:
            session = self._device.attach(pid)
            self._sessions.append(session)
            session.enable_child_gating()
            if self._runs_traced_file(pid):
                why = self._instrument(session)
                if why is not None:
                    self.missed.append(MissedProcess(pid, path, why))
                instrumented = why is None
        except Exception as exc:  # noqa: BLE001  (a process gone meanwhile, or refused)
            if self._runs_traced_file(pid):
                self.missed.append(MissedProcess(pid, path, f"{type(exc).__name__}: {exc}"))
        finally:
            self.followed.append(FollowedProcess(pid, origin, path, instrumented))
            with contextlib.suppress(Exception):
                self._device.resume(pid)

    def _runs_traced_file(self, pid: int) -> bool:
        try:
            st = os.stat(f"/proc/{pid}/exe")
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._traced

    def stop(self) -> bool:
        """No more following: children still held are let go, the sessions detached (a
        process left running keeps its hooks' code but counts no more: the run's gate is
        closed before this). False when it was stopped already."""
        if self._stopped:
            return False
        self._stopped = True
        with contextlib.suppress(Exception):
            self._device.off("child-added", self._on_child)
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        with contextlib.suppress(Exception):
            for child in self._device.enumerate_pending_children():
                if self._ours(child):
                    with contextlib.suppress(Exception):
                        self._device.resume(child.pid)
        sessions, self._sessions = self._sessions, []
        for session in sessions:
            with contextlib.suppress(Exception):
                session.detach()
        return True


def _parent(pid: int) -> int:
    """The parent of `pid` (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return "?"
