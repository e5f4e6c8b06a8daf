"""Lines of pen rows with their transcripts, for handwriting synthesis (issue 15).

The layout on disk and the character encoding are described in synthesis_data.py.

A batch (`collater`) is the `StrokeDataset` batch with two more net_input fields::

    chars         (B, U) long: the transcript's indices, right-padded with 0
    char_lengths  (B,) long: characters per line
"""

from typing import List, Sequence

import numpy as np
import torch

from .stroke_dataset import StrokeDataset
from .strokes import read_split
from .synthesis_data import PAD, encode, read_texts


class TextStrokeDataset(StrokeDataset):
    """`StrokeDataset` whose items also carry `chars`, the encoded transcript of the line."""

    def __init__(self, rows, index, chars: Sequence[np.ndarray], **kwargs):
        super().__init__(rows, index, **kwargs)
        if len(chars) != len(self):
            raise ValueError(f"{len(chars)} transcripts for {len(self)} stroke lines")
        self.chars = list(chars)

    @classmethod
    def load(cls, data_dir: str, split: str, alphabet: str = "", **kwargs) -> "TextStrokeDataset":
        rows, index = read_split(data_dir, split)
        texts = read_texts(data_dir, split)
        if len(texts) != len(index) - 1:
            raise ValueError(f"{data_dir}/{split}.text has {len(texts)} lines for {len(index) - 1} stroke lines")
        empty = [i for i, t in enumerate(texts) if not t]
        if empty:
            raise ValueError(f"{data_dir}/{split}.text: empty transcript on line(s) {[i + 1 for i in empty[:5]]}")
        return cls(rows, index, [encode(t, alphabet) for t in texts], **kwargs)

    def __getitem__(self, index: int):
        item = super().__getitem__(index)
        item["chars"] = torch.from_numpy(self.chars[index])
        return item

    def collater(self, samples: List[dict]):
        batch = super().collater(samples)
        if not batch:
            return batch
        by_id = {s["id"]: s["chars"] for s in samples}
        chars = [by_id[int(i)] for i in batch["id"]]
        lengths = torch.tensor([len(c) for c in chars], dtype=torch.long)
        padded = torch.full((len(chars), int(lengths.max())), PAD, dtype=torch.long)
        for i, c in enumerate(chars):
            padded[i, : len(c)] = c
        batch["net_input"].update(chars=padded, char_lengths=lengths)
        return batch
