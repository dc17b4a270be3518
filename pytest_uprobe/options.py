"""Every setting of pytest-uprobe, once: its name, type, default, check, help, pytest flag
and ini twin, and `pytest-uprobe trace`'s flag.

Three readers, one table: the pytest plugin registers the flags and ini names and checks
the values once at start-up (a bad one is a usage error that names it); `Tracer` checks
its keyword arguments (and `run()`'s overrides) with the same checks; the `pytest-uprobe
trace` command builds its flags from it. A value given as text (ini, command line) is
read by `Setting.parse`; a Python value is checked by `Setting.check`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import UsageError


class LostEvents(str, enum.Enum):
    """What assertions do when the ring buffer dropped events of a run."""

    FAIL = "fail"  # assertions that need every call raise LostEventsError
    WARN = "warn"  # the run warns (LostEventsWarning); assertions use the calls recorded

    def __str__(self) -> str:
        return self.value


# What was done with the processes a traced program started that outlived it, by the
# `children` policy: for messages.
CHILDREN_DONE = {"kill": "killed", "wait": "waited for", "leave": "left running"}


class Kind:
    """How values of a setting are checked (`check`, Python values) and read from text
    (`parse`: ini files and command lines). Both raise ValueError(what was expected)."""

    expected = ""  # "a positive integer": what a good value is, for error messages
    text_hint = ""  # how text spells the special values, e.g. "0: no timeout"

    def check(self, value: object) -> Any:
        raise NotImplementedError

    def parse(self, text: str) -> Any:
        return self.check(text.strip())


class _Count(Kind):
    expected = "a positive integer"

    def check(self, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(self.expected)
        return value

    def parse(self, text: str) -> int:
        try:
            number = int(text.strip())
        except ValueError:
            raise ValueError(self.expected) from None
        return self.check(number)


class _Seconds(Kind):
    """A timeout: a positive number of seconds, or None for none (text: 0)."""

    expected = "a positive number of seconds, or None for no timeout"
    text_hint = "0: no timeout"

    def check(self, value: object) -> float | None:
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not value > 0
            or math.isinf(value)
        ):
            raise ValueError(self.expected)
        return float(value)

    def parse(self, text: str) -> float | None:
        try:
            seconds = float(text.strip())
        except ValueError:
            raise ValueError("a number of seconds (0: no timeout)") from None
        if seconds == 0:
            return None
        if not seconds > 0 or math.isinf(seconds):
            raise ValueError("a number of seconds (0: no timeout)")
        return seconds


class _Flag(Kind):
    expected = "True or False"
    _TEXT = {"true": True, "yes": True, "on": True, "1": True,
             "false": False, "no": False, "off": False, "0": False}  # fmt: skip

    def check(self, value: object) -> bool:
        if not isinstance(value, bool):
            raise ValueError(self.expected)
        return value

    def parse(self, text: str) -> bool:
        found = self._TEXT.get(text.strip().lower())
        if found is None:
            raise ValueError("true or false")
        return found


class _Choice(Kind):
    def __init__(self, choices: tuple[str, ...], make: Callable[[str], Any] = str) -> None:
        self.choices = choices
        self.make = make  # the value a choice stands for: the str, or an enum member
        *first, last = (repr(c) for c in choices)
        self.expected = f"{', '.join(first)} or {last}"

    def check(self, value: object) -> Any:
        if not isinstance(value, str) or value not in self.choices:
            raise ValueError(self.expected)
        return self.make(value)


class _Text(Kind):
    expected = "a string"

    def check(self, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(self.expected)
        return value.strip() or None


COUNT = _Count()
SECONDS = _Seconds()
FLAG = _Flag()
TEXT = _Text()


@dataclass(frozen=True)
class Setting:
    """One setting. `name` is Tracer's keyword (and attribute); `ini` and `flag` are the
    pytest plugin's names for it (None: not a pytest setting), `command_flag` the `trace`
    command's. `negated`: the flags turn the setting off (--uprobe-no-inlined)."""

    name: str
    kind: Kind
    default: Any
    help: str
    ini: str | None = None
    flag: str | None = None
    command_flag: str | None = None
    metavar: str | None = None
    negated: bool = False
    default_text: str | None = None  # how help shows the default, when not str(default)
    tracer: bool = True  # a keyword argument of Tracer()

    @property
    def choices(self) -> tuple[str, ...] | None:
        return self.kind.choices if isinstance(self.kind, _Choice) else None

    def help_with_default(self, *, pytest: bool = False) -> str:
        """The help text with the default, as `--help` shows it (`pytest`: pytest's, whose
        ini twin of a negated flag is spelled differently)."""
        if self.default_text is not None:
            shown = self.default_text
        elif self.default is None:
            return self.help
        else:
            shown = str(self.default)
        if pytest and self.negated and self.ini is not None:
            shown = f"ini: {self.ini} = false; default: {shown}"
            return f"{self.help} ({shown})"
        if self.kind.text_hint:
            shown += f"; {self.kind.text_hint}"
        return f"{self.help} (default: {shown})"

    def check(self, value: object, *, where: str | None = None) -> Any:
        """`value` (a Python value) if it is good, else UsageError naming `where` (default:
        the keyword name), what was given and what is expected."""
        try:
            return self.kind.check(value)
        except ValueError as exc:
            raise self.refusal(where or self.name, value, str(exc)) from None

    def parse(self, text: str, *, where: str) -> Any:
        """The value `text` (an ini or command-line value) stands for, else UsageError."""
        try:
            return self.kind.parse(text)
        except ValueError as exc:
            raise self.refusal(where, text, str(exc)) from None

    def refusal(self, where: str, given: object, expected: str) -> UsageError:
        default = self.default_text or str(self.default)
        return UsageError(
            f"{where} must be {expected}, got {given!r}\n"
            f"  fix: give {where} {expected}, or leave it out for the default ({default})"
        )

    def pytest_names(self) -> str:
        """How a user sets it in pytest: `--uprobe-timeout or ini uprobe_timeout`."""
        return f"{self.flag} or ini {self.ini}"


