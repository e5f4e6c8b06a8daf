"""Mixture-density output for pen strokes: M bivariate Gaussians plus an end-of-stroke Bernoulli.

HyperNetworks (arXiv 1609.09106v4) §4.5, Appendix A.3.5, after Graves (2013) Eq. 18–26 and Bishop (1994);
paper-spec §3.5. One step's network output ŷ has 1 + 6·M entries (M = 20 gives 121):

* M mixture logits           -> π = softmax(π̂ (1 + b))            (b: Graves' sampling bias, 0 in training)
* 2·M means (μ1, μ2)         -> μ = μ̂
* 2·M log std-devs           -> σ = exp(σ̂ − b)
* M correlation pre-acts     -> ρ = tanh(ρ̂)
* 1 end-of-stroke logit      -> e = sigmoid(ê)

Storage order of ŷ is [π̂ (M) | μ̂ (M, 2) | σ̂ (M, 2) | ρ̂ (M) | ê (1)]. Everything is computed in log space
(log-softmax weights, log σ, log(1 − ρ²), log-sum-exp over components, BCE-with-logits for e), so long
lines and extreme offsets give finite losses. The only clamp is on ρ, where the paper's parameterisation
(tanh) reaches ±1 in floating point and the density would be degenerate: |ρ| ≤ 1 − 1e-6.

Symbols: T steps, B batch, M `num_mixtures`. Plain PyTorch: nothing here imports fairseq.
"""

import math
from typing import Any, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

PEN_ROW_SIZE = 3  # a pen row (Δx, Δy, end-of-stroke): the models' input and the target of Eq. 26
RHO_LIMIT = 1.0 - 1e-6
LOG_2PI = math.log(2.0 * math.pi)


def output_size(num_mixtures: int) -> int:
    """1 + 6·M outputs per step (paper-spec §3.5: 121 for M = 20)."""
    return 6 * num_mixtures + 1


class MixtureParams(NamedTuple):
    """Activated mixture parameters, each with the leading shape (...) of the network output.

    log_pi: (..., M) log mixture weights (log-softmax).  mu: (..., M, 2) means (Δx, Δy).
    log_sigma: (..., M, 2) log std-devs.  rho: (..., M) correlations in (−1, 1).
    eos_logit: (...) logit of the end-of-stroke probability.
    """

    log_pi: Tensor
    mu: Tensor
    log_sigma: Tensor
    rho: Tensor
    eos_logit: Tensor


class StrokeModelOutput(NamedTuple):
    """What a handwriting model returns: batch-first mixture parameters, the recurrent state, internals.

    mixture: `MixtureParams` with leading shape (B, T).  state: the model's recurrent state after the last
    step (a `HyperLSTMState`).  internals: per-step internals for the analyses (Figure 7), or None.
    """

    mixture: MixtureParams
    state: Any
    internals: Optional[Any] = None


def split_outputs(y: Tensor, num_mixtures: int, bias: float = 0.0) -> MixtureParams:
    """Raw outputs ŷ (..., 1 + 6·M) -> activated `MixtureParams` (Graves Eq. 18–23; bias Eq. 61–62)."""
    m = num_mixtures
    if y.shape[-1] != output_size(m):
        raise ValueError(f"expected {output_size(m)} outputs for {m} mixtures; got {y.shape[-1]}")
    pi_hat, mu_hat, sigma_hat, rho_hat, eos_hat = torch.split(y, [m, 2 * m, 2 * m, m, 1], dim=-1)
    log_pi = F.log_softmax(pi_hat * (1.0 + bias), dim=-1)  # Graves Eq. 19, 61
    mu = mu_hat.unflatten(-1, (m, 2))  # Eq. 20
    log_sigma = sigma_hat.unflatten(-1, (m, 2)) - bias  # Eq. 21, 62: σ = exp(σ̂ − b)
    rho = torch.tanh(rho_hat).clamp(-RHO_LIMIT, RHO_LIMIT)  # Eq. 22; tanh saturates to ±1 in floats
    return MixtureParams(log_pi, mu, log_sigma, rho, eos_hat.squeeze(-1))  # Eq. 18: e = sigmoid(ê)


def bivariate_log_prob(x: Tensor, mu: Tensor, log_sigma: Tensor, rho: Tensor) -> Tensor:
    """log N(x; μ, σ, ρ) per component (Graves Eq. 24–25).

    x: (..., 2) broadcast against mu (..., M, 2); returns (..., M).
    """
    z = (x.unsqueeze(-2) - mu) * torch.exp(-log_sigma)
    z1, z2 = z.unbind(-1)
    one_minus_rho2 = (1.0 - rho) * (1.0 + rho)  # exact near |ρ| = 1, unlike 1 − ρ²
    # z1² + z2² − 2ρ z1 z2 written as a sum of non-negative terms: no cancellation, never inf − inf
    quad = (z1 - rho * z2) ** 2 / one_minus_rho2 + z2 * z2
    return -LOG_2PI - log_sigma.sum(-1) - 0.5 * torch.log(one_minus_rho2) - 0.5 * quad


def point_log_prob(params: MixtureParams, target: Tensor) -> Tensor:
    """log p(x_{t+1} | y_t) for targets (..., 3) = (Δx, Δy, end-of-stroke): mixture + Bernoulli terms.

    Returns (...): log Σ_j π_j N(Δ; μ_j, σ_j, ρ_j) + log Bernoulli(e; sigmoid(ê)) (Graves Eq. 26).
    """
    offsets, eos = target[..., :2], target[..., 2]
    mixture = torch.logsumexp(params.log_pi + bivariate_log_prob(offsets, params.mu, params.log_sigma, params.rho), -1)
    bernoulli = -F.binary_cross_entropy_with_logits(params.eos_logit, eos, reduction="none")
    return mixture + bernoulli


def sample_point(
    params: MixtureParams, generator: Optional[torch.Generator] = None, temperature: float = 1.0
) -> Tensor:
    """Draw one (Δx, Δy, end-of-stroke) per row from parameters with leading shape (B,) -> (B, 3).

    temperature τ scales the mixture logits by 1/τ and the variances by τ; the end-of-stroke probability is
    left as predicted (tempering it too makes low-τ samples never lift the pen). τ = 1 samples the model's
    own distribution. Graves' bias is applied earlier, in `split_outputs`.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive; got {temperature}")
    log_pi = F.log_softmax(params.log_pi / temperature, dim=-1)
    k = torch.multinomial(log_pi.exp(), 1, generator=generator)  # (B, 1) component index, drawn with weight π
    mu = params.mu.gather(-2, k.unsqueeze(-1).expand(-1, 1, 2)).squeeze(-2)
    sigma = torch.exp(params.log_sigma.gather(-2, k.unsqueeze(-1).expand(-1, 1, 2)).squeeze(-2))
    sigma = sigma * math.sqrt(temperature)
    rho = params.rho.gather(-1, k).squeeze(-1)
    n = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    dx = mu[:, 0] + sigma[:, 0] * n[:, 0]
    dy = mu[:, 1] + sigma[:, 1] * (rho * n[:, 0] + torch.sqrt((1.0 - rho) * (1.0 + rho)) * n[:, 1])
    p_eos = torch.sigmoid(params.eos_logit)
    eos = (torch.rand(p_eos.shape, generator=generator, dtype=p_eos.dtype, device=p_eos.device) < p_eos)
    return torch.stack([dx, dy, eos.to(dx.dtype)], dim=-1)
