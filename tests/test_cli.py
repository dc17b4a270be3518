"""The `pytest-uprobe` commands, in-process through `main()` and as `python -m pytest_uprobe`.

`symbols` needs cargo (to build example_crates/zoo), not root; `trace` and most `doctor`
tests need root and run with --uprobe."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_uprobe.cli import main

ZOO = "example_crates/zoo"
V0 = "-C symbol-mangling-version=v0"


@pytest.fixture
def zoo_legacy(cargo_bin):
    return cargo_bin(ZOO, profile="release")


@pytest.fixture
def zoo_v0(cargo_bin):
    return cargo_bin(ZOO, profile="release", rustflags=V0)


def table(text: str) -> list[list[str]]:
    """The rows under the header, split into columns (the path, last, may hold spaces)."""
    lines = text.splitlines()
    assert lines[0].split() == ["RETURN", "ADDRESS", "SIZE", "INST", "INL", "PATH"]
    return [line.split(None, 5) for line in lines[1:]]


def nm_address(exe, demangled_prefix: str) -> set[int]:
    """Addresses of the symbols nm lists whose rustfilt-demangled name starts with a prefix."""
    out = subprocess.run(["nm", str(exe)], capture_output=True, text=True, check=True).stdout
    names = [line.split() for line in out.splitlines() if len(line.split()) == 3]
    plain = subprocess.run(
        ["rustfilt"], input="".join(n[2] + "\n" for n in names), capture_output=True,
        text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    return {int(n[0], 16) for n, p in zip(names, plain) if p.startswith(demangled_prefix)}


def test_symbols_generic_path_lists_every_instance(zoo_v0, capsys):
    assert main(["symbols", str(zoo_v0), "zoo::ident"]) == 0
    rows = table(capsys.readouterr().out)
    paths = sorted(r[5] for r in rows)
    assert paths == ["zoo::ident::<i32>", "zoo::ident::<u64>", "zoo::ident::<u8>"]
    assert {int(r[1], 16) for r in rows} == nm_address(zoo_v0, "zoo::ident::<")
    assert all(r[3] == "3" for r in rows)  # three instances of one generic path
    assert all(r[4] == "-" for r in rows)  # inlined copies not looked up by default


def test_symbols_json(zoo_v0, capsys):
    assert main(["symbols", str(zoo_v0), "zoo::*", "--json"]) == 0
    rows = {r["path"]: r for r in json.loads(capsys.readouterr().out)}
    expected = {"zoo::fib", "zoo::main", "zoo::main::{closure#0}", "zoo::geometry::inner::scale"}
    assert expected <= set(rows)
    # fib calls itself: never a leaf; the identity function of a release build calls nothing.
    assert rows["zoo::fib"]["return_mode"] == "ret-sites"
    assert rows["zoo::ident::<u8>"]["return_mode"] == "uretprobe"
    assert rows["zoo::fib"]["symbol"].startswith("_R")
    assert rows["zoo::fib"]["address"] in nm_address(zoo_v0, "zoo::fib")
    assert rows["zoo::fib"]["size"] > 0 and rows["zoo::fib"]["inlined"] is None


def test_symbols_legacy_closures_get_their_dwarf_numbers(zoo_legacy, capsys):
    assert main(["symbols", str(zoo_legacy), "zoo::main::*", "--inlined"]) == 0
    rows = table(capsys.readouterr().out)
    assert [r[5] for r in rows] == ["zoo::main::{closure#0}", "zoo::main::{closure#1}"]
    assert {int(r[1], 16) for r in rows} == nm_address(zoo_legacy, "zoo::main::{{closure}}")
    assert all(r[4].isdigit() for r in rows)


def test_symbols_without_glob_lists_everything(zoo_legacy, capsys):
    assert main(["symbols", str(zoo_legacy)]) == 0
    paths = [r[5] for r in table(capsys.readouterr().out)]
    assert "zoo::fib" in paths and "<zoo::Sq as zoo::Shape>::area" in paths
    assert len(paths) > 100  # std's functions too


def test_glob_matching_nothing_exits_2(zoo_legacy, capsys):
    assert main(["symbols", str(zoo_legacy), "zoo::nothing*"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "matches no function" in captured.err and "pytest-uprobe symbols" in captured.err


def test_missing_binary_exits_2(tmp_path, capsys):
    assert main(["symbols", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "symbols" in capsys.readouterr().err


def test_python_dash_m(zoo_legacy):
    result = subprocess.run(
        [sys.executable, "-m", "pytest_uprobe", "symbols", str(zoo_legacy),
         "<* as zoo::Shape>::area"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    paths = sorted(r[5] for r in table(result.stdout))
    assert paths == ["<zoo::Circle as zoo::Shape>::area", "<zoo::Sq as zoo::Shape>::area"]


def test_python_dash_m_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pytest_uprobe", "symbols", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert "not an ELF executable" in result.stderr and result.stdout == ""


# -- trace ----------------------------------------------------------------------------------

ARGS = "example_crates/args"
PANICS = "example_crates/panics"


def run_cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_uprobe", *argv], capture_output=True, text=True, env=env
    )


def printed_hellos(text: str) -> list[tuple[int, int, int]]:
    """(i, len, return value) of each hello call, from the args program's own output."""
    found = re.findall(r"Hello, world! (-?\d+) in (\d+)\nreturn value: (-?\d+)", text)
    return [(int(i), int(n), int(r)) for i, n, r in found]