# fmt: off
TIMEOUT = Setting(
    "timeout", SECONDS, 60.0,
    "timeout in seconds for each traced run; on expiry the program and every process it "
    "started are killed and TraceTimeout raised",
    ini="uprobe_timeout", flag="--uprobe-timeout", command_flag="--timeout", metavar="S",
    default_text="60",
)
CHILDREN = Setting(
    "children", _Choice(tuple(CHILDREN_DONE)), "kill",
    "what happens to processes a traced program started that still run when it exits: "
    "kill them, wait for them (the timeout counts), or leave them running",
    ini="uprobe_children", flag="--uprobe-children", command_flag="--children",
)
RET_SITES_ONLY = Setting(
    "ret_sites_only", FLAG, False,
    "read return values at return instructions everywhere, never through uretprobes",
    ini="uprobe_ret_sites_only", flag="--uprobe-ret-sites-only",
    command_flag="--ret-sites-only", default_text="off",
)
MAX_FUNCTIONS = Setting(
    "max_functions", COUNT, 1000,
    "refuse a probe name that matches more functions than this",
    ini="uprobe_max_functions", flag="--uprobe-max-functions",
    command_flag="--max-functions", metavar="N",
)
MAX_STRING = Setting(
    "max_string", COUNT, 256,
    "cap in bytes copied for each &str/String; longer ones decode as Truncated",
    ini="uprobe_max_string", flag="--uprobe-max-string", command_flag="--max-string",
    metavar="N",
)
MAX_ELEMENTS = Setting(
    "max_elements", COUNT, 16,
    "cap in elements copied for each slice/Vec; longer ones decode as Truncated",
    ini="uprobe_max_elements", flag="--uprobe-max-elements", command_flag="--max-elements",
    metavar="N",
)
INLINED = Setting(
    "inlined", FLAG, True,
    "do not probe copies of a function inlined into its callers",
    ini="uprobe_inlined", flag="--uprobe-no-inlined", command_flag="--no-inlined",
    negated=True, default_text="probe them",
)
LOST_EVENTS = Setting(
    "lost_events", _Choice(tuple(p.value for p in LostEvents), LostEvents), LostEvents.FAIL,
    "when the ring buffer drops events: fail (assertions that need every call raise "
    "LostEventsError) or warn (a LostEventsWarning; assertions use the calls recorded)",
    ini="uprobe_lost_events", flag="--uprobe-lost-events",
)
BACKEND = Setting(
    "backend", _Choice(("auto", "bpf", "inprocess")), "auto",
    "the tracing engine: bpf (kernel uprobes, root), inprocess (Frida inside the traced "
    "process: no root, cheaper per call) or auto (bpf where the machine allows it, else "
    "inprocess)",
    ini="uprobe_backend", flag="--uprobe-backend", command_flag="--backend",
)
FOLLOW_CHILDREN = Setting(
    "follow_children", FLAG, False,
    "also trace the processes the program forks and execs", command_flag="--follow-children",
    default_text="off",
)
RECORD = Setting(
    "record", FLAG, True,
    "deliver every call with its arguments and return value (False: count calls only, "
    "in the kernel: the cheapest mode)",
)

# The pytest plugin's own settings (not Tracer's).
ON = Setting(
    "uprobe", FLAG, False,
    "run the tests that use uprobe_trace or carry @pytest.mark.uprobe (needs root)",
    ini="uprobe", flag="--uprobe", tracer=False,
)
PROFILE = Setting(
    "profile", TEXT, "dev", "default cargo profile for the cargo_bin fixture",
    ini="uprobe_profile", flag="--uprobe-profile", metavar="P", tracer=False,
)
TIMELINE = Setting(
    "timeline", TEXT, None,
    "write each traced run's call timeline into DIR as Chrome trace-event JSON (opens in "
    "ui.perfetto.dev and chrome://tracing), one file per run named after the test id "
    "(ini: relative to the ini file)",
    ini="uprobe_timeline", flag="--uprobe-timeline", metavar="DIR", tracer=False,
)
TIMELINE_ON = Setting(
    "timeline_on", _Choice(("always", "failure")), "always",
    "which tests' runs --uprobe-timeline writes: always (every traced test) or failure "
    "(failed tests only)",
    ini="uprobe_timeline_on", flag="--uprobe-timeline-on", tracer=False,
)

SETTINGS: tuple[Setting, ...] = (
    ON, TIMEOUT, CHILDREN, PROFILE, RET_SITES_ONLY, MAX_FUNCTIONS, MAX_STRING, MAX_ELEMENTS,
    INLINED, LOST_EVENTS, TIMELINE, TIMELINE_ON, BACKEND, FOLLOW_CHILDREN, RECORD,
)
# fmt: on
