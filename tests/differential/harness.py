"""The differential harness: generate a crate of random functions, build it in three profiles,
trace every function, and compare every decoded argument and return value with what the
program printed.

    python -m tests.differential.harness --functions 60 --seed 1 --seed 2
    python -m tests.differential.harness --engine bpf --engine inprocess   (both, compared)

The rule: zero wrong values. A value pytest-uprobe cannot decode must be `Unavailable` with
a reason; the report gives the decode rate per type family and profile, per engine. Run on
both engines, the same program and inputs are traced by each and every answer is compared
across them too: identical, except the floats in SSE registers the in-process engine reads
where the BPF one says `Unavailable` (`cross_check`).
"""

from __future__ import annotations

import argparse
import random
import re
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_uprobe import Inside, Struct, Tracer, Truncated, Unavailable, Variant
from pytest_uprobe.cargo import cargo_bin
from pytest_uprobe.errors import UnreadableFunction

from .grammar import CHARS, OK, STRINGS, UNAVAILABLE, WRONG, Grammar, Reader, Result, Ty

HERE = Path(__file__).resolve().parent
WORK = HERE / "target"  # generated crates and their builds (cached between runs)
CRATE = "diffcrate"
PROFILES = ("dev", "release", "limited")  # limited: release with `debug = 1`
PROFILE_LABELS = {
    "dev": "dev",
    "release": "release (debug = true)",
    "limited": "release (debug = 1)",
}
LINE = re.compile(r"^(ARG|RET) (f\d+)(?: (\d+))? = (.*)$")


@dataclass
class Function:
    name: str
    params: list[Ty]
    returns: Ty
    inline_always: bool


@dataclass
class Program:
    seed: int
    functions: list[Function]
    definitions: list[str]
    drivers: list[list[tuple[int, int]]]  # per driver: (function index, call number)


def generate(seed: int, count: int) -> Program:
    rng = random.Random(seed)
    grammar = Grammar(rng)
    functions: list[Function] = []
    for i in range(count):
        arity = rng.choice([0, 1, 1, 2, 2, 3, 3, 4, 5, 6, 7, 8, 10])
        params = [grammar.any() for _ in range(arity)]
        returns = grammar.any()
        functions.append(Function(f"f{i}", params, returns, rng.random() < 0.15))
    definitions: list[str] = []
    seen: set[str] = set()
    for f in functions:
        for t in [*f.params, f.returns]:
            for item in t.definitions():
                if item not in seen:
                    seen.add(item)
                    definitions.append(item)
    drivers: list[list[tuple[int, int]]] = [[], [], []]
    for i, f in enumerate(functions):
        where = rng.sample(range(3), 3 if f.inline_always else rng.choice([1, 1, 2]))
        for d in where:
            drivers[d].append((i, 0))
    return Program(seed, functions, definitions, drivers)


PRELUDE = """#![allow(dead_code, unused_variables, unused_parens, clippy::all)]
use std::sync::atomic::{AtomicU64, Ordering};

static STATE: AtomicU64 = AtomicU64::new(SEED);

#[inline(never)]
fn rnd() -> u64 {
    // splitmix64
    let step = 0x9E3779B97F4A7C15;
    let mut z = STATE.fetch_add(step, Ordering::Relaxed).wrapping_add(step);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
    z ^ (z >> 31)
}

const STRS: &[&str] = &STRINGS;
const CHARS: &[char] = &CHARLIST;

#[inline(never)]
fn pick_str() -> &'static str { STRS[(rnd() % STRS.len() as u64) as usize] }
#[inline(never)]
fn pick_char() -> char { CHARS[(rnd() % CHARS.len() as u64) as usize] }
#[inline(never)]
fn pick_len() -> usize { match rnd() % 8 { 0 => 0, 7 => 18, n => n as usize } }
"""


