"""The synthesis model (models/hyperlstm_synthesis.py): Graves' wiring against an explicit step-by-step
oracle, incremental decoding equal to teacher forcing, padding, and parameter counts."""

import pytest
import torch

from hyperfairseq.criterions.mdn import line_nll
from hyperfairseq.models.hyperlstm_synthesis import (
    EXACT_PARAMS,
    HyperLSTMSynthesisConfig,
    HyperLSTMSynthesisModel,
    SynthesisDecoder,
)
from hyperfairseq.modules.mdn import point_log_prob, split_outputs

VARIANTS = {
    "hyper": dict(),
    "lstm": dict(no_hyper=True),
    "ln_hyper": dict(layer_norm=True),
}


def tiny(dtype=torch.float64, symbols=6, **overrides):
    cfg = HyperLSTMSynthesisConfig(decoder_hidden_size=8, decoder_layers=3, hyper_hidden_size=4, n_z=2,
                                   num_mixtures=3, num_gaussians=2, **overrides)
    torch.manual_seed(0)
    decoder = SynthesisDecoder(cfg, symbols).to(dtype).eval()
    with torch.no_grad():  # move every parameter off its initial value so no term hides behind a 0 or 1
        for p in decoder.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return decoder


def batch(dtype=torch.float64, symbols=6, steps=9):
    gen = torch.Generator().manual_seed(1)
    strokes = torch.randn(3, steps, 3, generator=gen, dtype=dtype)
    strokes[..., 2] = (strokes[..., 2] > 0.8).to(dtype)
    lengths = torch.tensor([steps, 5, 7])
    char_lengths = torch.tensor([4, 2, 3])
    chars = torch.randint(1, symbols + 1, (3, 4), generator=gen)
    chars[torch.arange(4)[None, :] >= char_lengths[:, None]] = 0
    return strokes, chars, lengths


def oracle_mixture(decoder, strokes, chars):
    """Graves §5 written out one step at a time with each layer's HyperLSTMCell.forward and Eq. 46–51."""
    cells = [rnn.layers[0] for rnn in decoder.layers]
    B, T, _ = strokes.shape
    c = torch.nn.functional.one_hot(chars, decoder.num_symbols + 1)[..., 1:].to(strokes.dtype)
    u = torch.arange(1, chars.shape[1] + 1, dtype=strokes.dtype)
    states = [None] * len(cells)
    kappa = torch.zeros(B, decoder.window.num_gaussians, dtype=strokes.dtype)
    w = torch.zeros(B, decoder.num_symbols, dtype=strokes.dtype)
    outputs = []
    for t in range(T):
        x = strokes[:, t]
        states[0] = cells[0](torch.cat([x, w], 1), states[0])  # layer 1 reads x_t and w_{t-1}
        a_hat, b_hat, k_hat = decoder.window.projection(states[0].h).chunk(3, 1)  # Eq. 48
        kappa = kappa + torch.exp(k_hat)  # Eq. 51
        phi = (
            torch.exp(a_hat)[:, :, None] * torch.exp(-torch.exp(b_hat)[:, :, None] * (kappa[:, :, None] - u) ** 2)
        ).sum(1)
        w = (phi[:, :, None] * c).sum(1)  # Eq. 46-47
        hs = [states[0].h]
        for n in range(1, len(cells)):
            states[n] = cells[n](torch.cat([x, w, hs[-1]], 1), states[n])  # skip connections: x_t and w_t
            hs.append(states[n].h)
        outputs.append(decoder.output_projection(torch.cat(hs, 1)))  # every layer feeds the output
    return split_outputs(torch.stack(outputs, 1), decoder.num_mixtures)


