"""HyperLSTM module: the paper's equations (oracle), nn.LSTM parity, init, dropout, padding, carry."""

import copy
import math

import pytest
import torch
from hyperlstm_oracle import run as oracle_run

from hyperfairseq.modules import HyperLSTM, HyperLSTMCell, HyperLSTMState

T, B, N_X, N_H, N_HAT, N_Z = 5, 3, 6, 7, 5, 3


def perturbed(module, scale=0.3, seed=0):
    """Random perturbation of every parameter, so z, d and β leave their initial values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def random_state(layers, hyper=True, seed=1):
    g = torch.Generator().manual_seed(seed)
    r = lambda n: torch.randn(layers, B, n, generator=g, dtype=torch.float64, requires_grad=True)  # noqa: E731
    return HyperLSTMState(r(N_H), r(N_H), r(N_HAT) if hyper else None, r(N_HAT) if hyper else None)


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
def test_module_matches_float64_oracle_outputs_states_and_gradients(layer_norm, layers):
    torch.manual_seed(0)
    rnn = HyperLSTM(N_X, N_H, layers, N_HAT, N_Z, layer_norm=layer_norm).double()
    perturbed(rnn)
    x = torch.randn(T, B, N_X, dtype=torch.float64, requires_grad=True)
    state = random_state(layers)

    out, final = rnn(x, state)

    params = [dict(cell.named_parameters()) for cell in rnn.layers]
    per_layer = [tuple(s[layer] for s in state) for layer in range(layers)]
    ref_out, ref_states = oracle_run(params, x, per_layer, N_Z, layer_norm)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    for field, name in enumerate(HyperLSTMState._fields):
        ref = torch.stack([s[field] for s in ref_states])
        torch.testing.assert_close(getattr(final, name), ref, rtol=1e-10, atol=1e-10, msg=name)

    weights = torch.randn_like(out)
    loss = (out * weights).sum() + final.c.sum() + final.h_hat.sum()
    ref_loss = (ref_out * weights).sum() + sum(s[1].sum() + s[2].sum() for s in ref_states)
    inputs = [x, *state, *rnn.parameters()]
    grads = torch.autograd.grad(loss, inputs)
    ref_grads = torch.autograd.grad(ref_loss, inputs)
    names = ["x", *HyperLSTMState._fields, *(n for n, _ in rnn.named_parameters())]
    for name, g, ref in zip(names, grads, ref_grads):
        torch.testing.assert_close(g, ref, rtol=1e-9, atol=1e-10, msg=f"gradient of {name}")


@pytest.mark.parametrize("layers", [1, 2])
def test_hypernetwork_off_equals_nn_lstm_with_copied_weights(layers):
    torch.manual_seed(0)
    rnn = perturbed(HyperLSTM(N_X, N_H, layers, use_hyper=False).double())
    ref = torch.nn.LSTM(N_X, N_H, layers).double()
    with torch.no_grad():
        for layer, cell in enumerate(rnn.layers):
            getattr(ref, f"weight_ih_l{layer}").copy_(cell.weight_ih)
            getattr(ref, f"weight_hh_l{layer}").copy_(cell.weight_hh)
            bias = cell.bias.clone()
            bias[N_H:2 * N_H] += 1.0  # nn.LSTM has no forget bias: fold the module's +1 (R2) into b_f
            getattr(ref, f"bias_ih_l{layer}").copy_(bias)
            getattr(ref, f"bias_hh_l{layer}").zero_()
    x = torch.randn(T, B, N_X, dtype=torch.float64)
    state = random_state(layers, hyper=False)
    out, final = rnn(x, state)
    ref_out, (ref_h, ref_c) = ref(x, (state.h, state.c))
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(final.h, ref_h)
    torch.testing.assert_close(final.c, ref_c)
    assert final.h_hat is None and final.c_hat is None


def test_initial_values_of_every_parameter_group_follow_the_paper():
    torch.manual_seed(0)
    n_h, n_hat, n_z = 40, 16, 4
    cell = HyperLSTMCell(24, n_h, n_hat, n_z, layer_norm=True)
    eye = lambda n: torch.eye(n)  # noqa: E731
    for w in (cell.weight_hh, cell.hyper.cell.weight_hh):  # orthogonal per gate block (R4)
        for block in w.chunk(4, 0):
            torch.testing.assert_close(block @ block.T, eye(block.shape[0]), atol=1e-5, rtol=0)
    for w in (cell.weight_ih, cell.hyper.cell.weight_ih):  # (N_h x N_in) blocks: orthonormal rows/cols (R5)
        for block in w.chunk(4, 0):
            small = min(block.shape)
            gram = block @ block.T if block.shape[0] == small else block.T @ block
            torch.testing.assert_close(gram, eye(small), atol=1e-5, rtol=0)
    assert torch.all(cell.bias == 0)  # b_0
    assert cell.hyper.cell.bias is None  # LN hyper cell: LN shift replaces b̂ (R3)
    wz = cell.hyper.weight_z
    assert torch.all(wz[: 8 * n_z] == 0)  # ĥ -> z_h, z_x
    assert torch.all(cell.hyper.bias_z == 1)
    zb = wz[8 * n_z:]
    assert abs(zb.std().item() - 0.01) < 0.002 and abs(zb.mean().item()) < 0.002  # ĥ -> z_b ~ N(0, 0.01²)
    wd = cell.hyper.weight_d
    assert torch.all(wd[:2] == 0.1 / n_z)  # z -> d: 0.1 / N_z
    assert torch.all(wd[2] == 0)  # z_b -> β
    for ln in (cell.ln_gates, cell.ln_cell, cell.hyper.cell.ln_gates, cell.hyper.cell.ln_cell):
        assert torch.all(ln.weight == 1) and torch.all(ln.bias == 0)
    # consequence (spec §2.4): every d starts at exactly 0.1 and β at exactly 0
    _, _, internals = HyperLSTM(24, n_h, 1, n_hat, n_z)(torch.randn(3, 2, 24), return_internals=True)
    torch.testing.assert_close(internals.d_h, torch.full_like(internals.d_h, 0.1))
    torch.testing.assert_close(internals.d_x, torch.full_like(internals.d_x, 0.1))
    assert torch.all(internals.beta == 0)


def test_bias_rule_of_the_paper_counts():
    assert HyperLSTMCell(4, 8, use_hyper=False).bias is not None  # LSTM
    assert HyperLSTMCell(4, 8, use_hyper=False, layer_norm=True).bias is None  # LN-LSTM: LN shift replaces b_0
    assert HyperLSTMCell(4, 8, 4, 2, layer_norm=True).bias is not None  # LN-HyperLSTM keeps b_0 (R3)
    assert HyperLSTMCell(4, 8, 4, 2).hyper.cell.bias is not None  # plain hyper cell keeps b̂


def test_recurrent_dropout_is_off_in_eval_and_its_mask_is_fresh_every_step():
    torch.manual_seed(0)
    rnn = HyperLSTM(N_X, 64, 1, N_HAT, N_Z, recurrent_dropout=0.5)
    clean = HyperLSTM(N_X, 64, 1, N_HAT, N_Z)
    clean.load_state_dict(rnn.state_dict())
    x = torch.randn(T, B, N_X)
    rnn.eval()
    torch.testing.assert_close(rnn(x)[0], clean(x)[0])  # off in eval: equal to a network without dropout

    rnn.train()
    _, _, internals = rnn(x, return_internals=True)
    dropped = internals.g[0] == 0  # (T, B, N_h): tanh(g) is never exactly 0 otherwise
    assert 0.3 < dropped.float().mean().item() < 0.7
    for t in range(1, T):
        assert not torch.equal(dropped[t], dropped[0]), f"step {t} reused step 0's mask"
    rnn.eval()
    _, _, clean_internals = rnn(x, return_internals=True)
    # step 0 starts from the same zero state: survivors are the clean candidate scaled by 1/keep = 2
    kept = ~dropped[0]
    torch.testing.assert_close(internals.g[0, 0][kept], 2 * clean_internals.g[0, 0][kept])


@pytest.mark.parametrize("fast", [True, False])
def test_retained_dropout_in_eval_draws_the_masks_training_draws(fast):
    """`retain_dropout_()` (fairseq's --retain-dropout): in eval mode, with the same seed, the stack drops
    exactly what training drops (recurrent masks of both cells and dropout between layers), through the
    fused path and the reference; one-step decoding too. `retain_dropout_(False)` is eval again."""
    dtype = torch.float32 if fast else torch.float64  # float32 takes the fused path (float64: the reference)
    torch.manual_seed(0)
    rnn = HyperLSTM(N_X, 16, 2, N_HAT, N_Z, recurrent_dropout=0.3, hyper_recurrent_dropout=0.2, dropout=0.25,
                    fast=fast).to(dtype)
    x = torch.randn(T, B, N_X, dtype=dtype)

    def run(seed, step=False):
        torch.manual_seed(seed)
        with torch.no_grad():
            return rnn.step(x[0])[0] if step else rnn(x)[0]

    trained = [run(1), run(1, step=True)]
    rnn.eval()
    clean = [run(1), run(1, step=True)]
    rnn.retain_dropout_()
    for step, (with_dropout, without) in enumerate(zip(trained, clean)):
        torch.testing.assert_close(run(1, step=bool(step)), with_dropout, rtol=0, atol=0)  # the same arithmetic
        assert not torch.equal(run(1, step=bool(step)), without)  # P(no unit dropped) = 0.7^(16·B), nil
    assert not torch.equal(run(1), run(2))
    rnn.retain_dropout_(False)
    torch.testing.assert_close(run(2), clean[0], rtol=0, atol=0)


@pytest.mark.parametrize("use_hyper", [True, False])
def test_padded_batch_with_lengths_equals_each_sequence_alone(use_hyper):
    torch.manual_seed(0)
    rnn = perturbed(HyperLSTM(N_X, N_H, 2, N_HAT, N_Z, use_hyper=use_hyper, layer_norm=True).double())
    lengths = torch.tensor([T, 2, 4])
    x = torch.randn(T, B, N_X, dtype=torch.float64)
    state = random_state(2, hyper=use_hyper)
    out, final = rnn(x, state, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        alone_state = HyperLSTMState(*(None if s is None else s[:, b:b + 1] for s in state))
        alone_out, alone_final = rnn(x[:n, b:b + 1], alone_state)
        torch.testing.assert_close(out[:n, b:b + 1], alone_out)
        assert torch.all(out[n:, b] == 0), "outputs after a sequence's end must be zero"
        for name in HyperLSTMState._fields:
            if getattr(final, name) is not None:
                torch.testing.assert_close(getattr(final, name)[:, b:b + 1], getattr(alone_final, name), msg=name)


def test_two_segments_with_carried_state_equal_one_segment():
    torch.manual_seed(0)
    rnn = perturbed(HyperLSTM(N_X, N_H, 2, N_HAT, N_Z, layer_norm=True).double())
    x = torch.randn(2 * T, B, N_X, dtype=torch.float64)
    whole, whole_state = rnn(x)
    first, state = rnn(x[:T])
    second, split_state = rnn(x[T:], state)
    torch.testing.assert_close(torch.cat([first, second]), whole)
    for a, b in zip(split_state, whole_state):
        torch.testing.assert_close(a, b)


def test_bad_shapes_and_options_name_what_was_expected():
    rnn = HyperLSTM(N_X, N_H, 1, N_HAT, N_Z)
    with pytest.raises(ValueError, match=rf"\(T, B, {N_X}\)"):
        rnn(torch.randn(T, B, N_X + 1))
    with pytest.raises(ValueError, match="lengths must lie in"):
        rnn(torch.randn(T, B, N_X), lengths=torch.tensor([T + 1, 1, 1]))
    with pytest.raises(ValueError, match="h_hat"):
        rnn(torch.randn(T, B, N_X), HyperLSTMState(torch.zeros(1, B, N_H), torch.zeros(1, B, N_H)))
    with pytest.raises(ValueError, match="n_z must be a positive integer"):
        HyperLSTM(N_X, N_H, n_z=0)
    with pytest.raises(ValueError, match="recurrent_dropout is a drop probability"):
        HyperLSTM(N_X, N_H, recurrent_dropout=0.9 * 10)
    with pytest.raises(ValueError, match="at least one time step"):  # nn.LSTM refuses T = 0 too
        rnn(torch.randn(0, B, N_X))
    zeros = lambda n, layers=1: torch.zeros(layers, B, n)  # noqa: E731
    with pytest.raises(ValueError, match=rf"h_hat and state.c_hat must be \(1, {B}, {N_HAT}\)"):
        rnn(torch.randn(T, B, N_X), HyperLSTMState(zeros(N_H), zeros(N_H), zeros(N_HAT, 3), zeros(N_HAT)))
    with pytest.raises(ValueError, match=rf"HyperLSTMCell expects x of shape \(B, {N_X}\); got \({N_X},\)"):
        rnn.layers[0](torch.randn(N_X))  # was broadcast into N_X identical rows
    for bad in ({"forget_bias": float("nan")}, {"ln_eps": -1e-3}, {"ln_eps": 0.0}):
        with pytest.raises(ValueError, match="forget_bias must be finite and ln_eps > 0"):
            HyperLSTM(N_X, N_H, layer_norm=True, **bad)


@pytest.mark.parametrize("fast", [True, False])
def test_a_dtype_mix_is_refused_on_both_paths_as_nn_lstm(fast):
    """Bug: after `model.double()` a float32 input ran the fused path in float32 (the reference raised a bare
    matmul error); a float64 state beside a float32 input was cast silently. Autocast still chooses its dtype."""
    rnn = HyperLSTM(N_X, N_H, 1, N_HAT, N_Z)
    rnn.fast = fast
    x = torch.randn(T, B, N_X)
    with pytest.raises(ValueError, match=r"input dtype \(torch.float32\) does not match weight dtype \(torch.float64"):
        copy.deepcopy(rnn).double()(x)
    state = rnn.zero_state(B, x)
    with pytest.raises(ValueError, match=r"state.h is torch.float64, state.c_hat is torch.float64"):
        rnn(x, state._replace(h=state.h.double(), c_hat=state.c_hat.double()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = rnn(x.bfloat16())
    assert out.shape == (T, B, N_H)


@pytest.mark.parametrize("use_hyper", [True, False])
def test_an_empty_batch_gives_empty_outputs_as_nn_lstm(use_hyper):
    """Bug: B = 0 reached the fused kernels ("cannot reshape tensor of 0 elements")."""
    rnn = HyperLSTM(N_X, N_H, 2, N_HAT, N_Z, use_hyper=use_hyper)
    out, state = rnn(torch.randn(T, 0, N_X))
    assert out.shape == (T, 0, N_H) and state.c.shape == (2, 0, N_H)
    with torch.no_grad():
        h, _ = rnn.eval().step(torch.randn(0, N_X))
    assert h.shape == (0, N_H)


def test_cell_single_step_equals_one_step_sequence():
    torch.manual_seed(0)
    cell = perturbed(HyperLSTMCell(N_X, N_H, N_HAT, N_Z, layer_norm=True).double())
    rnn = HyperLSTM(N_X, N_H, 1, N_HAT, N_Z, layer_norm=True).double()
    rnn.layers[0].load_state_dict(cell.state_dict())
    x = torch.randn(B, N_X, dtype=torch.float64)
    new = cell(x)
    out, final = rnn(x.unsqueeze(0))
    torch.testing.assert_close(new.h, out[0])
    torch.testing.assert_close(new.c_hat, final.c_hat[0])
    assert math.isfinite(new.h.sum().item())
