"""Charts as inline SVG text, drawn by our own code (no script, no external resource).

Every drawn datum carries ``class="mark"``, so a test (or a reader of the DOM) can tell a
chart with data from an empty frame. Images become ``data:image/png`` URIs through a small
PNG writer (zlib from the standard library).
"""

from __future__ import annotations

import base64
import math
import struct
import zlib
from html import escape
from typing import Any

import numpy as np

__all__ = ["line_chart", "heatmap", "png_data_uri", "image_grid", "COLORS"]

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
          "#17becf", "#7f7f7f", "#bcbd22")
WIDTH, HEIGHT = 420, 240
LEFT, RIGHT, TOP, BOTTOM = 58, 110, 26, 34


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    return [low + (high - low) * i / (count - 1) for i in range(count)]


def _log_ticks(low: float, high: float) -> list[tuple[float, str]]:
    """(log10 position, label) of a log axis: the powers of ten inside it, or, over less
    than a decade, five values labelled as numbers."""
    decades = list(range(math.ceil(low), math.floor(high) + 1))
    if len(decades) < 2:
        return [(t, _fmt(10 ** t)) for t in _ticks(low, high)]
    step = math.ceil(len(decades) / 6)
    return [(k, f"1e{k}" if k else "1") for k in decades[::step]]


def line_chart(series: list[tuple[str, list[float], list[float | None]]], *, title: str,
               x_label: str = "epoch", log_y: bool = False,
               marks: list[tuple[float, str]] = (), legend: int = RIGHT,
               x_ticks: list[tuple[float, str]] | None = None) -> str:
    """Lines (one per ``(label, xs, ys)``; None gaps skipped), vertical ``marks`` labelled.

    ``legend``: the width kept for the legend on the right; ``x_ticks``: (x, label) pairs
    instead of five evenly spaced numbers.
    """
    width = WIDTH - RIGHT + legend
    def ok(v: Any) -> bool:
        return v is not None and math.isfinite(v) and (v > 0 or not log_y)

    points = [(x, y) for _, xs, ys in series for x, y in zip(xs, ys, strict=False) if ok(y)]
    out = [f'<svg viewBox="0 0 {width} {HEIGHT}" '
           f'width="{width}" height="{HEIGHT}" role="img"><title>{escape(title)}</title>',
           f'<rect width="{width}" height="{HEIGHT}" fill="#fff"/>',
           f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>']
    if not points:
        out.append(f'<text x="{LEFT}" y="{HEIGHT // 2}" font-size="12">no data</text></svg>')
        return "".join(out)
    xs_all = [p[0] for p in points]
    ys_all = [math.log10(p[1]) if log_y else p[1] for p in points]
    x0, x1 = min(xs_all), max(xs_all)
    y0, y1 = min(ys_all), max(ys_all)
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pw, ph = width - LEFT - legend, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        y = math.log10(y) if log_y else y
        return TOP + (1 - (y - y0) / (y1 - y0)) * ph

    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" '
               'stroke="#999"/>')
    for t, label in _log_ticks(y0, y1) if log_y else [(t, _fmt(t)) for t in _ticks(y0, y1)]:
        y = TOP + (1 - (t - y0) / (y1 - y0)) * ph
        out.append(f'<line x1="{LEFT - 4}" x2="{LEFT + pw}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="#eee"/><text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="10" '
                   f'text-anchor="end">{label}</text>')
    for t, label in x_ticks or [(t, _fmt(t)) for t in _ticks(x0, x1)]:
        out.append(f'<text x="{px(t):.1f}" y="{TOP + ph + 14}" font-size="10" '
                   f'text-anchor="middle">{escape(label)}</text>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{HEIGHT - 4}" font-size="11" '
               f'text-anchor="middle">{escape(x_label)}</text>')
    for x, label in marks:
        if x0 <= x <= x1:
            out.append(f'<line class="mark best" x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{TOP}" '
                       f'y2="{TOP + ph}" stroke="#555" stroke-dasharray="4 3"/>'
                       f'<text x="{px(x) - 3:.1f}" y="{TOP + ph - 4}" font-size="10" '
                       f'text-anchor="end">{escape(label)}</text>')
    for i, (label, xs, ys) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        pts = [(px(x), py(y)) for x, y in zip(xs, ys, strict=False) if ok(y)]
        if not pts:
            continue
        path = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
        out.append(f'<polyline class="mark" points="{path}" fill="none" stroke="{color}" '
                   f'stroke-width="1.8"><title>{escape(label)}</title></polyline>')
        out += [f'<circle class="mark" cx="{a:.1f}" cy="{b:.1f}" r="2.2" fill="{color}"/>'
                for a, b in pts]
        ly = TOP + 10 + 14 * i
        out.append(f'<rect x="{LEFT + pw + 8}" y="{ly - 8}" width="10" height="10" '
                   f'fill="{color}"/><text x="{LEFT + pw + 22}" y="{ly + 1}" font-size="10">'
                   f'{escape(label[:max(int((legend - 24) / 5.3), 6)])}</text>')
    out.append("</svg>")
    return "".join(out)


