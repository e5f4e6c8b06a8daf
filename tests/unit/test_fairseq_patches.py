"""fairseq_patches §9: fairseq's batch_by_size keeps every item (it dropped a last batch that was not a
multiple of --required-batch-size-multiple: fairseq-generate scored 16 of 20 test sentences)."""

import numpy as np
import pytest
from fairseq.data import data_utils

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
