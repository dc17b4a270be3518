"""pytest glue: the `--uprobe` switch and its ini twins, the `uprobe` marker, the fixtures,
an `uprobe trace` report section with the call log of every traced run of a test (inside
the failure, so --junitxml carries it; for passed tests shown with -rP/-rA), and one summary
line at the end of a --uprobe session (fed through teardown reports, so pytest-xdist
workers' runs count too)."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

SKIP_REASON = "uprobe tracing is off: run pytest with --uprobe (as root) to turn it on"

# (flag, ini name, ini type, ini default, help, extra arguments of addoption)
_OPTIONS: list[tuple[str, str, str, Any, str, dict[str, Any]]] = [
    ("--uprobe", "uprobe", "bool", False,
     "run the tests that use uprobe_trace or carry @pytest.mark.uprobe (needs root)", {}),
    ("--uprobe-timeout", "uprobe_timeout", "string", None,
     "default timeout in seconds for each traced run; on expiry the process group is "
     "killed and TraceTimeout raised (default: none)", {"metavar": "S"}),
    ("--uprobe-profile", "uprobe_profile", "string", "dev",
     "default cargo profile for the cargo_bin fixture (default: dev)", {"metavar": "P"}),
    ("--uprobe-ret-sites-only", "uprobe_ret_sites_only", "bool", False,
     "read return values at return instructions everywhere, never through uretprobes", {}),
    ("--uprobe-max-functions", "uprobe_max_functions", "string", "1000",
     "refuse a probe name that matches more functions than this (default: 1000)",
     {"metavar": "N"}),
    ("--uprobe-max-string", "uprobe_max_string", "string", "256",
     "cap in bytes copied for each &str/String; longer ones decode as Truncated "
     "(default: 256)", {"metavar": "N"}),
    ("--uprobe-max-elements", "uprobe_max_elements", "string", "16",
     "cap in elements copied for each slice/Vec; longer ones decode as Truncated "
     "(default: 16)", {"metavar": "N"}),
    ("--uprobe-no-inlined", "uprobe_inlined", "bool", True,
     "do not probe copies of a function inlined into its callers (ini: uprobe_inlined = "
     "false; default: probe them)", {"action": "store_false"}),
    ("--uprobe-lost-events", "uprobe_lost_events", "string", "fail",
     "when the ring buffer drops events: fail (assertions that need every call raise "
     "LostEventsError) or warn (a LostEventsWarning; assertions use the calls recorded); "
     "default: fail", {"choices": ["fail", "warn"]}),
    ("--uprobe-backend", "uprobe_backend", "string", "auto",
     "the tracing engine: bpf (kernel uprobes, root), inprocess (Frida inside the traced "
     "process: no root, cheaper per call) or auto (bpf where the machine allows it, else "
     "inprocess); default: auto", {"choices": ["auto", "bpf", "inprocess"]}),
]  # fmt: skip


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("uprobe", "eBPF uprobe tracing of compiled binaries")
    for flag, ini, kind, default, help_text, extra in _OPTIONS:
        kwargs: dict[str, Any] = {"action": "store_true" if kind == "bool" else "store"}
        kwargs.update(extra)
        group.addoption(flag, dest=ini, default=None, help=help_text, **kwargs)
        parser.addini(ini, help=help_text, type=kind, default=default)  # type: ignore[arg-type]


def option(config: pytest.Config, name: str) -> Any:
    """A setting: the command line wins over the ini file."""
    value = config.getoption(name)
    return config.getini(name) if value is None else value


def _positive_int(config: pytest.Config, name: str) -> int:
    value = option(config, name)
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return number


def _timeout(config: pytest.Config) -> float | None:
    value = option(config, "uprobe_timeout")
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"uprobe_timeout must be a number of seconds, got {value!r}") from None


def _lost_events_policy(config: pytest.Config) -> str:
    value = str(option(config, "uprobe_lost_events")).strip()
    if value not in ("fail", "warn"):
        raise ValueError(f"uprobe_lost_events must be 'fail' or 'warn', got {value!r}")
    return value


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SessionRecorder(), "uprobe-session-recorder")
    config.addinivalue_line(
        "markers", "uprobe: the test traces a binary with eBPF uprobes (runs only with --uprobe)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if option(config, "uprobe"):
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if "uprobe_trace" in getattr(item, "fixturenames", ()) or item.get_closest_marker("uprobe"):
            item.add_marker(skip)


def pytest_assertrepr_compare(op: str, left: Any, right: Any) -> list[str] | None:
    """`abi(new) == abi(old)`: the lines of the two texts that differ, as a snapshot diff."""
    from .snapshot import Report

    if op != "==" or not (isinstance(left, Report) and isinstance(right, Report)):
        return None
    import difflib

    diff = difflib.unified_diff(right.text.splitlines(), left.text.splitlines(), lineterm="", n=2)
    return [f"{left.title} reports differ (- right, + left):", *list(diff)[2:]]


@pytest.fixture
def uprobe_trace(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A Tracer: `uprobe_trace.run(argv, probes=[...])` returns a Trace."""
    from .errors import PrerequisiteError, UsageError
    from .tracer import Tracer

    config = request.config
    try:
        tracer = Tracer(
            timeout=_timeout(config),
            ret_sites_only=bool(option(config, "uprobe_ret_sites_only")),
            max_functions=_positive_int(config, "uprobe_max_functions"),
            max_string=_positive_int(config, "uprobe_max_string"),
            max_elements=_positive_int(config, "uprobe_max_elements"),
            inlined=bool(option(config, "uprobe_inlined")),
            lost_events=_lost_events_policy(config),
            backend=str(option(config, "uprobe_backend")).strip(),
        )
        tracer.check()
    except (PrerequisiteError, UsageError, ValueError) as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        with tracer:
            yield tracer
    finally:
        request.node.stash[_RUN_STATS] = RunStats.of(tracer.traces, tracer.backend_used)


