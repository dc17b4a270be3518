"""A fifth user's crate (example_crates/exprkit: a tokenizer/parser/evaluator and a
statistics kit, with trait objects behind Rc/Arc, std collections, closures, a tokio
multi-thread runtime, fork/exec, and four profiles: dev, release, rel1 = `debug = 1`,
rellt = `debug = "line-tables-only"`) and tests, written from the README and the docs
alone (kept as a test of the project). Every expected value is parsed from what the
program printed (rdebug.py parses Rust's `{:?}`). The user ran the suite on both engines
(`--uprobe` and `--uprobe --uprobe-backend=inprocess`); KNOWN_GAPS lists what the tool
could not do for them on each, as strict xfails: a fix makes its test pass and the xfail
fail, so the entry goes."""

from pathlib import Path

import pytest

CRATE = Path(__file__).resolve().parents[2] / "example_crates" / "exprkit"


@pytest.fixture(scope="session")
def crate():
    return CRATE


@pytest.fixture(params=["dev", "release"])
def profile(request):
    return request.param


@pytest.fixture
def exe(cargo_bin, profile):
    return cargo_bin(CRATE, profile=profile)


@pytest.fixture(params=["bpf", "inprocess"])
def uprobe_trace(request):
    """The plugin's fixture, once per engine: the user ran the whole suite with `--uprobe`
    and again with `--uprobe-backend=inprocess`; here one run covers both."""
    from pytest_uprobe import options
    from pytest_uprobe.plugin import option
    from pytest_uprobe.tracer import Tracer

    settings = {
        setting.name: option(request.config, setting.ini)
        for setting in options.SETTINGS
        if setting.tracer and setting.ini is not None
    }
    with Tracer(**{**settings, "backend": request.param}) as tracer:
        yield tracer


def bpf(uprobe_trace):
    return getattr(uprobe_trace, "backend_used", "bpf") != "inprocess"


# (engine, the user's test id below tests/blackbox_exprkit/, without the engine) -> what the
# tool gave vs what the program printed, and why. Tests that build their own Tracer or run
# the command line use BPF ("bpf"). Findings 1, 2 and 7 (line-tables-only names, a method's
# copies, a missing generic instance) were strict xfails here until branch s5-ltonly fixed them.
# In-process refusals (finding 10): Frida's 5-byte patch cannot take the site, and the
# engine says so, naming it, rather than giving a wrong count.
INPROCESS_GAPS: dict[str, str] = {
    "test_values.py::test_trait_method_glob_and_exact[release]": (
        "the in-process engine refuses '<* as exprkit::Function>::apply' (UnreadableFunction: "
        "<exprkit::Poly as exprkit::Function>::apply's ret at its end is too short for Frida's "
        "5-byte patch, and the instruction before it, pop rax, is no plain epilogue "
        "instruction; fix: --uprobe-backend=bpf), where the program printed 3 call_fn lines"
    ),
}
KNOWN_GAPS: dict[tuple[str, str], str] = {
    **{("inprocess", test): why for test, why in INPROCESS_GAPS.items()},
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        test_id = item.nodeid.split("tests/blackbox_exprkit/", 1)[-1]
        callspec = getattr(item, "callspec", None)
        engine = callspec.params.get("uprobe_trace", "bpf") if callspec else "bpf"
        # the user's ids: without the engine, which KNOWN_GAPS keys separately
        user_id = test_id.replace(f"[{engine}-", "[").replace(f"[{engine}]", "")
        reason = KNOWN_GAPS.get((engine, user_id))
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
