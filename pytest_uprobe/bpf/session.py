"""Load a program for a plan, attach it for one process, collect what it saw, detach.

This is the one module that imports bcc, and it does so lazily: the pytest entry point
loads in every pytest run of the environment and must never fail for want of bcc.
"""

from __future__ import annotations

import ctypes as ct
import importlib
import importlib.util
import os
import struct
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import PrerequisiteError
from ..plan import MAX_PIECES, ProbePlan, SiteKind
from . import headers, program

DEBIAN_BCC = Path("/usr/lib/python3/dist-packages/bcc/__init__.py")
EVENT = struct.Struct(f"<QQII{MAX_PIECES}Q")
_CAP_SYS_ADMIN, _CAP_PERFMON, _CAP_BPF = 21, 38, 39

_bcc: ModuleType | None = None


@dataclass(frozen=True)
class RawEvent:
    ts: int
    cfa: int
    tid: int
    site: int
    words: tuple[int, ...]


def load_bcc() -> ModuleType:
    """bcc from this interpreter's path, else Debian's python3-bpfcc, loaded by file location."""
    global _bcc
    if _bcc is not None:
        return _bcc
    try:
        _bcc = importlib.import_module("bcc")
        if not hasattr(_bcc, "BPF"):  # PyPI's unrelated `bcc` package
            raise ImportError("the installed `bcc` package is not BCC")
    except ImportError:
        if not DEBIAN_BCC.exists():
            raise PrerequisiteError(
                "BCC's Python bindings",
                "`import bcc` failed and Debian's python3-bpfcc is not installed",
                "apt-get install python3-bpfcc",
            ) from None
        spec = importlib.util.spec_from_file_location(
            "bcc", DEBIAN_BCC, submodule_search_locations=[str(DEBIAN_BCC.parent)]
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["bcc"] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules["bcc"]
            raise PrerequisiteError(
                "BCC's Python bindings",
                f"loading {DEBIAN_BCC.parent} failed: {exc}",
                "apt-get install --reinstall python3-bpfcc libbpfcc",
            ) from None
        _bcc = module
    return _bcc


def _capabilities() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def check_prerequisites() -> None:
    """Raise PrerequisiteError naming the first missing piece, with the command that fixes it."""
    caps = _capabilities()
    has = lambda bit: bool(caps >> bit & 1)  # noqa: E731
    if not (has(_CAP_SYS_ADMIN) or (has(_CAP_BPF) and has(_CAP_PERFMON))):
        raise PrerequisiteError(
            "root, or CAP_BPF and CAP_PERFMON",
            "loading BPF programs and attaching uprobes is privileged",
            f"sudo -E {sys.executable} -m pytest --uprobe ...",
        )
    if not Path("/sys/bus/event_source/devices/uprobe").exists():
        raise PrerequisiteError(
            "a kernel with uprobes",
            "/sys/bus/event_source/devices/uprobe is missing (CONFIG_UPROBE_EVENTS off?)",
            "run on a kernel built with CONFIG_UPROBES and CONFIG_UPROBE_EVENTS",
        )
    load_bcc()
    _set_kernel_source()


def _set_kernel_source() -> None:
    source = headers.kernel_source()
    if source is not None:
        os.environ["BCC_KERNEL_SOURCE"] = str(source)


class Session:
    """One loaded program, attached to one process. Safe to close more than once."""

    def __init__(self, plan: ProbePlan) -> None:
        self.plan = plan
        self.events: list[RawEvent] = []
        self.compile_seconds = 0.0
        self._bpf: Any = None
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        bcc = load_bcc()
        _set_kernel_source()
        capacity = program.capacity(len(plan.sites))
        started = time.perf_counter()
        try:
            self._bpf = bcc.BPF(text=program.source(capacity).encode())
            for number in range(len(plan.sites)):
                self._bpf.load_func(program.function_name(number).encode(), bcc.BPF.KPROBE)
        except Exception as exc:
            self.close()
            raise PrerequisiteError(
                "a BPF program the kernel accepts",
                f"BCC could not build or load it: {exc}",
                "run `pytest-uprobe doctor` to see which prerequisite is missing",
            ) from None
        self.compile_seconds = time.perf_counter() - started
        self._fill_sites()
        self._bpf[b"events"].open_ring_buffer(self._on_event)

    def _fill_sites(self) -> None:
        table = self._bpf[b"sites"]
        for number, site in enumerate(self.plan.sites):
            entry = program.CSite()
            entry.cfa_reg = site.cfa.reg
            entry.cfa_offset = site.cfa.offset
            entry.npieces = len(site.pieces)
            for i, piece in enumerate(site.pieces):
                entry.pieces[i].reg = piece.reg
                entry.pieces[i].offset = piece.offset
                entry.pieces[i].size = piece.size
                entry.pieces[i].memory = int(piece.memory)
            table[ct.c_int(number)] = entry

    def _on_event(self, _ctx: Any, data: Any, size: int) -> None:
        fields = EVENT.unpack(ct.string_at(data, EVENT.size))
        self.events.append(RawEvent(fields[0], fields[1], fields[2], fields[3], fields[4:]))

    def attach(self, pid: int) -> None:
        path = str(self.plan.binary.path).encode()
        for number, site in enumerate(self.plan.sites):
            attach = (
                self._bpf.attach_uretprobe
                if site.kind is SiteKind.URETPROBE
                else self._bpf.attach_uprobe
            )
            try:
                attach(
                    name=path,
                    addr=site.address,
                    fn_name=program.function_name(number).encode(),
                    pid=pid,
                )
            except Exception as exc:
                raise PrerequisiteError(
                    "uprobes the kernel accepts",
                    f"attaching at {site.address:#x} in {self.plan.binary.path} failed: {exc}",
                    "run `pytest-uprobe doctor`; check that the binary is on a local filesystem",
                ) from None
        self._poller = threading.Thread(target=self._poll, name="uprobe-events", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._bpf.ring_buffer_poll(50)

    def finish(self) -> None:
        """Stop polling and take every event still in the ring buffer."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
            self._poller = None
        if self._bpf is not None:
            self._bpf.ring_buffer_consume()

    def counts(self) -> list[int]:
        table = self._bpf[b"counts"]
        return [sum(table[ct.c_int(i)]) for i in range(len(self.plan.sites))]

    def lost(self) -> int:
        return int(sum(self._bpf[b"lost"][ct.c_int(0)]))

    def close(self) -> None:
        """Detach every probe and unload the program. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
        bpf, self._bpf = self._bpf, None
        if bpf is None:
            return
        bcc = load_bcc()
        # BCC's own detach also writes to tracefs' uprobe_events, which perf-PMU probes never
        # used (and which may not be mounted): closing the perf fd is what detaches them.
        for name, fd in list(bpf.uprobe_fds.items()):
            bcc.lib.bpf_close_perf_event_fd(fd)
            bpf._del_uprobe_fd(name)
        bpf.cleanup()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
