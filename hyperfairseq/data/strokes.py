"""Pen strokes as (Δx, Δy, end-of-stroke) rows, and the prepared stroke-dataset layout on disk.

Shared by the IAM-OnDB, KanjiVG and LASA preparers (stdlib + numpy only). Paper-spec §3.5 and H1–H3.

Rows: one per pen point; (Δx, Δy) is the offset from the previous point, end-of-stroke is 1 on the last
point of each stroke (the pen lifts after it). y points up. A line of P points gives P − 1 rows: the
first point only fixes the origin (Graves' offsets between successive points).

Prepared dataset (directory written by `write_dataset`)::

    meta.json               source, label, normalisation constants (train mean/std of Δx, Δy: H1),
                            min_length (H2), per-split counts, skipped-file counts
    <split>.strokes.npy     (N, 3) float32 rows of every line of the split, normalised, concatenated
    <split>.index.npy       (lines + 1,) int64 row offsets: line i is rows [index[i], index[i+1])

It is written to a temporary sibling directory and renamed when complete. An existing output folder is
refused unless `replace` is given (`--replace` on the prepare CLIs); it is then swapped out atomically.

Every preparer's CLI is `python -m hyperfairseq.data.NAME prepare --out DIR [--min-length N] [--replace] ...`,
built by `prepare_parser` and run by `run_prepare`, which prints `describe`'s one line on success.
"""

import argparse
import json
import logging
import os
import shutil
import tempfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Type

import numpy as np

from hyperfairseq import cli
from hyperfairseq.errors import InputError

TRAIN, VALID = "train", "valid"
META = "meta.json"


def points_to_offsets(strokes: Sequence[np.ndarray], origin: Optional[Sequence[float]] = None) -> np.ndarray:
    """Strokes [(P_i, 2) absolute points] -> (ΣP_i, 3) rows; row 0 is the first point minus `origin` (default 0)."""
    rows = []
    prev = np.zeros(2) if origin is None else np.asarray(origin, dtype=np.float64)
    for stroke in strokes:
        stroke = np.asarray(stroke, dtype=np.float64).reshape(-1, 2)
        if len(stroke) == 0:
            continue
        deltas = np.diff(np.vstack([prev, stroke]), axis=0)
        eos = np.zeros((len(stroke), 1))
        eos[-1] = 1.0  # a single-point stroke is one row with the pen lifted after it
        rows.append(np.hstack([deltas, eos]))
        prev = stroke[-1]
    if not rows:
        return np.zeros((0, 3))
    return np.vstack(rows)


def offsets_to_points(rows: np.ndarray, origin: Optional[Sequence[float]] = None) -> List[np.ndarray]:
    """Inverse of `points_to_offsets`: (T, 3) rows -> strokes [(P_i, 2)], split after each end-of-stroke."""
    rows = np.asarray(rows, dtype=np.float64)
    start = np.zeros(2) if origin is None else np.asarray(origin, dtype=np.float64)
    points = start + np.cumsum(rows[:, :2], axis=0)
    ends = np.flatnonzero(rows[:, 2] > 0.5) + 1
    return [s for s in np.split(points, ends) if len(s)]


def line_rows(strokes: Sequence[np.ndarray]) -> np.ndarray:
    """A line's training rows: offsets between successive points (the first point is the origin)."""
    return points_to_offsets(strokes)[1:]


def normalisation(lines: Sequence[np.ndarray]) -> Dict[str, List[float]]:
    """Per-axis mean and std of (Δx, Δy) over all rows of `lines` (H1: training set only)."""
    rows = np.vstack([line[:, :2] for line in lines]).astype(np.float64)
    std = rows.std(axis=0)
    std[std == 0] = 1.0
    return {"mean": [float(v) for v in rows.mean(axis=0)], "std": [float(v) for v in std]}


