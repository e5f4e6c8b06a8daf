"""The models' config rules (models/config.py) and the HyperLSTM stack built from a config."""

import pytest
import torch

from hyperfairseq.models import hyperlstm_handwriting, hyperlstm_lm, hyperlstm_mt
from hyperfairseq.models.config import build_hyperlstm, check_config
from hyperfairseq.params import build_config

MODELS = {  # a row of each model
    "hyperlstm_lm_ptb": hyperlstm_lm,
    "hyperlstm_handwriting": hyperlstm_handwriting,
    "hyperlstm_mt_small": hyperlstm_mt,
}


def config(arch: str, **overrides):
    """The model config `--arch arch` gives (as `python -m hyperfairseq.params` builds it), then `overrides`."""
    _, cfg = build_config(arch)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


@pytest.mark.parametrize("arch", MODELS)
def test_every_rows_config_passes_its_models_rules(arch):
    check_config(config(arch), MODELS[arch].RULES)


@pytest.mark.parametrize(
    "arch,field,value,message",
    [
        ("hyperlstm_lm_ptb", "n_z", 0, "--n-z must be a positive integer; got 0"),
        ("hyperlstm_lm_ptb", "layer_dropout", 1.0, "--layer-dropout is a drop probability in [0, 1)"),
        ("hyperlstm_handwriting", "num_mixtures", 0, "--num-mixtures must be a positive integer; got 0"),
        ("hyperlstm_handwriting", "dropout_out", -0.1, "--dropout-out is a drop probability in [0, 1)"),
        ("hyperlstm_mt_small", "encoder_layers", 1, "--encoder-layers must be at least 2 (bidirectional + one); got 1"),
        ("hyperlstm_mt_small", "decoder_layers", 0, "--decoder-layers must be a positive integer; got 0"),
    ],
)
def test_a_bad_value_is_named_with_its_flag_and_what_was_expected(arch, field, value, message):
    with pytest.raises(ValueError) as error:
        check_config(config(arch, **{field: value}), MODELS[arch].RULES)
    assert str(error.value).startswith(message)


def test_conditional_rules_apply_only_where_the_field_is_used():
    check_config(config("lstm_lm_ptb_1000", n_z=0, hyper_hidden_size=0), hyperlstm_lm.RULES)  # no hypernetwork
    check_config(config("hyperlstm_lm_ptb", decoder_embed_dim=0), hyperlstm_lm.RULES)  # one-hot inputs
    with pytest.raises(ValueError, match="--decoder-embed-dim must be a positive integer"):
        check_config(config("hyperlstm_lm_ptb", decoder_input="embedding", decoder_embed_dim=0), hyperlstm_lm.RULES)


def test_the_stack_takes_the_configs_paper_named_fields():
    cfg = config("ln_hyperlstm_lm_enwik8_2048", hyper_hidden_size=6, n_z=3, layer_dropout=0.2, forget_bias=0.5,
                 hyper_recurrent_dropout=0.25, ln_eps=1e-5)
    rnn = build_hyperlstm(cfg, input_size=5, hidden_size=7, num_layers=2, dropout=cfg.layer_dropout)
    cell = rnn.layers[1]
    assert (rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.dropout) == (5, 7, 2, 0.2)
    assert cell.use_hyper and cell.layer_norm and cell.hyper_hidden_size == 6 and cell.forget_bias == 0.5
    assert (cell.recurrent_dropout, cell.hyper.cell.recurrent_dropout) == (0.15, 0.25)  # R7
    assert cell.ln_cell.eps == 1e-5 and cell.hyper.cell.ln_cell.eps == 1e-5
    mt = build_hyperlstm(config("lstm_mt_small"), input_size=5, hidden_size=7)
    assert not mt.use_hyper and mt.dropout == 0.0 and mt.layers[0].bias is not None  # one layer, plain LSTM cell


@pytest.mark.parametrize(
    "model_cls,arch,inputs",
    [(hyperlstm_lm.HyperLSTMLanguageModel, "hyperlstm_lm_ptb", 50),
     (hyperlstm_handwriting.HyperLSTMHandwritingModel, "hyperlstm_handwriting", 3)],
)
def test_a_model_builds_its_stack_from_its_own_fields(model_cls, arch, inputs):
    cfg = config(arch, decoder_layers=2, decoder_hidden_size=12, layer_dropout=0.2, no_hyper=True)
    with torch.device("meta"):  # shapes only
        rnn = model_cls.build_decoder(cfg, None, inputs).rnn
    assert (rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.dropout, rnn.use_hyper) == (inputs, 12, 2, 0.2, False)
