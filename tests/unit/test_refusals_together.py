"""Probes of one run of which nothing can be probed are refused in one error naming every
one of them (both engines), so a run is not refused again for each in turn."""

from __future__ import annotations

import pytest

from pytest_uprobe.errors import ProbesRefused, UnreadableFunction, refuse

BINARY = "/tmp/target/release/app"  # noqa: S108  (a name in a message, never opened)


def _refusal(name: str, why: str) -> UnreadableFunction:
    return UnreadableFunction(name, BINARY, why, "use --uprobe-backend=bpf for this probe")


def test_one_refused_probe_is_its_own_error_unchanged() -> None:
    one = _refusal("app::a", "its ret is too short")
    with pytest.raises(UnreadableFunction) as error:
        refuse([one])
    assert error.value is one


def test_no_refusal_raises_nothing() -> None:
    refuse([])


def test_several_are_one_error_naming_each_with_its_reason_and_fix() -> None:
    a = _refusal("app::a", "its ret is too short")
    b = _refusal("app::b", "a branch lands inside the epilogue")
    with pytest.raises(ProbesRefused) as error:
        refuse([a, b])
    refused = error.value
    assert isinstance(refused, UnreadableFunction)  # what `except` clauses catch already
    assert refused.names == ["app::a", "app::b"]
    assert refused.refusals == [a, b]
    text = str(refused)
    assert text.startswith(f"probes 'app::a', 'app::b' in {BINARY}: nothing of these 2 probes")
    assert "  - 'app::a': its ret is too short\n    fix: use --uprobe-backend=bpf" in text
    assert "  - 'app::b': a branch lands inside the epilogue\n" in text
    assert text.splitlines()[-1].startswith("  fix: ")  # every error ends with its fix
