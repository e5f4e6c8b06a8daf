"""One step of a layer without autograd (incremental decoding, sampling): Eq. 10-13 in few kernel calls.

The weights a step needs (transposed, biases folded, LN shifts with the forget bias) are derived once
per parameter state and kept on the cell as a `StepPlan`; the plan is renewed whenever a parameter is
replaced (`load_state_dict(..., assign=True)`, `.to()`), updated in place (an optimizer step), a setting it
folds in changes (forget bias, LN eps) or the compute dtype/device changes: it holds the parameter objects
themselves and compares their identity, data pointer and version. A write through `p.data` bumps no version
(fairseq's FP16Optimizer copies its fp32 master weights so), so `train()` / `eval()` also drop the plan: a
mode switch ends every decoding session (fairseq's trainer and generator switch before each). The kernels'
scratch buffers are kept per thread.
"""

import threading
from typing import List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from .bias_folds import input_bias, ln_tensors
from .fused_loops import KERNEL_MAX_NZ, NUM_GATES
from .kernels import Kernels
from .state import CellState


class _HyperStep(NamedTuple):
    w_hat_t: Tensor  # Ŵ_xᵀ for x̂ = [x; h] (R9)
    hat_bias: Tensor  # b̂ (+ forget bias without LN)
    w_hh_hat_t: Tensor  # Ŵ_hᵀ
    w_z_t: Tensor  # W_zᵀ (Eq. 11)
    b_z: Tensor  # z biases, 0 for z_b
    w_d: Tensor  # (12, N_z, N_h) (Eq. 12)
    ln: list  # the hyper cell's kernel LN args, or [None] * 4
    eps: float


class StepPlan(NamedTuple):
    params: tuple  # the cell's parameter objects when the plan was made
    versions: tuple  # their (data_ptr, version, dtype) then, and the settings folded in (`_settings`)
    dtype: torch.dtype
    w_hh_t: Tensor  # W_hᵀ
    w_ih_t: Tensor  # W_xᵀ
    bias: Tensor  # (4, N_h): b_0 (+ forget bias without LN); d_bias of Eq. 12 for hyper cells
    ln: list  # main cell LN args (gate gain, shift incl. forget bias, LN(c) gain, shift) or [None] * 4
    eps: float
    hyper: Optional[_HyperStep]


def _settings(cell) -> tuple:
    """What a plan folds in besides parameters: the forget bias (R2) and LN eps (R8) of both cells."""
    cells = (cell,) if cell.hyper is None else (cell, cell.hyper.cell)
    return tuple((c.forget_bias, getattr(c.ln_cell, "eps", None)) for c in cells)


def _stamp(cell, params) -> tuple:
    return tuple((p.data_ptr(), p._version, p.dtype) for p in params) + _settings(cell)


def _kernel_ln(cell, like: Tensor) -> Tuple[list, float]:
    if not cell.layer_norm:
        return [None] * 4, 0.0
    return [t.detach() for t in ln_tensors(cell, like)], cell.ln_cell.eps


def _make_plan(cell, params: tuple, dtype: torch.dtype) -> StepPlan:
    w = lambda p: p.detach().to(dtype)  # noqa: E731
    t = lambda p: w(p).t().contiguous()  # noqa: E731  (a GEMM with a transposed operand is slower on CPU)
    like = w(cell.weight_hh)
    ln, eps = _kernel_ln(cell, like)
    hyper = None
    if cell.hyper is not None:
        hy, hcell = cell.hyper, cell.hyper.cell
        hln, heps = _kernel_ln(hcell, like)
        b_z = torch.cat([w(hy.bias_z), like.new_zeros(NUM_GATES * hy.n_z)])  # z_b has no bias (Eq. 11)
        hyper = _HyperStep(t(hcell.weight_ih), input_bias(hcell, like).detach(), t(hcell.weight_hh), t(hy.weight_z),
                           b_z, w(hy.weight_d).flatten(0, 1).contiguous(), hln, heps)
    bias = input_bias(cell, like).detach().view(NUM_GATES, -1)
    return StepPlan(params, _stamp(cell, params), dtype, t(cell.weight_hh), t(cell.weight_ih), bias,
                    ln, eps, hyper)


