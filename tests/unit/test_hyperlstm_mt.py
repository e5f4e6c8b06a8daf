"""hyperlstm_mt: incremental decoding = teacher forcing, padding, beam batching, parameter counts, bad input."""

import argparse

import pytest
import torch
from fairseq.data import Dictionary
from fairseq.models import ARCH_CONFIG_REGISTRY
from fairseq.sequence_generator import SequenceGenerator

import hyperfairseq.modules.hyperlstm as hyperlstm_module
from hyperfairseq.models.hyperlstm_mt import HyperLSTMTranslationModel

CELL_TYPES = {  # name -> (no_hyper, layer_norm)
    "hyperlstm": (False, False),
    "ln_hyperlstm": (False, True),
    "lstm": (True, False),
    "ln_lstm": (True, True),
}


def dictionary(size: int) -> Dictionary:
    d = Dictionary()
    for i in range(size - len(d)):
        d.add_symbol(f"w{i}")
    assert len(d) == size
    return d


class _Task:
    def __init__(self, src: Dictionary, tgt: Dictionary):
        self.source_dictionary, self.target_dictionary = src, tgt


# float64 log-probabilities of the same model computed step by step, alone or in another batch order: sums of
# ~10-100 terms of size ~1 in another order or grouping differ by ~1e-15; 1e-10 leaves 5 orders of margin
TOL = 1e-10


def build(arch: str, vocab: int = 30, tgt_vocab=None, **overrides) -> HyperLSTMTranslationModel:
    cfg = argparse.Namespace(**overrides)
    ARCH_CONFIG_REGISTRY[arch](cfg)
    src = dictionary(vocab)
    tgt = src if tgt_vocab is None else dictionary(tgt_vocab)
    return HyperLSTMTranslationModel.build_model(cfg, _Task(src, tgt))


def tiny(cell: str, seed: int = 0) -> HyperLSTMTranslationModel:
    """3 + 3 layers so the residual path (layer 3) is exercised; float64, eval mode."""
    no_hyper, layer_norm = CELL_TYPES[cell]
    torch.manual_seed(seed)
    model = build(
        "hyperlstm_mt_small", encoder_embed_dim=6, encoder_hidden_size=8, encoder_layers=3, decoder_embed_dim=5,
        decoder_hidden_size=8, decoder_layers=3, attention_dim=7, hyper_hidden_size=4, n_z=3,
        no_hyper=no_hyper, layer_norm=layer_norm,
    )
    for p in model.parameters():  # larger weights than the init so that every path matters numerically
        p.data.add_(0.3 * torch.randn_like(p))
    return model.double().eval()


def left_padded_batch(pad=1, eos=2):
    """Three sources of lengths 6, 3, 5 (EOS last), left-padded as fairseq's translation task does."""
    rows = [[5, 9, 12, 7, 8, eos], [14, 6, eos], [11, 4, 23, 17, eos]]
    width = max(map(len, rows))
    src = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    prev = torch.tensor([[eos, 6, 9, 20, 4], [eos, 13, 5, 7, pad], [eos, 8, 8, 19, 21]])
    return rows, src, torch.tensor([len(r) for r in rows]), prev


def teacher_forced_scores(model, src, lengths, prev):
    logits, _ = model(src, lengths, prev)
    return torch.log_softmax(logits, dim=-1)


@pytest.mark.parametrize("cell", CELL_TYPES)
def test_step_by_step_decoding_equals_teacher_forcing(cell):
    model = tiny(cell)
    _, src, lengths, prev = left_padded_batch()
    full = teacher_forced_scores(model, src, lengths, prev)
    encoder_out = model.encoder(src, lengths)
    incremental_state = {}
    for t in range(prev.shape[1]):
        logits, _ = model.decoder(prev[:, : t + 1], encoder_out=encoder_out, incremental_state=incremental_state)
        assert logits.shape[1] == 1
        torch.testing.assert_close(torch.log_softmax(logits[:, 0], -1), full[:, t], rtol=0, atol=TOL)


