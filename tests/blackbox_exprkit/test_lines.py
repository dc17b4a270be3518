"""Line probes with locals in the histogram loop."""

from pathlib import Path

import pytest

from pytest_uprobe import Unavailable
from tests.blackbox_exprkit.rdebug import printed

LIB = Path(__file__).resolve().parents[2] / "example_crates" / "exprkit" / "src" / "lib.rs"


def line_of(text):
    for i, l in enumerate(LIB.read_text().splitlines(), 1):
        if text in l:
            return i
    raise KeyError(text)


def test_histogram_loop_body_counts_and_locals(uprobe_trace, exe, profile):
    ln = line_of("counted += 1;")
    probe = f"src/lib.rs:{ln}"
    if profile == "release":  # the counter folds away: the line has no code, honestly
        from pytest_uprobe import UprobeError

        with pytest.raises(UprobeError, match="no code"):
            uprobe_trace.run([exe, "sync"], probes=[probe])
        probe = f"src/lib.rs:{line_of('*h.entry(bucket)')}"
    t = uprobe_trace.run([exe, "sync"], probes=[probe])
    ((args, ret),) = printed(t.stdout, "exprkit::histogram")
    small = args[0]
    hits = t[probe]
    n_big = 260
    if profile == "dev":
        assert hits.call_count == n_big + len(small)
        tail = hits.calls[-len(small) :]
        assert [h.locals["x"] for h in tail] == small
        assert [h.locals["counted"] for h in tail] == list(range(len(small)))
        assert [h.locals["bucket"] for h in tail] == [x // args[1] for x in small]
        assert tail[0].locals["width"] == args[1]
    else:
        try:
            assert hits.call_count == n_big + len(small)
        except Exception as e:  # a bound must name its shape
            assert "InexactCount" in type(e).__name__
            assert hits.call_count >= 1
        # every local either the printed value or Unavailable
        tail = hits.calls[-len(small) :]
        for h, x in zip(tail, small):
            for k, v in h.locals.items():
                want = {"x": x, "bucket": x // args[1], "width": args[1]}.get(k)
                if want is not None and not isinstance(v, Unavailable):
                    assert v == want, (k, v, want)


def test_ambiguous_line_file(uprobe_trace, cargo_bin, crate):
    from pytest_uprobe import UprobeError

    exe = cargo_bin(crate)
    with pytest.raises(UprobeError) as ei:
        uprobe_trace.run([exe, "sync"], probes=["mod.rs:10"])
    assert "AmbiguousSourceFile" in type(ei.value).__name__ or "more than one" in str(ei.value)
    print(str(ei.value)[:2000])


def test_line_without_code(uprobe_trace, cargo_bin, crate):
    from pytest_uprobe import UprobeError

    exe = cargo_bin(crate)
    ln = line_of("/// Histogram of values")
    with pytest.raises(UprobeError) as ei:
        uprobe_trace.run([exe, "sync"], probes=[f"src/lib.rs:{ln}"])
    assert type(ei.value).__name__ == "NoCodeAtLine"
    assert str(ln + 2) in str(ei.value) or str(ln + 3) in str(ei.value)
    print(ei.value)


def test_no_such_file(uprobe_trace, cargo_bin, crate):
    from pytest_uprobe import UprobeError

    exe = cargo_bin(crate)
    with pytest.raises(UprobeError) as ei:
        uprobe_trace.run([exe, "sync"], probes=["src/parser.rs:3"])
    assert type(ei.value).__name__ == "NoSuchSourceFile"
    print(ei.value)
