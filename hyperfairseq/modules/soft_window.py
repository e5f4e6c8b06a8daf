r"""Graves' soft window over a character sequence (Graves 2013, "Generating Sequences With Recurrent
Neural Networks", arXiv 1308.0850, §5.1, Eq. 46–51), for handwriting synthesis (issue 15).

At step t the first recurrent layer's output h¹_t sets K Gaussian "reading heads" over the character
positions u = 1 … U of the text c (one vector c_u per character):

.. math::
    (\hat\alpha_t, \hat\beta_t, \hat\kappa_t) = W_{h^1 p}\, h^1_t + b_p          \quad (48)
    \alpha_t = \exp(\hat\alpha_t)                                                 \quad (49)
    \beta_t = \exp(\hat\beta_t)                                                   \quad (50)
    \kappa_t = \kappa_{t-1} + \exp(\hat\kappa_t)                                  \quad (51)
    \phi(t, u) = \sum_{k=1}^{K} \alpha^k_t \exp\big(-\beta^k_t (\kappa^k_t - u)^2\big)   \quad (46)
    w_t = \sum_{u=1}^{U} \phi(t, u)\, c_u                                          \quad (47)

κ only grows (Eq. 51: the increment exp(κ̂) > 0), so the window moves left to right. Positions are
Graves' u = 1 … U; κ_0 = 0. Padded character positions (c_u = 0, beyond a line's length) add nothing to
w_t. Graves' stop rule (§5.1) for sampling: stop at the first step where φ(t, U + 1) > φ(t, u) for all
1 ≤ u ≤ U, i.e. the window has passed the last character (`passed_end`).

Decision (ours, S5): b_p's κ̂ part starts at `kappa_bias_init` (default log(1/10): the window advances a
tenth of a character per step at first, about a character's worth of pen points), its α̂ and β̂ parts
at 0, W_{h¹p} at N(0, 0.075²) (Graves' reference code used small random weights; his paper gives none).

Symbols: B batch, U characters, C character-vector size, K `num_gaussians`, N_h the driving layer's size.
Plain PyTorch: nothing here imports fairseq.
"""

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class WindowStep(NamedTuple):
    """One step of the window. kappa: (B, K) κ_t; w: (B, C) w_t; phi: (B, U + 1) φ(t, u) for
    u = 1 … U + 1 (the last entry is Graves' one-past-the-end position of the stop rule)."""

    kappa: Tensor
    w: Tensor
    phi: Tensor


class SoftWindow(nn.Module):
    """Eq. 46–51 as a module: `forward(h1, kappa_prev, chars)` -> `WindowStep`.

    Args:
        input_size: N_h, the size of h¹_t.
        num_gaussians: K (Graves: 10).
        kappa_bias_init: initial bias of κ̂ (S5).

    Inputs: h1 (B, N_h), kappa_prev (B, K), chars (B, U, C) one character vector per position
        (zeros where padded).
    """

    def __init__(self, input_size: int, num_gaussians: int = 10, kappa_bias_init: float = math.log(0.1)):
        super().__init__()
        if num_gaussians < 1:
            raise ValueError(f"num_gaussians must be a positive integer; got {num_gaussians}")
        self.num_gaussians = num_gaussians
        self.kappa_bias_init = kappa_bias_init
        self.projection = nn.Linear(input_size, 3 * num_gaussians)  # Eq. 48: (α̂, β̂, κ̂)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.projection.weight, std=0.075)  # S5
        nn.init.zeros_(self.projection.bias)
        nn.init.constant_(self.projection.bias[2 * self.num_gaussians :], self.kappa_bias_init)

    def forward(self, h1: Tensor, kappa_prev: Tensor, chars: Tensor) -> WindowStep:
        alpha_hat, beta_hat, kappa_hat = self.projection(h1).chunk(3, dim=-1)  # Eq. 48
        alpha = torch.exp(alpha_hat)  # Eq. 49
        beta = torch.exp(beta_hat)  # Eq. 50
        kappa = kappa_prev + torch.exp(kappa_hat)  # Eq. 51
        phi = window_weights(alpha, beta, kappa, chars.shape[1] + 1)
        w = torch.bmm(phi[:, None, :-1], chars).squeeze(1)  # Eq. 47: Σ_u φ(t, u) c_u over u ≤ U
        return WindowStep(kappa, w, phi)


def window_weights(alpha: Tensor, beta: Tensor, kappa: Tensor, positions: int) -> Tensor:
    """Eq. 46: φ(t, u) for u = 1 … `positions`; alpha, beta, kappa (B, K) -> (B, positions)."""
    u = torch.arange(1, positions + 1, dtype=kappa.dtype, device=kappa.device)
    return (alpha[:, :, None] * torch.exp(-beta[:, :, None] * (kappa[:, :, None] - u) ** 2)).sum(1)


def passed_end(phi: Tensor, lengths: Tensor) -> Tensor:
    """Graves' stop rule (§5.1) per line: φ(t, U + 1) > φ(t, u) for every 1 ≤ u ≤ U.

    phi: (B, ≥ max U + 1) weights over u = 1 …; lengths: (B,) U per line. Returns (B,) bool.
    """
    u = torch.arange(phi.shape[1], device=phi.device)
    lengths = lengths.to(phi.device)
    inside = u[None, :] < lengths[:, None]  # columns 0 … U−1 hold u = 1 … U
    past = phi.gather(1, lengths[:, None]).squeeze(1)  # column U holds u = U + 1
    best_inside = torch.where(inside, phi, torch.full_like(phi, -math.inf)).amax(1)
    return past > best_inside


def one_hot_chars(chars: Tensor, num_symbols: int, dtype: torch.dtype) -> Tensor:
    """Character indices (B, U), 0 = padding, 1 … num_symbols the symbols -> (B, U, num_symbols),
    zero vectors where padded (so padding adds nothing to w_t, Eq. 47)."""
    return F.one_hot(chars, num_symbols + 1)[..., 1:].to(dtype)