@pytest.mark.parametrize("cell", CELL_TYPES)
def test_left_padded_source_scores_as_unpadded(cell):
    """Each left-padded row (through the bidirectional layer) scores as if it were alone, unpadded."""
    model = tiny(cell)
    rows, src, lengths, prev = left_padded_batch()
    full = teacher_forced_scores(model, src, lengths, prev)
    for b, row in enumerate(rows):
        alone = teacher_forced_scores(model, torch.tensor([row]), torch.tensor([len(row)]), prev[b : b + 1])
        torch.testing.assert_close(alone[0], full[b], rtol=0, atol=TOL)


def test_right_padding_gives_the_same_scores():
    model = tiny("ln_hyperlstm")
    rows, src, lengths, prev = left_padded_batch()
    width = src.shape[1]
    right = torch.tensor([r + [1] * (width - len(r)) for r in rows])
    torch.testing.assert_close(
        teacher_forced_scores(model, right, lengths, prev), teacher_forced_scores(model, src, lengths, prev),
        rtol=0, atol=1e-10,
    )


def test_bidirectional_bottom_layer_sees_both_sides():
    """Bottom-layer output at position 0 depends on the last token (backward half) and not in its forward half."""
    enc = tiny("hyperlstm").encoder
    src = torch.tensor([[5, 9, 12, 7, 2]])
    other = src.clone()
    other[0, -2] = 6
    bottom = {}
    enc.layers[0].register_forward_hook(lambda m, inp, out: bottom.__setitem__("x", inp[0]))
    enc(src)
    a = bottom["x"][0, 0]
    enc(other)
    b = bottom["x"][0, 0]
    hidden = enc.output_dim
    torch.testing.assert_close(a[:hidden], b[:hidden], rtol=0, atol=0)  # forward half: past only
    assert not torch.allclose(a[hidden:], b[hidden:])  # backward half: reads the future


def test_attention_weights_in_caller_layout():
    model = tiny("lstm")
    _, src, lengths, prev = left_padded_batch()
    _, extra = model(src, lengths, prev)
    attn = extra["attn"][0]
    assert attn.shape == (3, prev.shape[1], src.shape[1])
    torch.testing.assert_close(attn.sum(-1), torch.ones(3, prev.shape[1], dtype=attn.dtype))
    assert bool((attn[src.eq(1).unsqueeze(1).expand_as(attn)] == 0).all())


@pytest.mark.parametrize("cell", ["ln_hyperlstm", "lstm"])
def test_batched_beam4_equals_per_sentence(cell):
    model = tiny(cell, seed=3)
    tgt_dict = model.decoder.dictionary
    rows, src, lengths, _ = left_padded_batch()
    gen = SequenceGenerator([model], tgt_dict, beam_size=4, max_len_a=0, max_len_b=7)
    batched = gen.forward({"net_input": {"src_tokens": src, "src_lengths": lengths}})
    for b, row in enumerate(rows):
        one = {"src_tokens": torch.tensor([row]), "src_lengths": torch.tensor([len(row)])}
        single = gen.forward({"net_input": one})
        assert len(single[0]) == len(batched[b]) == 4
        for hyp_single, hyp_batched in zip(single[0], batched[b]):
            assert hyp_single["tokens"].tolist() == hyp_batched["tokens"].tolist()
            torch.testing.assert_close(hyp_single["score"], hyp_batched["score"], rtol=0, atol=1e-6)
            torch.testing.assert_close(
                hyp_single["positional_scores"], hyp_batched["positional_scores"], rtol=0, atol=1e-6
            )


def test_beam_search_reorders_state():
    """A beam step that permutes hypotheses must move their state: reordering by a permutation is exact."""
    model = tiny("ln_hyperlstm")
    _, src, lengths, prev = left_padded_batch()
    enc = model.encoder(src, lengths)
    state = {}
    model.decoder(prev[:, :2], encoder_out=enc, incremental_state=state)
    perm = torch.tensor([2, 0, 1])
    model.decoder.reorder_incremental_state(state, perm)
    enc_perm = model.encoder.reorder_encoder_out(enc, perm)
    step, _ = model.decoder(prev[perm, :3], encoder_out=enc_perm, incremental_state=state)
    full = teacher_forced_scores(model, src, lengths, prev)
    torch.testing.assert_close(torch.log_softmax(step[:, 0], -1), full[perm, 2], rtol=0, atol=TOL)