def stepwise_log_prob(decoder, strokes, chars):
    state, logps = None, []
    for t in range(strokes.shape[1]):
        out = decoder(strokes[:, t : t + 1], chars, state=state)
        state = out.state
        logps.append(point_log_prob(out.mixture, strokes[:, t : t + 1]))
    return torch.cat(logps, 1)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_teacher_forced_model_equals_the_step_by_step_oracle(variant):
    decoder = tiny(**VARIANTS[variant])
    strokes, chars, lengths = batch()
    with torch.no_grad():
        got = decoder(strokes, chars, lengths)
        want = oracle_mixture(decoder, strokes, chars)
    valid = torch.arange(strokes.shape[1])[None, :] < lengths[:, None]
    for name, g, o in zip(got.mixture._fields, got.mixture, want):
        # float64, the same operations in another order: 1e-10 is 10^5 times the rounding error
        torch.testing.assert_close(g[valid], o[valid], rtol=1e-10, atol=1e-10, msg=name)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_incremental_decoding_scores_equal_teacher_forced_scores(variant):
    decoder = tiny(**VARIANTS[variant])
    strokes, chars, lengths = batch()
    with torch.no_grad():
        forced = decoder(strokes, chars, lengths)
        nll = line_nll(forced.mixture, strokes, lengths)
        stepped = stepwise_log_prob(decoder, strokes, chars)
    valid = torch.arange(strokes.shape[1])[None, :] < lengths[:, None]
    stepped_nll = -(stepped * valid).sum(1)
    torch.testing.assert_close(stepped_nll, nll, rtol=1e-10, atol=1e-10)  # float64: as above


def test_incremental_decoding_in_float32_through_the_fast_path():
    decoder = tiny(torch.float32)
    strokes, chars, lengths = batch(torch.float32)
    with torch.no_grad():
        nll = line_nll(decoder(strokes, chars, lengths).mixture, strokes, lengths)
        stepped = stepwise_log_prob(decoder, strokes, chars)
    valid = torch.arange(strokes.shape[1])[None, :] < lengths[:, None]
    # fused kernels (whole sequence) vs one-step kernels: float32 rounding (~6e-8 relative) on per-line sums
    # of ~10 terms of size ~10 after ~10 recurrent steps: 1e-3 absolute is > 100x that
    torch.testing.assert_close(-(stepped * valid).sum(1), nll, rtol=0, atol=1e-3)


def test_padded_lines_end_in_the_state_of_their_last_real_step():
    decoder = tiny()
    strokes, chars, lengths = batch()
    with torch.no_grad():
        whole = decoder(strokes, chars, lengths).state
        for b in range(3):
            alone = decoder(strokes[b : b + 1, : lengths[b]], chars[b : b + 1]).state
            torch.testing.assert_close(whole.kappa[b], alone.kappa[0], rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(whole.w[b], alone.w[0], rtol=1e-12, atol=1e-12)
            for mine, its in zip(whole.layers, alone.layers):
                torch.testing.assert_close(mine.h[:, b], its.h[:, 0], rtol=1e-12, atol=1e-12)


def test_gradients_reach_the_window_through_the_first_layer():
    decoder = tiny().train()
    strokes, chars, lengths = batch()
    line_nll(decoder(strokes, chars, lengths).mixture, strokes, lengths).sum().backward()
    assert decoder.window.projection.weight.grad.abs().sum() > 0
    assert decoder.layers[0].layers[0].weight_ih.grad[:, 3:].abs().sum() > 0  # the w_{t-1} columns


@pytest.mark.parametrize("arch", sorted(EXACT_PARAMS))
def test_parameter_counts_printed_by_the_params_cli(arch, capsys):
    from hyperfairseq.params import main

    assert main(["--arch", arch, "--vocab", str(EXACT_PARAMS[arch]["vocab"])]) == 0
    total = int(capsys.readouterr().out.strip().splitlines()[-1].split()[-1])
    assert total == EXACT_PARAMS[arch]["exact"]


def test_model_refuses_a_task_without_an_alphabet():
    class NoText:
        alphabet = None

    with pytest.raises(ValueError, match="alphabet"):
        HyperLSTMSynthesisModel.build_model(HyperLSTMSynthesisConfig(), NoText())
