"""Both engines under the users' suites (tests/blackbox, tests/blackbox_jobsched): every test
that traces (asks for `uprobe_trace` or makes a `Tracer`) runs once per engine, its id
ending in `bpf` or `inprocess`, with the tests themselves kept as their users wrote them.

Which engines: `--uprobe-backend=bpf` or `=inprocess` runs that one only; `auto` (the
default) runs both where the machine allows both (root with BPF, and frida installed), else
the one `auto` picks. The engine reaches the test through the plugin's own setting (what
`--uprobe-backend` would have set) and through `Tracer`'s default, for tests that make one.
What one engine cannot do is a strict xfail naming the engine (`gap_marker`)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import pytest

from pytest_uprobe.errors import PrerequisiteError
from pytest_uprobe.plugin import _SETTINGS, option
from pytest_uprobe.tracer import Tracer, choose_backend

ENGINES = ("bpf", "inprocess")
SETTING = "uprobe_backend"


_CHOSEN = pytest.StashKey[tuple[str, ...]]()


def engines(config: pytest.Config) -> tuple[str, ...]:
    """The engines the suites run on (asked once per session)."""
    if _CHOSEN not in config.stash:
        config.stash[_CHOSEN] = _engines(config)
    return config.stash[_CHOSEN]


def _engines(config: pytest.Config) -> tuple[str, ...]:
    if not option(config, "uprobe"):
        return ()  # nothing traces: the plugin skips these tests
    chosen = option(config, SETTING)
    if chosen != "auto":
        return (chosen,)
    try:
        if choose_backend("auto") != "bpf":
            return ("inprocess",)
        choose_backend("inprocess")
    except PrerequisiteError:
        return ()  # the tests fail naming what is missing, as without this module
    return ENGINES


def traces(function: object) -> bool:
    """The test makes a Tracer of its own (the users' tests import it inside the test)."""
    try:
        return "Tracer(" in inspect.getsource(function)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return False


def generate(metafunc: pytest.Metafunc) -> None:
    """pytest_generate_tests: the `engine` parameter for the tests that trace."""
    if "uprobe_trace" not in metafunc.fixturenames and not traces(metafunc.function):
        return
    chosen = engines(metafunc.config)
    if len(chosen) > 1:
        metafunc.parametrize("engine", chosen)


@pytest.fixture
def engine() -> str | None:
    """The engine this test runs on (`generate` parametrizes it); None: the one the
    session's --uprobe-backend chooses."""
    return None


@pytest.fixture(autouse=True)
def _use_engine(
    engine: str | None, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before `uprobe_trace` is made (autouse fixtures come first in their scope): the
    plugin's backend setting, and the default of `Tracer(backend=...)`, for this test."""
    if engine is None:
        return
    option(request.config, SETTING)  # read the settings once, so that they exist to patch
    monkeypatch.setitem(request.config.stash[_SETTINGS], SETTING, engine)
    defaults = Tracer.__init__.__kwdefaults__
    assert defaults is not None and "backend" in defaults
    monkeypatch.setitem(defaults, "backend", engine)


def engine_of(item: pytest.Item) -> str | None:
    """The engine the test runs on: its parameter, else the session's only engine."""
    callspec = getattr(item, "callspec", None)
    engine = callspec.params.get("engine") if callspec is not None else None
    if engine is None:
        chosen = engines(item.config)
        engine = chosen[0] if len(chosen) == 1 else None
    return engine


def without_engine(nodeid: str, engine: str | None) -> str:
    """The test's id as its suite's gap lists name it: without the engine's part."""
    if engine is None or not nodeid.endswith("]"):
        return nodeid
    head, _, ids = nodeid[:-1].rpartition("[")
    rest = [part for part in ids.split("-") if part != engine]
    return f"{head}[{'-'.join(rest)}]" if rest else head


def gap_marker(
    item: pytest.Item, key: object, gaps: Mapping[object, str], engine_gaps: Mapping[object, str]
) -> pytest.MarkDecorator | None:
    """A strict xfail for what the tool cannot do: `gaps` on every engine, `engine_gaps`
    (keyed by (key, engine)) on that engine only; the reason names the engine."""
    engine = engine_of(item)
    reason = engine_gaps.get((key, engine))
    if reason is not None:
        return pytest.mark.xfail(reason=f"{engine} engine: {reason}", strict=True)
    reason = gaps.get(key)
    if reason is not None:
        return pytest.mark.xfail(reason=reason, strict=True)
    return None
