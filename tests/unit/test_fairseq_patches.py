"""fairseq_patches §9: fairseq's batch_by_size keeps every item (it dropped a last batch that was not a
multiple of --required-batch-size-multiple: fairseq-generate scored 16 of 20 test sentences); §10: the
fairseq data classes that use numpy 1 names work under numpy 2."""

import os

import numpy as np
import pytest
import torch
from fairseq.data import Dictionary, LanguagePairDataset, TokenBlockDataset, data_utils

import hyperfairseq  # noqa: F401  (installs the patches)
from hyperfairseq import fairseq_patches

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


@pytest.mark.parametrize("ids", [[40, 7, 23], [1, 2, 0]], ids=["ids-beyond-the-batch", "ids-permuted"])
def test_diverse_beam_search_gives_each_sentence_its_own_hypotheses_whatever_its_id(ids):
    """§12: `--diverse-beam-groups` read its per-sentence overlap counts by dataset id: fairseq-generate
    raised IndexError for an id beyond the batch, and ids within it took another sentence's counts. Now the
    batched n-best of each sentence equals that sentence decoded alone (the per-sentence arithmetic of
    `test_batched_beam4_equals_per_sentence`: the same tokens, scores to 1e-6). Four groups of one beam
    and a mild penalty (0.2) keep the groups' tokens overlapping, so that counts read from another sentence
    change the hypotheses (with ids [1, 2, 0] the unpatched search passes a strong penalty's zero counts)."""
    from fairseq.search import DiverseBeamSearch
    from fairseq.sequence_generator import SequenceGenerator
    from test_hyperlstm_mt import left_padded_batch, tiny

    model = tiny("ln_hyperlstm", seed=3).float()
    tgt_dict = model.decoder.dictionary
    rows, src, lengths, _ = left_padded_batch()

    def generate(src_tokens, src_lengths, sentence_ids):
        dbs = DiverseBeamSearch(tgt_dict, num_groups=4, diversity_strength=0.2)
        gen = SequenceGenerator([model], tgt_dict, beam_size=4, max_len_a=0, max_len_b=7, search_strategy=dbs)
        sample = {"net_input": {"src_tokens": src_tokens, "src_lengths": src_lengths}, "id": torch.tensor(sentence_ids)}
        return gen.forward(sample)

    batched = generate(src, lengths, ids)
    for b, row in enumerate(rows):
        alone = generate(torch.tensor([row]), torch.tensor([len(row)]), [0])[0]  # id 0 of 1: right unpatched too
        assert [h["tokens"].tolist() for h in alone] == [h["tokens"].tolist() for h in batched[b]]
        torch.testing.assert_close(torch.stack([h["score"] for h in alone]),
                                   torch.stack([h["score"] for h in batched[b]]), rtol=0, atol=1e-6)


def test_row_of_id_finds_each_id_in_the_first_batch():
    from hyperfairseq.fairseq_patches import row_of_id

    first = torch.tensor([40, 7, 23, 3])
    assert row_of_id(first, torch.tensor([23, 40, 3])).tolist() == [2, 0, 3]


def test_no_repeat_ngram_blocking_bans_the_next_token_of_a_repeated_ngram():
    """§13: fairseq-generate --no-repeat-ngram-size 2 at step 3 of [eos, 5, 6, 5, pad, pad] (the generator's
    buffer: max length + 2 columns) must ban 6, which would repeat the bigram (5, 6); the Python fallback
    read the padding at the buffer's end as the newest tokens and banned nothing."""
    from fairseq.ngram_repeat_block import NGramRepeatBlock

    block = NGramRepeatBlock(2, use_extension=False)
    tokens = torch.tensor([[2, 5, 6, 5, 1, 1], [2, 7, 7, 8, 1, 1]])
    lprobs = block(tokens, torch.zeros(2, 10), bsz=1, beam_size=2, step=3)
    assert torch.isinf(lprobs[0, 6]) and torch.isfinite(lprobs[0]).sum() == 9  # only 6 banned
    assert torch.isfinite(lprobs[1]).all()  # (8, x) never occurred before: nothing banned


def _checkpoint(path, updates: int, mtime: float) -> None:
    torch.save({"model": {}, "cfg": {}, "optimizer_history": [{"num_updates": updates}]}, path)
    os.utime(path, (mtime, mtime))


def test_resume_takes_a_checkpoint_newer_than_checkpoint_last_only_if_it_holds_more_updates(tmp_path):
    """Bug: the newest intact file by modification time won, so a save-dir copied without its timestamps
    rolled a run back (here from update 30 to 10). A newer file still wins when it is ahead: a run killed
    between writing checkpoint_1_40.pt and replacing checkpoint_last.pt."""
    last, interval = tmp_path / "checkpoint_last.pt", tmp_path / "checkpoint_1_10.pt"
    _checkpoint(last, 30, 1000.0)
    _checkpoint(interval, 10, 2000.0)  # copied last: newer by time, behind by updates
    assert fairseq_patches.newest_intact(str(tmp_path)) == (str(last), [])
    ahead = tmp_path / "checkpoint_1_40.pt"
    _checkpoint(ahead, 40, 3000.0)
    assert fairseq_patches.newest_intact(str(tmp_path)) == (str(ahead), [])
    last.write_bytes(last.read_bytes()[:100])  # checkpoint_last.pt damaged: the newest intact one
    os.utime(last, (500.0, 500.0))
    assert fairseq_patches.newest_intact(str(tmp_path)) == (str(ahead), [str(last)])
