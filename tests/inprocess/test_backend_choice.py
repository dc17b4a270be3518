"""Which engine `backend=` picks: no root, BPF, or compiler needed."""

from __future__ import annotations

import pytest

from pytest_uprobe import Tracer
from pytest_uprobe.bpf import prerequisites
from pytest_uprobe.errors import PrerequisiteError, UsageError
from pytest_uprobe.tracer import choose_backend


def unprivileged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prerequisites, "_capabilities", lambda: 0)


def test_auto_takes_the_in_process_engine_where_bpf_needs_privileges_we_lack(monkeypatch):
    pytest.importorskip("frida")
    unprivileged(monkeypatch)
    assert choose_backend("auto") == "inprocess"
    tracer = Tracer(backend="auto")
    tracer.check()
    assert tracer.backend_used == "inprocess"


def test_bpf_asked_for_explicitly_stays_an_error_naming_the_fix(monkeypatch):
    unprivileged(monkeypatch)
    with pytest.raises(PrerequisiteError, match="CAP_BPF and CAP_PERFMON"):
        choose_backend("bpf")


def test_auto_does_not_hide_a_misconfigured_bpf_set_up(monkeypatch):
    """Privileged, but BCC_KERNEL_SOURCE points nowhere: the error says so."""
    monkeypatch.setattr(prerequisites, "_capabilities", lambda: 1 << 21)  # CAP_SYS_ADMIN
    monkeypatch.setenv("BCC_KERNEL_SOURCE", "/nonexistent-headers")
    with pytest.raises(PrerequisiteError, match="nonexistent-headers"):
        choose_backend("auto")


def test_an_unknown_backend_is_refused():
    with pytest.raises(UsageError, match="'auto', 'bpf' or 'inprocess'"):
        Tracer(backend="ebpf")
