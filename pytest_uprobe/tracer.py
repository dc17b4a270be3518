"""Tracer: run a program with probes attached and return a Trace. Works without pytest:

with Tracer() as tracer:
    trace = tracer.run(["./target/debug/args", "1", "2"], probes=["args::hello"])
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from . import futures
from .bpf import session as bpf
from .bpf.prerequisites import check_prerequisites
from .elf import ElfBinary, check_file
from .errors import BinaryChanged, BinaryNotFound, PrerequisiteError, TraceTimeout, UsageError
from .events import Pairing, collect, entry_counts, vectorized_hits
from .launch import HeldProcess
from .options import (
    BACKEND,
    CHILDREN,
    FOLLOW_CHILDREN,
    INLINED,
    LOST_EVENTS,
    MAX_ELEMENTS,
    MAX_FUNCTIONS,
    MAX_STRING,
    RECORD,
    RET_SITES_ONLY,
    TIMEOUT,
    LostEvents,
)
from .plan import FunctionSites, ProbePlan, build_plan, find_sites
from .trace import LostEventsWarning, Trace

if TYPE_CHECKING:
    from .abi_snapshot import AbiReport
    from .inlining_snapshot import InliningReport

Argv = Sequence[str | os.PathLike[str]]
TIMEOUT_OPTION = "timeout=... (of Tracer or run(); None: no timeout)"


class _Default(Enum):
    TRACER = "the Tracer's"


TRACER_DEFAULT: Final = _Default.TRACER

# Plans are pure functions of the binary and the options: a session that traces the same
# probes in many tests resolves names and reads DWARF once. They live on the ElfBinary
# (dropped with it), at most this many per binary.
PLANS_PER_BINARY = 64

# Told of every run any Tracer finishes, with the engine that ran it: the pytest plugin's
# session totals count runs made through a Tracer of the test's own, not only the
# uprobe_trace fixture's. Callables added and removed by their owner (plugin.py).
RUN_LISTENERS: list[Callable[[Trace, str | None], None]] = []


class Tracer:
    """Runs programs under uprobes. Every probe and process is gone when `run` returns
    (processes the program started too, unless children="leave"), `close()` (or leaving
    the `with` block) ends anything an interrupted run left, and if this process dies, even
    of SIGKILL, a watchdog kills its runs (see launch.py and docs/lifetime.md).

    The keyword arguments are the settings of pytest_uprobe/options.py, with its defaults
    and checks (a bad value raises UsageError naming it): `timeout` (seconds from the
    program's first instruction; None: none), `children` ("kill", "wait" or "leave" the
    processes it started that outlive it), `max_string` and `max_elements` (caps on what
    is copied from behind pointers), `lost_events` (LostEvents or "fail"/"warn"),
    `ret_sites_only`, `max_functions`, `inlined` (also count copies inlined into callers),
    `record` (False: count calls in the kernel only, the cheapest mode), `follow_children`
    (also count the processes it forks, never another process) and `backend`."""

    def __init__(
        self,
        *,
        timeout: float | None = TIMEOUT.default,
        ret_sites_only: bool = RET_SITES_ONLY.default,
        max_functions: int = MAX_FUNCTIONS.default,
        inlined: bool = INLINED.default,
        record: bool = RECORD.default,
        max_string: int = MAX_STRING.default,
        max_elements: int = MAX_ELEMENTS.default,
        lost_events: LostEvents | str = LOST_EVENTS.default,
        follow_children: bool = FOLLOW_CHILDREN.default,
        children: str = CHILDREN.default,
        backend: str = BACKEND.default,
    ) -> None:
        # Every argument is checked by its entry of the options table (pytest_uprobe/options.py,
        # which also says what each one does).
        self.backend: str = BACKEND.check(backend)  # "bpf", "inprocess" or "auto" (see check)
        # Seconds a run may take, counted from the program's first instruction; None: no
        # limit. `timeout_option` is how TraceTimeout's message says to change it.
        self.timeout: float | None = TIMEOUT.check(timeout)
        self.timeout_option = TIMEOUT_OPTION
        self.children: str = CHILDREN.check(children)
        self.max_string: int = MAX_STRING.check(max_string)
        self.max_elements: int = MAX_ELEMENTS.check(max_elements)
        self.lost_events: LostEvents = LOST_EVENTS.check(lost_events)
        self.ret_sites_only: bool = RET_SITES_ONLY.check(ret_sites_only)
        self.max_functions: int = MAX_FUNCTIONS.check(max_functions)
        self.inlined: bool = INLINED.check(inlined)
        self.record: bool = RECORD.check(record)
        self.follow_children: bool = FOLLOW_CHILDREN.check(follow_children)
        self.traces: list[Trace] = []
        self._live: list[Any] = []  # sessions and processes of a run in progress
        self._checked = False
        self.backend_used: str | None = None  # the engine `check` chose

    def __enter__(self) -> Tracer:
        self.check()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check(self) -> None:
        """Raise PrerequisiteError if this machine cannot trace; cheap after the first call."""
        if not self._checked:
            self.backend_used = choose_backend(self.backend)
            self._checked = True

    def close(self) -> None:
        """Detach and kill whatever is still live. Safe to call twice."""
        while self._live:
            thing = self._live.pop()
            if isinstance(thing, HeldProcess):
                thing.reap()
            else:
                thing.close()

    def _pinned_plan(
        self, executable: Path, probes: Sequence[str]
    ) -> tuple[ProbePlan, _PinnedFile]:
        """A plan and an open fd of the very file it was resolved from."""
        for _ in range(_PIN_ATTEMPTS):
            plan = self.plan(executable, probes)
            pinned = _PinnedFile.of(plan.binary)
            if pinned is not None:
                return plan, pinned
        raise BinaryChanged(executable, _PIN_ATTEMPTS)

    def plan(self, executable: str | os.PathLike[str], probes: Sequence[str]) -> ProbePlan:
        """Resolve probe names to sites without running anything (no privileges needed)."""
        names = _check_probes(probes)
        binary = ElfBinary.open(executable)
        options = (
            self.ret_sites_only,
            self.max_functions,
            self.inlined,
            self.max_string,
            self.max_elements,
        )
        key = (tuple(names), *options)
        plans = binary.memo("plans")
        plan = plans.get(key)
        if plan is None:
            plan = futures.plan_with_futures(
                binary,
                names,
                lambda planned: build_plan(
                    binary,
                    planned,
                    ret_sites_only=self.ret_sites_only,
                    max_functions=self.max_functions,
                    inlined=self.inlined,
                    max_string=self.max_string,
                    max_elements=self.max_elements,
                ),
            )
            if len(plans) >= PLANS_PER_BINARY:
                del plans[next(iter(plans))]  # the oldest
            plans[key] = plan
        return plan

    def sites(self, executable: str | os.PathLike[str], name: str) -> FunctionSites:
        """Where `name`'s code is: out-of-line instances and copies inlined into callers,
        with caller, file and line. For tests that guard inlining decisions."""
        (probe,) = _check_probes([name])
        return find_sites(ElfBinary.open(executable), probe, max_functions=self.max_functions)

    def abi(self, executable: str | os.PathLike[str], glob: str) -> AbiReport:
        """How each function `glob` names is called (signature, where each argument lives
        at the entry, how it returns, sizes and alignments): plain data whose repr is a
        stable text for snapshot tests. Nothing runs; no privileges needed."""
        from .abi_snapshot import abi

        return abi(executable, glob, max_functions=self.max_functions)

    def inlining(self, executable: str | os.PathLike[str], glob: str) -> InliningReport:
        """Where the code of each function `glob` names is: out of line, and inlined into
        which callers how many times; a stable text for snapshot tests."""
        from .inlining_snapshot import inlining

        return inlining(executable, glob, max_functions=self.max_functions)

    def run(
        self,
        argv: Argv,
        *,
        probes: Sequence[str],
        timeout: float | None | _Default = TRACER_DEFAULT,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        input: str | bytes | None = None,
        follow_children: bool | None = None,
        children: str | None = None,
    ) -> Trace:
        """Run `argv` with every probe attached before its first instruction; return what ran
        once the program exits. `timeout` (seconds, None: no limit), `follow_children` (also
        count the processes it forks) and `children` (what happens to processes it started
        that outlive it: "kill", "wait" or "leave") default to the Tracer's."""
        args = _check_argv(argv)
        if isinstance(timeout, _Default):
            seconds, option = self.timeout, self.timeout_option
        else:
            seconds, option = TIMEOUT.check(timeout), TIMEOUT_OPTION
        policy = self.children if children is None else CHILDREN.check(children)
        _check_env(env)
        follow = self.follow_children
        if follow_children is not None:
            follow = FOLLOW_CHILDREN.check(follow_children)
        data = input.encode() if isinstance(input, str) else input
        executable = _find_executable(args[0], cwd)
        self.check()
        # The file resolved is the file probed and the file run: a rebuild between resolving
        # and attaching (another mtime, size or inode at that path) is resolved anew, and
        # after that, probes and exec go through an fd of the resolved file, never the path.
        plan, pinned = self._pinned_plan(executable, probes)
        self._live.append(pinned)
        engine = self._run_inprocess if self.backend_used == "inprocess" else self._run_bpf
        try:
            request = _RunRequest(plan, pinned, args, env, cwd, data, seconds, follow, policy)
            session, finished = engine(request)
            plan = session.plan  # the in-process engine adds values only it reads (xmm floats)
            site_counts = session.counts()
            counts = entry_counts(plan, site_counts)
            vectorized = vectorized_hits(plan, site_counts)  # inlined copies' uncounted calls
            lost = session.lost()
            store = collect(plan, session.events, exited=finished.returncode >= 0)
        finally:
            self.close()
        trace = Trace.from_run(
            plan,
            finished,
            argv=args,
            calls=store.calls(),  # time order across CPUs, each Call made when first used
            calls_of=store.calls,
            also_left_out=vectorized,
            counts=counts,
            lost=lost,
            lost_events_policy=self.lost_events,
            children=policy,
            record=self.record,
            compile_seconds=session.compile_seconds,
            pid=getattr(session, "pid", None),
        )
        if plan.futures is not None and plan.futures.tracked:
            futures.apply(trace, plan, plan.futures, counts)
        self.traces.append(trace)
        for listener in list(RUN_LISTENERS):
            listener(trace, self.backend_used)
        if lost and self.lost_events is LostEvents.WARN:
            warnings.warn(LostEventsWarning(lost, args), stacklevel=2)
        if finished.timed_out:
            assert seconds is not None
            raise TraceTimeout(args, seconds, trace, program_exited=finished.exited, option=option)
        return trace

    def _run_bpf(self, run: _RunRequest) -> tuple[Any, Any]:
        """The BPF engine's run: the program is held before its first instruction (through
        an fd of the very file planned) until every probe is attached."""
        session = bpf.Session(run.plan, record=self.record, follow_children=run.follow)
        session.events.consumer = Pairing(run.plan)  # pairs events while the program runs
        self._live.append(session)
        held = HeldProcess(
            run.plan.binary.path,
            run.args,
            env=run.env,
            cwd=run.cwd,
            stdin_data=run.input is not None,
            executable_fd=run.pinned.fd,
        )
        self._live.append(held)
        session.attach(held.pid, path=run.pinned.path, before_exec=True)
        held.release()
        session.started()  # USDT semaphores: attached at the entry point
        finished = held.wait(run.input, run.timeout, run.children)
        session.finish()
        return session, finished

    def _run_inprocess(self, run: _RunRequest) -> tuple[Any, Any]:
        """The in-process engine's run (see pytest_uprobe/inprocess): Frida spawns the
        target itself, suspended, so no held launcher is needed."""
        from .inprocess.engine import InprocessRun

        engine = InprocessRun(run.plan, record=self.record, follow_children=run.follow)
        engine.events.consumer = Pairing(engine.plan)  # pairs events while the program runs
        self._live.append(engine)
        # The very file the plan was made from, through a path the child can open.
        path = f"/proc/{os.getpid()}/fd/{run.pinned.fd}"
        finished = engine.run(path, run.args, env=run.env, cwd=run.cwd, input=run.input,
                              timeout=run.timeout, children=run.children)  # fmt: skip
        return engine, finished


