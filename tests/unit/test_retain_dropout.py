"""fairseq's `--retain-dropout [--retain-dropout-modules ...]` (fairseq-generate, -interactive, -eval-lm, hub):
dropout stays on at inference, e.g. for Monte-Carlo dropout. fairseq applies it through
`prepare_for_inference_`, which reaches `FairseqDropout` modules and the HyperLSTM stack's own hook; before,
our models applied dropout with `F.dropout(..., self.training)` and ignored the flag."""

import argparse

import pytest
import torch
from test_hyperlstm_mt import build, left_padded_batch, teacher_forced_scores

from hyperfairseq.models.hyperlstm_handwriting import HyperLSTMHandwritingConfig, HyperLSTMHandwritingModel
from hyperfairseq.models.hyperlstm_lm import HyperLSTMLanguageModel
from hyperfairseq.models.hyperlstm_synthesis import HyperLSTMSynthesisConfig, HyperLSTMSynthesisModel, SynthesisDecoder
from hyperfairseq.params import build_config


def prepared(model, retain: bool, modules=None):
    """The model after fairseq's `prepare_for_inference_` with `--retain-dropout [--retain-dropout-modules]`."""
    generation = argparse.Namespace(beam=4, print_alignment=False, retain_dropout=retain,
                                    retain_dropout_modules=modules)
    model.prepare_for_inference_(argparse.Namespace(generation=generation))
    return model


def check(make, scores, modules, everything: bool) -> None:
    """With the same seed a prepared model scores exactly as in training mode when every dropout is
    retained (the same arithmetic: equal to the bit), otherwise differently; unprepared, inference is
    deterministic and equals eval mode. A mask leaves every unit with probability ≥ 0.7 per draw over
    dozens of units, so "differs" cannot fail by chance."""
    training, clean = scores(make().train()), scores(make().eval())
    retained = prepared(make(), True, modules)
    if everything:
        torch.testing.assert_close(scores(retained), training, rtol=0, atol=0)
    else:
        assert not torch.equal(scores(retained), training)  # some of training's dropout is off
    assert not torch.equal(scores(retained), clean) and not torch.equal(scores(retained, 1), scores(retained, 2))
    plain = prepared(make(), False)
    torch.testing.assert_close(scores(plain, 1), clean, rtol=0, atol=0)
    torch.testing.assert_close(scores(plain, 2), clean, rtol=0, atol=0)


@pytest.mark.parametrize("modules, everything", [
    (None, True),                                            # --retain-dropout: every dropout of training
    (["HyperLSTM"], False),                                  # only the cells' recurrent dropout (R6)
    (["HyperLSTMAttentionDecoder", "HyperLSTMEncoder"], False),  # only the dropout between layers
])
def test_the_translation_model_keeps_trainings_dropout_at_inference(modules, everything):
    _, src, lengths, prev = left_padded_batch()

    def make():
        torch.manual_seed(0)
        return build("hyperlstm_mt_small", encoder_embed_dim=6, encoder_hidden_size=8, encoder_layers=3,
                     decoder_embed_dim=5, decoder_hidden_size=8, decoder_layers=3, attention_dim=7,
                     hyper_hidden_size=4, n_z=3, dropout=0.3, recurrent_dropout=0.2).double()

    def scores(model, seed=1):
        torch.manual_seed(seed)
        with torch.no_grad():
            return teacher_forced_scores(model, src, lengths, prev)

    check(make, scores, modules, everything)


@pytest.mark.parametrize("modules, everything", [(None, True), (["HyperLSTMDecoder"], False), (["HyperLSTM"], False)])
def test_the_language_model_keeps_trainings_dropout_at_inference(modules, everything):
    """Input and output dropout (`HyperLSTMDecoder`) and the recurrent dropout of the paper's LM rows."""
    tokens = torch.randint(4, 20, (3, 9), generator=torch.Generator().manual_seed(3))

    def make():
        torch.manual_seed(0)
        _, cfg = build_config("ln_hyperlstm_lm_ptb_large_emb")  # dropout in, out and recurrent: keep 0.85
        cfg.decoder_hidden_size, cfg.hyper_hidden_size = 16, 8
        return HyperLSTMLanguageModel(HyperLSTMLanguageModel.build_decoder(cfg, None, 20)).double()

    def scores(model, seed=1):
        torch.manual_seed(seed)
        with torch.no_grad():
            return model(tokens)[0]

    check(make, scores, modules, everything)


def flat(mixture) -> torch.Tensor:
    return torch.cat([field.flatten() for field in mixture])


@pytest.mark.parametrize("modules, everything", [(None, True), (["HandwritingDecoder"], False), (["HyperLSTM"], False)])
def test_the_handwriting_model_keeps_trainings_dropout_at_inference(modules, everything):
    """Output dropout before the MDN layer (H5) was `F.dropout(..., self.training)`: the flag left it off."""
    strokes = torch.randn(3, 9, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def make():
        torch.manual_seed(0)
        cfg = HyperLSTMHandwritingConfig(decoder_hidden_size=8, hyper_hidden_size=4, n_z=2, num_mixtures=3,
                                         dropout_out=0.3, recurrent_dropout=0.2)
        return HyperLSTMHandwritingModel(HyperLSTMHandwritingModel.build_decoder(cfg, None, 3)).double()

    def scores(model, seed=1):
        torch.manual_seed(seed)
        with torch.no_grad():
            return flat(model(strokes).mixture)

    check(make, scores, modules, everything)


@pytest.mark.parametrize("modules, everything", [(None, True), (["SynthesisDecoder"], False), (["HyperLSTM"], False)])
def test_the_synthesis_model_keeps_trainings_dropout_at_inference(modules, everything):
    """The synthesis decoder's output dropout (H5) likewise."""
    gen = torch.Generator().manual_seed(3)
    strokes = torch.randn(2, 7, 3, generator=gen, dtype=torch.float64)
    chars = torch.randint(1, 5, (2, 3), generator=gen)

    def make():
        torch.manual_seed(0)
        cfg = HyperLSTMSynthesisConfig(decoder_hidden_size=8, decoder_layers=2, hyper_hidden_size=4, n_z=2,
                                       num_mixtures=3, num_gaussians=2, dropout_out=0.3, recurrent_dropout=0.2)
        return HyperLSTMSynthesisModel(SynthesisDecoder(cfg, 4), "abcd").double()

    def scores(model, seed=1):
        torch.manual_seed(seed)
        with torch.no_grad():
            return flat(model.decoder(strokes, chars).mixture)

    check(make, scores, modules, everything)
