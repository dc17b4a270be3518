"""The in-process engine: Frida instruments the traced process itself (no root, no kernel
headers, no trap per call). The only module that imports frida, and only when a run asks
for this engine: the pytest entry point loads everywhere and must never need it.

A run: spawn the target suspended (Frida's own spawn: the process stops before its first
instruction of user code), map a shared file into it, attach one C callback per site (see
agent.py), resume, drain the ring and hand its events on (RawEvents, to the run's consumer:
the Tracer pairs them into calls) while the program runs, then read the exact counters from
the mapping after the process has been reaped.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import ctypes as ct
import dataclasses
import fcntl
import mmap
import os
import signal
import struct
import tempfile
import termios
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from ..bpf import program
from ..dwarf.locations import Cfa, Piece
from ..errors import PrerequisiteError, UnreadableFunction, refuse
from ..launch import Finished, Process, _Run, cgroup_root, watchdog
from ..plan import AREA, WORDS, Coverage, LeftOut, ProbePlan, SiteKind
from ..rawevents import EVENT_SIZE, RawEvents
from . import agent, placement
from .children import ChildGate
from .sse import with_sse_returns

_SHM = "/dev/shm"  # noqa: S108  (used through mkstemp only)
RING_BYTES = 64 << 20  # a full ring makes the target wait for the drain, then drop
DRAIN_SECONDS = 0.02  # between drains, unless a quarter of the ring was full
PARSE_BYTES = 1 << 20  # records parsed between two looks at the ring (about 6,000 events)
FLUSH_BYTES = 1 << 16  # events (about 400) gathered before the consumer gets them
OUTPUT_GRACE = 2.0  # seconds to wait, after a kill, for the pipes to close
HAND_OVER_SECONDS = 0.5  # at most this long for the readers to take what the pipes hold
POLL_SECONDS = 0.01  # how often children="wait" looks whether the run's processes are gone
_ENDED = (os.CLD_EXITED, os.CLD_KILLED, os.CLD_DUMPED)  # waitid's si_code of a process gone
# A ring record: u32 bytes, u32 kind (agent.RECORD_HEADER), then the event as the BPF side
# sends it (rawevents.EVENT), then a big event's copied bytes.
_RECORD_HEAD = struct.Struct("<Q")  # size | kind << 32, one read
_PLAIN_RECORD = agent.RECORD_HEADER + EVENT_SIZE  # an event without copied bytes, kind 0
# A site's kind in an error, as this engine hooks it (a leaf's return is Frida's leave hook).
_SITE_WORDS = {
    SiteKind.ENTRY: "entry",
    SiteKind.RETURN: "return (ret instruction)",
    SiteKind.URETPROBE: "return (leave hook)",
    SiteKind.TAIL_CALL: "tail call",
    SiteKind.INLINED: "inlined copy's entry",
    SiteKind.LINE: "source line",
    SiteKind.USDT: "USDT",
}


def load_frida() -> ModuleType:
    try:
        import frida
    except ImportError:
        raise PrerequisiteError(
            "the Python package frida (the in-process engine)",
            "it is not installed in this environment",
            "pip install 'pytest-uprobe[inprocess]', or use --uprobe-backend=bpf",
        ) from None
    return frida


def available() -> bool:
    """Can this environment run the in-process engine at all (frida importable)?"""
    try:
        load_frida()
    except PrerequisiteError:
        return False
    return True


class SharedBuffer:
    """The file both sides map: header, site table, counters, ring."""

    def __init__(
        self, plan: ProbePlan, record: bool, capacity: int = RING_BYTES, *, keep_fd: bool = False
    ) -> None:
        nsites = len(plan.sites)
        sites_offset = agent.HEADER_SIZE
        counts_offset = sites_offset + nsites * ct.sizeof(agent.CSite)
        counts_offset = (counts_offset + 63) & ~63
        ring_offset = (counts_offset + 8 * nsites + 4095) & ~4095
        self.size = ring_offset + capacity
        # mkstemp: a fresh name only this user can open (mode 0600); tmpfs when there is one.
        directory = _SHM if os.access(_SHM, os.W_OK) else None
        fd, self.path = tempfile.mkstemp(prefix=f"pytest-uprobe-{os.getpid()}-", dir=directory)
        # keep_fd: processes exec'd later (follow_children) open it as /proc/<pid>/fd/<fd>,
        # once its name is gone.
        self.fd = -1
        try:
            os.ftruncate(fd, self.size)
            self.map = mmap.mmap(fd, self.size)
        finally:
            if keep_fd:
                self.fd = fd
            else:
                os.close(fd)
        self.header = agent.Header.from_buffer(self.map)
        self.header.magic = agent.MAGIC
        self.header.capacity = capacity
        self.header.ring_offset = ring_offset
        self.header.sites_offset = sites_offset
        self.header.counts_offset = counts_offset
        self.header.nsites = nsites
        self.counts_offset = counts_offset
        self.sites_offset = sites_offset
        self.ring_offset = ring_offset
        self.capacity = capacity
        for number, site in enumerate(plan.sites):
            entry = agent.CSite.from_buffer(
                self.map, sites_offset + number * ct.sizeof(agent.CSite)
            )
            program.fill_site(entry, site, record)
            extent = WORDS
            for deref in site.derefs:
                extent = max(extent, (deref.dst & (AREA // 2 - 1)) + min(deref.size, AREA // 2))
            entry.extent = min(extent, AREA)
            del entry
        self.nsites = nsites

    def set_cfa(self, site: int, cfa: Cfa) -> None:
        entry = agent.CSite.from_buffer(self.map, self.sites_offset + site * ct.sizeof(agent.CSite))
        entry.cfa_reg = cfa.reg
        entry.cfa_offset = cfa.offset
        del entry

    def set_pieces(self, site: int, pieces: tuple[Piece, ...]) -> None:
        entry = agent.CSite.from_buffer(self.map, self.sites_offset + site * ct.sizeof(agent.CSite))
        for i, piece in enumerate(pieces):
            entry.pieces[i].reg = piece.reg
            entry.pieces[i].offset = piece.offset
            entry.pieces[i].size = piece.size
            entry.pieces[i].memory = int(piece.memory)
        del entry

    def counts(self) -> list[int]:
        raw = self.map[self.counts_offset : self.counts_offset + 8 * self.nsites]
        return list(ct.cast(ct.c_char_p(raw), ct.POINTER(ct.c_uint64))[: self.nsites])

    def used(self) -> int:
        """Bytes published and not yet taken."""
        return int(self.header.head - self.header.tail)

    def drain(self, sink: list[bytes] | collections.deque[bytes]) -> int:
        """Copy every published record out of the ring into `sink` (raw: parsing them
        comes after, so that the ring is given back at memcpy speed and the target never
        waits on Python's parsing); the number of bytes taken."""
        header = self.header
        head = header.head
        tail = header.tail
        if tail >= head:
            return 0
        base, capacity = self.ring_offset, self.capacity
        start, end = tail % capacity, head % capacity
        if start < end or end == 0:
            sink.append(self.map[base + start : base + (end or capacity)])
        else:  # the published bytes wrap around: records never straddle the end
            sink.append(self.map[base + start : base + capacity])
            sink.append(self.map[base : base + end])
        header.tail = head
        return head - tail

    @property
    def reopen_path(self) -> str:
        """A path another process of this user can open the mapping's file by, its name gone."""
        assert self.fd >= 0
        return f"/proc/{os.getpid()}/fd/{self.fd}"

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(BufferError, ValueError):
            del self.header
            self.map.close()


def take_records(blob: bytes, start: int, limit: int, sink: RawEvents) -> int:
    """Add the events of the ring records in `blob` from byte `start` to `sink`, in order,
    as the BPF side's ring buffer delivers them (skip records left out), until at least
    `limit` bytes are taken or the blob ends; where the next record starts."""
    records, data = sink.records, sink.data
    view = memoryview(blob)
    head = _RECORD_HEAD.unpack_from
    plain, header = _PLAIN_RECORD, agent.RECORD_HEADER
    pos, end = start, min(len(blob), start + limit)
    while pos < end:
        (word,) = head(blob, pos)
        if word == plain:  # kind 0, no copied bytes: nearly every record
            records += view[pos + header : pos + plain]
            pos += plain
            continue
        size = word & 0xFFFFFFFF
        if size < header or pos + size > len(blob):
            raise RuntimeError(
                f"the in-process ring holds a record of {size} bytes at {pos} of {len(blob)}: "
                "the shared mapping was overwritten (this is a bug of pytest-uprobe)"
            )
        if word >> 32 == 0:
            if size > plain:
                data[len(records) // EVENT_SIZE] = bytes(view[pos + plain : pos + size])
            records += view[pos + header : pos + plain]
        pos += size
    return pos


class InprocessRun:
    """One traced process under the in-process engine. `run` returns how it ended;
    `events`, `counts()` and `lost()` hold what it recorded. Safe to close more than once."""

    def __init__(
        self, plan: ProbePlan, *, record: bool = True, follow_children: bool = False
    ) -> None:
        self.plan = with_sse_returns(plan)  # decode events with this one: it reads xmm too
        self.record = record
        self.follow_children = follow_children
        self.children: ChildGate | None = None  # follow_children: the processes followed
        # The events as they are parsed, in the ring's order; set `events.consumer` (the
        # Tracer sets an events.Pairing) to have them handed on while the program runs.
        self.events = RawEvents()
        self._records: collections.deque[bytes] = collections.deque()  # copied, not parsed
        self._parsed = 0  # bytes of the first of `_records` already parsed
        self.compile_seconds = 0.0
        self.pid: int | None = None
        self._frida = load_frida()
        self._buffer = SharedBuffer(self.plan, record, keep_fd=follow_children)
        self._session: Any = None
        self._reaped = False
        self._killed = False
        self._stop = threading.Event()
        self._drainer: threading.Thread | None = None
        self._status: Any = None
        self._exited = threading.Event()
        self._run: _Run | None = None  # its cgroup and process group (see _contain)
        self._exit_seen = 0.0  # time.monotonic() when the waiter saw the program exit
        self._forgotten = True

    def run(
        self,
        executable: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None,
        cwd: str | os.PathLike[str] | None,
        input: bytes | None,
        timeout: float | None,
        children: str = "kill",
    ) -> Finished:
        """Run the program to its end, contained as the BPF engine's runs are (launch.py): a
        cgroup of its own where the hierarchy is writable, its own process group (Frida's
        spawn makes the target a session leader), the watchdog that kills the run if this
        process dies; `children` says what happens to processes that outlive it."""
        frida = self._frida
        device = frida.get_local_device()
        started = time.perf_counter()
        kwargs: dict[str, Any] = {"stdio": "inherit"}
        if env is not None:
            kwargs["envp"] = dict(env)
        if cwd is not None:
            kwargs["cwd"] = os.fspath(cwd)
        dog = watchdog()
        group = cgroup_root().make()
        with _Pipes(input) as pipes:
            try:
                self.pid = pipes.spawn(lambda: device.spawn(executable, argv=list(argv), **kwargs))
            except BaseException as exc:
                if group is not None:
                    _Run(0, group).remove(0)
                if isinstance(exc, frida.ExecutableNotFoundError):
                    raise PrerequisiteError(
                        "an executable file", str(exc), "check the path"
                    ) from None
                raise
            mover = self._contain(group, dog)
            try:
                self._attach(device)
                if self.follow_children:
                    traced = os.stat(executable)
                    self.children = ChildGate(device, traced, self._instrument, self._in_run)
                    self.children.start(self.pid, self._session)
                self._join_mover(mover)  # in its cgroup before its first instruction
            except BaseException:
                self.kill()  # suspended, it would hold the pipes open: end it first
                raise
            self.compile_seconds = time.perf_counter() - started
            self._drainer = threading.Thread(
                target=self._drain, name="uprobe-inprocess", daemon=True
            )
            self._drainer.start()
            self._start_waiter()
            # The timeout is the program's own time, as on the BPF engine: set-up (spawn,
            # agent, hooks) does not count against it.
            deadline = None if timeout is None else time.monotonic() + timeout
            device.resume(self.pid)
            finished = self._wait(deadline, children, pipes)
        self._finish()
        return finished

    def _contain(self, group: Any, dog: Any) -> threading.Thread | None:
        """Register the suspended target with the watchdog at once, and move it into the
        run's cgroup beside the agent's set-up (the move waits for an RCU grace period)."""
        assert self.pid is not None
        self._run = _Run(self.pid, group)
        self._dog = dog
        self._forgotten = False
        dog.send(f"+ {self.pid} {group or ''}")
        if group is None:
            return None
        errors: list[OSError] = []

        def move() -> None:
            try:
                (group / "cgroup.procs").write_text(str(self.pid))
            except OSError as exc:
                errors.append(exc)

        mover = threading.Thread(target=move, name="uprobe-cgroup", daemon=True)
        mover.errors = errors  # type: ignore[attr-defined]
        mover.start()
        return mover

    def _join_mover(self, mover: threading.Thread | None) -> None:
        """Where the target could not be moved, its process group alone holds the run, and
        later runs skip cgroups (as launch.HeldProcess does)."""
        if mover is None:
            return
        mover.join()
        errors = mover.errors  # type: ignore[attr-defined]
        assert self._run is not None
        if errors and self._run.group is not None:
            group = self._run.group
            self._run.remove(0)
            cgroup_root().give_up(f"cannot move a process into {group}: {errors[0]}")
            self._run.group = None

    def _wait(self, deadline: float | None, children: str, pipes: _Pipes) -> Finished:
        """Until the program exits (with children="wait": until every process of the run has
        exited too), or the deadline. Whatever outlives it is killed, or with
        children="leave" handed over to this process's cgroup and left running."""
        assert self._run is not None and self.pid is not None
        run = self._run
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        exited = self._exited.wait(wait)
        timed_out = not exited
        orphans: list[Process] = []
        held = False
        status = 0
        if exited:
            status = self._status_now(False)
            orphans = run.processes()
            held = pipes.held_by([p.pid for p in orphans], self._exit_seen)
            if orphans and children == "wait" and not self._wait_for_children(deadline):
                timed_out = True
                orphans = run.processes() or orphans
        else:
            orphans = [p for p in run.processes() if p.pid != self.pid]
        if children == "leave" and not timed_out:
            run.release()
            pipes.hand_over()
        else:
            self._killed = self._killed or not exited
            run.kill()
        if not exited:
            self._exited.wait()
            status = self._status_now(True)
        stdout, stderr = pipes.collect()
        self._forget()
        return Finished(
            _returncode(status),
            stdout.decode("utf-8", "replace"),
            stderr.decode("utf-8", "replace"),
            timed_out,
            exited=exited,
            orphans=orphans,
            output_held=held,
        )

    def _wait_for_children(self, deadline: float | None) -> bool:
        """Until none of the run's processes is alive (their output keeps being read by
        the pipes' threads); False at the deadline."""
        assert self._run is not None
        while self._run.processes():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)
        return True

    def _forget(self) -> None:
        """The run is over: remove its (empty) cgroup, tell the watchdog."""
        if not self._forgotten and self._run is not None:
            self._forgotten = True
            self._run.remove()
            self._dog.send(f"- {self._run.pgid}")

    def _stop_following(self) -> None:
        """Let every child still held go and detach from the followed processes; a child
        that could not be instrumented makes every count a lower bound naming it."""
        children = self.children
        if children is None or not children.stop():
            return
        for missed in children.missed:
            self._lower_bound_everywhere(
                f"process {missed.pid} ({missed.path})",
                f"a child process of the run could not be instrumented ({missed.why})",
            )

    def _in_run(self, pid: int) -> bool:
        """Process `pid` is in this run's cgroup (or, without one, its process group)."""
        run = self._run
        if run is None:
            return False
        if run.group is not None:
            with contextlib.suppress(OSError):
                return str(pid) in (run.group / "cgroup.procs").read_text().split()
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return False
        return int(stat[2]) == run.pgid

    def _instrument(self, session: Any) -> str | None:
        """Give an exec'd child running the traced file the agent and the same site table
        (it is stopped before its first instruction); why it failed, or None."""
        script = session.create_script(agent.script_source())
        script.load()
        failed = script.exports_sync.setup(*self._setup_args, True, True)
        self._child_scripts.append(script)
        if failed:
            return "; ".join(str(refusal) for refusal in self._refusals(failed))
        return None

    def _attach(self, device: Any) -> None:
        assert self.pid is not None
        self._session = device.attach(self.pid)
        self._child_scripts: list[Any] = []
        script = self._session.create_script(agent.script_source())
        script.load()
        pie = self.plan.binary.elf.header["e_type"] == "ET_DYN"
        placed = placement.hooks(self.plan, self.record)
        self._leave_out(placed.left_out)
        planned = placed.hooks
        for hook in planned:
            if hook.cfa is not None:
                self._buffer.set_cfa(hook.site, hook.cfa)
            if hook.pieces is not None:
                self._buffer.set_pieces(hook.site, hook.pieces)
        wanted = [
            [[h.site, h.returns] if h.kind == "both" else h.site, h.address, h.kind]
            for h in planned
        ]
        # USDT semaphores (a program may skip a probe nobody watches): one more watcher.
        hooked = {self.plan.sites[h.site].function for h in planned}
        semaphores = sorted(
            {
                self.plan.function(s.function).point.semaphore
                for s in self.plan.sites
                if s.semaphore and s.function in hooked
            }
        )
        path = self._buffer.reopen_path if self.follow_children else self._buffer.path
        self._setup_args = (path, self._buffer.size, wanted, pie, semaphores)
        failed = script.exports_sync.setup(*self._setup_args, self.follow_children, False)
        # Both sides have it mapped: its name is no longer needed, and nothing is left
        # in /dev/shm when this process is killed mid-run.
        with contextlib.suppress(OSError):
            os.unlink(self._buffer.path)
        # Every probe a hook failed for, named in one error (not the first alone).
        refuse(self._refusals([(number, why) for number, why in failed or ()]))
        self._script = script

    def _refusals(self, failures: Sequence[tuple[int, str]]) -> list[UnreadableFunction]:
        """One refusal per probe of the sites (by number) the engine cannot hook, each
        naming its first such site."""
        refusals: dict[str, UnreadableFunction] = {}
        for number, why in failures:
            site = self.plan.sites[number]
            function = self.plan.function(site.function)
            if function.probe in refusals:
                continue
            refusals[function.probe] = UnreadableFunction(
                function.probe,
                self.plan.binary.path,
                f"the in-process engine cannot instrument {function.symbol.path} at "
                f"{site.address:#x} ({_SITE_WORDS.get(site.kind, 'its')} site): {why}",
                "use --uprobe-backend=bpf for this probe",
            )
        return list(refusals.values())

    def _lower_bound_everywhere(self, where: str, why: str) -> None:
        """Every probe's count is a lower bound naming `where` (calls there were missed)."""
        plan = copy.copy(self.plan)
        plan.coverage = {probe: _copied(coverage) for probe, coverage in self.plan.coverage.items()}
        for probe in plan.probes:
            plan.coverage_of(probe).left_out.append(LeftOut(where, None, why))
        self.plan = plan

    def _leave_out(self, left_out: dict[int, tuple[int, str]]) -> None:
        """Functions with a site Frida cannot hook run unhooked, as the plan leaves out a
        site no uprobe can take (plan.LeftOut): the count of every probe naming them is a
        lower bound that names the site, and exact comparisons refuse it. A probe left with
        nothing hooked fails before the run, as the plan's refusals do."""
        if not left_out:
            return
        plan = copy.copy(self.plan)  # the plan is shared and cached: its coverage too
        plan.coverage = {probe: _copied(coverage) for probe, coverage in self.plan.coverage.items()}
        for index, (number, why) in left_out.items():
            function, site = plan.functions[index], plan.sites[number]
            where = (
                f"the copy inlined into {function.inlined.describe()}"
                if function.inlined is not None
                else f"the {_SITE_WORDS.get(site.kind, 'a')} site of {function.symbol.path}"
            )
            item = LeftOut(
                where,
                site.address,
                f"cannot be hooked by the in-process engine ({why}); "
                "--uprobe-backend=bpf probes it",
            )
            for probe in function.probes:
                coverage = plan.coverage_of(probe)
                if item not in coverage.left_out:
                    coverage.left_out.append(item)
        wholly = [left_out[indices[0]] for indices in map(plan.functions_of, plan.probes)
                  if indices and all(i in left_out for i in indices)]  # fmt: skip
        refuse(self._refusals(wholly))
        self.plan = plan

    def _start_waiter(self) -> None:
        """Wait for the target's exit in a thread started before it runs: Frida's own child
        watch reaps it too (the target is this process's child), so the status is taken
        with WNOWAIT while the zombie is still there."""
        assert self.pid is not None
        pid = self.pid

        def wait() -> None:
            ready.set()
            # This process traces the target while Frida handles a fork with child gating:
            # a tracer is told of its ptrace stops too (they are Frida's, never the status).
            result = None
            while True:
                try:
                    seen = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
                except ChildProcessError:
                    break  # Frida's child watch reaped it: the agent says how it ended
                if seen is not None and seen.si_code in _ENDED:
                    result = seen
                    break
                time.sleep(POLL_SECONDS / 10)
            self._status = result
            self._exit_seen = time.monotonic()
            self._exited.set()

        self._exited = threading.Event()
        self._status = None
        ready = threading.Event()
        threading.Thread(target=wait, name="uprobe-inprocess-wait", daemon=True).start()
        ready.wait()
        time.sleep(0.001)  # let it enter waitid before the target can run (see docs)

    def _status_now(self, timed_out: bool) -> int:
        """The wait status of the exited target (reaped here, unless Frida's own child
        watch did first)."""
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid or -1, os.WNOHANG)
        self._reaped = True
        result = self._status
        if result is None:
            return self._status_from_agent(timed_out)
        if result.si_code == os.CLD_EXITED:
            return int(result.si_status) << 8
        return int(result.si_status)  # killed or dumped: the signal number

    def _status_from_agent(self, timed_out: bool) -> int:
        """The wait status when Frida's child watch reaped the target first: the agent saw
        the `_exit` (exit(), a return from main) or the `abort` call that ended it, or this
        side killed it (a timeout)."""
        header = self._buffer.header
        if header.exit_how == agent.EXITED:
            return int(header.exit_code) << 8
        if header.exit_how == agent.ABORTING:
            return signal.SIGABRT
        if header.exit_how == agent.FAULTED:
            return int(header.exit_code)  # the signal of the fault it died of
        if timed_out or self._killed:
            return signal.SIGKILL
        raise PrerequisiteError(
            "the exit status of the traced process",
            "Frida's own child watch reaped the process before this side read its status, "
            "and it ended by a signal the agent cannot see (see docs/inprocess.md)",
            "run the test again, or use --uprobe-backend=bpf",
        )

    def _drain(self) -> None:
        """Copy the ring out in large batches and parse what was copied while the program
        runs, as the BPF engine's poller does. A drainer that looks at the ring on every
        pass takes a CPU from the target on a small machine and pulls the ring's header
        line away from it (measured: full mode 20% slower per call): the ring is copied
        when nothing copied is left to parse, or once a quarter of it is full (parsing is
        slower than the target fills it: the ring must not wait on the parser)."""
        buffer, quarter = self._buffer, self._buffer.capacity // 4
        while not self._stop.is_set():
            if not self._records or buffer.used() >= quarter:
                buffer.drain(self._records)
            if self._records:
                self._parse(PARSE_BYTES)
            else:
                self._hand_on(1)  # a trickle of events is paired as it comes, too
                self._stop.wait(DRAIN_SECONDS)

    def _parse(self, limit: int | None = None) -> None:
        """Parse about `limit` bytes of the records copied out (None: all of them) and hand
        the events on to the consumer. A consumer that fails keeps its failure in `events`
        (events.collect raises it), and the run's events are dropped from then on."""
        events, records = self.events, self._records
        if events.failure is not None:
            records.clear()
            return
        budget = limit
        while records and (budget is None or budget > 0):
            blob = records[0]
            start = self._parsed
            try:
                end = take_records(blob, start, len(blob) if budget is None else budget, events)
            except Exception as exc:  # a broken ring: no event of it can be trusted
                events.failure, events.consumer = exc, None
                break
            if budget is not None:
                budget -= end - start
            if end >= len(blob):
                records.popleft()
                self._parsed = 0
            else:
                self._parsed = end
            self._hand_on(FLUSH_BYTES)
        if events.failure is not None:
            events.clear()
            records.clear()

    def _hand_on(self, minimum: int) -> None:
        """Give the consumer the events parsed so far if they fill `minimum` bytes."""
        with contextlib.suppress(Exception):  # kept in events.failure
            self.events.flush(minimum)
        if self.events.failure is not None:
            self.events.clear()

    def _finish(self) -> None:
        # The run is over: processes left running (children="leave") count no more, as the
        # BPF engine closes its gate.
        self._buffer.header.closed = 1
        self._stop_following()
        self._stop.set()
        if self._drainer is not None:
            self._drainer.join()
            self._drainer = None
        self._buffer.drain(self._records)
        self._parse()  # the rest: events.collect hands the consumer what it did not take
        self._detach()

    def _detach(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):
                session.detach()

    def counts(self) -> list[int]:
        return self._buffer.counts()

    def lost(self) -> int:
        return int(self._buffer.header.lost)

    def kill(self) -> None:
        """Kill the program and every process of its run (its cgroup, its process group)."""
        if self._run is not None and not self._forgotten:
            self._killed = True
            self._run.kill()
        elif self.pid is not None and not self._reaped:
            self._killed = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGKILL)

    def close(self) -> None:
        """Kill and reap the target if it still runs, detach, remove the shared file."""
        self._stop.set()
        if self.pid is not None and not self._reaped:
            self.kill()
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self._reaped = True
        elif self._run is not None and not self._forgotten:
            self._run.kill()  # an interrupted wait for children
        self._forget()
        with contextlib.suppress(Exception):
            self._stop_following()
        if self._drainer is not None:
            self._drainer.join()
            self._drainer = None
        self._detach()
        self._buffer.close()


