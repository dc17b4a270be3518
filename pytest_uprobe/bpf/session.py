"""Load a program for a plan, attach it for one process, collect what it saw, detach.

bcc itself is loaded lazily, through `bcc.load_bcc`: the pytest entry point loads in every
pytest run of the environment and must never fail for want of bcc.
"""

from __future__ import annotations

import atexit
import ctypes as ct
import gc
import os
import platform
import re
import signal
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import PrerequisiteError
from ..plan import ProbePlan, Site, SiteKind
from ..rawevents import EVENT_SIZE, RawEvents
from . import btf, headers, program
from .bcc import load_bcc

POLL_MS = 2  # how long `finish` may wait for the poller to notice it should stop
FLUSH_BYTES = 1 << 16  # events (about 400) the poller gathers before handing them on


def _set_kernel_source() -> None:
    headers.export_kernel_source(headers.kernel_source())


def _kernel_has_uprobe_multi() -> bool:
    """uprobe_multi links (one link, many addresses, a cookie each) came in Linux 6.6."""
    numbers = re.findall(r"\d+", platform.release())[:2]
    return len(numbers) == 2 and (int(numbers[0]), int(numbers[1])) >= (6, 6)


class _Loaded:
    """One compiled and loaded program of one capacity. Runs borrow it from the pool, one at a
    time: its maps are reset, its site table rewritten and its ring buffer drained for each."""

    def __init__(self, bcc: ModuleType, capacity: int) -> None:
        self.bcc = bcc
        self.capacity = capacity
        self.pid = os.getpid()
        self.sink: RawEvents | None = None  # where the events of the current run go
        self.multi: bool | None = None  # uprobe_multi links work here; None: not tried yet
        self.links: list[int] = []  # uprobe_multi link fds of the current run
        self.linked = False  # a link was made once: the kernel supports them
        self.fork_tracepoints = False  # follow_fork/follow_free attached: a run follows
        self.stop_event: bytes | None = None  # the perf uprobe of `stop_at_entry`, if attached
        self.generation = 0  # the current run's number, in its links' cookies (see `reset`)
        self.bpf: Any = None
        self._compile(per_site_functions=not _kernel_has_uprobe_multi())

    def _compile(self, *, per_site_functions: bool) -> None:
        self.per_site_functions = per_site_functions
        text = program.source(self.capacity, per_site_functions)
        self.bpf = self.bcc.BPF(text=text.encode())
        try:
            self.bpf[b"events"].open_ring_buffer(self._on_event)
        except BaseException:
            self.unload()
            raise

    def _on_event(self, _ctx: Any, data: Any, size: int) -> int:
        # No object per event here: the poller shares the GIL with everything else.
        sink = self.sink
        if sink is not None:
            if size == EVENT_SIZE:
                sink.records += _string_at(data, size)
            else:
                sink.add(_string_at(data, size))
        return 0

    def load(self, count: int) -> None:
        """Load what `count` sites need (BCC keeps them: a reused program loads nothing):
        the one cookie-indexed function uprobe_multi links attach, else one per site."""
        if self.multi is None:
            try:
                _interruptible(
                    self.bpf.load_func,
                    program.ANY_SITE.encode(),
                    self.bcc.BPF.KPROBE,
                    None,
                    BPF_TRACE_UPROBE_MULTI,
                )
                self.multi = True
            except Exception:  # a kernel before 6.6: one perf uprobe per site
                self.multi = False
        if not self.multi:
            self._load_each(count)
        self._link_copy_more()

    def _link_copy_more(self) -> None:
        """The tail call that runs a site's copies past the first program.STEP, loaded as
        the functions that call it are (a program array takes programs of one kind)."""
        extra = (None, BPF_TRACE_UPROBE_MULTI) if self.multi else ()
        more = _interruptible(self.bpf.load_func, program.COPY_MORE.encode(),
                              self.bcc.BPF.KPROBE, *extra)  # fmt: skip
        self.bpf[b"more_copies"][ct.c_int(0)] = ct.c_int(more.fd)

    def _load_each(self, count: int) -> None:
        if not self.per_site_functions:  # links turned out not to work: build the wrappers
            self.unload()
            self._compile(per_site_functions=True)
        for number in range(count):
            _interruptible(
                self.bpf.load_func, program.function_name(number).encode(), self.bcc.BPF.KPROBE
            )
        self._link_copy_more()

    def follow(self, root: int | None) -> None:
        """Count only `root` and the processes it and its descendants fork, tracked by two
        raw tracepoints attached for the run (None: detach them, stop following; the
        links' pid filter decides alone)."""
        tracepoints = (
            (b"sched_process_fork", program.FOLLOW_FORK),
            (b"sched_process_free", program.FOLLOW_FREE),
        )
        if self.fork_tracepoints:
            self.bpf[b"follow"][ct.c_int(0)] = program.CFollow()  # off first
            self.fork_tracepoints = False
            for tracepoint, _ in tracepoints:
                self.bpf.detach_raw_tracepoint(tp=tracepoint)
            self.bpf[b"tgids"].clear()
        if root is None:
            return
        config = program.CFollow(on=1)
        config.pid_offset, config.tgid_offset = btf.struct_offsets("task_struct", ("pid", "tgid"))
        self.bpf[b"tgids"][ct.c_uint32(root)] = ct.c_uint8(1)
        self.bpf[b"follow"][ct.c_int(0)] = config
        self.fork_tracepoints = True
        for tracepoint, function in tracepoints:
            self.bpf.attach_raw_tracepoint(tp=tracepoint, fn_name=function.encode())

    def attach(
        self,
        plan: ProbePlan,
        pid: int,
        record: bool,
        path: str | None = None,
        semaphores: bool | None = None,
    ) -> None:
        """Attach the sites of `plan` (only the entries when not recording) for process `pid`
        (0: every process; a BPF-side filter decides), through `path` (default: the plan's
        binary; a /proc/self/fd/N path pins the very file that was resolved). `semaphores`:
        only the sites with a USDT semaphore (True), only those without (False), all (None)."""
        path_bytes = (path or str(plan.binary.path)).encode()
        wanted = [
            (number, site)
            for number, site in enumerate(plan.sites)
            if (record or site.kind.starts_a_call)
            and (semaphores is None or bool(site.semaphore) == semaphores)
        ]
        if not wanted:
            return
        if self.multi:
            try:
                self._attach_links(plan, wanted, pid, path_bytes)
                return
            except OSError:
                self.detach()
                if self.linked:
                    raise  # links worked before: this is about these sites, not the kernel
                self.multi = False  # the kernel refused the link type: perf uprobes from now on
                self._load_each(len(plan.sites))
        self._attach_perf(plan, wanted, pid, path_bytes)

    def _attach_links(
        self, plan: ProbePlan, wanted: list[tuple[int, Site]], pid: int, path: bytes
    ) -> None:
        prog_fd = self.bpf.load_func(program.ANY_SITE.encode(), self.bcc.BPF.KPROBE).fd
        for returns in (False, True):
            chosen = [(n, s) for n, s in wanted if (s.kind is SiteKind.URETPROBE) == returns]
            if chosen:
                offsets = [self._file_offset(plan, path, s.address) for _, s in chosen]
                cookies = [n | self.generation << 32 for n, _ in chosen]
                # A USDT semaphore: the kernel increments it in the process while the
                # probe is attached, and decrements it on detach.
                semaphores = [s.semaphore or 0 for _, s in chosen]
                self.links.append(
                    _link_uprobe_multi(prog_fd, path, offsets, cookies, pid, returns, semaphores)
                )
        self.linked = True

    def _file_offset(self, plan: ProbePlan, path: bytes, address: int) -> int:
        known: dict[int, int] = plan.binary.memo("file_offsets")  # address -> file offset
        offset = known.get(address)
        if offset is None:
            _, offset = self.bpf._check_path_symbol(path, b"", address, -1, 0)
            known[address] = offset
        return int(offset)

    def _attach_perf(
        self, plan: ProbePlan, wanted: list[tuple[int, Site]], pid: int, path: bytes
    ) -> None:
        for number, site in wanted:
            if site.semaphore:
                self._attach_perf_semaphore(number, site, pid, path)
                continue
            attach = (
                self.bpf.attach_uretprobe
                if site.kind is SiteKind.URETPROBE
                else self.bpf.attach_uprobe
            )
            attach(
                name=path,
                addr=site.address,
                fn_name=program.function_name(number).encode(),
                pid=pid or -1,
            )

    def stop_at_entry(self, plan: ProbePlan, pid: int, path: str | None) -> None:
        """A uprobe at the binary's entry point, for process `pid` only, that stops it."""
        path_bytes = (path or str(plan.binary.path)).encode()
        bpf = self.bpf
        function = bpf.load_func(program.STOP_AT_ENTRY.encode(), self.bcc.BPF.KPROBE)
        entry = int(plan.binary.elf["e_entry"])
        checked, address = bpf._check_path_symbol(path_bytes, b"", entry, pid, 0)
        event = bpf._get_uprobe_evname(b"p", checked, address, pid)
        attach = _attach_uprobe_with_counter(self.bcc.lib)
        fd = attach(function.fd, 0, event, checked, address, pid, 0)
        if fd < 0:
            raise OSError(ct.get_errno(), f"uprobe at the entry point {entry:#x}")
        bpf._add_uprobe_fd(event, fd)  # `detach` closes it, whatever happens
        self.stop_event = event

    def unstop(self) -> None:
        event, self.stop_event = self.stop_event, None
        if event is not None and event in self.bpf.uprobe_fds:
            self.bcc.lib.bpf_close_perf_event_fd(self.bpf.uprobe_fds[event])
            self.bpf._del_uprobe_fd(event)

    def _attach_perf_semaphore(self, number: int, site: Site, pid: int, path: bytes) -> None:
        """A perf uprobe with a reference counter (a USDT semaphore): the kernel increments
        it while attached. BCC's Python attach_uprobe passes no counter, so libbcc's
        bpf_attach_uprobe is called with its seventh argument, ref_ctr_offset; the fd is
        registered with BCC as attach_uprobe would, so `detach` closes it."""
        bpf = self.bpf
        function = bpf.load_func(program.function_name(number).encode(), self.bcc.BPF.KPROBE)
        checked, address = bpf._check_path_symbol(path, b"", site.address, pid or -1, 0)
        event = bpf._get_uprobe_evname(b"p", checked, address, pid or -1)
        attach = _attach_uprobe_with_counter(self.bcc.lib)
        fd = attach(function.fd, 0, event, checked, address, pid or -1, site.semaphore)
        if fd < 0:
            raise OSError(ct.get_errno(), f"uprobe with a USDT semaphore at {site.address:#x}")
        bpf._add_uprobe_fd(event, fd)

    def set_gate(self, value: int) -> None:
        """Open the gate for process `value` (program.ANY_PROCESS: the followed tree), or
        close it (program.GATE_CLOSED): see `gate` in the program's text."""
        self.bpf[b"gate"][ct.c_int(0)] = ct.c_uint32(value)

    def reset(self, plan: ProbePlan, record: bool) -> None:
        """Make the program what a fresh one for `plan` would be: zero counters, this plan's
        sites (every other slot empty) and an empty ring buffer."""
        self.set_gate(program.GATE_CLOSED)
        # Links of earlier runs that a forked process still holds open count nothing now.
        self.generation = self.generation % 0xFFFFFFFF + 1
        self.bpf[b"generation"][ct.c_int(0)] = ct.c_uint32(self.generation)
        self.sink = None
        self.bpf.ring_buffer_consume()  # anything a previous run left is dropped
        counts, lost, table = self.bpf[b"counts"], self.bpf[b"lost"], self.bpf[b"sites"]
        for number in range(self.capacity):
            counts.clearitem(ct.c_int(number))
        lost.clearitem(ct.c_int(0))
        for number in range(self.capacity):
            entry = program.CSite()
            if number < len(plan.sites):
                program.fill_site(entry, plan.sites[number], record)
            table[ct.c_int(number)] = entry
        program.fill_derefs(self.bpf[b"derefs"], plan.sites if record else ())
        self.follow(None)  # a run that follows children turns it on in `attach`

    def detach_later(self, pid: int) -> None:
        """Close this run's links in the background (each close waits ~50 ms for an RCU
        grace period). Only once the gate is closed and process `pid` is reaped: its links
        then count nothing; `join_detaches` waits for them."""
        links, self.links = self.links, []
        if links:
            closer = threading.Thread(target=_close_all, args=(links,), name="uprobe-detach")
            closer.start()
            with _pending_lock:
                _pending.append((pid, closer))

    def detach(self) -> None:
        """Close every link and perf fd this program is attached through.

        Each close waits for the kernel's RCU grace periods (tens of ms per link, ~100 ms per
        perf uprobe, serialized by the kernel): links close side by side, in threads.
        BCC's own detach also writes to tracefs' uprobe_events, which perf-PMU probes never
        used (and which may not be mounted): closing the perf fd is what detaches them."""
        links, self.links = self.links, []
        _close_all(links)
        for name, fd in list(self.bpf.uprobe_fds.items()):
            self.bcc.lib.bpf_close_perf_event_fd(fd)
            self.bpf._del_uprobe_fd(name)

    def unload(self) -> None:
        bpf, self.bpf = self.bpf, None
        if bpf is None:
            return
        self.sink = None
        if os.getpid() != self.pid:
            return  # a forked child: the program and its probes are the parent's
        self.bpf = bpf
        try:
            self.detach()
        finally:
            self.bpf = None
            bpf.cleanup()