class _RunRequest(NamedTuple):
    """One run, as `Tracer.run` hands it to an engine: everything checked and resolved."""

    plan: ProbePlan
    pinned: _PinnedFile  # an open fd of the very file `plan` was made from
    args: list[str]  # argv, args[0] as the user gave it
    env: Mapping[str, str] | None
    cwd: str | os.PathLike[str] | None
    input: bytes | None  # the program's stdin; None: /dev/null
    timeout: float | None  # seconds from the program's first instruction; None: none
    follow: bool  # follow_children
    children: str  # what happens to processes that outlive it (options.CHILDREN)


def choose_backend(backend: str) -> str:
    """The engine a Tracer uses: "bpf" or "inprocess".

    "auto": the BPF engine when the machine allows it (it covers every site kind the plan
    makes), else the in-process one when frida is installed. The
    machine does not allow BPF when this process lacks the privileges or the kernel lacks
    uprobes; a privileged machine with BCC or kernel headers missing or misconfigured is an
    error that names the fix, not a silent switch of engine."""
    if backend == "inprocess":
        from .inprocess.engine import load_frida

        load_frida()
        return "inprocess"
    try:
        if backend == "auto" and _bpf_syscall_refused():
            raise PrerequisiteError(
                _MACHINE_REFUSES_BPF[-1],
                "a sandbox (a seccomp filter, as in Docker's default profile) refuses bpf()",
                "use --uprobe-backend=inprocess, or run outside the sandbox",
            )
        check_prerequisites()
    except PrerequisiteError as exc:
        if backend == "bpf" or exc.missing not in _MACHINE_REFUSES_BPF:
            raise
        from .inprocess.engine import available

        if not available():
            raise
        return "inprocess"
    return "bpf"


