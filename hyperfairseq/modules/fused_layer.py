"""Fast path of one HyperLSTM layer (or LSTM / LN-LSTM baseline layer): `fused_layer`, a drop-in
replacement for the reference `hyperlstm.run_layer`.

Same mathematics as the reference (`HyperLSTMCell.step`, Eq. 10-13 of Ha, Dai & Le with the decisions
R1-R9 of paper-spec §6), computed by fused kernels (`kernels`: C++ on CPU, Triton on CUDA) in the time
loops of `fused_loops`, with a hand-written backward through time. Hyper and baseline layers take the
same path; a baseline layer is the main cell with d ≡ 1 and no hyper cell.

Here only the parts that stay in autograd: the input projections of all steps (one GEMM each:
`pooled_linear`), the recurrent-dropout masks (drawn by `HyperLSTMCell.dropout_masks`
exactly as in the reference: same RNG calls, same order), the bias folds, casts, and the choice between
a CUDA-graph plan and an eager run.
Under autocast, or for 16-bit inputs on CPU, the layer computes in the kernels' dtype (`kernels.
compute_dtype`) with autocast off inside, and returns the input's dtype.
"""

from typing import Optional, Tuple

import torch
from torch import Tensor

from . import cuda_graphs
from .bias_folds import input_bias, ln_tensors
from .fused_loops import NUM_GATES, LayerTensors
from .kernels import compute_dtype, kernels_for, wide_mm, wide_onednn
from .one_step import one_step
from .state import CellState
from .workspace import WORKSPACE

FAST_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _run_dtype(x: Tensor) -> Optional[torch.dtype]:
    dtype = x.dtype
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
    return compute_dtype(x.device, dtype)


def fast_path_applies(cell, x: Tensor, return_internals: bool) -> bool:
    """Default dispatch rule: float32/bf16/fp16 inputs (float64 is the reference's), no internals (the
    reference's job), at least one step and one row, and fused kernels for the device that take rows this wide."""
    if return_internals or x.shape[0] == 0 or x.shape[1] == 0 or x.dtype not in FAST_DTYPES or _run_dtype(x) is None:
        return False
    k = kernels_for(x.device)
    widest = max(cell.hidden_size, cell.hyper_hidden_size or 0)
    return k is not None and (k.max_units is None or widest <= k.max_units)


@torch.compiler.disable  # custom kernels and Python-side plans: a graph break for torch.compile
def fused_layer(cell, x: Tensor, state: CellState, keep: Optional[Tensor], return_internals: bool = False):
    """Drop-in replacement for `hyperlstm.run_layer` (no internals).

    x: (T, B, N_x); state: `CellState` of (B, size) tensors; keep: (T, B, 1) bool or None.
    Returns (outputs (T, B, N_h), final `CellState`, None).
    """
    if return_internals:
        raise ValueError("fused_layer does not record internals; use hyperlstm.run_layer")
    kernels, dtype = kernels_for(x.device), _run_dtype(x)
    if kernels is None or dtype is None:
        raise RuntimeError(f"no fused kernels for {x.dtype} on {x.device}; use hyperlstm.run_layer")
    with torch.autocast(x.device.type, enabled=False):
        xc, sc = x.to(dtype), CellState(*(None if s is None else s.to(dtype) for s in state))
        if x.shape[0] == 1 and keep is None and not torch.is_grad_enabled() and not cell.drops:
            out, final = one_step(kernels, cell, xc[0], sc)  # incremental decoding
            out = out.unsqueeze(0)
        else:
            out, final = _run(kernels, cell, xc, sc, keep)
    if out.dtype != x.dtype:
        out, final = out.to(x.dtype), CellState(*(None if s is None else s.to(x.dtype) for s in final))
    return out, final, None


def _run(kernels, cell, x: Tensor, state: CellState, keep: Optional[Tensor]) -> Tuple[Tensor, CellState]:
    inputs = layer_tensors(cell, x, state, keep)
    eps = cell.ln_cell.eps if cell.layer_norm else 0.0
    hcell = cell.hyper.cell if cell.hyper is not None else None
    hyper_eps = hcell.ln_cell.eps if hcell is not None and hcell.layer_norm else 0.0
    plan = cuda_graphs.runner_for(cell, kernels, inputs, eps, hyper_eps)
    out, h, c, h_hat, c_hat = _FusedLayer.apply(plan, *inputs)
    return out, CellState(h, c, h_hat, c_hat)