@pytest.mark.uprobe
def test_trace_prints_the_call_log_and_exits_with_the_programs_status(cargo_bin):
    exe = cargo_bin(ARGS)
    expected = printed_hellos(subprocess.run([exe, "1", "2", "x"], capture_output=True,
                                             text=True).stdout)  # fmt: skip
    assert len(expected) == 2
    result = run_cli(
        "trace", "-p", "args::hello", "-p", "args::main", "--", str(exe), "1", "2", "x"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r" +0\.000 ms  tid \d+ +args::main\(\) -> .*  \[out-of-line, .* us\]",
                        lines[0])  # fmt: skip
    for line, (i, n, r) in zip(lines[1:], expected):
        assert re.fullmatch(
            rf" +\d+\.\d{{3}} ms  tid \d+ +  args::hello\({i}, {n}\) -> {r}  "
            r"\[out-of-line, .* us\]",
            line,
        )
    assert len(lines) == 3
    # the program's own output goes to stderr, then one line of counts
    assert printed_hellos(result.stderr) == expected
    assert "Error: Argument 'x' is not a valid integer" in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "pytest-uprobe trace: exit status 0; calls counted: args::hello: 2, args::main: 1; "
        "engine: bpf"  # what "auto" takes as root
    )


@pytest.mark.uprobe
def test_trace_json(cargo_bin, capsys):
    exe = cargo_bin(ARGS)
    out = subprocess.run([exe, "3", "4"], capture_output=True, text=True).stdout
    assert main(["trace", "-p", "args::*", "--json", "--", str(exe), "3", "4"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["argv"] == [str(exe), "3", "4"] and data["returncode"] == 0
    assert data["stdout"] == out and data["lost_events"] == 0
    calls = data["calls"]
    hellos = [c for c in calls if c["path"] == "args::hello"]
    assert [(*c["args"], c["retval"]) for c in hellos] == [tuple(h) for h in printed_hellos(out)]
    assert data["counts"]["args::*"] == len(calls)
    main_index = next(i for i, c in enumerate(calls) if c["path"] == "args::main")
    for call in hellos:
        assert call["caller"] == main_index and call["depth"] == 1
        assert call["returned"] and not call["inlined"] and call["duration_ns"] > 0
        assert call["kwargs"] == {"i": call["args"][0], "len": call["args"][1]}
    assert [c["offset_ns"] for c in calls] == sorted(c["offset_ns"] for c in calls)


@pytest.mark.uprobe
def test_trace_exit_status_of_a_panicking_program(cargo_bin):
    exe = cargo_bin(PANICS)
    plain = subprocess.run([exe, "uncaught", "4", "3"], capture_output=True, text=True)
    assert plain.returncode == 101 and "checked_half(4) = 2" in plain.stdout
    result = run_cli("trace", "-p", "panics::checked_half", "--", str(exe), "uncaught", "4", "3")
    assert result.returncode == plain.returncode
    lines = result.stdout.splitlines()
    assert "panics::checked_half(4) -> 2  [out-of-line" in lines[0]
    assert "panics::checked_half(3) (unwound, no return)  [out-of-line]" in lines[1]


@pytest.mark.uprobe
def test_trace_timeout_exits_124_with_the_partial_log(cargo_bin, tmp_path):
    exe = cargo_bin(PANICS)
    env = dict(os.environ, PANICS_GO=str(tmp_path / "never"))
    result = run_cli("trace", "--timeout", "1", "-p", "panics::leaf_mix", "--", str(exe),
                     "leaf", "5", "6", env=env)  # fmt: skip
    assert result.returncode == 124
    plain = subprocess.run([exe, "leaf", "5", "6"], capture_output=True, text=True).stdout
    value = re.search(r"leaf_mix\(5, 6\) = (\d+)", plain)[1]
    assert f"panics::leaf_mix(5, 6) -> {value}" in result.stdout
    assert "timed out" in result.stderr


def test_trace_without_a_command_is_a_usage_error(capsys):
    assert main(["trace", "-p", "args::hello", "--"]) == 125  # not a status of the program
    assert "give the program to run after --" in capsys.readouterr().err


def test_trace_needs_a_probe(capsys):
    with pytest.raises(SystemExit) as info:
        main(["trace", "--", "/bin/true"])
    assert info.value.code == 125
    assert "-p/--probe" in capsys.readouterr().err


# -- doctor ---------------------------------------------------------------------------------

DOCTOR_CHECKS = [
    "privileges", "kernel", "uprobe PMU", "bcc", "kernel headers", "BPF program", "cargo",
    "bpftool",
]  # fmt: skip


def doctor_rows(text: str) -> dict[str, str]:
    """check name -> status word (ok, MISSING, skipped, missing)."""
    rows = {}
    for line in text.splitlines():
        for name in DOCTOR_CHECKS:
            if re.match(rf"(ok|MISSING|skipped|missing \(optional\)) +{re.escape(name)}  ", line):
                rows[name] = line.split()[0]
    return rows


@pytest.mark.uprobe
def test_doctor_all_ok(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert doctor_rows(out) == dict.fromkeys(DOCTOR_CHECKS, "ok")
    assert "compiled and loaded in" in out
    assert out.rstrip().endswith(
        "everything pytest-uprobe needs is here: run `sudo -E pytest --uprobe`"
    )


@pytest.mark.uprobe
def test_doctor_with_headers_hidden_names_them_and_the_fix():
    result = run_cli("doctor", env=dict(os.environ, BCC_KERNEL_SOURCE="/nonexistent"))
    assert result.returncode == 1
    rows = doctor_rows(result.stdout)
    assert rows["kernel headers"] == "MISSING" and rows["BPF program"] == "skipped"
    assert rows["privileges"] == rows["bcc"] == rows["cargo"] == "ok"
    lines = result.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("MISSING"))
    assert lines[at].endswith("BCC_KERNEL_SOURCE=/nonexistent has no include/ directory")
    assert lines[at + 1].split("fix: ")[1] == (
        "unset BCC_KERNEL_SOURCE, or point it at a kernel header tree "
        "(apt-get install linux-headers-amd64)"
    )
    assert "not tried: needs kernel headers" in result.stdout
    assert lines[-1] == "1 missing: kernel headers"


@pytest.mark.uprobe
def test_doctor_without_cargo_on_path(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))  # an empty directory: no cargo, no bpftool
    result = run_cli("doctor", env=env)
    assert result.returncode == 1
    rows = doctor_rows(result.stdout)
    assert rows["cargo"] == "MISSING" and rows["bpftool"] == "missing"
    assert rows["BPF program"] == "ok"
    assert "fix: curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh" in result.stdout
    assert "fix: apt-get install bpftool" in result.stdout
    assert result.stdout.splitlines()[-1] == "1 missing: cargo"  # bpftool is optional


def test_doctor_without_privileges(monkeypatch, capsys):
    from pytest_uprobe.bpf import prerequisites

    monkeypatch.setattr(prerequisites, "_capabilities", lambda: 0)
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    rows = doctor_rows(out)
    assert rows["privileges"] == "MISSING" and rows["BPF program"] == "skipped"
    assert "fix: run as root: sudo -E " in out and "pytest --uprobe" in out
    assert "not tried: needs privileges" in out


@pytest.mark.uprobe
def test_trace_follows_children_when_asked(cargo_bin, capsys):
    exe = cargo_bin("example_crates/workload")
    plain = subprocess.run([exe, "tree", "3", "1"], capture_output=True, text=True).stdout
    processes, ticks = (int(n) for n in re.findall(r"processes (\d+) ticks (\d+)", plain)[0])
    assert processes > 1
    assert main(["trace", "-p", "workload::tick", "--json", "--", str(exe), "tree", "3", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["workload::tick"] == 3  # the root only
    argv = ["trace", "-p", "workload::tick", "--json", "--follow-children"]
    assert main([*argv, "--", str(exe), "tree", "3", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["workload::tick"] == ticks


def _needs_engine(backend: str) -> None:
    if backend == "inprocess":
        pytest.importorskip("frida")


@pytest.mark.uprobe
@pytest.mark.parametrize("backend", ["bpf", "inprocess"])
def test_trace_runs_on_the_engine_asked_for(cargo_bin, capsys, backend):
    """--backend picks the engine: each prints the calls the program printed, and says it
    ran (the last line, and --json's "engine")."""
    _needs_engine(backend)
    exe = cargo_bin(ARGS)
    expected = printed_hellos(subprocess.run([exe, "5", "-3", "x"], capture_output=True,
                                             text=True).stdout)  # fmt: skip
    assert len(expected) == 2
    result = run_cli("trace", "--backend", backend, "-p", "args::hello",
                     "--", str(exe), "5", "-3", "x")  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(expected)
    for line, (i, n, r) in zip(lines, expected):
        assert re.fullmatch(
            rf" +\d+\.\d{{3}} ms  tid \d+ +args::hello\({i}, {n}\) -> {r}  "
            r"\[out-of-line, .* us\]",
            line,
        ), line
    assert result.stderr.splitlines()[-1] == (
        f"pytest-uprobe trace: exit status 0; calls counted: args::hello: 2; engine: {backend}"
    )
    assert main(["trace", "--backend", backend, "-p", "args::hello", "--json",
                 "--", str(exe), "5", "-3", "x"]) == 0  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert data["engine"] == backend
    assert [(*c["args"], c["retval"]) for c in data["calls"]] == expected


def test_trace_refuses_an_unknown_backend_naming_the_choices(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["trace", "--backend", "kernel", "-p", "x", "--", "true"])
    assert exited.value.code == 125
    assert capsys.readouterr().err.splitlines()[-1] == (
        "pytest-uprobe trace: error: argument --backend: must be 'auto', 'bpf' or "
        "'inprocess', got 'kernel'"
    )


def _as_nobody(exe: Path, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`python -m pytest_uprobe ARGV` run by the user nobody in a directory holding a copy
    of `exe` as ./args (this interpreter's environment must be readable by others)."""
    work = tmp_path / "nobody"
    work.mkdir()
    shutil.copy(exe, work / "args")
    os.chmod(tmp_path, 0o755)
    os.chmod(work, 0o777)
    for parent in tmp_path.parents:
        if parent in (Path("/tmp"), Path("/")):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o005)
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         sys.executable, "-m", "pytest_uprobe", *argv],
        cwd=work, capture_output=True, text=True,
        env={**os.environ, "HOME": str(work), "XDG_CACHE_HOME": str(work / ".cache")},
    )  # fmt: skip
    if "Permission denied" in result.stderr and "venv" in result.stderr:
        pytest.skip("this interpreter's environment is not readable by nobody")
    return result


@pytest.mark.uprobe
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root")
@pytest.mark.parametrize("backend", ["inprocess", "auto"])
def test_trace_as_an_unprivileged_user(cargo_bin, tmp_path, backend):
    """nobody traces with the in-process engine, asked for or taken by "auto" (nobody may
    not use BPF), and the last line says which engine ran."""
    pytest.importorskip("frida")
    exe = cargo_bin(ARGS)
    expected = printed_hellos(subprocess.run([exe, "3", "4"], capture_output=True,
                                             text=True).stdout)  # fmt: skip
    result = _as_nobody(exe, tmp_path, "trace", "--backend", backend, "-p", "args::hello",
                        "--", "./args", "3", "4")  # fmt: skip
    assert result.returncode == 0, result.stderr
    seen = [tuple(int(v) for v in m) for m in
            re.findall(r"args::hello\((-?\d+), (\d+)\) -> (-?\d+)", result.stdout)]  # fmt: skip
    assert seen == expected and len(seen) == 2
    assert result.stderr.splitlines()[-1].endswith("args::hello: 2; engine: inprocess")


@pytest.mark.uprobe
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root")
def test_trace_on_bpf_as_an_unprivileged_user_fails_naming_the_fix(cargo_bin, tmp_path):
    exe = cargo_bin(ARGS)
    result = _as_nobody(exe, tmp_path, "trace", "--backend", "bpf", "-p", "args::hello",
                        "--", "./args", "3")  # fmt: skip
    assert result.returncode == 125, result.stderr
    assert "root, or CAP_BPF and CAP_PERFMON" in result.stderr
    assert result.stdout == ""
