"""No user text reaches the generated BPF C source: it is a function of the site count."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_uprobe.bpf import program, session
from pytest_uprobe.plan import ProbePlan
from pytest_uprobe.tracer import Tracer

ROOT = Path(__file__).resolve().parents[2]
FRAGMENTS = [
    '"',
    "'",
    "\\",
    "*/",
    "/*",
    "\n",
    "#include <x.h>",
    "args",
    "::",
    "hello",
    "%s",
    "{}",
    ";",
]
HOSTILE = st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=8).map("".join)


class FakeBPF:
    KPROBE = 2
    texts: list[str] = []

    def __init__(self, text: bytes) -> None:
        FakeBPF.texts.append(text.decode())

    def load_func(self, name: bytes, kind: int, *rest: Any) -> Any:
        return type("Function", (), {"fd": -1})()

    def __getitem__(self, name: bytes) -> Any:
        return _Table()

    def cleanup(self) -> None:
        pass

    def ring_buffer_consume(self) -> None:
        pass

    uprobe_fds: dict[bytes, int] = {}


class _Table:
    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def open_ring_buffer(self, callback: Any) -> None:
        pass

    def clearitem(self, key: Any) -> None:
        pass

    def clear(self) -> None:
        pass


@pytest.fixture
def fake_bcc(monkeypatch):
    fake = type("bcc", (), {"BPF": FakeBPF})
    monkeypatch.setattr(session, "load_bcc", lambda: fake)
    monkeypatch.setattr(session, "_set_kernel_source", lambda: None)
    FakeBPF.texts = []
    return FakeBPF


@pytest.fixture(scope="module")
def args_plan() -> ProbePlan:
    exe = ROOT / "example_crates/args/target/debug/args"
    if not exe.exists():
        pytest.skip("example_crates/args is not built yet (the integration tests build it)")
    return Tracer().plan(exe, ["args::hello"])


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=HOSTILE)
def test_probe_names_never_reach_the_source(fake_bcc, args_plan, name):
    plan = dataclasses.replace(args_plan, probes=(name,))
    plan.functions = [dataclasses.replace(f, probe=name) for f in args_plan.functions]
    session.Session(plan).close()
    session.release_programs()  # else the next Session reuses this program: no new text
    (text,) = fake_bcc.texts[-1:]
    per_site = not session._kernel_has_uprobe_multi()
    assert text == program.source(program.capacity(len(plan.sites)), per_site)
    fake_bcc.texts.clear()


def test_the_source_depends_on_the_site_count_only():
    assert program.source(8) == program.source(8)
    assert program.source(8) != program.source(16)
    assert program.capacity(1) == 8 and program.capacity(9) == 16
    with pytest.raises(ValueError):
        program.source("8; system()")  # type: ignore[arg-type]


def test_per_site_functions_are_compiled_only_without_uprobe_multi():
    assert "site_3(" in program.source(8, per_site_functions=True)
    assert "site_3(" not in program.source(8, per_site_functions=False)
    assert program.ANY_SITE in program.source(8, per_site_functions=False)


def test_without_uprobe_multi_links_the_wrappers_are_compiled_then(
    fake_bcc, args_plan, monkeypatch
):
    def refuse_links(self: FakeBPF, name: bytes, kind: int, *rest: Any) -> Any:
        if name == program.ANY_SITE.encode():
            raise Exception("Failed to load BPF program b'site_any': Invalid argument")
        return type("Function", (), {"fd": -1})()

    monkeypatch.setattr(FakeBPF, "load_func", refuse_links)
    session.release_programs()
    session.Session(args_plan).close()
    session.release_programs()
    capacity = program.capacity(len(args_plan.sites))
    assert fake_bcc.texts[-1] == program.source(capacity, per_site_functions=True)