def _color(share: float) -> str:
    """White to dark blue."""
    share = min(max(share, 0.0), 1.0)
    r, g, b = (int(255 - share * (255 - c)) for c in (8, 48, 107))
    return f"rgb({r},{g},{b})"


def heatmap(matrix: np.ndarray, *, title: str, x_labels: list[str], y_labels: list[str],
            x_label: str = "", y_label: str = "", numbers: bool = False,
            cell: int = 0, log_scale: bool = False) -> str:
    """A grid of shaded cells (rows top to bottom); ``numbers`` writes each count in it.

    ``log_scale`` shades by log(1 + count) within each column, so that one crowded bin (the
    zeros of a ReLU) does not wash out the rest of a histogram.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if log_scale:
        matrix = np.log1p(np.maximum(matrix, 0))
        column_top = matrix.max(axis=0, keepdims=True)
        matrix = np.divide(matrix, column_top, out=np.zeros_like(matrix), where=column_top > 0)
    rows, cols = matrix.shape
    cw = cell or max(4, min(32, 300 // max(cols, 1)))
    ch = cell or max(3, min(24, 180 // max(rows, 1)))
    left, top = 52, 26
    width, height = left + cols * cw + 12, top + rows * ch + 34
    top_value = float(np.nanmax(matrix)) if matrix.size and np.nanmax(matrix) > 0 else 1.0
    out = [f'<svg viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" role="img"><title>{escape(title)}</title>',
           f'<rect width="{width}" height="{height}" fill="#fff"/>',
           f'<text x="{left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>']
    for r in range(rows):
        for c in range(cols):
            v = matrix[r, c]
            share = 0.0 if not math.isfinite(v) else v / top_value
            out.append(f'<rect class="mark" x="{left + c * cw}" y="{top + r * ch}" '
                       f'width="{cw}" height="{ch}" fill="{_color(share)}"/>')
            if numbers and v:
                color = "#fff" if share > 0.5 else "#000"
                out.append(f'<text x="{left + c * cw + cw / 2}" y="{top + r * ch + ch * 0.7}" '
                           f'font-size="9" text-anchor="middle" fill="{color}">{int(v)}</text>')
    step_x = max(1, cols // 8)
    for c in range(0, cols, step_x):
        out.append(f'<text x="{left + c * cw + cw / 2}" y="{top + rows * ch + 12}" '
                   f'font-size="9" text-anchor="middle">{escape(x_labels[c])}</text>')
    step_y = max(1, rows // 8)
    for r in range(0, rows, step_y):
        out.append(f'<text x="{left - 4}" y="{top + r * ch + ch * 0.75}" font-size="9" '
                   f'text-anchor="end">{escape(y_labels[r])}</text>')
    out.append(f'<text x="{left + cols * cw / 2}" y="{height - 6}" font-size="10" '
               f'text-anchor="middle">{escape(x_label)}</text>')
    if y_label:
        out.append(f'<text x="10" y="{top + rows * ch / 2}" font-size="10" '
                   f'transform="rotate(-90 10 {top + rows * ch / 2})" '
                   f'text-anchor="middle">{escape(y_label)}</text>')
    out.append("</svg>")
    return "".join(out)


def _png(gray: np.ndarray) -> bytes:
    """An 8-bit greyscale PNG of ``gray`` (H, W) with values 0..255."""
    h, w = gray.shape
    raw = b"".join(b"\x00" + gray[i].astype(np.uint8).tobytes() for i in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def png_data_uri(image: np.ndarray, scale: int = 1) -> str:
    """``image`` (H, W), min-max scaled to grey levels, as a ``data:`` URI."""
    image = np.nan_to_num(np.asarray(image, dtype=np.float64))
    low, high = float(image.min()), float(image.max())
    gray = (image - low) / (high - low) * 255 if high > low else np.zeros_like(image)
    if scale > 1:
        gray = np.kron(gray, np.ones((scale, scale)))
    return "data:image/png;base64," + base64.b64encode(_png(np.round(gray))).decode("ascii")


def image_grid(images: list[tuple[np.ndarray, str]], *, scale: int = 2) -> str:
    """HTML figures: each image as an inline PNG with its caption."""
    cells = [f'<figure class="cell"><img class="mark" alt="{escape(caption)}" '
             f'src="{png_data_uri(img, scale)}"><figcaption>{escape(caption)}</figcaption>'
             "</figure>" for img, caption in images]
    return f'<div class="grid">{"".join(cells)}</div>'
