"""StreamDataset: contiguous rows, consecutive segments, rank sharding, what is scored."""

import pytest
import torch

from hyperfairseq.data.stream_dataset import StreamDataset

BOS = 2


def segments(ds):
    return [ds.collater([ds[i]]) for i in range(len(ds))]


def test_docstring_example_rows_and_segments_come_out_in_order():
    tokens = torch.arange(10, 20)  # a b c ... j
    ds = StreamDataset(tokens, BOS, rows_per_shard=2, segment_length=3)
    first, second = segments(ds)
    assert first["net_input"]["src_tokens"].tolist() == [[BOS, 10, 11], [14, 15, 16]]
    assert first["target"].tolist() == [[10, 11, 12], [15, 16, 17]]
    assert second["net_input"]["src_tokens"].tolist() == [[12, 13], [17, 18]]
    assert second["target"].tolist() == [[13, 14], [18, 19]]
    assert first["net_input"]["carry"] == {"stream": "train", "reset": True}
    assert second["net_input"]["carry"]["reset"] is False


def test_every_kept_symbol_is_predicted_exactly_once_and_the_remainder_is_dropped():
    tokens = torch.arange(100, 100 + 1003)
    ds = StreamDataset(tokens, BOS, rows_per_shard=7, segment_length=10)
    targets = torch.cat([s["target"] for s in segments(ds)], dim=1).flatten()
    assert ds.num_scored == 7 * (1003 // 7)
    assert sorted(targets.tolist()) == tokens[: ds.num_scored].tolist()
    # inputs are the symbols just before each target, continuing across segments
    inputs = torch.cat([s["net_input"]["src_tokens"] for s in segments(ds)], dim=1)
    rows_targets = torch.cat([s["target"] for s in segments(ds)], dim=1)
    assert torch.equal(inputs[:, 1:], rows_targets[:, :-1])


def test_ranks_get_disjoint_contiguous_blocks_that_together_are_the_single_process_layout():
    tokens = torch.arange(1000, 1000 + 480)
    whole = StreamDataset(tokens, BOS, rows_per_shard=4, segment_length=25)
    ranks = [StreamDataset(tokens, BOS, 2, 25, num_shards=2, shard_id=r) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(whole)
    for i in range(len(whole)):
        joined = torch.cat([r[i]["target"] for r in ranks])
        assert torch.equal(joined, whole[i]["target"])
    rows0 = set(ranks[0].rows.flatten().tolist())
    rows1 = set(ranks[1].rows[:, 1:].flatten().tolist())
    assert not rows0 & rows1


def test_too_short_a_stream_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than the 8 rows"):
        StreamDataset(torch.arange(5), BOS, rows_per_shard=4, segment_length=3, num_shards=2, stream="valid")
