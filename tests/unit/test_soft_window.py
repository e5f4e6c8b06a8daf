"""Graves' soft window (modules/soft_window.py) against an independent float64 computation of Eq. 46–51."""

import math

import numpy as np
import pytest
import torch

from hyperfairseq.modules.soft_window import SoftWindow, one_hot_chars, passed_end, window_weights


def reference_window(h_seq, weight, bias, chars, lengths):
    """Eq. 46–51 written out with numpy loops over t, b, k, u (float64), u = 1 … U + 1."""
    steps, batch, _ = h_seq.shape
    k_count = weight.shape[0] // 3
    max_u = chars.shape[1]
    kappa = np.zeros((batch, k_count))
    phis, ws, kappas = [], [], []
    for t in range(steps):
        phi = np.zeros((batch, max_u + 1))
        w = np.zeros((batch, chars.shape[2]))
        for b in range(batch):
            p = weight @ h_seq[t, b] + bias  # Eq. 48
            alpha, beta, kappa_inc = np.exp(p[:k_count]), np.exp(p[k_count:2 * k_count]), np.exp(p[2 * k_count:])
            kappa[b] = kappa[b] + kappa_inc  # Eq. 51
            for u in range(1, max_u + 2):
                phi[b, u - 1] = sum(alpha[k] * math.exp(-beta[k] * (kappa[b, k] - u) ** 2) for k in range(k_count))
            for u in range(1, lengths[b] + 1):
                w[b] += phi[b, u - 1] * chars[b, u - 1]  # Eq. 47 over the line's own characters
        phis.append(phi)
        ws.append(w)
        kappas.append(kappa.copy())
    return np.stack(phis), np.stack(ws), np.stack(kappas)


def test_window_equals_the_float64_equations_and_kappa_never_decreases():
    gen = torch.Generator().manual_seed(0)
    steps, batch, n_h, k, symbols = 6, 3, 5, 4, 7
    window = SoftWindow(n_h, k).double()
    with torch.no_grad():
        window.projection.weight.normal_(0.0, 0.5, generator=gen)
        window.projection.bias.normal_(0.0, 0.5, generator=gen)
    lengths = torch.tensor([5, 2, 4])
    index = torch.randint(1, symbols + 1, (batch, 5), generator=gen)
    index[torch.arange(5)[None, :] >= lengths[:, None]] = 0  # padding
    chars = one_hot_chars(index, symbols, torch.float64)
    h = torch.randn(steps, batch, n_h, generator=gen, dtype=torch.float64)
    kappa = torch.zeros(batch, k, dtype=torch.float64)
    got_phi, got_w, got_kappa = [], [], []
    for t in range(steps):
        step = window(h[t], kappa, chars)
        kappa = step.kappa
        got_phi.append(step.phi)
        got_w.append(step.w)
        got_kappa.append(step.kappa)
    ref_phi, ref_w, ref_kappa = reference_window(
        h.numpy(), window.projection.weight.detach().numpy(), window.projection.bias.detach().numpy(),
        chars.numpy(), lengths.tolist())
    # float64 sums of at most K·U terms of size O(1): agreement to 1e-12 relative leaves ample margin
    np.testing.assert_allclose(torch.stack(got_phi).detach().numpy(), ref_phi, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(torch.stack(got_w).detach().numpy(), ref_w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(torch.stack(got_kappa).detach().numpy(), ref_kappa, rtol=1e-12)
    assert (np.diff(ref_kappa, axis=0) > 0).all()  # Eq. 51: κ strictly increases
    assert torch.equal(chars[1, 2:], torch.zeros(3, symbols, dtype=torch.float64))  # padding is a zero vector


def test_window_weights_are_the_gaussian_sum_at_integer_positions():
    alpha = torch.tensor([[2.0, 0.5]], dtype=torch.float64)
    beta = torch.tensor([[1.0, 4.0]], dtype=torch.float64)
    kappa = torch.tensor([[1.5, 3.0]], dtype=torch.float64)
    phi = window_weights(alpha, beta, kappa, 4)[0]
    expected = [2 * math.exp(-(1.5 - u) ** 2) + 0.5 * math.exp(-4 * (3.0 - u) ** 2) for u in (1, 2, 3, 4)]
    np.testing.assert_allclose(phi.numpy(), expected, rtol=1e-14)


def phi_peaked_at(centres, lengths, width=1.0):
    """φ(u) = exp(−(u − centre)²/width) over u = 1 … max U + 1 (a window centred on `centre`)."""
    positions = max(lengths) + 1
    u = torch.arange(1, positions + 1, dtype=torch.float64)
    return torch.stack([torch.exp(-(u - c) ** 2 / width) for c in centres])


@pytest.mark.parametrize("centre, stopped", [(4.0, False), (4.49, False), (4.51, True), (5.0, True), (2.0, False)])
def test_stop_rule_fires_once_the_window_is_nearer_one_past_the_end(centre, stopped):
    # U = 4: φ(U + 1) > φ(U) exactly when the centre lies past 4.5 (halfway between u = 4 and u = 5)
    phi = phi_peaked_at([centre], [4])
    assert bool(passed_end(phi, torch.tensor([4]))[0]) is stopped


def test_stop_rule_reads_each_line_at_its_own_length():
    # both lines' windows sit at u = 4: past the end of the 3-character line, on the 5-character line's 4th
    phi = phi_peaked_at([4.0, 4.0], [3, 5])
    assert passed_end(phi, torch.tensor([3, 5])).tolist() == [True, False]
