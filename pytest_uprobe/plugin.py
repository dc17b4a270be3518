"""pytest glue: the `--uprobe` switch and its ini twins, the `uprobe` marker, the fixtures,
and a report section with the call log of every traced run of a failed test."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

# Before anything imports trace.py: its assertion helpers use plain `assert`s whose
# diffs pytest should show.
pytest.register_assert_rewrite("pytest_uprobe.trace")

SKIP_REASON = "uprobe tracing is off: run pytest with --uprobe (as root) to turn it on"

_OPTIONS: list[tuple[str, str, str, Any, str]] = [
    # (flag, ini name, ini type, default, help)
    ("--uprobe", "uprobe", "bool", False,
     "run the tests that use uprobe_trace or carry @pytest.mark.uprobe (needs root)"),
    ("--uprobe-timeout", "uprobe_timeout", "string", None,
     "default timeout in seconds for each traced run (default: none)"),
    ("--uprobe-profile", "uprobe_profile", "string", "dev",
     "default cargo profile for the cargo_bin fixture (default: dev)"),
    ("--uprobe-ret-sites-only", "uprobe_ret_sites_only", "bool", False,
     "read return values at return instructions everywhere, never through uretprobes"),
    ("--uprobe-max-functions", "uprobe_max_functions", "string", "1000",
     "refuse a probe name that matches more functions than this (default: 1000)"),
]  # fmt: skip


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("uprobe", "eBPF uprobe tracing of compiled binaries")
    for flag, ini, kind, default, help_text in _OPTIONS:
        dest = ini
        if kind == "bool":
            group.addoption(flag, action="store_true", dest=dest, default=None, help=help_text)
        else:
            group.addoption(flag, action="store", dest=dest, default=None, help=help_text)
        parser.addini(ini, help=help_text, type=kind, default=default)  # type: ignore[arg-type]


def option(config: pytest.Config, name: str) -> Any:
    """A setting: the command line wins over the ini file."""
    value = config.getoption(name)
    return config.getini(name) if value is None else value


def pytest_configure(config: pytest.Config) -> None:
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


@pytest.fixture
def uprobe_trace(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A Tracer: `uprobe_trace.run(argv, probes=[...])` returns a Trace."""
    from .errors import PrerequisiteError, UsageError
    from .tracer import Tracer

    config = request.config
    try:
        timeout = option(config, "uprobe_timeout")
        tracer = Tracer(
            timeout=float(timeout) if timeout not in (None, "") else None,
            ret_sites_only=bool(option(config, "uprobe_ret_sites_only")),
            max_functions=int(option(config, "uprobe_max_functions")),
        )
        tracer.check()
    except (PrerequisiteError, UsageError, ValueError) as exc:
        pytest.fail(str(exc), pytrace=False)
    with tracer:
        yield tracer


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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    report = yield
    tracer = getattr(item, "funcargs", {}).get("uprobe_trace")
    if report.when == "call" and report.failed and tracer is not None and tracer.traces:
        report.sections.append(("uprobe trace", _trace_section(tracer.traces)))
    return report


def _trace_section(traces: list[Any]) -> str:
    parts = []
    for number, trace in enumerate(traces, 1):
        command = " ".join(trace.argv)
        parts.append(
            f"run {number}: {command}\nexit status: {trace.returncode}"
            + (f", {trace.lost_events} events lost" if trace.lost_events else "")
            + "\n"
            + trace.log()
        )
    return "\n\n".join(parts)
