"""One traced run as a self-contained SVG picture: one lane per thread, each out-of-line
call a bar (nested calls below their caller), each inlined hit a tick, a time axis, a
legend with every function's call count. No script, no external reference: it renders in
any browser and inside an HTML report as is. The first `max_calls` calls are drawn; the
rest are summarized per function under the picture.
"""

from __future__ import annotations

from collections import Counter
from html import escape

from .timeline import Span, call_text, run_label, spans, thread_label, thread_order
from .trace import Trace

MAX_DRAWN_CALLS = 300
WIDTH = 960
LABEL_WIDTH = 170  # the lane names' column
ROW_HEIGHT = 18  # one traced depth
LANE_HEIGHT_CAP = 260  # deeper lanes squeeze their rows instead of growing
FONT = "font-family:DejaVu Sans,Arial,Helvetica,sans-serif"
# Tableau 10: distinct, and readable with white text.
PALETTE = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
]  # fmt: skip
UNWOUND_STROKE = "#c00000"


def function_colors(trace: Trace) -> dict[str, str]:
    """A color per instance path, in order of first appearance."""
    paths = list(dict.fromkeys(c.path for c in trace.calls))
    return {path: PALETTE[i % len(PALETTE)] for i, path in enumerate(paths)}


def _short(path: str) -> str:
    """The last segment of a path, outside generics: `hello` for `args::hello`."""
    depth = 0
    cut = 0
    for i, ch in enumerate(path):
        if ch in "<([":
            depth += 1
        elif ch in ">)]":
            depth -= 1
        elif ch == ":" and depth == 0 and path[i : i + 2] == "::":
            cut = i + 2
    return path[cut:] or path


def _duration_text(ns: float) -> str:
    if ns >= 1e9:
        return f"{ns / 1e9:.3g} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.3g} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.3g} us"
    return f"{ns:.0f} ns" if ns else "0"


def _ticks(total_ns: int, count: int = 6) -> list[int]:
    """Round tick positions from 0 to `total_ns`."""
    if total_ns <= 0:
        return [0]
    raw = total_ns / count
    magnitude = 10 ** (len(str(int(raw))) - 1)
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return list(range(0, total_ns + 1, int(step)))