class _Pipes:
    """The target's stdin, stdout and stderr, as subprocess gives them: Frida's own "pipe"
    stdio never closes the target's stdin, so a program that reads to EOF would hang.
    Frida forks the target from this process: for the moment of the spawn, fds 0-2 of
    this process are the pipes (a lock keeps two spawns apart)."""

    _lock = threading.Lock()

    def __init__(self, input: bytes | None) -> None:
        self.input = input
        if input is None:
            self.stdin_read, self.stdin_write = os.open(os.devnull, os.O_RDONLY), -1
        else:
            self.stdin_read, self.stdin_write = os.pipe()
        self.out_read, self.out_write = os.pipe()
        self.err_read, self.err_write = os.pipe()
        self.chunks: dict[int, list[bytes]] = {self.out_read: [], self.err_read: []}
        self.readers: list[threading.Thread] = []
        self.kept = True  # False once collected: read and dropped
        self.handed_over = False  # children="leave": the readers close the pipes at EOF
        self.closed_at: dict[int, float] = {}  # when each pipe read EOF (time.monotonic)

    def __enter__(self) -> _Pipes:
        return self

    def spawn(self, spawn: Any) -> int:
        with self._lock:
            saved = [os.dup(fd) for fd in (0, 1, 2)]
            try:
                for fd, target in zip((self.stdin_read, self.out_write, self.err_write), (0, 1, 2)):
                    os.dup2(fd, target)
                pid = int(spawn())
            finally:
                for target, fd in enumerate(saved):
                    os.dup2(fd, target)
                    os.close(fd)
        for fd in (self.stdin_read, self.out_write, self.err_write):
            os.close(fd)
        self.stdin_read = self.out_write = self.err_write = -1
        for fd in self.chunks:
            reader = threading.Thread(target=self._read, args=(fd,), daemon=True)
            reader.start()
            self.readers.append(reader)
        if self.stdin_write >= 0:
            threading.Thread(target=self._write, daemon=True).start()
        return pid

    def _read(self, fd: int) -> None:
        while chunk := os.read(fd, 65536):
            if self.kept:
                self.chunks[fd].append(chunk)
        self.closed_at[fd] = time.monotonic()
        if self.handed_over:
            os.close(fd)

    def held_by(self, pids: list[int], exited_at: float) -> bool:
        """One of these processes holds the write end of stdout or stderr (one that is gone
        before its fds could be read held it if a pipe closed after the program exited)."""
        names = {f"pipe:[{os.fstat(fd).st_ino}]" for fd in self.chunks}
        gone = False
        for pid in pids:
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                gone = True
                continue
            for fd in fds:
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in names:
                        return True
        if gone:
            for reader in self.readers:
                reader.join(OUTPUT_GRACE)
            return any(at > exited_at for at in self.closed_at.values())
        return False

    def hand_over(self) -> None:
        """Processes left running keep writing to the pipes: the readers go on reading
        (so that they get no SIGPIPE while this process lives) and drop what they read,
        once what the pipes already hold (the program's last output) is read."""
        deadline = time.monotonic() + HAND_OVER_SECONDS
        while any(_pending(fd) for fd in self.chunks) and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(0.005)  # a reader between its read and keeping the chunk
        self.kept = False
        self.handed_over = True

    def _write(self) -> None:
        with contextlib.suppress(OSError):
            view = memoryview(self.input or b"")
            while view:
                view = view[os.write(self.stdin_write, view) :]
        with contextlib.suppress(OSError):
            os.close(self.stdin_write)
        self.stdin_write = -1

    def collect(self) -> tuple[bytes, bytes]:
        """Everything the run wrote (once everything holding the pipes is killed, they
        close; handed over, what was read until then)."""
        if self.kept:
            for reader in self.readers:
                reader.join(OUTPUT_GRACE)
        out, err = b"".join(self.chunks[self.out_read]), b"".join(self.chunks[self.err_read])
        self.kept = False
        return out, err

    def __exit__(self, *exc: object) -> None:
        for fd in (self.stdin_read, self.out_write, self.err_write):
            if fd >= 0:
                os.close(fd)
        if self.handed_over:
            return
        for reader in self.readers:
            reader.join(OUTPUT_GRACE)
        for fd in (self.out_read, self.err_read):
            with contextlib.suppress(OSError):
                os.close(fd)


def _pending(fd: int) -> int:
    """Bytes waiting in a pipe (FIONREAD)."""
    try:
        return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])
    except OSError:
        return 0


def _copied(coverage: Coverage) -> Coverage:
    """A copy of `coverage` whose lists can grow without touching the shared plan's."""
    return dataclasses.replace(
        coverage, **{f.name: list(getattr(coverage, f.name)) for f in dataclasses.fields(coverage)}
    )


def _returncode(status: int) -> int:
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)