def test_checkpoint_with_the_bottom_cell_at_its_old_place_loads_and_scores_the_same():
    """Layer 1 used to be a bare HyperLSTMCell (`decoder.bottom.weight_ih`); it is a one-layer HyperLSTM now."""
    model = tiny("ln_hyperlstm")
    old = {k.replace("decoder.bottom.layers.0.", "decoder.bottom."): v for k, v in model.state_dict().items()}
    assert "decoder.bottom.weight_ih" in old and "decoder.bottom.hyper.cell.weight_hh" in old
    other = tiny("ln_hyperlstm", seed=5)
    other.load_state_dict(old)
    _, src, lengths, prev = left_padded_batch()
    scores = teacher_forced_scores(other, src, lengths, prev)
    torch.testing.assert_close(scores, teacher_forced_scores(model, src, lengths, prev), rtol=0, atol=0)


# -- parameter counts: formulas from paper-spec §2.6, written independently of the model code -----------


def lstm(nx, h):
    return 4 * h * (nx + h) + 4 * h


def ln_lstm(nx, h):
    return 4 * h * (nx + h) + 10 * h


def hyper(nx, h, nh, nz, ln):
    main = 4 * h * (nx + h) + 4 * h + (10 * h if ln else 0)
    cell = 4 * nh * (nx + h + nh) + (10 * nh if ln else 4 * nh)
    projections = 8 * (nh * nz + nz + nz * h) + 4 * (nh * nz + nz * h)
    return main + cell + projections


def gnmt_count(cell, vocab, emb, h, layers_enc, layers_dec, att, dec_emb=None):
    """Embeddings, bidirectional bottom + uni layers, decoder with input feeding, attention, softmax."""
    dec_emb = emb if dec_emb is None else dec_emb
    encoder = vocab * emb + 2 * cell(emb, h) + cell(2 * h, h) + (layers_enc - 2) * cell(h, h)
    decoder = vocab * dec_emb + cell(dec_emb + h, h) + (layers_dec - 1) * cell(2 * h, h)
    attention = h * att + (h * att + att) + att
    return encoder + decoder + attention + h * vocab + vocab


EXPECTED = {  # arch -> (vocab, formula)
    "hyperlstm_wmt": (32004, gnmt_count(lambda nx, h: hyper(nx, h, 128, 32, True), 32004, 1024, 1024, 8, 8, 1024)),
    "lstm_wmt": (32004, gnmt_count(lstm, 32004, 1024, 1024, 8, 8, 1024)),
    "hyperlstm_mt_small": (8004, gnmt_count(lambda nx, h: hyper(nx, h, 64, 16, True), 8004, 256, 256, 2, 2, 256)),
    "lstm_mt_small": (8004, gnmt_count(lstm, 8004, 256, 256, 2, 2, 256)),
}


@pytest.mark.parametrize("arch", EXPECTED)
def test_parameter_counts(arch, monkeypatch):
    for name in ("orthogonal_gates_", "z_projection_", "d_projection_"):  # skip the slow inits: counts only
        monkeypatch.setattr(hyperlstm_module, name, lambda *a, **k: None)
    monkeypatch.setattr(torch.nn.init, "normal_", lambda t, *a, **k: t)
    vocab, expected = EXPECTED[arch]
    model = build(arch, vocab=vocab)
    assert sum(p.numel() for p in model.parameters()) == expected
    doc = ARCH_CONFIG_REGISTRY[arch].__doc__.replace(",", "")
    assert str(expected) in doc, f"{arch}: docstring should state {expected:,}"


def test_cell_type_formulas_for_ln_lstm_and_plain_hyper():
    for cell, formula in (
        ("ln_lstm", ln_lstm),
        ("hyperlstm", lambda nx, h: hyper(nx, h, 4, 3, False)),
        ("ln_hyperlstm", lambda nx, h: hyper(nx, h, 4, 3, True)),
    ):
        model = tiny(cell)
        assert sum(p.numel() for p in model.parameters()) == gnmt_count(formula, 30, 6, 8, 3, 3, 7, dec_emb=5), cell


# -- bad input ----------------------------------------------------------------------------------------