def step_plan(cell, dtype: torch.dtype) -> StepPlan:
    """The cell's current `StepPlan` for `dtype`, renewed when any parameter changed (see the docstring)."""
    params = tuple(cell.parameters())
    plan = cell.__dict__.get("_step_plan")
    fresh = (plan is not None and plan.dtype == dtype and len(plan.params) == len(params)
             and all(a is b for a, b in zip(plan.params, params)) and plan.versions == _stamp(cell, params))
    if not fresh:
        plan = cell.__dict__["_step_plan"] = _make_plan(cell, params, dtype)
    return plan


def drop_plan(cell) -> None:
    """Forget the cell's plan (`HyperLSTMCell.train` calls it on every mode switch, see the docstring)."""
    cell.__dict__.pop("_step_plan", None)


_scratch = threading.local()  # per thread: one step's kernel scratch, by shape, dtype and device


def _step_scratch(c_prev: Tensor, ln: bool) -> List[Optional[Tensor]]:
    """act, xhat, rstd, c_mean, c_rstd, tanh buffers that one step overwrites and nothing keeps."""
    B, n = c_prev.shape
    cache = _scratch.__dict__.setdefault("buffers", {})
    key = (B, n, c_prev.dtype, c_prev.device, ln)
    if key not in cache:
        new = c_prev.new_empty
        stats = [new(B, NUM_GATES, n), new(B, NUM_GATES), new(B), new(B)] if ln else [None] * 4
        cache[key] = [new(B, NUM_GATES, n), *stats, new(B, n)]
        while len(cache) > 16:
            cache.pop(next(iter(cache)))
    return cache[key]


def _update(k: Kernels, p1: Tensor, p2: Optional[Tensor], c_prev: Tensor, scale: list, ln: list,
            eps: float) -> Tuple[Tensor, Tensor]:
    """One `cell_forward` call (Eq. 12-13); returns the new (h_t, c_t), the rest goes to scratch."""
    B, n = c_prev.shape
    c_prev = c_prev.contiguous()  # the kernels read rows with unit stride; a caller's state may be a view
    act, xhat, rstd, c_mean, c_rstd, tc = _step_scratch(c_prev, ln[0] is not None)
    h, c = c_prev.new_empty(B, n), c_prev.new_empty(B, n)
    k.cell_forward(p1, p2, *scale, c_prev, None, *ln, eps, act, xhat, rstd, c, c_mean, c_rstd, tc, h)
    return h, c


@torch.no_grad()
def one_step(k: Kernels, cell, x: Tensor, state: CellState) -> Tuple[Tensor, CellState]:
    """x (B, N_x), state of (B, size) tensors -> (h_t, new `CellState`); no dropout, no padding."""
    P, B = step_plan(cell, x.dtype), x.shape[0]
    if P.hyper is None:  # baseline: pre = W_h h + W_x x + b_0 (+ forget bias)
        pre = torch.addmm(P.bias.view(-1), state.h, P.w_hh_t).addmm_(x, P.w_ih_t).view(B, NUM_GATES, -1)
        h, c = _update(k, pre, None, state.c, [None] * 4, P.ln, P.eps)
        return h, CellState(h, c)
    hy = P.hyper
    hpre = torch.addmm(hy.hat_bias, torch.cat([x, state.h], 1), hy.w_hat_t)  # Eq. 10, x̂ = [x_t; h_{t-1}] (R9)
    hpre = hpre.addmm_(state.h_hat, hy.w_hh_hat_t).view(B, NUM_GATES, -1)
    h_hat, c_hat = _update(k, hpre, None, state.c_hat, [None] * 4, hy.ln, hy.eps)
    z = torch.addmm(hy.b_z, h_hat, hy.w_z_t).view(B, 3 * NUM_GATES, -1)  # Eq. 11 from ĥ_t (R1)
    if z.shape[2] <= KERNEL_MAX_NZ:
        scale = [None, z, hy.w_d, P.bias]
    else:
        scale = [torch.bmm(z.transpose(0, 1), hy.w_d).transpose(0, 1), None, None, P.bias]
    hh = torch.mm(state.h, P.w_hh_t).view(B, NUM_GATES, -1)  # W_h h_{t-1}
    x_proj = torch.mm(x, P.w_ih_t).view(B, NUM_GATES, -1)
    h, c = _update(k, hh, x_proj, state.c, scale, P.ln, P.eps)  # Eq. 12-13
    return h, CellState(h, c, h_hat, c_hat)
