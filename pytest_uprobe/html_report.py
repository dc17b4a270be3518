"""pytest-html glue, the only module that knows pytest-html (an optional extra): a "uprobe
calls" column with each traced test's call counts, and under each traced test's row the
picture of every run (picture.py's self-contained SVG, no script, no network).

The plugin registers `HtmlReportColumns` only when pytest-html is loaded, and asks
`timeline_extra` for the report's extra only when a report is being written (--html).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

import pytest

from .picture import svg
from .timeline import counts_text, run_label
from .trace import Trace

COUNTS_ATTRIBUTE = "uprobe_calls"  # on a call report: the text of the "uprobe calls" cell
MAX_PICTURED_RUNS = 10  # the last runs of a test; earlier ones are named, not drawn


def writing_report(config: pytest.Config) -> bool:
    """pytest-html is loaded and a report was asked for (--html=PATH)."""
    return config.pluginmanager.hasplugin("html") and bool(getattr(config.option, "htmlpath", None))


def timeline_extra(traces: Sequence[Trace]) -> dict[str, Any]:
    """A pytest-html `extras.html` entry: every run's label, counts and picture."""
    from pytest_html import extras

    parts = ['<div class="uprobe-timelines" style="margin:6px 0">']
    first = max(0, len(traces) - MAX_PICTURED_RUNS)
    if first:
        parts.append(f"<p>... {first} earlier runs left out ...</p>")
    for number, trace in enumerate(traces[first:], first + 1):
        counts = counts_text([trace]) or "nothing probed"
        parts.append(
            f'<div class="uprobe-run"><p style="margin:4px 0"><b>uprobe run {number}</b>: '
            f"{escape(run_label(trace))}; calls counted: {escape(counts)}</p>{svg(trace)}</div>"
        )
    parts.append("</div>")
    return extras.html("".join(parts))


def add_to_report(report: pytest.TestReport, traces: Sequence[Trace]) -> None:
    """Give `report` its "uprobe calls" cell text and its timeline pictures."""
    setattr(report, COUNTS_ATTRIBUTE, counts_text(traces))
    # pytest-html reads `extras` off each report; a plain list crosses from xdist workers.
    setattr(report, "extras", [*getattr(report, "extras", []), timeline_extra(traces)])  # noqa: B010


class HtmlReportColumns:
    """The "uprobe calls" column of pytest-html's results table."""

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells.insert(2, '<th class="uprobe-calls">uprobe calls</th>')

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        counts = getattr(report, COUNTS_ATTRIBUTE, "")
        cells.insert(2, f'<td class="col-uprobe-calls">{escape(counts)}</td>')