@pytest.fixture
def cargo_bin(request: pytest.FixtureRequest) -> Callable[..., Path]:
    """`cargo_bin("path/to/crate", profile="release")` builds it once per session and
    returns the executable's path (relative paths start at pytest's rootdir)."""
    from .cargo import cargo_bin as build

    default_profile = option(request.config, "uprobe_profile") or "dev"
    base = request.config.rootpath

    def cargo_bin(crate_dir: Any, *, profile: str | None = None, **kwargs: Any) -> Path:
        return build(crate_dir, profile=profile or default_profile, base=base, **kwargs)

    return cargo_bin


@dataclass
class RunStats:
    """What the traced runs of one test (or, summed, of a session) did. Travels from a
    pytest-xdist worker to the controller as a dict on the test's teardown report."""

    runs: int = 0
    probes: int = 0
    calls: int = 0
    lost: int = 0
    compile_seconds: float = 0.0
    inprocess_runs: int = 0  # runs by the in-process engine (the others: BPF)

    @classmethod
    def of(cls, traces: Sequence[Any], backend: str | None = None) -> RunStats:
        return cls(
            inprocess_runs=len(traces) if backend == "inprocess" else 0,
            runs=len(traces),
            probes=sum(t.probes_attached for t in traces),
            calls=sum(f.call_count for t in traces for f in t.functions.values()),
            lost=sum(t.lost_events for t in traces),
            compile_seconds=sum(t.compile_seconds for t in traces),
        )

    def add(self, other: RunStats) -> None:
        for name in ("runs", "probes", "calls", "lost", "compile_seconds", "inprocess_runs"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def line(self) -> str:
        def n(count: int, what: str) -> str:
            return f"{count} {what}" if count == 1 else f"{count} {what}s"

        return (
            f"uprobe: {n(self.runs, 'traced run')}, {n(self.probes, 'probe')} attached, "
            f"{n(self.calls, 'call')} seen, {n(self.lost, 'event')} lost, "
            f"BPF compile {self.compile_seconds:.2f} s{self._engines()}"
        )

    def _engines(self) -> str:
        """Which engine ran the runs (`--uprobe-backend`): said when it was not all BPF."""
        if not self.inprocess_runs:
            return ""
        if self.inprocess_runs == self.runs:
            return ", engine: inprocess (the BPF compile figure is Frida's set-up)"
        return f", engines: bpf {self.runs - self.inprocess_runs}, inprocess {self.inprocess_runs}"


_RUN_STATS = pytest.StashKey[RunStats]()  # on an item: its tracer's runs
_REPORT_ATTRIBUTE = "uprobe_stats"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    report = yield
    if report.when == "teardown":
        stats = item.stash.get(_RUN_STATS, None)
        if stats is not None:  # a plain dict: reports cross to the xdist controller as JSON
            setattr(report, _REPORT_ATTRIBUTE, asdict(stats))
        return report
    funcargs = getattr(item, "funcargs", None) or {}
    tracer = funcargs.get("uprobe_trace")
    if tracer is None or not tracer.traces:
        return report
    if report.when == "call" and report.passed:
        # Shown with -rP / -rA, as captured output is.
        report.sections.append((SECTION_TITLE, trace_section(tracer.traces)))
    elif report.failed:
        text = trace_section(tracer.traces)
        longrepr = report.longrepr
        if hasattr(longrepr, "addsection"):
            # Inside the failure itself: printed under the traceback, and the text of the
            # <failure> element of --junitxml, which never carries report.sections.
            longrepr.addsection(SECTION_TITLE, text)
        else:
            report.sections.append((SECTION_TITLE, text))
    return report


class SessionRecorder:
    """The session's totals, fed by each test's teardown report (also the ones pytest-xdist
    workers send to the controller), printed as one line at the end of a --uprobe session."""

    def __init__(self) -> None:
        self.stats = RunStats()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        stats = getattr(report, _REPORT_ATTRIBUTE, None)
        if isinstance(stats, dict):
            self.stats.add(RunStats(**stats))

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        if option(config, "uprobe"):
            terminalreporter.write_line(self.stats.line())


SECTION_TITLE = "uprobe trace"
SECTION_CALLS = 200  # calls shown per run; more are cut, with a count of those left out
SECTION_RUNS = 10  # runs shown; earlier ones are cut, with a count


def trace_section(traces: Sequence[Any]) -> str:
    """Each run's command, exit status, call counts and call log."""
    parts = []
    if len(traces) > SECTION_RUNS:
        parts.append(f"... {len(traces) - SECTION_RUNS} earlier runs left out ...")
    first = max(0, len(traces) - SECTION_RUNS)
    for number, trace in enumerate(traces[first:], first + 1):
        status = f"exit status: {trace.returncode}"
        if trace.returncode < 0:
            status += f" (killed by signal {-trace.returncode})"
        if trace.timed_out:
            status += " (timed out)"
        counts = ", ".join(f"{n}: {f.call_count}" for n, f in trace.functions.items())
        lines = [f"run {number}: {shlex.join(trace.argv)}", status, f"calls counted: {counts}"]
        if trace.lost_events:
            lines.append(f"events lost: {trace.lost_events} (the log below is incomplete)")
        lines.append(trace.log(limit=SECTION_CALLS))
        parts.append("\n".join(lines))
    return "\n\n".join(parts)
