"""The options table (pytest_uprobe/options.py): one default and one check per setting,
read by the plugin, Tracer and `pytest-uprobe trace`. No root needed."""

from __future__ import annotations

import inspect

import pytest

from pytest_uprobe import options
from pytest_uprobe.cli import _build_parser
from pytest_uprobe.errors import UsageError
from pytest_uprobe.options import LostEvents
from pytest_uprobe.tracer import Tracer


def test_every_default_passes_its_own_check():
    for setting in options.SETTINGS:
        assert setting.check(setting.default) == setting.default, setting.name


def test_tracer_takes_every_tracer_setting_with_the_tables_default():
    parameters = inspect.signature(Tracer.__init__).parameters
    wanted = {s.name: s.default for s in options.SETTINGS if s.tracer}
    assert {n: p.default for n, p in parameters.items() if n != "self"} == wanted
    tracer = Tracer()
    for name, default in wanted.items():
        assert getattr(tracer, name) == default, name


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("timeout", 0, "timeout must be a positive number of seconds, or None for no timeout"),
        ("timeout", "5", "got '5'"),
        ("timeout", float("inf"), "timeout must be a positive number"),
        ("max_functions", 0, "max_functions must be a positive integer, got 0"),
        ("max_string", True, "max_string must be a positive integer, got True"),
        ("max_elements", 2.5, "max_elements must be a positive integer, got 2.5"),
        ("children", "keep", "children must be 'kill', 'wait' or 'leave', got 'keep'"),
        ("lost_events", "sometimes", "lost_events must be 'fail' or 'warn', got 'sometimes'"),
        ("backend", "gdb", "backend must be 'auto', 'bpf' or 'inprocess', got 'gdb'"),
        ("inlined", 1, "inlined must be True or False, got 1"),
        ("record", "no", "record must be True or False, got 'no'"),
        ("ret_sites_only", None, "ret_sites_only must be True or False, got None"),
        ("follow_children", "yes", "follow_children must be True or False, got 'yes'"),
    ],
)
def test_tracer_refuses_a_bad_setting_naming_it(keyword, value, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        Tracer(**{keyword: value})
    assert "fix: " in str(info.value)


def test_lost_events_is_an_enum_that_takes_its_strings():
    assert Tracer(lost_events="warn").lost_events is LostEvents.WARN
    assert Tracer(lost_events=LostEvents.WARN).lost_events is LostEvents.WARN
    assert LostEvents.FAIL == "fail" and str(LostEvents.FAIL) == "fail"


@pytest.mark.parametrize(
    ("setting", "text", "value"),
    [
        (options.TIMEOUT, " 7.5 ", 7.5),
        (options.TIMEOUT, "0", None),
        (options.MAX_STRING, "64", 64),
        (options.INLINED, "False", False),
        (options.INLINED, "yes", True),
        (options.LOST_EVENTS, "warn", LostEvents.WARN),
        (options.CHILDREN, " wait", "wait"),
    ],
)
def test_text_reads_as_the_value_it_stands_for(setting, text, value):
    assert setting.parse(text, where="x") == value


@pytest.mark.parametrize(
    ("setting", "text"),
    [(options.TIMEOUT, "-1"), (options.TIMEOUT, "inf"), (options.TIMEOUT, "soon"),
     (options.MAX_STRING, "0"), (options.MAX_STRING, "1.5"), (options.INLINED, "maybe"),
     (options.CHILDREN, "keep")],
)  # fmt: skip
def test_bad_text_is_refused_naming_where_it_was_given(setting, text):
    with pytest.raises(UsageError, match=f"^ini somewhere must be .*, got {text!r}"):
        setting.parse(text, where="ini somewhere")


def test_the_trace_command_has_a_flag_for_each_setting_that_says_so():
    parser = _build_parser()
    trace = parser._subparsers._group_actions[0].choices["trace"]  # type: ignore[union-attr]
    flags = {flag for action in trace._actions for flag in action.option_strings}
    for setting in options.SETTINGS:
        if setting.command_flag is not None:
            assert setting.command_flag in flags, setting.name
    args = trace.parse_args(["-p", "x", "--", "prog"])
    for setting in options.SETTINGS:
        if setting.command_flag is not None:
            assert getattr(args, setting.name) == setting.default, setting.name
    args = trace.parse_args(["-p", "x", "--timeout", "0", "--no-inlined", "--", "prog"])
    assert args.timeout is None and args.inlined is False
