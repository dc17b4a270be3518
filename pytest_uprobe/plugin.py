"""pytest glue: the `--uprobe` switch and its ini twins, the `uprobe` marker, the fixtures,
an `uprobe trace` report section with the call log of every traced run of a test (inside
the failure, so --junitxml carries it; for passed tests shown with -rP/-rA), and one summary
line at the end of a --uprobe session (fed through teardown reports, so pytest-xdist
workers' runs count too)."""

from __future__ import annotations

import hashlib
import re
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
    ("--uprobe-timeout", "uprobe_timeout", "string", "60",
     "timeout in seconds for each traced run; on expiry the program and every process "
     "it started are killed and TraceTimeout raised (default: 60; 0: none)", {"metavar": "S"}),
    ("--uprobe-children", "uprobe_children", "string", "kill",
     "what happens to processes a traced program started that still run when it exits: "
     "kill them, wait for them (the timeout counts), or leave them running (default: kill)",
     {"choices": ["kill", "wait", "leave"]}),
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
    ("--uprobe-timeline", "uprobe_timeline", "string", None,
     "write each traced run's call timeline into DIR as Chrome trace-event JSON (opens in "
     "ui.perfetto.dev and chrome://tracing), one file per run named after the test id "
     "(ini: relative to the ini file)", {"metavar": "DIR"}),
    ("--uprobe-timeline-on", "uprobe_timeline_on", "string", "always",
     "which tests' runs --uprobe-timeline writes: always (every traced test) or failure "
     "(failed tests only); default: always", {"choices": ["always", "failure"]}),
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


TIMEOUT_OPTION = "--uprobe-timeout or ini uprobe_timeout (0: none), or timeout=... of run()"


def _timeout(config: pytest.Config) -> float | None:
    value = option(config, "uprobe_timeout")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(
            f"uprobe_timeout must be a number of seconds, got {value!r}: set "
            "--uprobe-timeout or ini uprobe_timeout to seconds, or 0 for no timeout"
        )
    return seconds or None


def _children_policy(config: pytest.Config) -> str:
    value = str(option(config, "uprobe_children")).strip()
    if value not in ("kill", "wait", "leave"):
        raise ValueError(
            f"uprobe_children (--uprobe-children) must be 'kill', 'wait' or 'leave', got {value!r}"
        )
    return value


def _lost_events_policy(config: pytest.Config) -> str:
    value = str(option(config, "uprobe_lost_events")).strip()
    if value not in ("fail", "warn"):
        raise ValueError(f"uprobe_lost_events must be 'fail' or 'warn', got {value!r}")
    return value


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SessionRecorder(), "uprobe-session-recorder")
    if config.pluginmanager.hasplugin("html"):
        from .html_report import HtmlReportColumns

        config.pluginmanager.register(HtmlReportColumns(), "uprobe-html-report")
    config.addinivalue_line(
        "markers", "uprobe: the test traces a binary with eBPF uprobes (runs only with --uprobe)"
    )


def pytest_report_header(config: pytest.Config) -> str | None:
    if not option(config, "uprobe"):
        return None
    from .launch import containment

    return f"pytest-uprobe: traced runs contained by {containment()}"


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
            children=_children_policy(config),
            backend=str(option(config, "uprobe_backend")).strip(),
        )
        _timeline_on(config)  # a bad value fails here, before the test runs anything
        tracer.timeout_option = TIMEOUT_OPTION
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
    timelines = _write_timelines(item, report, tracer.traces)
    if report.when == "call":
        from . import html_report

        if html_report.writing_report(item.config):
            html_report.add_to_report(report, tracer.traces)
    if report.when == "call" and report.passed:
        # Shown with -rP / -rA, as captured output is.
        report.sections.append((SECTION_TITLE, trace_section(tracer.traces, timelines)))
    elif report.failed:
        text = trace_section(tracer.traces, timelines)
        longrepr = report.longrepr
        if hasattr(longrepr, "addsection"):
            # Inside the failure itself: printed under the traceback, and the text of the
            # <failure> element of --junitxml, which never carries report.sections.
            longrepr.addsection(SECTION_TITLE, text)
        else:
            report.sections.append((SECTION_TITLE, text))
    return report


# -- timeline files -------------------------------------------------------------------

_TIMELINES = pytest.StashKey[list[str]]()  # on an item: the timeline files of its runs
_TIMELINES_ATTRIBUTE = "uprobe_timelines"  # on a report: the files written for it
_TIMELINE_NAME_CAP = 120  # characters of a test id kept in a file name


