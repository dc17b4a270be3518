"""Every test in this directory traces a real binary: it needs root (or CAP_BPF and
CAP_PERFMON), BCC and cargo, so it carries the `uprobe` marker and is skipped, with the
reason, unless pytest runs with --uprobe."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.uprobe)
