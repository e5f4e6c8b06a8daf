"""Biases as the fused kernels take them: the forget bias (R2) and b_0 (R3) folded into one vector.

The reference adds b_0 before the per-gate layer norm and the forget bias after it, inside σ
(`HyperLSTMCell.update`, `lstm_update`). The kernels take one bias before LN and one LN shift, so the
forget bias goes into the bias without LN and into the LN shift with it.
"""

from functools import lru_cache

import torch
from torch import Tensor

NUM_GATES = 4


def forget_vector(n: int, forget_bias: float, like: Tensor) -> Tensor:
    """The forget bias on the f gate's block of a (4·n) bias: a constant made once per size/dtype/device."""
    return _forget_constant(n, float(forget_bias), like.dtype, like.device)


@lru_cache(maxsize=64)
def _forget_constant(n: int, forget_bias: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    v = torch.zeros(NUM_GATES, n, dtype=dtype, device=device)
    v[1] = forget_bias  # gate order i, f, g, o (R2)
    return v.flatten()  # shared: only ever read


def forget_fold(cell, like: Tensor) -> Tensor:
    """The cell's own forget bias (R2) as a 4·n bias without LN; zeros with LN (it sits in the LN shift)."""
    return forget_vector(cell.hidden_size, 0.0 if cell.layer_norm else cell.forget_bias, like)


def input_bias(cell, like: Tensor) -> Tensor:
    """b_0 (absent in LN cells without the hypernetwork, R3) plus the forget bias without LN, (4·n,)."""
    fold = forget_fold(cell, like)
    return fold if cell.bias is None else cell.bias.to(like.dtype) + fold


def ln_tensors(cell, like: Tensor) -> list:
    """[gate gain (4, n), gate shift incl. the forget bias (4, n), LN(c) gain (n), LN(c) shift (n)] (R8, R2),
    contiguous as the kernels read them (a parameter installed with `load_state_dict(assign=True)` may be a view)."""
    dtype = like.dtype
    fold = forget_vector(cell.hidden_size, cell.forget_bias, like).view(NUM_GATES, -1)
    return [cell.ln_gates.weight.to(dtype).contiguous(), cell.ln_gates.bias.to(dtype) + fold,
            cell.ln_cell.weight.to(dtype).contiguous(), cell.ln_cell.bias.to(dtype).contiguous()]