def svg(trace: Trace, *, max_calls: int = MAX_DRAWN_CALLS, width: int = WIDTH) -> str:
    """The picture of `trace` as an `<svg>` element (text)."""
    every = spans(trace)
    drawn = every[:max_calls]
    colors = function_colors(trace)
    plot_left = LABEL_WIDTH
    plot_width = width - plot_left - 12
    total = max((s.end_ns for s in drawn), default=0) or 1
    parts: list[str] = []
    y = 4

    def text(x: float, y: float, body: str, **attrs: str) -> None:
        # class_ -> class, font_size -> font-size
        names = {k: k.rstrip("_").replace("_", "-") for k in attrs}
        extra = "".join(f' {names[k]}="{escape(v)}"' for k, v in attrs.items())
        parts.append(f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{escape(body)}</text>')

    y += 14
    text(4, y, run_label(trace), font_weight="bold", font_size="13")
    y += 16
    shown = (
        f"all {len(every)} calls"
        if len(drawn) == len(every)
        else (f"the first {len(drawn)} of {len(every)} calls recorded")
    )
    text(4, y, f"{shown}, {_duration_text(total)} from the first call", font_size="11",
         fill="#444")  # fmt: skip
    if trace.lost_events:
        y += 15
        text(4, y, f"{trace.lost_events} events lost: this picture is incomplete",
             font_size="11", fill=UNWOUND_STROKE, class_="lost")  # fmt: skip

    # The time axis.
    y += 18
    axis_y = y
    parts.append(
        f'<line class="axis" x1="{plot_left}" y1="{axis_y}" x2="{plot_left + plot_width}" '
        f'y2="{axis_y}" stroke="#888"/>'
    )
    for tick in _ticks(total):
        x = plot_left + tick / total * plot_width
        parts.append(
            f'<line x1="{x:.1f}" y1="{axis_y - 4}" x2="{x:.1f}" y2="{axis_y}" stroke="#888"/>'
        )
        text(x, axis_y - 6, _duration_text(tick), font_size="10", fill="#444",
             text_anchor="middle")  # fmt: skip
    y += 6

    by_thread: dict[int, list[Span]] = {}
    for span in drawn:
        by_thread.setdefault(span.call.tid, []).append(span)
    for index, tid in enumerate(t for t in thread_order(trace) if t in by_thread):
        lane = by_thread[tid]
        rows = max(s.call.depth for s in lane) + 1
        row = min(ROW_HEIGHT, max(3, LANE_HEIGHT_CAP // rows))
        height = rows * row + 8
        fill = "#f3f3f3" if index % 2 == 0 else "#fafafa"
        parts.append(f'<g class="lane" data-tid="{tid}">')
        parts.append(
            f'<rect class="lane-band" x="0" y="{y}" width="{width}" height="{height}" '
            f'fill="{fill}"/>'
        )
        text(4, y + 14, thread_label(trace, tid), font_size="11", class_="lane-label")
        drawn_here = f"{len(lane)} call drawn" if len(lane) == 1 else f"{len(lane)} calls drawn"
        text(4, y + 27, drawn_here, font_size="10", fill="#666")
        for span in lane:
            parts.append(_call_shape(span, y + 4, row, total, plot_left, plot_width, colors))
        parts.append("</g>")
        y += height + 2

    # Legend: every probed function's count, and what was not drawn.
    y += 8
    counted = {name: f.call_count for name, f in trace.functions.items()}
    drawn_paths = Counter(s.call.path for s in drawn)
    x = 4.0
    for path, color in colors.items():
        label = f"{path}: {drawn_paths.get(path, 0)} drawn"
        needed = 18 + 6.2 * len(label) + 14
        if x + needed > width:
            x = 4.0
            y += 16
        parts.append(
            f'<rect class="swatch" x="{x:.1f}" y="{y}" width="12" height="12" fill="{color}"/>'
        )
        text(x + 16, y + 10, label, font_size="11")
        x += needed
    y += 18
    counts = ", ".join(f"{name}: {count}" for name, count in counted.items())
    text(4, y + 10, f"calls counted in the kernel: {counts or 'nothing probed'}",
         font_size="11", class_="counted")  # fmt: skip
    y += 14
    rest = every[len(drawn) :]
    if rest:
        left = Counter(s.call.path for s in rest)
        summary = ", ".join(f"{path}: {n}" for path, n in left.most_common())
        text(4, y + 10, f"not drawn ({len(rest)} calls): {summary}", font_size="11",
             class_="not-drawn")  # fmt: skip
        y += 14
    height = y + 8
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="uprobe-timeline" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" style="{FONT};background:#fff">'
        f"<title>{escape(run_label(trace))}</title>" + "".join(parts) + "</svg>"
    )


def _call_shape(
    span: Span,
    top: int,
    row: int,
    total: int,
    left: int,
    plot_width: int,
    colors: dict[str, str],
) -> str:
    call = span.call
    color = colors[call.path]
    y = top + call.depth * row
    x = left + span.start_ns / total * plot_width
    tip = f"{call_text(call)} [tid {call.tid}]"
    if call.inlined:
        # A downward triangle: an instant with no duration of its own.
        half = max(2.0, row / 3)
        bottom = y + row - 1
        return (
            f'<polygon class="inlined" data-function="{escape(call.path)}" '
            f'points="{x - half:.1f},{y + 1} {x + half:.1f},{y + 1} {x:.1f},{bottom}" '
            f'fill="{color}" stroke="#333" stroke-width="0.5">'
            f"<title>{escape(tip + ' (inlined copy)')}</title></polygon>"
        )
    duration = span.end_ns - span.start_ns
    w = max(1.5 if span.end_known else 4.0, duration / total * plot_width)
    if span.end_known:
        tip += f" {_duration_text(duration)}"
        stroke = 'stroke="#fff" stroke-width="0.5"'
        kind = "call"
    else:
        why = "unwound by a panic" if call.unwound else "did not return"
        if duration:
            tip += f" {why}: ended within {_duration_text(duration)}"
        else:
            tip += f" {why}: no later event on its thread bounds its end"
        stroke = f'stroke="{UNWOUND_STROKE}" stroke-width="1.5" stroke-dasharray="3,2"'
        kind = "call unwound" if call.unwound else "call unfinished"
    height = max(1, row - 2)
    shape = (
        f'<rect class="{kind}" data-function="{escape(call.path)}" x="{x:.2f}" y="{y}" '
        f'width="{w:.2f}" height="{height}" fill="{color}" {stroke}>'
        f"<title>{escape(tip)}</title></rect>"
    )
    label = _short(call.path) + ("" if span.end_known else " (panic)" if call.unwound else "")
    if row >= 12 and w > 7 * len(label) + 6:
        shape += (
            f'<text x="{x + 3:.1f}" y="{y + row - 6}" font-size="11" fill="#fff" '
            f'pointer-events="none">{escape(label)}</text>'
        )
    elif call.unwound and row >= 10:
        # Too narrow for its label: a red mark beside the bar, inside the plot.
        end = x + w
        inside = end + 60 < left + plot_width
        anchor, at = ("start", end + 3) if inside else ("end", x - 3)
        shape += (
            f'<text class="panic-mark" x="{at:.1f}" y="{y + row - 6}" font-size="11" '
            f'fill="{UNWOUND_STROKE}" text-anchor="{anchor}">\u2715 panic</text>'
        )
    return shape