# The prerequisites (bpf/prerequisites.py, by what they say is missing) that no set-up of
# this process can provide: where one is missing, "auto" takes the in-process engine.
_MACHINE_REFUSES_BPF = (
    "root, or CAP_BPF and CAP_PERFMON",
    "Linux 5.8 or newer",
    "a kernel with uprobes",
    "a bpf() system call this process may make",
)


def _bpf_syscall_refused() -> bool:
    """bpf() with a command no kernel has fails with EINVAL where the call is allowed; a
    seccomp filter that refuses it (EPERM, ENOSYS) answers before the kernel looks."""
    import ctypes
    import errno

    libc = ctypes.CDLL(None, use_errno=True)
    nr_bpf = {"x86_64": 321, "aarch64": 280}.get(os.uname().machine)
    if nr_bpf is None:
        return False
    if libc.syscall(nr_bpf, 0xFFFF, None, 0) != -1:
        return False
    return ctypes.get_errno() in (errno.EPERM, errno.ENOSYS)


_PIN_ATTEMPTS = 3


class _PinnedFile:
    """A read-only fd of a binary, checked to be the very file a plan was made from."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.path = f"/proc/self/fd/{fd}"  # the kernel follows it to this very inode

    @classmethod
    def of(cls, binary: ElfBinary) -> _PinnedFile | None:
        """An fd of `binary`'s file if it is still the one parsed; None if it changed."""
        try:
            fd = os.open(binary.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        st = os.fstat(fd)
        identity = binary.identity
        if (st.st_size, st.st_mtime_ns, st.st_ino) != (
            identity.size,
            identity.mtime_ns,
            identity.inode,
        ):
            os.close(fd)
            return None
        return cls(fd)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


def _check_argv(argv: Argv) -> list[str]:
    if isinstance(argv, (str, bytes, os.PathLike)) or not isinstance(argv, Sequence):
        raise UsageError(
            f"argv must be a list such as [exe, 'arg1'], got {type(argv).__name__} {argv!r}"
        )
    if not argv:
        raise UsageError("argv is empty: give at least the executable to run")
    out = []
    for item in argv:
        if not isinstance(item, (str, os.PathLike)):
            raise UsageError(f"argv items must be str or path-like, got {item!r}")
        out.append(os.fspath(item))
    return out


def _check_probes(probes: Sequence[str]) -> list[str]:
    if isinstance(probes, str) or not isinstance(probes, Sequence):
        raise UsageError(f"probes must be a list of names such as ['args::hello'], got {probes!r}")
    if not probes:
        raise UsageError("probes is empty: name at least one function to trace")
    for name in probes:
        if not isinstance(name, str) or not name.strip():
            raise UsageError(f"each probe must be a non-empty str, got {name!r}")
    return list(dict.fromkeys(probes))


def _check_env(env: Mapping[str, str] | None) -> None:
    if env is None:
        return
    if not isinstance(env, Mapping):
        raise UsageError(f"env must be a mapping of str to str, got {type(env).__name__}")
    for key, value in env.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise UsageError(f"env must map str to str; {key!r}: {value!r} is not")


def _find_executable(first: str, cwd: str | os.PathLike[str] | None) -> Path:
    if os.sep in first:
        path = Path(first)
        if not path.is_absolute() and cwd is not None:
            path = Path(cwd) / path
    else:
        found = shutil.which(first)
        if found is None:
            raise BinaryNotFound(first)
        path = Path(found)
    check_file(path)
    return path.resolve()