def rust_source(program: Program) -> str:
    def rust_str(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    out = [
        PRELUDE.replace("SEED", str(program.seed * 7919 + 1))
        .replace("STRINGS", "[" + ", ".join(rust_str(s) for s in STRINGS) + "]")
        .replace("CHARLIST", "[" + ", ".join(f"'{c}'" for c in CHARS) + "]")
    ]
    out += program.definitions
    for f in program.functions:
        params = ", ".join(f"a{i}: {t.rust}" for i, t in enumerate(f.params))
        inline = "#[inline(always)]" if f.inline_always else "#[inline(never)]"
        body = [f'    println!("ARG {f.name} {i} = {{:?}}", a{i});' for i in range(len(f.params))]
        body.append(f"    let ret: {f.returns.rust} = {f.returns.make()};")
        body.append(f'    println!("RET {f.name} = {{:?}}", ret);')
        body.append("    ret")
        out.append(
            f"{inline}\npub fn {f.name}({params}) -> {f.returns.rust} {{\n"
            + "\n".join(body)
            + "\n}"
        )
    for d, calls in enumerate(program.drivers):
        lines = []
        for i, _ in calls:
            f = program.functions[i]
            lines.append(f"    let _ = {f.name}({', '.join(t.make() for t in f.params)});")
        out.append(f"#[inline(never)]\nfn drive{d}() {{\n" + "\n".join(lines) + "\n}")
    out.append("fn main() {\n    drive0();\n    drive1();\n    drive2();\n}")
    return "\n\n".join(out) + "\n"


CARGO_TOML = """[package]
name = "diffcrate"
version = "0.1.0"
edition = "2021"

[workspace]

[profile.release]
debug = true

[profile.limited]
inherits = "release"
debug = 1
"""


def write_crate(program: Program, count: int) -> Path:
    """The crate's directory, rewritten only where its text changed (cargo's cache holds)."""
    crate = WORK / f"seed{program.seed}-n{count}"
    (crate / "src").mkdir(parents=True, exist_ok=True)
    for path, text in (
        (crate / "Cargo.toml", CARGO_TOML),
        (crate / "src" / "main.rs", rust_source(program)),
    ):
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    return crate


# -- comparing -------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One compared value."""

    profile: str
    function: str
    position: str  # "arg 0", "return"
    family: str
    status: str
    details: list[str] = field(default_factory=list)
    engine: str = "bpf"
    call: int = -1  # which call of the function (time order), -1: not a per-call value
    answer: str = ""  # what the engine gave (repr), compared across engines
    seed: int = 0  # of the generated program


def printed_calls(program: Program, stdout: str) -> dict[str, list[tuple[list[Any], Any]]]:
    """Per function, the (arguments, return value) of each call, read from the program's output."""
    by_name = {f.name: f for f in program.functions}
    calls: dict[str, list[tuple[list[Any], Any]]] = defaultdict(list)
    args: list[Any] = []
    for line in stdout.splitlines():
        found = LINE.match(line)
        if not found:
            continue
        kind, name, number, text = found.groups()
        f = by_name[name]
        t = f.params[int(number)] if kind == "ARG" else f.returns
        reader = Reader(text)
        value = t.read(reader)
        reader.space()
        if reader.at != len(text):
            raise ValueError(f"unparsed Debug text of {name}: {text[reader.at :]!r}")
        if kind == "ARG":
            args.append(value)
        else:
            calls[name].append((args, value))
            args = []
    return calls


def compare_run(program: Program, profile: str, trace: Any, engine: str = "bpf") -> list[Outcome]:
    outcomes = _compare_run(program, profile, trace)
    for o in outcomes:
        o.engine = engine
    return outcomes


def _compare_run(program: Program, profile: str, trace: Any) -> list[Outcome]:
    outcomes: list[Outcome] = []
    printed = printed_calls(program, trace.stdout)
    for f in program.functions:
        expected = printed.get(f.name, [])
        if f"{CRATE}::{f.name}" not in trace:
            continue
        seen = trace[f"{CRATE}::{f.name}"]
        count = seen.call_count
        if not getattr(count, "exact", True):
            # A bound (sites left out, names sharing an address): it must hold the printed
            # count; the values of an incomplete list are not compared.
            inside = count.low <= len(expected) <= count.high
            outcomes.append(
                Outcome(
                    profile,
                    f.name,
                    "count",
                    "call counts",
                    UNAVAILABLE if inside else WRONG,
                    [f"{count!r} for {len(expected)} printed:{count.reasons()}"],
                    answer=f"count {count!r}",
                )
            )
            continue
        calls = seen.calls
        if count != len(expected) or len(calls) != len(expected):
            outcomes.append(
                Outcome(
                    profile,
                    f.name,
                    "count",
                    "call counts",
                    WRONG,
                    [f"counted {seen.call_count}, recorded {len(calls)}, printed {len(expected)}"],
                    answer=f"count {seen.call_count!r}, {len(calls)} recorded",
                )
            )
            continue
        for number, (call, (args, ret)) in enumerate(zip(calls, expected)):
            decoded_args = call.args
            if not isinstance(decoded_args, (tuple, Unavailable)) or (
                isinstance(decoded_args, tuple) and len(decoded_args) != len(f.params)
            ):
                shown = ", ".join(type(a).__name__ for a in decoded_args)
                outcomes.append(
                    Outcome(
                        profile,
                        f.name,
                        "args",
                        "parameter lists",
                        WRONG,
                        [
                            f"{len(decoded_args)} values ({shown}) for "
                            f"{len(f.params)} parameters ({', '.join(t.rust for t in f.params)})"
                            + (" [inlined copy]" if call.inlined else "")
                        ],
                        call=number,
                        answer=canonical(decoded_args),
                    )
                )
                continue
            for i, (t, e) in enumerate(zip(f.params, args)):
                result = Result()
                if isinstance(decoded_args, Unavailable):
                    result.unavailable.append(f"args: {decoded_args.reason}")
                else:
                    t.check(decoded_args[i], e, result, f"a{i}")
                outcomes.append(
                    Outcome(
                        profile,
                        f.name,
                        f"arg {i}",
                        t.family,
                        result.status,
                        result.wrong or result.unavailable,
                        call=number,
                        answer=canonical(
                            decoded_args
                            if isinstance(decoded_args, Unavailable)
                            else decoded_args[i]
                        ),
                    )
                )
            result = Result()
            if call.inlined or not call.returned:
                if not isinstance(call.retval, Unavailable):
                    result.wrong.append(f"retval {call.retval!r} of a call that did not return")
                else:
                    result.unavailable.append(call.retval.reason)
            elif call.retval is None and f.returns.zero_sized:
                pass  # no DWARF return type: shown as None (see Ty.zero_sized)
            else:
                f.returns.check(call.retval, ret, result, "return")
            outcomes.append(
                Outcome(
                    profile,
                    f.name,
                    "return",
                    f.returns.family,
                    result.status,
                    result.wrong or result.unavailable,
                    call=number,
                    answer=canonical(call.retval),
                )
            )
    return outcomes


ENGINES = ("bpf", "inprocess")


def trace_program(
    exe: Path, probes: list[str], profile: str, engine: str
) -> tuple[Any, list[Outcome]]:
    """One traced run of `exe` with every probe; a probe the engine refuses before the run
    (a site it cannot take) is dropped and reported as an `unprobe-able` outcome."""
    dropped: list[Outcome] = []
    wanted = list(probes)
    while True:
        try:
            with Tracer(timeout=120, backend=engine) as tracer:
                trace = tracer.run([str(exe)], probes=wanted)
            break
        except UnreadableFunction as exc:  # a site the engine cannot take: not a value question
            wanted.remove(exc.name)
            function = exc.name.rsplit("::", 1)[-1]
            dropped.append(
                Outcome(
                    profile,
                    function,
                    "probe",
                    "unprobe-able",
                    UNAVAILABLE,
                    [str(exc)],
                    engine=engine,
                    answer=f"refused: {type(exc).__name__}",
                )
            )
    if trace.returncode != 0:
        raise RuntimeError(
            f"{exe} exited with {trace.returncode} ({engine} engine): {trace.stderr[-2000:]}"
        )
    if trace.lost_events:
        raise RuntimeError(f"{trace.lost_events} events lost tracing {exe} ({engine} engine)")
    return trace, dropped


def run_seed(
    seed: int,
    count: int,
    profiles: tuple[str, ...] = PROFILES,
    *,
    engines: tuple[str, ...] = ("bpf",),
    verbose: bool = False,
) -> list[Outcome]:
    """Every value of every traced call, per profile and engine. With two engines, both
    trace the same executable (same program, same inputs: its PRNG is seeded in the source)."""
    program = generate(seed, count)
    crate = write_crate(program, count)
    probes = [f"{CRATE}::{f.name}" for f in program.functions]
    outcomes: list[Outcome] = []
    for profile in profiles:
        exe = cargo_bin(crate, profile=profile)
        for engine in engines:
            trace, dropped = trace_program(exe, probes, profile, engine)
            found = dropped + compare_run(program, profile, trace, engine)
            for o in found:
                o.seed = seed
            if verbose:
                for o in found:
                    if o.status == WRONG:
                        detail = "; ".join(o.details)
                        print(
                            f"WRONG seed {seed} {engine} {profile} {o.function} {o.position}: "
                            f"{detail[:300]}",
                            file=sys.stderr,
                        )
            outcomes += found
    return outcomes


# -- comparing the engines -------------------------------------------------------------------

# The one difference the engines may show: a value (or part of one) returned in an SSE
# register, which a uprobe's BPF program cannot read (plan._return_value says so) and the
# in-process engine reads from Frida's CPU context. There the in-process answer must be
# right (the printed value) and the BPF one this Unavailable.
SSE_REASON = "SSE register"


@dataclass
class Difference:
    """Where two engines' answers for the same value of the same run differ."""

    seed: int
    profile: str
    function: str
    position: str  # "arg 0", "return", "count", "probe"; with the call's number
    answers: dict[str, str]  # engine -> what it gave

    def __str__(self) -> str:
        given = "; ".join(f"{engine}: {answer}" for engine, answer in self.answers.items())
        return f"seed {self.seed} {self.profile} {self.function} {self.position}: {given}"


@dataclass
class CrossCheck:
    """The engines compared value by value: `same` answers, `sse` values only the
    in-process engine reads (right there, Unavailable on BPF), `refused`: functions one
    engine declined where the other traced them (a probe refused before the run, or a count
    given as a bound), each naming the site and the other engine as the fix; and every other
    difference, which the rule forbids."""

    same: int = 0
    sse: int = 0
    refused: list[Difference] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)