def test_mismatched_dictionary_gives_clear_error():
    source = build("lstm_mt_small", vocab=40, encoder_hidden_size=8, decoder_hidden_size=8, attention_dim=8,
                   encoder_embed_dim=8, decoder_embed_dim=8)
    target = build("lstm_mt_small", vocab=44, encoder_hidden_size=8, decoder_hidden_size=8, attention_dim=8,
                   encoder_embed_dim=8, decoder_embed_dim=8)
    with pytest.raises(ValueError, match=r"another dictionary .* than this data's source dictionary"):
        target.load_state_dict(source.state_dict())  # each side's md5 is in the checkpoint, checked first
    older = {k: v for k, v in source.state_dict().items() if not k.endswith("_extra_state")}  # kept no md5
    with pytest.raises(ValueError, match=r"shape differs: .*embed_tokens"):
        target.load_state_dict(older)


def test_checkpoint_of_other_cell_type_gives_clear_error():
    hyper_model = tiny("ln_hyperlstm")
    lstm_model = tiny("lstm")
    with pytest.raises(ValueError, match=r"not in model: .*hyper"):
        lstm_model.load_state_dict(hyper_model.state_dict())


@pytest.mark.parametrize("field,value", [("dropout", 1.0), ("encoder_layers", 1), ("n_z", 0)])
def test_bad_config_is_rejected(field, value):
    with pytest.raises(ValueError, match=field.replace("_", "-")):
        build("hyperlstm_mt_small", **{field: value})


def test_single_token_and_unknown_sources_decode():
    """An empty line becomes just EOS; unknown words map to <unk>: both decode like any sentence."""
    model = tiny("ln_hyperlstm")
    d = model.decoder.dictionary
    src = torch.tensor([[1, 1, d.eos()], [d.unk(), 7, d.eos()]])
    gen = SequenceGenerator([model], d, beam_size=4, max_len_a=0, max_len_b=5)
    out = gen.forward({"net_input": {"src_tokens": src, "src_lengths": torch.tensor([1, 3])}})
    assert all(len(hyps) == 4 and torch.isfinite(hyps[0]["score"]) for hyps in out)


@pytest.mark.parametrize("arch, flags, cell", [
    ("hyperlstm_mt", [], (False, False)),
    ("hyperlstm_mt", ["--layer-norm"], (False, True)),
    ("lstm_wmt", [], (True, False)),
    ("lstm_wmt", ["--layer-norm"], (True, True)),
    ("hyperlstm_wmt", [], (False, True)),
    ("hyperlstm_mt_small", ["--no-hyper"], (True, True)),
])
def test_the_cell_flags_on_fairseqs_command_line_select_the_cell_they_name(arch, flags, cell):
    """`--layer-norm` turns layer norm on (a config boolean that defaulted to True made it a store_false flag
    that turned it off), `--no-hyper` drops the hypernetwork, and a row's own cell holds without flags."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, ["data", "--user-dir", "hyperfairseq", "--task", "translation",
                                                "--arch", arch, *flags])
    model = convert_namespace_to_omegaconf(args).model  # what fairseq-train builds the model from
    assert (model.no_hyper, model.layer_norm) == cell


def test_no_config_of_ours_has_a_boolean_that_defaults_to_true():
    """fairseq turns a boolean field into `--name` with store_true, or with store_false where it defaults to
    True: the flag would then do the opposite of what its name says."""
    import dataclasses

    from fairseq.models import MODEL_DATACLASS_REGISTRY

    ours = {name: cls for name, cls in MODEL_DATACLASS_REGISTRY.items() if cls.__module__.startswith("hyperfairseq")}
    assert "hyperlstm_mt" in ours and "hyperlstm_lm" in ours
    for name, cls in ours.items():
        for f in dataclasses.fields(cls):
            assert not (f.type in (bool, "bool") and f.default is True), f"{name}.{f.name} defaults to True"


def test_sources_and_targets_longer_than_a_transformers_1024_tokens_are_accepted():
    """A recurrence has no length limit: fairseq-generate refused sources over 1024 tokens (the default limit
    was a Transformer's; fairseq's lstm takes 1e5). A 1500-token source and target score."""
    model = tiny("ln_hyperlstm")
    assert model.max_positions() == (100000, 100000)
    src = torch.randint(4, 30, (1, 1500))
    src[0, -1] = 2
    prev = torch.cat([torch.tensor([[2]]), src[:, :-1]], 1)
    logits, _ = model(src, torch.tensor([1500]), prev)
    assert logits.shape == (1, 1500, 30) and bool(torch.isfinite(logits).all())
