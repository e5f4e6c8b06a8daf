"""B contiguous streams of a token sequence, cut into consecutive segments (truncated BPTT).

The paper trains and evaluates its character models Graves-style (paper-spec R11): the split is one
long sequence of symbols, laid out as B parallel contiguous rows, and each batch is the next
T-symbol segment of every row; the recurrent state is carried from one segment to the next.

Worked example: stream `a b c d e f g h i j` (N = 10), `$` the end-of-sentence symbol put before
the first symbol, B = 2, T = 3. Row length L = ⌊10 / 2⌋ = 5; row r has symbols r·L+1 … (r+1)·L as
targets, each input being the symbol before its target (neighbouring rows overlap by one symbol)::

    row 0: input  $ a b c d      target a b c d e
    row 1: input  e f g h i      target f g h i j
    segment 0: inputs [[$ a b] [e f g]]  targets [[a b c] [f g h]]   reset = True
    segment 1: inputs [[c d] [h i]]      targets [[d e] [i j]]       reset = False

What is scored: the first B·⌊N/B⌋ of the split's N symbols, each exactly once, line ends included
(fairseq-preprocess ends every line with the end-of-sentence symbol); the last N mod B symbols are
dropped. Each row starts from a zero state, so with B rows B−1 symbols are predicted without their
left context (evaluate with `--batch-size 1` for the paper's single pass over the test stream).

Data parallel: with W ranks of b rows each there are B = b·W rows in all; rank s takes rows
s·b … s·b + b − 1 (a contiguous block), and every rank sees the same number of segments.
"""

import numpy as np
import torch
from fairseq.data import FairseqDataset

from hyperfairseq.errors import InputError


class StreamDataset(FairseqDataset):
    """Item i is segment i of every row; `collater` returns it as a ready batch.

    Args:
        tokens: 1-D LongTensor, the whole split as one stream.
        bos: the symbol placed before the stream's first symbol (the end-of-sentence symbol).
        rows_per_shard: b, rows of this rank (`--batch-size`).
        segment_length: T (`--tokens-per-sample`).
        num_shards, shard_id: data-parallel world size and this rank.
        stream: the name the model keys its carried state by (the split name).
        reset_every_segment: mark every segment as a reset (no carried state), for comparison.
    """

    def __init__(self, tokens, bos: int, rows_per_shard: int, segment_length: int,
                 num_shards: int = 1, shard_id: int = 0, stream: str = "train", reset_every_segment: bool = False):
        super().__init__()
        self.reset_every_segment = reset_every_segment
        total_rows = rows_per_shard * num_shards
        n = tokens.numel()
        if n < total_rows:
            raise InputError(
                f"--batch-size {rows_per_shard}: split '{stream}' has {n} symbols, fewer than the {total_rows} "
                f"rows (streams) asked for ({rows_per_shard} per rank x {num_shards} ranks)"
            )
        self.row_length = n // total_rows
        self.segment_length = segment_length
        self.stream = stream
        self.num_scored = self.row_length * total_rows
        padded = torch.cat([tokens.new_tensor([bos]), tokens[: self.num_scored]])
        first = shard_id * rows_per_shard
        starts = torch.arange(first, first + rows_per_shard) * self.row_length
        offsets = torch.arange(self.row_length + 1)
        self.rows = padded[starts.unsqueeze(1) + offsets]  # (b, L + 1)
        self.sizes = np.full(len(self), segment_length, dtype=np.int64)

    def __len__(self) -> int:
        return -(-self.row_length // self.segment_length)

    def __getitem__(self, index: int):
        start = index * self.segment_length
        end = min(start + self.segment_length, self.row_length)
        return {
            "index": index,
            "source": self.rows[:, start:end].contiguous(),
            "target": self.rows[:, start + 1:end + 1].contiguous(),
        }

    def collater(self, items):
        assert len(items) == 1, "a StreamDataset batch is exactly one segment"
        item = items[0]
        rows, steps = item["source"].shape
        return {
            "id": torch.arange(rows),
            "nsentences": rows,
            "ntokens": rows * steps,
            "net_input": {
                "src_tokens": item["source"],
                "src_lengths": torch.full((rows,), steps, dtype=torch.long),
                "carry": {"stream": self.stream, "reset": item["index"] == 0 or self.reset_every_segment},
            },
            "target": item["target"],
        }

    def num_tokens(self, index: int) -> int:
        return self.segment_length

    def size(self, index: int) -> int:
        return self.segment_length

    def ordered_indices(self):
        return np.arange(len(self))  # never shuffled: segments must follow each other