def _declined(outcomes: list[Outcome]) -> Outcome | None:
    """The outcome by which an engine declined a whole function, if it did."""
    for o in outcomes:
        if o.position == "probe" or (o.position == "count" and o.status == UNAVAILABLE):
            return o
    return None


def canonical(value: Any) -> str:
    """A value's repr with every map's entries sorted: a HashMap's iteration order changes
    from run to run (std's RandomState), and each engine traces a run of its own."""
    if isinstance(value, dict):
        items = sorted(f"{canonical(k)}: {canonical(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        inner = ", ".join(canonical(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    if isinstance(value, Struct):
        return (
            f"{value._name}("
            + ", ".join(f"{k}={canonical(v)}" for k, v in value._fields.items())
            + ")"
        )
    if isinstance(value, Variant):
        return f"Variant({value.name!r}, {canonical(value.value)})"
    if isinstance(value, Truncated):
        return f"Truncated({canonical(value.prefix)}, length={value.length})"
    if isinstance(value, Inside):
        state = "".join(f", {k}={v!r}" for k, v in value.state.items())
        return f"{value.container}({canonical(value.value)}{state})"
    return repr(value)


def _answers(outcomes: list[Outcome]) -> dict[tuple[str, int], Outcome]:
    return {(o.position, o.call): o for o in outcomes}


def cross_check(outcomes: list[Outcome], engines: tuple[str, ...] = ENGINES) -> CrossCheck:
    """Compare the engines' answers for each function of each profile: the same positions
    (a count bound on one engine and calls on the other is a difference), and for each the
    same answer, except SSE returns (`SSE_REASON`)."""
    first, second = engines
    grouped: dict[tuple[int, str, str], dict[str, list[Outcome]]] = defaultdict(
        lambda: {first: [], second: []}
    )
    for o in outcomes:
        if o.engine in (first, second):
            grouped[(o.seed, o.profile, o.function)][o.engine].append(o)
    result = CrossCheck()
    for (seed, profile, function), by_engine in sorted(grouped.items()):
        declined = {e: _declined(by_engine[e]) for e in (first, second)}
        if (declined[first] is None) != (declined[second] is None):
            engine, other = (first, second) if declined[first] else (second, first)
            why = declined[engine]
            assert why is not None
            refusal = Difference(
                seed,
                profile,
                function,
                f"{why.position} ({len(by_engine[other])} values on {other})",
                {engine: "; ".join(why.details), other: f"{len(by_engine[other])} values"},
            )
            # Declined honestly: the reason names the engine that takes it.
            honest = f"--uprobe-backend={other}" in "".join(why.details) or why.position == "count"
            (result.refused if honest else result.differences).append(refusal)
            continue
        ours, theirs = _answers(by_engine[first]), _answers(by_engine[second])
        for key in sorted(ours.keys() | theirs.keys(), key=lambda k: (k[1], k[0])):
            mine, other = ours.get(key), theirs.get(key)
            position = key[0] if key[1] < 0 else f"{key[0]} of call {key[1]}"
            if mine is not None and other is not None and mine.answer == other.answer:
                result.same += 1
                continue
            if (
                mine is not None
                and other is not None
                and first == "bpf"
                and mine.status == UNAVAILABLE
                and any(SSE_REASON in d for d in mine.details)
                and other.status == OK
            ):
                result.sse += 1
                continue
            result.differences.append(
                Difference(
                    seed,
                    profile,
                    function,
                    position,
                    {
                        first: mine.answer if mine else _missing(by_engine[first]),
                        second: other.answer if other else _missing(by_engine[second]),
                    },
                )
            )
    return result


def _missing(outcomes: list[Outcome]) -> str:
    """What an engine gave instead of a value the other one compared."""
    for o in outcomes:
        if o.position in ("probe", "count"):
            return f"no such value ({o.position}: {o.answer})"
    return "no such value (the function was not traced)"


# -- the report ------------------------------------------------------------------------------


def rate_table(outcomes: list[Outcome], profiles: tuple[str, ...] = PROFILES) -> str:
    """Markdown: per type family and profile, values decoded right / values compared, and
    how many were wrong."""
    cells: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for o in outcomes:
        cells[(o.family, o.profile)][o.status] += 1
    families = sorted({o.family for o in outcomes})
    head = "| type family | " + " | ".join(PROFILE_LABELS[p] for p in profiles) + " |"
    lines = [head, "|---" * (len(profiles) + 1) + "|"]
    for family in families:
        row = []
        for p in profiles:
            c = cells.get((family, p), Counter())
            total = sum(c.values())
            if not total:
                row.append("-")
                continue
            text = f"{c[OK]}/{total} ({100 * c[OK] / total:.0f}%)"
            if c[WRONG]:
                text += f", **{c[WRONG]} wrong**"
            row.append(text)
        lines.append(f"| {family} | " + " | ".join(row) + " |")
    totals = []
    for p in profiles:
        c = Counter(o.status for o in outcomes if o.profile == p)
        total = sum(c.values())
        totals.append(f"{c[OK]}/{total}, {c[WRONG]} wrong" if total else "-")
    lines.append("| **all** | " + " | ".join(totals) + " |")
    return "\n".join(lines)


def reasons(outcomes: list[Outcome], limit: int = 15) -> str:
    """The most common reasons values were Unavailable, per profile."""
    counts: Counter[tuple[str, str]] = Counter()
    for o in outcomes:
        if o.status == UNAVAILABLE:
            reason = re.sub(r"0x[0-9a-f]+", "ADDR", o.details[0].split(": ", 1)[-1])
            counts[(o.profile, reason)] += 1
    return "\n".join(f"- {n} × ({p}) {r}" for (p, r), n in counts.most_common(limit))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--functions", "-n", type=int, default=40)
    parser.add_argument("--seed", type=int, action="append", help="repeatable; default: 1")
    parser.add_argument("--seeds", type=int, default=0, help="also run this many random seeds")
    parser.add_argument("--profile", action="append", choices=PROFILES)
    parser.add_argument(
        "--engine",
        action="append",
        choices=ENGINES,
        help="repeatable; default: bpf. Both: each traces the same runs, answers compared",
    )
    args = parser.parse_args(argv)
    seeds = list(args.seed or ([] if args.seeds else [1]))
    seeds += [random.randrange(1, 2**31) for _ in range(args.seeds)]
    profiles = tuple(args.profile or PROFILES)
    engines = tuple(e for e in ENGINES if e in (args.engine or ["bpf"]))
    outcomes: list[Outcome] = []
    for seed in seeds:
        print(f"seed {seed}: {args.functions} functions", file=sys.stderr, flush=True)
        try:
            outcomes += run_seed(seed, args.functions, profiles, engines=engines, verbose=True)
        except (RuntimeError, subprocess.SubprocessError, ValueError) as exc:
            print(f"seed {seed} failed: {exc}", file=sys.stderr)
            return 2
    for engine in engines:
        mine = [o for o in outcomes if o.engine == engine]
        print(f"## {engine} engine\n")
        print(rate_table(mine, profiles))
        print()
        print("Most common reasons for Unavailable:")
        print(reasons(mine))
        print()
    wrong = [o for o in outcomes if o.status == WRONG]
    print(f"{len(outcomes)} values compared over seeds {seeds}: {len(wrong)} wrong")
    differences: list[Difference] = []
    if len(engines) == 2:
        checked = cross_check(outcomes, engines)
        differences = checked.differences
        print(
            f"engines compared: {checked.same} answers identical, {checked.sse} SSE values "
            f"only the in-process engine reads (right there), {len(checked.refused)} functions "
            f"declined by one engine (naming the other), {len(differences)} differences"
        )
        for refusal in checked.refused:
            print(f"  DECLINED {str(refusal)[:300]}")
        for difference in differences:
            print(f"  DIFFERENT {difference}")
    return 1 if wrong or differences else 0


if __name__ == "__main__":
    sys.exit(main())
