"""pytest glue: the settings of the options table as flags and ini twins (checked once, at
start-up: a bad value stops the session with a usage error), the `uprobe` marker, the fixtures,
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

from . import options
from .errors import UsageError

SKIP_REASON = "uprobe tracing is off: run pytest with --uprobe (as root) to turn it on"
_SETTINGS = pytest.StashKey[dict[str, Any]]()  # on the config: every setting, checked


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("uprobe", "eBPF uprobe tracing of compiled binaries")
    for setting in options.SETTINGS:
        if setting.flag is None or setting.ini is None:
            continue
        kwargs: dict[str, Any] = {"action": "store"}
        if setting.kind is options.FLAG:
            kwargs["action"] = "store_false" if setting.negated else "store_true"
        if setting.metavar is not None:
            kwargs["metavar"] = setting.metavar
        if setting.choices is not None:
            kwargs["choices"] = list(setting.choices)
        help_text = setting.help_with_default(pytest=True)
        group.addoption(setting.flag, dest=setting.ini, default=None, help=help_text, **kwargs)
        if setting.kind is options.FLAG:
            parser.addini(setting.ini, help=help_text, type="bool", default=setting.default)
        else:  # None when unset: the table's default applies
            parser.addini(setting.ini, help=help_text, type="string", default=None)


def option(config: pytest.Config, name: str) -> Any:
    """A setting by its ini name, as checked at start-up (the command line wins over the
    ini file)."""
    settings = config.stash.get(_SETTINGS, None)
    if settings is None:
        settings = config.stash[_SETTINGS] = read_settings(config)
    return settings[name]


def read_settings(config: pytest.Config) -> dict[str, Any]:
    """Every pytest setting of the table, by ini name, read from the command line or the
    ini file and checked; a bad value raises pytest.UsageError that names where it was
    given, what it must be and how to fix it."""
    values: dict[str, Any] = {}
    for setting in options.SETTINGS:
        if setting.flag is None or setting.ini is None:
            continue
        given = config.getoption(setting.ini)
        where = setting.flag
        if given is None:
            where = f"ini {setting.ini}" + (f" (in {config.inipath})" if config.inipath else "")
            try:
                given = config.getini(setting.ini)
            except pytest.UsageError as exc:  # pytest's own reading may name no option
                expected = "true or false" if setting.kind is options.FLAG else "a string"
                raise pytest.UsageError(
                    f"pytest-uprobe: {where} must be {expected} ({exc})\n"
                    f"  fix: set {setting.ini} to {expected}, or remove it"
                ) from None
        if given is None:
            values[setting.ini] = setting.default
        elif isinstance(given, bool) and setting.kind is options.FLAG:
            values[setting.ini] = given
        else:
            try:
                values[setting.ini] = setting.parse(str(given), where=where)
            except UsageError as exc:
                raise pytest.UsageError(f"pytest-uprobe: {exc}") from None
    return values


def pytest_configure(config: pytest.Config) -> None:
    if not config.option.help:  # settings checked once, here: a bad one stops the session
        config.stash[_SETTINGS] = read_settings(config)
    config.pluginmanager.register(SessionRecorder(), _RECORDER)
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
    from .errors import PrerequisiteError
    from .tracer import Tracer

    config = request.config
    tracer = Tracer(
        **{
            setting.name: option(config, setting.ini)
            for setting in options.SETTINGS
            if setting.tracer and setting.ini is not None
        }
    )
    tracer.timeout_option = f"{options.TIMEOUT.pytest_names()} (0: none), or timeout=... of run()"
    try:
        tracer.check()
    except PrerequisiteError as exc:
        pytest.fail(str(exc), pytrace=False)
    with tracer:
        yield tracer


@pytest.fixture(scope="session")
def cargo_bin(request: pytest.FixtureRequest) -> Callable[..., Path]:
    """`cargo_bin("path/to/crate", profile="release")` builds it once per session and
    returns the executable's path (relative paths start at pytest's rootdir). Session-
    scoped, so module- and session-scoped fixtures can build with it too."""
    from .cargo import cargo_bin as build

    default_profile = option(request.config, "uprobe_profile") or options.PROFILE.default
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


_REPORT_ATTRIBUTE = "uprobe_stats"
_RECORDER = "uprobe-session-recorder"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    report = yield
    if report.when == "teardown":
        recorder = item.config.pluginmanager.get_plugin(_RECORDER)
        stats = recorder.take_runs() if recorder is not None else None
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
    if option(item.config, "uprobe_timeline_on") == "failure" and not report.failed:
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
    and the timeline files written, named in one more line.

    A test's runs are every run a Tracer finished in this process since the previous
    test's teardown (tracer.RUN_LISTENERS): the uprobe_trace fixture's, and those of a
    Tracer the test or a module-scoped fixture made itself."""

    def __init__(self) -> None:
        self.stats = RunStats()
        self.timelines: list[str] = []
        self._pending: RunStats | None = None  # runs not yet on a teardown report

    def pytest_configure(self, config: pytest.Config) -> None:
        from .tracer import RUN_LISTENERS

        RUN_LISTENERS.append(self._ran)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        from .tracer import RUN_LISTENERS

        if self._ran in RUN_LISTENERS:
            RUN_LISTENERS.remove(self._ran)

    def _ran(self, trace: Any, backend: str | None) -> None:
        if self._pending is None:
            self._pending = RunStats()
        self._pending.add(RunStats.of([trace], backend))

    def take_runs(self) -> RunStats | None:
        """The runs finished since the last call (None: none), for a teardown report."""
        pending, self._pending = self._pending, None
        return pending

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        stats = getattr(report, _REPORT_ATTRIBUTE, None)
        if isinstance(stats, dict):
            self.stats.add(RunStats(**stats))
        timelines = getattr(report, _TIMELINES_ATTRIBUTE, None)
        if isinstance(timelines, list):
            self.timelines.extend(timelines)

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        late = self.take_runs()  # runs after the last teardown (a sessionfinish hook's)
        if late is not None:
            self.stats.add(late)
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
            done = options.CHILDREN_DONE[trace.children]
            status += f"\nprocesses it started that outlived it ({done}): " + ", ".join(
                str(p) for p in trace.orphans
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