_frozen = 0  # runs recording now, which keep the collector off what existed before them
_frozen_lock = threading.Lock()


def _hold_garbage_collection() -> None:
    """While events pour in, a full collection would walk every object the process holds
    (a test session's plans and DWARF): long enough for the ring buffer to overflow. Move
    what exists now out of the collector's way until the run ends."""
    global _frozen
    with _frozen_lock:
        if _frozen == 0:
            gc.freeze()
        _frozen += 1


def _release_garbage_collection() -> None:
    global _frozen
    with _frozen_lock:
        _frozen -= 1
        if _frozen == 0:
            gc.unfreeze()


def _close_all(links: list[int]) -> None:
    """Close link fds side by side: each close waits for the kernel's grace periods."""
    closers = [threading.Thread(target=os.close, args=(fd,)) for fd in links[1:]]
    for closer in closers:
        closer.start()
    try:
        if links:
            os.close(links[0])
    finally:
        for closer in closers:
            closer.join()


def _exists(pid: int) -> bool:
    """Whether process `pid` exists (also as a zombie not yet reaped, or a process that
    took a reaped one's pid: either way detaching at once is the safe choice)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# Links of finished runs still closing in the background: (the run's pid, its closer).
_pending: list[tuple[int, threading.Thread]] = []
_pending_lock = threading.Lock()


def join_detaches(pid: int | None = None) -> None:
    """Wait until the links of finished runs are closed: those of process `pid` (before a
    new run attaches for a pid the kernel reused), or all of them (None)."""
    with _pending_lock:
        chosen = [(p, t) for p, t in _pending if pid is None or p == pid]
        for entry in chosen:
            _pending.remove(entry)
    for _, closer in chosen:
        closer.join()


_string_at = ct.string_at

BPF_LINK_CREATE = 28
BPF_TRACE_UPROBE_MULTI = 48
BPF_F_UPROBE_MULTI_RETURN = 1
_SYS_BPF = 321  # x86-64


class _UprobeMultiAttr(ct.Structure):
    """The `link_create` member of union bpf_attr, with its `uprobe_multi` part."""

    _fields_ = [
        ("prog_fd", ct.c_uint32),
        ("target_fd", ct.c_uint32),
        ("attach_type", ct.c_uint32),
        ("flags", ct.c_uint32),
        ("path", ct.c_uint64),
        ("offsets", ct.c_uint64),
        ("ref_ctr_offsets", ct.c_uint64),
        ("cookies", ct.c_uint64),
        ("cnt", ct.c_uint32),
        ("multi_flags", ct.c_uint32),
        ("pid", ct.c_uint32),
        ("pad", ct.c_uint32),
    ]


_libc: Any = None


def _attach_uprobe_with_counter(lib: Any) -> Any:
    """libbcc's `int bpf_attach_uprobe(int progfd, enum bpf_probe_attach_type, const char
    *ev_name, const char *binary_path, uint64_t offset, pid_t pid, uint32_t ref_ctr_offset)`,
    declared with all seven arguments (BCC's Python declares six)."""
    prototype = ct.CFUNCTYPE(
        ct.c_int, ct.c_int, ct.c_int, ct.c_char_p, ct.c_char_p, ct.c_ulonglong, ct.c_int,
        ct.c_uint32, use_errno=True,
    )  # fmt: skip
    return prototype(("bpf_attach_uprobe", lib))


def _link_uprobe_multi(
    prog_fd: int,
    path: bytes,
    offsets: list[int],
    cookies: list[int],
    pid: int,
    returns: bool,
    semaphores: list[int] | None = None,
) -> int:
    """One BPF link attaching `prog_fd` at every file offset of `path`, for process `pid` only;
    each offset's cookie is its site number and run's number. Raises OSError if the kernel
    refuses."""
    global _libc
    if _libc is None:
        _libc = ct.CDLL(None, use_errno=True)
        _libc.syscall.restype = ct.c_long
    count = len(offsets)
    offset_array = (ct.c_uint64 * count)(*offsets)
    cookie_array = (ct.c_uint64 * count)(*cookies)
    path_buffer = ct.create_string_buffer(path)
    semaphore_array = (ct.c_uint64 * count)(*semaphores) if semaphores and any(semaphores) else None
    attr = _UprobeMultiAttr(
        prog_fd=prog_fd,
        attach_type=BPF_TRACE_UPROBE_MULTI,
        path=ct.addressof(path_buffer),
        offsets=ct.addressof(offset_array),
        cookies=ct.addressof(cookie_array),
        ref_ctr_offsets=ct.addressof(semaphore_array) if semaphore_array is not None else 0,
        cnt=count,
        multi_flags=BPF_F_UPROBE_MULTI_RETURN if returns else 0,
        pid=pid,
    )
    fd = int(
        _libc.syscall(
            ct.c_long(_SYS_BPF),
            ct.c_long(BPF_LINK_CREATE),
            ct.byref(attr),
            ct.c_long(ct.sizeof(attr)),
        )
    )
    if fd < 0:
        errno = ct.get_errno()
        raise OSError(errno, f"uprobe_multi link: {os.strerror(errno)}")
    return fd


# Loaded programs not in use, by capacity: the cache that makes every run after the first
# skip the compiler. Keyed by shape only (the capacity, an int); a program's text depends on
# nothing else. Per process: a forked child (a pytest-xdist worker started by fork, say)
# starts with an empty pool, and every program is unloaded when the interpreter exits.
_IDLE_PER_CAPACITY = 2
_idle: dict[int, list[_Loaded]] = {}
_idle_pid = os.getpid()
_idle_lock = threading.Lock()


def _acquire(bcc: ModuleType, capacity: int) -> _Loaded:
    global _idle_pid
    with _idle_lock:
        if _idle_pid != os.getpid():
            _idle.clear()
            _idle_pid = os.getpid()
        idle = _idle.get(capacity, [])
        while idle:
            loaded = idle.pop()
            if loaded.bcc is bcc and loaded.bpf is not None:
                return loaded
            loaded.unload()
    return _Loaded(bcc, capacity)


def _give_back(loaded: _Loaded) -> None:
    """Return a detached program to the pool, or unload it when the pool has enough."""
    loaded.sink = None
    with _idle_lock:
        if loaded.pid == os.getpid() == _idle_pid:
            idle = _idle.setdefault(loaded.capacity, [])
            if len(idle) < _IDLE_PER_CAPACITY:
                idle.append(loaded)
                return
    loaded.unload()


def release_programs() -> None:
    """Unload every cached program (at interpreter exit, and for tests)."""
    join_detaches()
    with _idle_lock:
        programs = [p for idle in _idle.values() for p in idle]
        _idle.clear()
    for loaded in programs:
        loaded.unload()


atexit.register(release_programs)


STOP_TIMEOUT = 10.0  # seconds a released process may take to reach its entry point


def _wait_stopped(pid: int, timeout: float) -> bool | None:
    """True once `pid` is stopped, False if it ended first, None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        state = stat.rsplit(")", 1)[1].split()[0]
        if state in ("T", "t"):
            return True
        if state in ("Z", "X"):
            return False
        time.sleep(0.0005)
    return None


def _interruptible(load: Any, *args: Any) -> Any:
    """Call `load` again when the verifier gave up because a signal arrived (EAGAIN): a
    SIGCHLD from a finished subprocess of the test is enough to interrupt a long load."""
    for attempt in range(6):
        try:
            return load(*args)
        except Exception as exc:
            if "Resource temporarily unavailable" not in str(exc) or attempt == 5:
                raise
            time.sleep(0.01 * 2**attempt)
    raise AssertionError("unreachable")


class Session:
    """One loaded program, attached to one process. Safe to close more than once.

    The program comes from a per-process pool keyed by its capacity, so only the first run
    of a shape compiles; `close` detaches every probe and gives the program back.
    `record=False` counts calls in the kernel and sends no event: only entry sites attach.
    """

    def __init__(
        self, plan: ProbePlan, *, record: bool = True, follow_children: bool = False
    ) -> None:
        self.plan = plan
        self.record = record
        self.follow_children = follow_children
        self.events = RawEvents()
        self.compile_seconds = 0.0
        self._program: _Loaded | None = None
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        self._deferred: tuple[int, str | None] | None = None  # see attach(before_exec=True)
        self.pid = 0  # the process attached for
        if record:
            program.check_deref_room(plan)
        bcc = load_bcc()
        _set_kernel_source()
        capacity = program.capacity(len(plan.sites))
        started = time.perf_counter()
        try:
            self._program = _acquire(bcc, capacity)
            self._program.load(len(plan.sites))
        except Exception as exc:
            self._discard()
            self.close()
            raise PrerequisiteError(
                "a BPF program the kernel accepts",
                f"BCC could not build or load it: {exc}",
                "run `pytest-uprobe doctor` to see which prerequisite is missing",
            ) from None
        self.compile_seconds = time.perf_counter() - started
        try:
            self._program.reset(plan, record)
        except BaseException:
            self._discard()
            raise
        self._program.sink = self.events

    @property
    def _bpf(self) -> Any:
        return self._program.bpf if self._program is not None else None

    def attach(self, pid: int, *, path: str | None = None, before_exec: bool = False) -> None:
        """Attach for process `pid` (and, with follow_children, every process it forks),
        through `path` if given (see _Loaded.attach). `before_exec`: the process has not
        exec'd the binary yet; then call `started` once it is released."""
        assert self._program is not None
        join_detaches(pid)  # a finished run's links for this very pid must not count too
        self.pid = pid
        if self.follow_children:
            self._program.follow(pid)
        # The kernel places a USDT semaphore (a uprobe's reference counter) in the first
        # writable mapping of the file that covers its file offset. Before the dynamic
        # loader write-protects the RELRO segment, that can be the RELRO segment's last
        # page rather than the data segment sharing that file page: the program would then
        # run with its semaphore 0. So semaphore sites attach once the process stands at
        # its entry point, after the loader (see `started`).
        defer = before_exec and any(site.semaphore for site in self.plan.sites)
        self._deferred = (pid, path) if defer else None
        try:
            self._program.attach(
                self.plan,
                0 if self.follow_children else pid,
                self.record,
                path,
                semaphores=False if defer else None,
            )
            if defer:
                self._program.stop_at_entry(self.plan, pid, path)
        except Exception as exc:
            raise PrerequisiteError(
                "uprobes the kernel accepts",
                f"attaching in {self.plan.binary.path} failed: {exc}",
                "run `pytest-uprobe doctor`; check that the binary is on a local filesystem",
            ) from None
        self._program.set_gate(program.ANY_PROCESS if self.follow_children else pid)
        if self.record:
            _hold_garbage_collection()
            self._poller = threading.Thread(target=self._poll, name="uprobe-events", daemon=True)
            self._poller.start()

    def started(self, timeout: float = STOP_TIMEOUT) -> None:
        """After a process attached `before_exec` was released: wait until it stops at its
        entry point, attach the sites with USDT semaphores, and let it go on."""
        deferred, self._deferred = self._deferred, None
        if deferred is None or self._program is None:
            return
        pid, path = deferred
        stopped = _wait_stopped(pid, timeout)
        try:
            if stopped:
                target = 0 if self.follow_children else pid
                self._program.attach(self.plan, target, self.record, path, semaphores=True)
        except Exception as exc:
            raise PrerequisiteError(
                "uprobes the kernel accepts",
                f"attaching the USDT probes in {self.plan.binary.path} failed: {exc}",
                "run `pytest-uprobe doctor`; check that the binary is on a local filesystem",
            ) from None
        finally:
            self._program.unstop()
            if stopped:
                os.kill(pid, signal.SIGCONT)
        if stopped is None:
            raise PrerequisiteError(
                "uprobes the kernel accepts",
                f"{self.plan.binary.path} did not reach its entry point within {timeout} s, "
                "so its USDT semaphores could not be set",
                "run `pytest-uprobe doctor`",
            )

    def _poll(self) -> None:
        bpf, events = self._bpf, self.events
        while not self._stop.is_set():
            bpf.ring_buffer_poll(POLL_MS)
            events.flush(FLUSH_BYTES)  # pair them while the program runs (events.Pairing)

    def _join_poller(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
            self._poller = None
            _release_garbage_collection()

    def finish(self) -> None:
        """Close the gate, stop polling and take every event still in the ring buffer.
        Called once the process is reaped: its handlers ran in its own context, so every
        event it made is in the ring buffer by then. The links of one process (uprobe_multi)
        close in the background; with follow_children other processes may still be dying
        in a handler, so detaching first waits them out. A process still alive (finished
        without being reaped) detaches at once: its links would go on counting, and its USDT
        semaphores stay set until they close."""
        self._stop.set()
        loaded = self._program
        if loaded is not None:
            loaded.set_gate(program.GATE_CLOSED)
            if self.follow_children or not loaded.multi or (self.pid > 0 and _exists(self.pid)):
                loaded.detach()
            else:
                loaded.detach_later(self.pid)
        self._join_poller()
        if self._bpf is not None and self.record:
            self._bpf.ring_buffer_consume()

    def counts(self) -> list[int]:
        table = self._bpf[b"counts"]
        return [sum(table[ct.c_int(i)]) for i in range(len(self.plan.sites))]

    def lost(self) -> int:
        return int(sum(self._bpf[b"lost"][ct.c_int(0)]))

    def _discard(self) -> None:
        loaded, self._program = self._program, None
        if loaded is not None:
            loaded.unload()

    def close(self) -> None:
        """Detach every probe and give the program back to the pool. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._join_poller()
        self.events = RawEvents()  # what a run's Trace needs is decoded by now
        loaded, self._program = self._program, None
        if loaded is None:
            return
        try:
            loaded.set_gate(program.GATE_CLOSED)
            loaded.detach()
            loaded.follow(None)  # detach the fork tracepoints of a run that followed
        except BaseException:
            loaded.unload()
            raise
        if self.follow_children and not loaded.multi:
            # Perf uprobes carry no run number (see `generation` in the program): one a
            # forked process holds open, attached for every process, would count again.
            loaded.unload()
            return
        _give_back(loaded)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
