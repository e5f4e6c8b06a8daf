"""Mixture-density maths (modules/mdn.py) and the `mdn` criterion's per-line sum (criterions/mdn.py)."""

import math

import pytest
import torch
from torch import distributions as D

from hyperfairseq.criterions.mdn import line_nll
from hyperfairseq.modules.mdn import MixtureParams, output_size, point_log_prob, sample_point, split_outputs


def reference_log_prob(params: MixtureParams, target: torch.Tensor) -> torch.Tensor:
    """torch.distributions: MixtureSameFamily(MultivariateNormal) + Bernoulli, for (N,) rows."""
    sigma = params.log_sigma.exp()
    s1, s2, rho = sigma[..., 0], sigma[..., 1], params.rho
    cov = torch.stack(
        [torch.stack([s1 * s1, rho * s1 * s2], -1), torch.stack([rho * s1 * s2, s2 * s2], -1)], -2
    )
    mixture = D.MixtureSameFamily(
        D.Categorical(logits=params.log_pi), D.MultivariateNormal(params.mu, covariance_matrix=cov)
    )
    return mixture.log_prob(target[..., :2]) + D.Bernoulli(logits=params.eos_logit).log_prob(target[..., 2])


def random_params(n, m, gen, dtype=torch.float64, scale=1.0):
    y = torch.randn(n, output_size(m), generator=gen, dtype=dtype) * scale
    return split_outputs(y, m)


def random_targets(n, gen, dtype=torch.float64, scale=1.0):
    xy = torch.randn(n, 2, generator=gen, dtype=dtype) * scale
    eos = (torch.rand(n, 1, generator=gen, dtype=dtype) < 0.3).to(dtype)
    return torch.cat([xy, eos], -1)


def test_log_likelihood_equals_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    params, target = random_params(64, 20, gen), random_targets(64, gen)
    torch.testing.assert_close(point_log_prob(params, target), reference_log_prob(params, target), rtol=1e-12,
                               atol=1e-12)  # float64, well-conditioned |ρ| < 1 - 1e-3: ~1e-15 apart


@pytest.mark.parametrize("rho", [0.999999, -0.999999, 0.0])
@pytest.mark.parametrize("log_sigma", [math.log(1e-3), math.log(1e3), 0.0])
def test_log_likelihood_equals_torch_distributions_at_extreme_rho_and_sigma(rho, log_sigma):
    gen = torch.Generator().manual_seed(1)
    params = random_params(32, 3, gen)
    params = params._replace(
        rho=torch.full_like(params.rho, rho),
        log_sigma=params.log_sigma * 0.1 + log_sigma,  # around the extreme, both axes different
    )
    # targets near the means so the densities are not all vanishingly small
    target = torch.cat(
        [params.mu[:, 0] + torch.exp(params.log_sigma[:, 0]) * 0.5, torch.ones(32, 1, dtype=torch.float64)], -1
    )
    ours, ref = point_log_prob(params, target), reference_log_prob(params, target)
    assert torch.isfinite(ours).all()
    # conditioning 1 / (1 - ρ²) ≈ 5e5 at |ρ| = 1 - 1e-6 times float64's 1.1e-16, with margin (measured 2.4e-10)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9)


def test_split_outputs_activations_and_bias():
    gen = torch.Generator().manual_seed(2)
    y = torch.randn(5, 7, output_size(20), generator=gen)
    p = split_outputs(y, 20)
    assert p.log_pi.shape == (5, 7, 20) and p.mu.shape == (5, 7, 20, 2) and p.eos_logit.shape == (5, 7)
    torch.testing.assert_close(p.log_pi.exp().sum(-1), torch.ones(5, 7))
    assert (p.rho.abs() < 1).all()
    biased = split_outputs(y, 20, bias=2.0)
    torch.testing.assert_close(biased.log_sigma, p.log_sigma - 2.0)  # σ = exp(σ̂ − b)
    assert (biased.log_pi.max(-1).values >= p.log_pi.max(-1).values - 1e-6).all()  # sharper weights
    with pytest.raises(ValueError, match="expected 121 outputs"):
        split_outputs(torch.zeros(3, 120), 20)


