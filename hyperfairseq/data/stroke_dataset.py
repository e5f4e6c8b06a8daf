"""FairseqDataset over a prepared stroke split (see strokes.py for the layout on disk).

One item is one line of (Δx, Δy, end-of-stroke) rows, already normalised (H1). Training items can be
scaled by a random factor per axis drawn uniformly in [1 − s, 1 + s] (H3: independent x and y factors,
paper ±10%), drawn from a generator seeded by (seed, epoch, index) so that runs are reproducible.

A batch (`collater`) holds, right-padded to the longest line (H4)::

    id          (B,)        line indices
    nsentences  B           lines; ntokens: points in the batch
    net_input   strokes (B, T, 3): the model inputs, a start row (0, 0, 1) then the line shifted by one
                lengths (B,): rows per line
    target      (B, T, 3)   the line itself (zeros where padded)
"""

from typing import List

import numpy as np
import torch
from fairseq.data import FairseqDataset

from .strokes import read_split

START_ROW = (0.0, 0.0, 1.0)  # "the pen was lifted" before the first point


class StrokeDataset(FairseqDataset):
    def __init__(self, rows: np.ndarray, index: np.ndarray, scale_augment: float = 0.0, seed: int = 1):
        if not 0.0 <= scale_augment < 1.0:
            raise ValueError(f"scale_augment must lie in [0, 1); got {scale_augment}")
        self.rows = rows
        self.index = np.asarray(index, dtype=np.int64)
        self.sizes = np.diff(self.index)
        self.scale_augment = scale_augment
        self.seed = seed
        self.epoch = 1

    @classmethod
    def load(cls, data_dir: str, split: str, **kwargs) -> "StrokeDataset":
        rows, index = read_split(data_dir, split)
        return cls(rows, index, **kwargs)

    def set_epoch(self, epoch):
        self.epoch = epoch

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return False  # items change with the epoch when augmenting

    def line(self, index: int) -> np.ndarray:
        return np.asarray(self.rows[self.index[index] : self.index[index + 1]], dtype=np.float32)

    def __getitem__(self, index: int):
        line = self.line(index).copy()
        if self.scale_augment > 0:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            line[:, :2] *= rng.uniform(1 - self.scale_augment, 1 + self.scale_augment, size=2)  # H3
        return {"id": index, "strokes": torch.from_numpy(line)}

    def __len__(self) -> int:
        return len(self.sizes)

    def num_tokens(self, index: int) -> int:
        return int(self.sizes[index])

    def num_tokens_vec(self, indices):
        return self.sizes[indices]

    def size(self, index: int) -> int:
        return int(self.sizes[index])

    def ordered_indices(self):
        """Shuffled, then stably sorted by length, so batches hold lines of similar length."""
        order = np.random.permutation(len(self))
        return order[np.argsort(self.sizes[order], kind="mergesort")]

    def collater(self, samples: List[dict]):
        samples = [s for s in samples if len(s["strokes"])]
        if not samples:
            return {}
        lengths = torch.tensor([len(s["strokes"]) for s in samples], dtype=torch.long)
        target = torch.zeros(len(samples), int(lengths.max()), 3)
        for i, s in enumerate(samples):
            target[i, : len(s["strokes"])] = s["strokes"]
        inputs = torch.cat([target.new_tensor(START_ROW).expand(len(samples), 1, 3), target[:, :-1]], dim=1)
        return {
            "id": torch.tensor([s["id"] for s in samples], dtype=torch.long),
            "nsentences": len(samples),
            "ntokens": int(lengths.sum()),
            "net_input": {"strokes": inputs, "lengths": lengths},
            "target": target,
        }