def layer_tensors(cell, x: Tensor, state: CellState, keep: Optional[Tensor]) -> LayerTensors:
    """The loops' inputs from a cell's parameters (cast to x's dtype), its input and state (autograd-tracked)."""
    dtype, steps, batch = x.dtype, x.shape[0], x.shape[1]
    w = lambda p: None if p is None else p.to(dtype)  # noqa: E731
    masks, hyper_masks = cell.dropout_masks(steps, batch, x)  # same RNG calls as run_layer (R6)
    main_ln = ln_tensors(cell, x) if cell.layer_norm else [None] * 4
    keep_f = None if keep is None else keep.to(dtype)
    if cell.hyper is None:  # LSTM / LN-LSTM baseline: b_0 (R3) and the forget bias (R2) folded into x_proj
        x_proj = pooled_linear(x, w(cell.weight_ih), input_bias(cell, x))  # W_x x_t + b for all steps (Eq. 12)
        return LayerTensors(x_proj, None, state.h, state.c, None, None, w(cell.weight_hh), *[None] * 6,
                            *main_ln, *[None] * 4, masks, None, keep_f)
    hyper, hcell, n_x = cell.hyper, cell.hyper.cell, cell.input_size
    x_proj = pooled_linear(x, w(cell.weight_ih), None)  # W_x x_t for all steps (Eq. 12)
    hyper_x_proj = pooled_linear(x, w(hcell.weight_ih[:, :n_x]), input_bias(hcell, x))  # Eq. 10, x̂ = [x; h] (R9)
    b_z = torch.cat([w(hyper.bias_z), x.new_zeros(NUM_GATES * hyper.n_z)])  # z_b has no bias (Eq. 11)
    d_bias = input_bias(cell, x).view(NUM_GATES, -1)  # b_0 of Eq. 12 (+ forget bias, R2)
    hyper_ln = ln_tensors(hcell, x) if hcell.layer_norm else [None] * 4
    return LayerTensors(x_proj, hyper_x_proj, state.h, state.c, state.h_hat, state.c_hat, w(cell.weight_hh),
                        w(hcell.weight_ih[:, n_x:]), w(hcell.weight_hh), w(hyper.weight_z), b_z,
                        w(hyper.weight_d.flatten(0, 1)).contiguous(), d_bias, *main_ln, *hyper_ln, masks, hyper_masks,
                        keep_f)


def pooled_linear(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """`F.linear(x, weight, bias)` over all steps; its GEMMs through `kernels.wide_mm`'s choice. Where that
    is `torch.mm` (narrow inputs: the char embeddings) the output goes into a `WORKSPACE` buffer: on CPU a
    fresh (T, B, 4N) result costs a page fault per 4 KiB, more than half of the projection's time there."""
    return _PooledLinear.apply(x, weight, bias)


class _PooledLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        rows = x.reshape(-1, x.shape[-1])
        if wide_onednn(rows, weight.t()):  # oneDNN's matmul, ~2x MKL's at wide inputs (AMD EPYC, AVX-512)
            out = torch.ops.mkldnn._linear_pointwise(rows, weight, bias, "none", [], "")
            return out.view(*x.shape[:-1], weight.shape[0])
        out = WORKSPACE.empty(x, rows.shape[0], weight.shape[0])
        if bias is None:
            torch.mm(rows, weight.t(), out=out)
        else:
            torch.addmm(bias, rows, weight.t(), out=out)  # the bias added inside the GEMM, not by a pass of its own
        return out.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        rows, grad = x.reshape(-1, x.shape[-1]), grad.reshape(-1, grad.shape[-1])
        dx = wide_mm(grad, weight).reshape(x.shape) if ctx.needs_input_grad[0] else None
        dw = wide_mm(grad.t(), rows) if ctx.needs_input_grad[1] else None
        db = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, dw, db


class _FusedLayer(torch.autograd.Function):
    """Forward and hand-written backward through time of one layer; `plan` runs the loops (eagerly, or by
    replaying the CUDA graphs of a `cuda_graphs.GraphPlan`). The backward is not itself differentiable:
    second-order gradients (`create_graph=True`) need the reference, `HyperLSTM(..., fast=False)`."""

    @staticmethod
    def forward(ctx, plan, *flat):
        inputs = LayerTensors(*flat)
        run = plan.forward(inputs)
        ctx.run = run
        ctx.save_for_backward(*run.take_saved())
        return run.outputs()

    @staticmethod
    def backward(ctx, d_out, dh, dc, dhh, dhc):
        if torch.is_grad_enabled():  # autograd enables grad mode in a backward only for create_graph=True
            raise RuntimeError("the fused HyperLSTM backward is not differentiable (create_graph=True): use "
                               "HyperLSTM(..., fast=False) for second-order gradients")
        grads = ctx.run.backward(ctx.saved_tensors, d_out, [dh, dc, dhh, dhc])
        return (None, *grads.for_inputs())