def normalise(line: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    out = np.array(line, dtype=np.float64)
    out[:, :2] = (out[:, :2] - np.asarray(mean)) / np.asarray(std)
    return out


def denormalise(line: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    out = np.array(line, dtype=np.float64)
    out[:, :2] = out[:, :2] * np.asarray(std) + np.asarray(mean)
    return out


def split_by_length(lines: Sequence[np.ndarray], min_length: int):
    """(kept, dropped count): lines with at least `min_length` rows (H2, applied to training lines only)."""
    kept = [line for line in lines if len(line) >= min_length]
    return kept, len(lines) - len(kept)


class OutputExistsError(InputError):
    """The output folder of a prepare command exists and replacing it was not asked for."""


def check_output(out_dir: str, replace: bool) -> None:
    if os.path.exists(out_dir) and not replace:
        raise OutputExistsError(f"--out {out_dir}: already exists; choose another --out, or add --replace to "
                                "overwrite it (the old folder is kept until the new one is complete)")


def write_dataset(
    out_dir: str,
    splits: Dict[str, Sequence[np.ndarray]],
    meta: dict,
    min_length: int = 0,
    replace: bool = False,
) -> dict:
    """Filter training lines by length, normalise every split with training statistics, write atomically.

    splits: {"train": [...], "valid": [...]} lists of raw (T, 3) rows. Returns the written meta.
    """
    check_output(out_dir, replace)
    if not splits.get(TRAIN):
        raise ValueError(f"no training lines to write to {out_dir}")
    train, dropped = split_by_length(splits[TRAIN], min_length)
    if not train:
        raise ValueError(f"all {dropped} training lines are shorter than --min-length {min_length}; nothing to write")
    stats = normalisation(train)
    meta = dict(meta, min_length=min_length, mean=stats["mean"], std=stats["std"], splits={})
    meta["dropped_short_train_lines"] = dropped
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=os.path.basename(out_dir) + ".tmp-", dir=parent)
    try:
        for name, lines in ((n, train if n == TRAIN else ls) for n, ls in splits.items()):
            lines = [normalise(line, stats["mean"], stats["std"]) for line in lines if len(line)]
            _write_split(tmp, name, lines)
            meta["splits"][name] = {"lines": len(lines), "points": int(sum(len(x) for x in lines))}
        with open(os.path.join(tmp, META), "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _write_split(directory: str, name: str, lines: Sequence[np.ndarray]) -> None:
    index = np.zeros(len(lines) + 1, dtype=np.int64)
    index[1:] = np.cumsum([len(x) for x in lines])
    rows = np.vstack(lines).astype(np.float32) if lines else np.zeros((0, 3), np.float32)
    np.save(os.path.join(directory, f"{name}.strokes.npy"), rows)
    np.save(os.path.join(directory, f"{name}.index.npy"), index)


def _replace_dir(tmp: str, out_dir: str) -> None:
    if os.path.exists(out_dir):
        parent = os.path.dirname(os.path.abspath(out_dir))
        old = tempfile.mkdtemp(prefix=os.path.basename(out_dir) + ".old-", dir=parent)
        os.rename(out_dir, os.path.join(old, "d"))
        os.rename(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out_dir)


def read_meta(data_dir: str) -> dict:
    path = os.path.join(data_dir, META)
    if not os.path.exists(path):
        raise InputError(
            f"{path} not found: prepare the data first (python -m hyperfairseq.data.iam_ondb prepare or "
            "python -m hyperfairseq.data.kanjivg prepare)"
        )
    try:
        with open(path) as f:
            meta = json.load(f)
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: not a readable meta.json ({err})") from None
    missing = [k for k in ("mean", "std") if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise InputError(f"{path}: no {' or '.join(missing)} (the normalisation constants, H1); prepare the data again")
    return meta


def read_split(data_dir: str, split: str):
    """(rows (N, 3) float32, index (lines + 1,) int64) of a prepared split, memory-mapped."""
    rows_path = os.path.join(data_dir, f"{split}.strokes.npy")
    index_path = os.path.join(data_dir, f"{split}.index.npy")
    for path in (rows_path, index_path):
        if not os.path.exists(path):
            raise InputError(f"{path} not found: split {split!r} was not prepared in {data_dir}")
    try:
        rows = np.load(rows_path, mmap_mode="r", allow_pickle=False)
        index = np.load(index_path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise InputError(f"{data_dir}: split {split!r} is not readable ({err}); prepare the data again") from None
    if (rows.ndim != 2 or rows.shape[1] != 3 or index.ndim != 1 or len(index) == 0 or index[0] != 0
            or index[-1] != len(rows) or (np.diff(index) < 0).any()):
        raise InputError(f"{rows_path}: expected (N, 3) rows matching {index_path}; got {rows.shape}, "
                         f"index {index.shape} ending at {index[-1] if index.size else None}")
    return rows, index


def prepare_parser(
    module: str, doc: str, help: str, out_example: str = "", min_length: Optional[int] = 300, wheel: str = ""
) -> Tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """(parser, its `prepare` sub-parser) with --out, --min-length (H2; None: no such flag), --replace and,
    for a preparer that reads a `wheel` (a glob), --pkgs.

    `--force` is kept as an alias of `--replace` (the synthesis preparers' first spelling).
    """
    parser = cli.parser(f"data.{module}", doc)
    prepare = parser.add_subparsers(dest="command", required=True).add_parser("prepare", help=help)
    prepare.add_argument("--out", required=True, help=f"output folder, e.g. {out_example or 'data-bin/' + module}")
    if min_length is not None:
        prepare.add_argument("--min-length", type=int, default=min_length,
                             help=f"drop training lines with fewer rows (H2; default {min_length})")
    prepare.add_argument("--replace", "--force", dest="replace", action="store_true",
                         help="overwrite an existing --out folder (the old one is kept until the new one is complete)")
    if wheel:
        prepare.add_argument("--pkgs", default=None,
                             help=f"folder holding {wheel} (default $HYPERFAIRSEQ_DATA/_pkgs or data/_pkgs)")
    return parser, prepare


def run_prepare(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    write: Callable[[], dict],
    errors: Tuple[Type[BaseException], ...] = (InputError, OSError),
) -> int:
    """Check --min-length, run `write` (returns the written meta) and print `describe` of it; exit status."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(levelname)s: %(message)s")
    if getattr(args, "min_length", 0) < 0:
        parser.error(f"--min-length must be >= 0; got {args.min_length}")
    return cli.run_main(parser.prog, lambda: print(describe(args.out, write())), errors)


def describe(out: str, meta: dict) -> str:
    """One line: what was written where (label, per-split counts, what was dropped; a synthesis alphabet)."""
    counts = ", ".join(f"{k}: {v['lines']} lines / {v['points']} points" for k, v in sorted(meta["splits"].items()))
    text = ""
    if "alphabet" in meta:
        text = (f"; alphabet of {len(meta['alphabet'])} characters; "
                f"unknown characters {meta['unknown_characters']}")
    return (f"wrote {out} ({meta['label']}; {counts}; dropped {meta['dropped_short_train_lines']} short training "
            f"lines{text})")
