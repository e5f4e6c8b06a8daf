"""fairseq_patches §9: fairseq's batch_by_size keeps every item (it dropped a last batch that was not a
multiple of --required-batch-size-multiple: fairseq-generate scored 16 of 20 test sentences); §10: the
fairseq data classes that use numpy 1 names work under numpy 2."""

import numpy as np
import pytest
import torch
from fairseq.data import Dictionary, LanguagePairDataset, TokenBlockDataset, data_utils

import hyperfairseq  # noqa: F401  (installs the patches)

SIZES = np.array([3, 9, 4, 10, 2, 7, 5, 8, 6, 1] * 2)


@pytest.mark.parametrize("max_tokens,max_sentences", [(2000, None), (None, 64), (None, 8), (30, None)])
@pytest.mark.parametrize("as_type", [np.array, list, iter], ids=["array", "list", "iterator"])
def test_every_index_is_batched_once_in_order(max_tokens, max_sentences, as_type):
    indices = np.argsort(SIZES, kind="stable")
    batches = data_utils.batch_by_size(as_type(indices), lambda i: SIZES[i], max_tokens=max_tokens,
                                       max_sentences=max_sentences, required_batch_size_multiple=8)
    assert np.concatenate(batches).tolist() == indices.tolist()
    # fairseq's rule still holds for every batch but the last: fewer than 8 items, or a multiple of 8
    assert all(len(b) < 8 or len(b) % 8 == 0 for b in batches[:-1])


def test_a_whole_number_of_multiples_gains_no_batch():
    batches = data_utils.batch_by_size(np.arange(16), lambda i: 5, max_tokens=2000, required_batch_size_multiple=8)
    assert [len(b) for b in batches] == [16]


def test_fixed_shapes_are_fairseqs_own():
    batches = data_utils.batch_by_size(np.arange(20), lambda i: 5, fixed_shapes=[(8, 5)])
    assert [len(b) for b in batches] == [8, 8, 4]


# -- §10: numpy 1 names under numpy 2 (each test raised AttributeError / TypeError under numpy 2.4 unpatched)

LINES = [torch.tensor([5, 6, 7, 2]), torch.tensor([8, 2]), torch.tensor([9, 10, 11, 12, 2])]


def test_token_blocks_in_eos_mode_are_the_lines():
    """--sample-break-mode eos (and fairseq's language_modeling inference): one block per line."""
    blocks = TokenBlockDataset(LINES, [len(t) for t in LINES], block_size=None, pad=1, eos=2, break_mode="eos")
    assert [blocks[i].tolist() for i in range(len(blocks))] == [t.tolist() for t in LINES]


def test_length_buckets_are_numpys_lower_percentiles():
    sizes = np.array([3, 9, 4, 10, 2, 7, 5, 8, 6, 1])
    expected = np.unique(np.percentile(sizes, np.linspace(0, 100, 4), method="lower")[1:])
    assert data_utils.get_buckets(sizes, 3).tolist() == expected.tolist() == [4, 7, 10]


def test_translation_pairs_with_length_buckets_pad_to_their_bucket():
    """--num-batch-buckets: every source is padded to the smallest bucket that holds it."""
    d = Dictionary()
    for symbol in "abcdefgh":
        d.add_symbol(symbol)
    src = [torch.full((n,), d.index("a")) for n in (2, 3, 5, 8, 9, 12)]
    pairs = LanguagePairDataset(src, [len(t) for t in src], d, src, [len(t) for t in src], d, num_buckets=3)
    buckets = sorted(int(n) for _, n in pairs.buckets)
    assert buckets == [3, 8, 12]
    assert [pairs.num_tokens(i) for i in range(len(src))] == [3, 3, 8, 8, 12, 12]
