"""Render pen strokes to SVG and PNG: (Δx, Δy, end-of-stroke) rows in pen units, y up.

Used by `python -m hyperfairseq.sample_handwriting` and the README figure. SVG is written by hand (one
<polyline> per stroke); PNG uses matplotlib's Agg backend. A single-point stroke is drawn as a dot.
"""

from typing import List, Optional, Sequence

import numpy as np

from hyperfairseq.data.strokes import offsets_to_points


def rows_to_strokes(rows: np.ndarray) -> List[np.ndarray]:
    """(T, 3) rows -> strokes [(P_i, 2)] starting at the origin (the inverse of the preparers' offsets)."""
    return offsets_to_points(np.asarray(rows, dtype=np.float64))


def _bounds(strokes: Sequence[np.ndarray], margin: float):
    points = np.vstack(strokes) if strokes else np.zeros((1, 2))
    lo, hi = points.min(0) - margin, points.max(0) + margin
    return lo, np.maximum(hi - lo, 1e-6)


def to_svg(strokes: Sequence[np.ndarray], path: str, stroke_width: Optional[float] = None, title: str = "") -> None:
    """Write strokes (y up) as an SVG whose viewBox fits them; y is flipped to SVG's downward axis."""
    _, extent = _bounds(strokes, margin=0.0)
    lo, size = _bounds(strokes, margin=0.02 * float(max(extent)))
    width = stroke_width or max(size) / 300.0
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size[0]:.3f} {size[1]:.3f}" '
        f'width="{min(1000.0, 1000.0 * size[0] / max(size)):.0f}" '
        f'height="{min(1000.0, 1000.0 * size[1] / max(size)):.0f}">',
        f"<title>{title}</title>" if title else "",
        '<rect width="100%" height="100%" fill="white"/>',
    ]
    for stroke in strokes:
        xy = np.column_stack([stroke[:, 0] - lo[0], lo[1] + size[1] - stroke[:, 1]])
        if len(xy) == 1:
            parts.append(f'<circle cx="{xy[0, 0]:.3f}" cy="{xy[0, 1]:.3f}" r="{width:.3f}" fill="black"/>')
        else:
            pts = " ".join(f"{x:.3f},{y:.3f}" for x, y in xy)
            parts.append(
                f'<polyline points="{pts}" fill="none" stroke="black" stroke-width="{width:.3f}" '
                'stroke-linecap="round" stroke-linejoin="round"/>'
            )
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(p for p in parts if p) + "\n")


def to_png(strokes: Sequence[np.ndarray], path: str, title: str = "", dpi: int = 100) -> None:
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, size = _bounds(strokes, margin=1e-6)
    aspect = float(size[0] / size[1])
    fig, ax = plt.subplots(figsize=(min(16.0, max(2.0, 2.0 * aspect)), 2.2))
    for stroke in strokes:
        if len(stroke) == 1:
            ax.plot(stroke[:, 0], stroke[:, 1], "k.", markersize=2)
        else:
            ax.plot(stroke[:, 0], stroke[:, 1], "k-", linewidth=1.2, solid_capstyle="round")
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=8)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def render(rows: np.ndarray, stem: str, title: str = "") -> List[str]:
    """Write `stem`.svg and `stem`.png for one line of rows; returns the two paths."""
    strokes = rows_to_strokes(rows)
    to_svg(strokes, stem + ".svg", title=title)
    to_png(strokes, stem + ".png", title=title)
    return [stem + ".svg", stem + ".png"]