def test_no_nan_or_inf_on_long_lines_extreme_offsets_and_saturated_outputs():
    gen = torch.Generator().manual_seed(3)
    t = 2000
    y = torch.randn(2, t, output_size(20), generator=gen) * 3
    y[..., 100:120] *= 30  # ρ̂ far out: tanh(ρ̂) is ±1 in float32
    y[..., 60:100] -= 7  # σ down to ~1e-5
    y.requires_grad_()
    target = random_targets(2 * t, gen, dtype=torch.float32, scale=1e4).view(2, t, 3)  # offsets ~1e4 σ away
    nll = line_nll(split_outputs(y, 20), target, torch.tensor([t, t // 2]))
    assert torch.isfinite(nll).all()
    nll.sum().backward()
    assert torch.isfinite(y.grad).all()


def test_line_nll_sums_each_line_and_ignores_padding():
    gen = torch.Generator().manual_seed(4)
    y = torch.randn(2, 6, output_size(3), generator=gen, dtype=torch.float64)
    target = random_targets(12, gen).view(2, 6, 3)
    lengths = torch.tensor([6, 4])
    params = split_outputs(y, 3)
    nll = line_nll(params, target, lengths)
    flat = MixtureParams(*(f.flatten(0, 1) for f in params))
    ref = -reference_log_prob(flat, target.flatten(0, 1)).view(2, 6)
    torch.testing.assert_close(nll, torch.stack([ref[0].sum(), ref[1, :4].sum()]))
    target2 = target.clone()
    target2[1, 4:] = 1e30  # anything in the padding
    torch.testing.assert_close(line_nll(params, target2, lengths), nll)


def test_sampling_is_reproducible_under_a_seed_and_follows_the_mixture():
    gen = torch.Generator().manual_seed(5)
    params = random_params(4, 20, gen, dtype=torch.float32)
    a = sample_point(params, torch.Generator().manual_seed(7))
    b = sample_point(params, torch.Generator().manual_seed(7))
    c = sample_point(params, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a[:, 2].tolist()) <= {0.0, 1.0}
    # one sharp component: samples sit at its mean, with its correlation
    m = 1
    sharp = MixtureParams(
        torch.zeros(20000, m), torch.tensor([3.0, -2.0]).expand(20000, m, 2), torch.full((20000, m, 2), math.log(0.5)),
        torch.full((20000, m), 0.8), torch.full((20000,), 2.0),
    )
    s = sample_point(sharp, torch.Generator().manual_seed(0))
    torch.testing.assert_close(s[:, :2].mean(0), torch.tensor([3.0, -2.0]), atol=0.02, rtol=0)
    torch.testing.assert_close(s[:, :2].std(0), torch.tensor([0.5, 0.5]), atol=0.02, rtol=0)
    assert abs(torch.corrcoef(s[:, :2].T)[0, 1].item() - 0.8) < 0.02
    assert abs(s[:, 2].mean().item() - torch.sigmoid(torch.tensor(2.0)).item()) < 0.02


def test_each_component_is_drawn_with_its_weight():
    """Shares of 20,000 draws against π = (0.2, 0.3, 0.5): a share's binomial std is at most
    sqrt(0.25 / 20000) = 0.0035, so 0.02 is > 5 std. Means 10 apart with σ 0.1 name each draw's component."""
    n, pi = 20000, torch.tensor([0.2, 0.3, 0.5])
    params = MixtureParams(
        pi.log().expand(n, 3), torch.tensor([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]]).expand(n, 3, 2),
        torch.full((n, 3, 2), math.log(0.1)), torch.zeros(n, 3), torch.zeros(n),
    )
    s = sample_point(params, torch.Generator().manual_seed(0))
    shares = torch.stack([((s[:, 0] - 10 * j).abs() < 2).float().mean() for j in range(3)])
    torch.testing.assert_close(shares, pi, atol=0.02, rtol=0)


def test_temperature_sharpens_the_mixture_but_keeps_the_pen_lift_rate():
    n = 20000
    params = MixtureParams(
        torch.log(torch.tensor([0.7, 0.3])).expand(n, 2), torch.tensor([[0.0, 0.0], [10.0, 10.0]]).expand(n, 2, 2),
        torch.zeros(n, 2, 2), torch.zeros(n, 2), torch.full((n,), -1.0),
    )
    cold = sample_point(params, torch.Generator().manual_seed(0), temperature=0.25)
    # weights ∝ π^(1/τ): 0.3^4 / (0.7^4 + 0.3^4) = 0.0326; the share's binomial std over n is 0.0013, 0.01 is > 7 std
    assert abs((cold[:, 0] > 5).float().mean().item() - 0.3**4 / (0.7**4 + 0.3**4)) < 0.01
    assert abs(cold[:, 1][cold[:, 0] < 5].std().item() - 0.5) < 0.02  # σ·√τ
    assert abs(cold[:, 2].mean().item() - torch.sigmoid(torch.tensor(-1.0)).item()) < 0.02