def timeline_dir(config: pytest.Config) -> Path | None:
    """--uprobe-timeline's directory (relative to where pytest started), or the ini's
    (relative to the ini file); None when off."""
    given = config.getoption("uprobe_timeline")
    if given is not None:
        base = config.invocation_params.dir
    else:
        given = config.getini("uprobe_timeline")
        base = config.inipath.parent if config.inipath is not None else config.rootpath
    if not given or not str(given).strip():
        return None
    return base / Path(str(given).strip())


def _timeline_on(config: pytest.Config) -> str:
    value = str(option(config, "uprobe_timeline_on")).strip()
    if value not in ("always", "failure"):
        raise ValueError(f"uprobe_timeline_on must be 'always' or 'failure', got {value!r}")
    return value


def timeline_name(nodeid: str, run: int) -> str:
    """A file name for run `run` of the test `nodeid`: the id with every run of characters
    other than letters, digits, `.`, `-` and `_` made one `_`, cut to a length any file
    system takes, then a hash of the whole id (which keeps ids apart that read the same
    once sanitized or cut), then `.run<N>.json`."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("._") or "test"
    digest = hashlib.sha256(nodeid.encode()).hexdigest()[:8]
    return f"{safe[:_TIMELINE_NAME_CAP]}-{digest}.run{run}.json"


def _write_timelines(
    item: pytest.Item, report: pytest.TestReport, traces: Sequence[Any]
) -> list[str]:
    """Write the timeline files of `item`'s runs once, at the first report that calls for
    them (the call's; or a failed teardown's), and name the files on that report. Returns
    per run what the `uprobe trace` section says: the file, or why it was not written."""
    said = item.stash.get(_TIMELINES, None)
    if said is not None:
        return said
    directory = timeline_dir(item.config)
    if directory is None or report.when == "setup":
        return []
    if _timeline_on(item.config) == "failure" and not report.failed:
        return []
    said, written = [], []
    for run, trace in enumerate(traces, 1):
        path = directory / timeline_name(item.nodeid, run)
        try:
            trace.save_timeline(path)
        except OSError as exc:  # the test's own outcome stands; the section says why
            said.append(f"not written: {exc}")
            continue
        said.append(str(path))
        written.append(str(path))
    item.stash[_TIMELINES] = said
    setattr(report, _TIMELINES_ATTRIBUTE, written)
    return said


class SessionRecorder:
    """The session's totals, fed by each test's teardown report (also the ones pytest-xdist
    workers send to the controller), printed as one line at the end of a --uprobe session;
    and the timeline files written, named in one more line."""

    def __init__(self) -> None:
        self.stats = RunStats()
        self.timelines: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        stats = getattr(report, _REPORT_ATTRIBUTE, None)
        if isinstance(stats, dict):
            self.stats.add(RunStats(**stats))
        timelines = getattr(report, _TIMELINES_ATTRIBUTE, None)
        if isinstance(timelines, list):
            self.timelines.extend(timelines)

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        if option(config, "uprobe"):
            terminalreporter.write_line(self.stats.line())
            directory = timeline_dir(config)
            if directory is not None:
                n = len(self.timelines)
                terminalreporter.write_line(
                    f"uprobe: {n} timeline file{'' if n == 1 else 's'} in {directory} "
                    "(open them in ui.perfetto.dev)"
                )


SECTION_TITLE = "uprobe trace"
SECTION_CALLS = 200  # calls shown per run; more are cut, with a count of those left out
SECTION_RUNS = 10  # runs shown; earlier ones are cut, with a count


def trace_section(traces: Sequence[Any], timelines: Sequence[str] = ()) -> str:
    """Each run's command, exit status, call counts, timeline file if written, and call
    log."""
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
        if trace.orphans:
            done = {"kill": "killed", "wait": "waited for", "leave": "left running"}
            status += (
                f"\nprocesses it started that outlived it ({done[trace.children]}): "
                + ", ".join(str(p) for p in trace.orphans)
            )
            if trace.orphans_held_output:
                status += "\n(they still held its stdout/stderr when it exited)"
        counts = ", ".join(f"{n}: {f.call_count!r}" for n, f in trace.functions.items())
        lines = [f"run {number}: {shlex.join(trace.argv)}", status, f"calls counted: {counts}"]
        if number <= len(timelines):
            lines.append(f"timeline: {timelines[number - 1]}")
        if trace.lost_events:
            lines.append(f"events lost: {trace.lost_events} (the log below is incomplete)")
        lines.append(trace.log(limit=SECTION_CALLS))
        parts.append("\n".join(lines))
    return "\n\n".join(parts)
