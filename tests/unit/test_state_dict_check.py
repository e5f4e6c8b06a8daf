"""The checkpoint-fit message names the cause: the data's vocabulary, or the architecture."""

import pytest
from torch import nn

from hyperfairseq.errors import InputError
from hyperfairseq.models.state_dict_check import check_state_dict_fits


def model(vocab: int, hidden: int) -> nn.Module:
    layers = {"embed": nn.Embedding(vocab, 4), "rnn": nn.Linear(4, hidden), "out": nn.Linear(hidden, vocab)}
    return nn.ModuleDict(layers)


def message(checkpoint: nn.Module, target: nn.Module, vocab_sizes) -> str:
    with pytest.raises(InputError) as caught:
        check_state_dict_fits(target, checkpoint.state_dict(), vocab_sizes=vocab_sizes)
    return str(caught.value)


def test_a_fitting_checkpoint_passes():
    check_state_dict_fits(model(7, 5), model(7, 5).state_dict(), vocab_sizes={7})


def test_only_the_vocabulary_differs():
    text = message(model(9, 5), model(7, 5), vocab_sizes={7})
    assert "vocabulary differs from the data's dictionaries (7 symbols)" in text
    assert "embed.weight: checkpoint (9, 4) vs model (7, 4)" in text and "another --arch" not in text


def test_another_width_is_the_architecture():
    text = message(model(9, 6), model(7, 5), vocab_sizes={7})  # rnn and out differ in a non-vocabulary size too
    assert "another --arch" in text and "vocabulary" not in text


def test_missing_tensors_are_the_architecture():
    checkpoint = model(9, 5)
    del checkpoint["rnn"]
    assert "another --arch" in message(checkpoint, model(7, 5), vocab_sizes={7})


def test_a_model_without_dictionaries_never_blames_the_vocabulary():
    assert "another --arch" in message(model(9, 5), model(7, 5), vocab_sizes=())
