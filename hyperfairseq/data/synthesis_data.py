"""A prepared synthesis dataset on disk: a stroke dataset (strokes.py) plus one transcript per line.

Layout (written by `write_synthesis_dataset`, read by text_stroke_dataset.py)::

    meta.json, <split>.strokes.npy, <split>.index.npy    as strokes.write_dataset writes them
    <split>.text                                        UTF-8, one transcript per line, in line order
    <split>.<name> for each extra column (e.g. hershey's `face`), one value per line
    meta.json["alphabet"]                               the characters of the training transcripts
    meta.json["unknown_characters"]                     per split: characters outside the alphabet

Characters are encoded as indices: 0 padding, 1 `<unk>` (outside the alphabet: counted, never
dropped), 2 + i the alphabet's i-th character. The whole folder is written in a temporary sibling and
renamed at the end; an existing output is refused unless `replace`. stdlib + numpy only.
"""

import json
import os
import shutil
import tempfile
from typing import Dict, List, NamedTuple, Sequence

import numpy as np

from . import strokes as S

PAD, UNK = 0, 1
TEXT = "text"


class TranscribedLines(NamedTuple):
    """One split: rows [(T, 3) raw pen rows], texts [str] and optional extra columns {name: [str]}."""

    rows: List[np.ndarray]
    texts: List[str]
    columns: Dict[str, List[str]] = {}


def encode(text: str, alphabet: str) -> np.ndarray:
    """Indices of `text`: 2 + position in `alphabet`, `UNK` for any other character."""
    index = {ch: i + 2 for i, ch in enumerate(alphabet)}
    return np.array([index.get(ch, UNK) for ch in text], dtype=np.int64)


def read_texts(data_dir: str, split: str) -> List[str]:
    path = os.path.join(data_dir, f"{split}.{TEXT}")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: {data_dir} has no transcripts; prepare a synthesis dataset with "
            "python -m hyperfairseq.data.hershey prepare (or hyperfairseq.data.iam_transcripts prepare)"
        )
    with open(path, encoding="utf-8", newline="\n") as f:
        return [line[:-1] if line.endswith("\n") else line for line in f]


def write_synthesis_dataset(out: str, splits: Dict[str, TranscribedLines], meta: dict, min_length: int = 0,
                            replace: bool = False) -> dict:
    """Write `splits` atomically; training lines shorter than `min_length` rows are dropped with their
    transcripts (H2). Returns the written meta."""
    S.check_output(out, replace)
    for name, split in splits.items():
        if len(split.rows) != len(split.texts) or any(len(c) != len(split.texts) for c in split.columns.values()):
            raise ValueError(f"split {name}: {len(split.rows)} stroke lines but {len(split.texts)} transcripts")
        empty = [i for i, (r, t) in enumerate(zip(split.rows, split.texts)) if len(r) == 0 or not t]
        if empty:
            raise ValueError(f"split {name}: line(s) {empty[:5]} have no pen rows or an empty transcript")
    splits = dict(splits)
    keep = [i for i, r in enumerate(splits[S.TRAIN].rows) if len(r) >= min_length]
    dropped = len(splits[S.TRAIN].rows) - len(keep)
    splits[S.TRAIN] = _select(splits[S.TRAIN], keep)
    alphabet = "".join(sorted(set("".join(splits[S.TRAIN].texts))))
    unknown = {k: sum(ch not in alphabet for t in v.texts for ch in t) for k, v in splits.items()}
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=os.path.basename(out) + ".tmp-", dir=parent)
    try:
        staged = os.path.join(tmp, "dataset")
        meta = S.write_dataset(staged, {k: v.rows for k, v in splits.items()}, dict(meta, alphabet=alphabet), 0)
        meta.update(min_length=min_length, dropped_short_train_lines=dropped, unknown_characters=unknown)
        with open(os.path.join(staged, S.META), "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
        for name, split in splits.items():
            for column, values in {TEXT: split.texts, **split.columns}.items():
                _write_lines(os.path.join(staged, f"{name}.{column}"), values)
        _swap_in(staged, out, os.path.join(tmp, "replaced"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return meta


def _select(split: TranscribedLines, keep: Sequence[int]) -> TranscribedLines:
    pick = lambda values: [values[i] for i in keep]  # noqa: E731
    return TranscribedLines(pick(split.rows), pick(split.texts), {k: pick(v) for k, v in split.columns.items()})


def _swap_in(staged: str, out: str, replaced: str) -> None:
    """Rename `staged` to `out`; an existing `out` moves to `replaced` first and comes back on failure."""
    had_old = os.path.exists(out)
    if had_old:
        os.rename(out, replaced)
    try:
        os.rename(staged, out)
    except OSError:
        if had_old:
            os.rename(replaced, out)
        raise


def _write_lines(path: str, lines: Sequence[str]) -> None:
    bad = [i for i, line in enumerate(lines) if "\n" in line or "\r" in line]
    if bad:
        raise ValueError(f"{path}: transcript(s) {bad[:5]} contain a line break")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(line + "\n" for line in lines)

