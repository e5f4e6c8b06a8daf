"""The paper's initialisation, one function per parameter group.

HyperNetworks (Ha, Dai & Le, arXiv 1609.09106v4), Appendix A.2.3; paper-spec §2.4 and §7.1.

| group                                  | init                        | function            |
| -------------------------------------- | --------------------------- | ------------------- |
| main and hyper-cell W_h, W_x           | orthogonal per gate block   | `orthogonal_gates_` |
| main b_0, hyper-cell b̂                 | 0                           | `torch.nn.init.zeros_` |
| ĥ -> z_h, z_x weights / biases          | 0 / 1                       | `z_projection_`     |
| ĥ -> z_b weights                        | Normal(0, 0.01²)            | `z_projection_`     |
| z_h, z_x -> d_h, d_x (no bias)          | constant 0.1 / N_z          | `d_projection_`     |
| z_b -> β (no bias)                      | 0                           | `d_projection_`     |
| LayerNorm gain / shift                 | 1 / 0                       | the modules' own reset |

Orthogonal blocks follow R4/R5: every gate's (N_h x N_in) block of W_h and W_x is orthogonal on its
own (`torch.nn.init.orthogonal_`, gain 1), which is the SVD recipe for non-square blocks.
"""

import torch
from torch import Tensor, nn

Z_BIAS_INIT = 1.0  # b_hh^y, b_hx^y: every z_h, z_x starts as the all-ones vector (spec §2.4)
Z_B_STD = 0.01  # W_hb^y ~ N(0, 0.01^2) so the dynamic bias has a gradient from step 0
D_INIT_TOTAL = 0.1  # W_hz^y, W_xz^y = 0.1 / N_z, so every d starts at 0.1 (Cooijmans' gamma trick)


@torch.no_grad()
def orthogonal_gates_(weight: Tensor, num_gates: int = 4) -> Tensor:
    """Orthogonal init of each of the `num_gates` row blocks of a fused LSTM weight (R4, R5)."""
    for block in weight.chunk(num_gates, dim=0):
        nn.init.orthogonal_(block)
    return weight


@torch.no_grad()
def z_projection_(weight_z: Tensor, bias_z: Tensor, n_z: int) -> None:
    """ĥ -> z (Eq. 11). Rows of `weight_z` are [z_h (4 gates), z_x (4 gates), z_b (4 gates)] x N_z.

    z_h and z_x maps start at 0 with bias 1; the z_b map (no bias) starts at N(0, 0.01²).
    """
    n_hx = 8 * n_z
    weight_z[:n_hx].zero_()
    weight_z[n_hx:].normal_(0.0, Z_B_STD)
    bias_z.fill_(Z_BIAS_INIT)


@torch.no_grad()
def d_projection_(weight_d: Tensor, n_z: int) -> None:
    """z -> d and z_b -> β (Eq. 12). `weight_d` is (3, 4, N_z, N_h) over [d_h, d_x, β] x gates."""
    weight_d[:2].fill_(D_INIT_TOTAL / n_z)
    weight_d[2].zero_()
