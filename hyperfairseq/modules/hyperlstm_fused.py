"""Fast path of one HyperLSTM layer: the time loop of `hyperlstm.run_layer` with a hand-written backward.

Same mathematics as the reference (`HyperLSTMCell.step`, Eq. 10-13 of Ha, Dai & Le, with the decisions
R1-R9 of paper-spec §6), rearranged for speed; `tests/unit/test_hyperlstm_fused.py` holds the two equal.

What changes against the reference:
* h_{t-1} is multiplied by W_h (Eq. 12) and by the h-part of the hyper cell's input weight (x̂ = [x_t; h_{t-1}],
  Eq. 10, R9) into one per-step buffer G, whose gradient is the one buffer the weight gradients need;
* the 12 maps z -> d_h, d_x, β (Eq. 12) are one batched matmul (`baddbmm`) whose bias is b_0 (+ the
  forget bias, R2, when there is no layer norm);
* gate-major layout (4, B, n): every gate is one contiguous block;
* per-step elementwise work uses fused ATen kernels (`addcmul`, `sigmoid_backward`, `tanh_backward`,
  `native_layer_norm[_backward]`) with `out=` into buffers allocated once per call: nothing is
  allocated inside the time loop (fresh memory costs page faults, more than the arithmetic on CPU);
* the backward through time is hand-written (`_FusedLayer.backward`): per step only what feeds the
  recurrence; the weight gradients of W_h, Ŵ_x, Ŵ_h and W_z are one matmul each over all T·B rows.

Only the layer's recurrence lives here: input projections, recurrent-dropout masks and the bias folds
stay in autograd (`fused_layer`), so the masks are drawn by `HyperLSTMCell.dropout_masks` exactly as in
the reference (same RNG calls, same order).
"""

import ctypes
import os
import sys
import threading
from collections import deque
from functools import lru_cache, partial
from typing import List, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from . import cpu_kernels

NUM_GATES = 4
FAST_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
KERNEL_MAX_NZ = 16  # up to this N_z the fused kernel computes d = z W_d itself (Eq. 12); beyond, one bmm


_HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE = 14


def _libc_madvise():
    if not sys.platform.startswith("linux"):
        return None
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return madvise


_madvise = _libc_madvise()


def _fresh(like: Tensor, *shape: int) -> Tensor:
    """`like.new_empty(shape)`, asking Linux for transparent huge pages when the buffer is large.

    The per-step buffers (T, B, ...) are written once each, on fresh memory: with 4 KiB pages every page costs
    a fault on first touch, which at batch 128 costs more than the arithmetic that fills it (~80 ms per
    230 MB here). madvise(MADV_HUGEPAGE) is advisory; it is skipped off Linux, on GPUs and for small buffers.
    """
    t = like.new_empty(shape)
    nbytes = t.numel() * t.element_size()
    if _madvise is not None and t.device.type == "cpu" and nbytes >= 4 * _HUGE_PAGE:
        start = -(-t.data_ptr() // _HUGE_PAGE) * _HUGE_PAGE
        end = (t.data_ptr() + nbytes) // _HUGE_PAGE * _HUGE_PAGE
        if end > start:
            _madvise(start, end - start, _MADV_HUGEPAGE)
    return t


_storage_use_count = getattr(torch._C, "_storage_Use_Count", None)  # None: no reuse (an older/newer torch)
_REUSE_MIN_BYTES = 8 << 20


class _Workspace:
    """Reuses the large CPU buffers of earlier calls, as PyTorch's CUDA caching allocator does on GPUs.

    A training step allocates ~1 GB of per-step buffers at batch 128 (PTB size), and fresh memory is zeroed
    by the OS page by page: ~10 % of the step. A buffer is handed out again only when nothing else holds its
    storage (its use count says so): no saved tensor of a live graph (retain_graph included), no output,
    view or gradient; so reuse never changes a result. A request takes a free buffer of its size or up to
    1/16 larger (so a reused buffer barely adds to the memory a graph holds). The
    buffers kept total at most HYPERFAIRSEQ_CPU_WORKSPACE_MB (default 4096; 0 turns reuse off), oldest
    dropped first; `clear()` drops them all.
    """

    def __init__(self):
        self.entries: deque = deque()
        self.lock = threading.Lock()

    @staticmethod
    def max_bytes() -> int:
        return int(float(os.environ.get("HYPERFAIRSEQ_CPU_WORKSPACE_MB", "4096")) * 2 ** 20)

    @staticmethod
    def _free(t: Tensor) -> bool:
        return _storage_use_count(t.untyped_storage()._cdata) <= 2  # t itself + the temporary storage object

    def empty(self, like: Tensor, *shape: int) -> Tensor:
        numel = 1
        for n in shape:
            numel *= n
        limit = self.max_bytes()
        if (_storage_use_count is None or like.device.type != "cpu" or limit <= 0
                or numel * like.element_size() < _REUSE_MIN_BYTES):
            return _fresh(like, *shape)
        with self.lock:
            for i, t in enumerate(self.entries):
                if t.dtype == like.dtype and numel <= t.numel() <= numel + numel // 16 and self._free(t):
                    del self.entries[i]
                    self.entries.append(t)  # most recently used last
                    return t[:numel].view(shape)
            t = _fresh(like, numel)
            self.entries.append(t)
            total = sum(e.numel() * e.element_size() for e in self.entries)
            while total > limit and len(self.entries) > 1:
                old = self.entries.popleft()  # a buffer still in use stays alive with its users
                total -= old.numel() * old.element_size()
            return t.view(shape)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


WORKSPACE = _Workspace()
_empty = WORKSPACE.empty


class _LN(NamedTuple):
    """Layer-norm parameters of one cell: per-gate gain/shift (4, 1, n) (shift incl. forget bias), LN(c)."""

    gate_w: Tensor
    gate_b: Tensor
    cell_w: Tensor
    cell_b: Tensor


def fast_path_applies(cell, x: Tensor, return_internals: bool) -> bool:
    """Default dispatch rule: hyper cells, float32/bf16/fp16 inputs, no internals (the reference's job)."""
    return cell.hyper is not None and not return_internals and x.dtype in FAST_DTYPES and x.shape[0] > 0


def fused_layer(cell, x: Tensor, state, keep: Optional[Tensor], return_internals: bool = False):
    """Drop-in replacement for `hyperlstm.run_layer` (hyper cells only, no internals).

    x: (T, B, N_x); state: `_CellState` of (B, size) tensors; keep: (T, B, 1) bool or None.
    Returns (outputs (T, B, N_h), final `_CellState`, None).
    """
    from .hyperlstm import _CellState  # local: hyperlstm imports this module for its dispatch

    if cell.hyper is None or return_internals:
        raise ValueError("fused_layer runs hyper cells without internals; use run_layer otherwise")
    steps, batch = x.shape[:2]
    if steps == 1 and keep is None and not torch.is_grad_enabled() and not cell.training:
        h, c, h_hat, c_hat = _inference_step(cell, x[0], state)  # incremental decoding
        return h.unsqueeze(0), _CellState(h, c, h_hat, c_hat), None
    n_h, hyper = cell.hidden_size, cell.hyper
    hcell = hyper.cell
    x_proj, hyper_x_proj = cell.input_projection(x)
    masks, hyper_masks = cell.dropout_masks(steps, batch, x)  # same RNG calls as run_layer (R6)
    fb = cell.forget_bias
    # bias of the z -> (d_h, d_x, β) batched matmul: 0 for d_h, d_x; b_0 (+ forget bias without LN) for β
    d_bias = (cell.bias + _forget_vector(n_h, 0.0 if cell.layer_norm else fb, x)).view(NUM_GATES, 1, n_h)
    if hcell.bias is not None:
        hyper_x_proj = hyper_x_proj + hcell.bias
    if not hcell.layer_norm:
        hyper_x_proj = hyper_x_proj + _forget_vector(hcell.hidden_size, fb, x)
    bz = torch.cat([hyper.bias_z, x.new_zeros(NUM_GATES * hyper.n_z)])
    main_ln = _ln_params(cell, fb, x) if cell.layer_norm else None
    hyper_ln = _ln_params(hcell, fb, x) if hcell.layer_norm else None
    ln_flat = [] if main_ln is None else list(main_ln)
    hln_flat = [] if hyper_ln is None else list(hyper_ln)
    keep_f = None if keep is None else keep.to(x.dtype)
    eps = cell.ln_cell.eps if cell.layer_norm else 0.0
    heps = hcell.ln_cell.eps if hcell.layer_norm else 0.0
    dtype = x.dtype
    cast = lambda t: None if t is None else t.to(dtype)  # noqa: E731  (autocast-free mixed inputs)
    outs = _FusedLayer.apply(
        (len(ln_flat), len(hln_flat), eps, heps, cpu_kernels.applies(x)),
        x_proj, hyper_x_proj, state.h, state.c, state.h_hat, state.c_hat,
        cast(cell.weight_hh), cast(hcell.weight_ih[:, cell.input_size:]), cast(hcell.weight_hh), cast(hyper.weight_z), cast(bz),
        cast(hyper.weight_d.flatten(0, 1)), cast(d_bias), masks, hyper_masks, keep_f,
        *[cast(t) for t in ln_flat], *[cast(t) for t in hln_flat],
    )
    out, h, c, h_hat, c_hat = outs
    return out, _CellState(h, c, h_hat, c_hat), None


@torch.no_grad()
def _inference_step(cell, x: Tensor, state) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """One step without autograd, dropout or padding (incremental decoding): Eq. 10-13 in few kernels."""
    hyper, hcell = cell.hyper, cell.hyper.cell
    if hyper.n_z <= KERNEL_MAX_NZ and cpu_kernels.applies(x):
        return _inference_step_kernel(cell, x, state)
    n_x, B = cell.input_size, x.shape[0]
    hh = torch.mm(state.h, cell.weight_hh.t())  # W_h h_{t-1}
    hpre = torch.mm(x, hcell.weight_ih[:, :n_x].t())  # Eq. 10, x̂ = [x_t; h_{t-1}] (R9)
    hpre.addmm_(state.h, hcell.weight_ih[:, n_x:].t()).addmm_(state.h_hat, hcell.weight_hh.t())
    if hcell.bias is not None:
        hpre += hcell.bias
    h_hat, c_hat = _inference_update(hcell, hpre.view(B, NUM_GATES, -1), state.c_hat)
    z = torch.mm(h_hat, hyper.weight_z.t())  # Eq. 11 from ĥ_t (R1)
    z[:, :hyper.bias_z.numel()] += hyper.bias_z
    d = torch.bmm(z.view(B, 3 * NUM_GATES, hyper.n_z).transpose(0, 1), hyper.weight_d.flatten(0, 1))
    d = d.view(3, NUM_GATES, B, -1).transpose(1, 2)  # (3, B, 4, N_h): d_h, d_x, β (Eq. 12)
    pre = torch.addcmul(d[2], d[0], hh.view(B, NUM_GATES, -1))
    pre.addcmul_(d[1], torch.mm(x, cell.weight_ih.t()).view(B, NUM_GATES, -1))
    pre += cell.bias.view(NUM_GATES, -1)
    return (*_inference_update(cell, pre, state.c), h_hat, c_hat)


class _StepPlan(NamedTuple):
    """What a one-step kernel pass takes from a cell's parameters, derived once and kept on the cell while
    they are unchanged (`stamp`: every parameter's version and data pointer): during decoding the step
    then runs few Python lines around its 5 GEMMs and 2 kernel calls."""

    stamp: tuple
    w_hh: Tensor  # W_hᵀ
    w_hat: Tensor  # Ŵ_xᵀ, x̂ = [x; h] (R9)
    hat_bias: Optional[Tensor]  # hyper b_0 (+ forget bias without LN), or None
    w_hh_hat: Tensor  # Ŵ_hᵀ
    w_z: Tensor  # W_zᵀ (Eq. 11)
    b_z: Tensor  # z biases, 0 for z_b
    w_d: Tensor  # (12, N_z, N_h) (Eq. 12)
    d_bias: Tensor  # (4, N_h): b_0 (+ forget bias without LN)
    w_ih: Tensor  # W_xᵀ
    hyper_ln: list  # kernel LN args of the hyper cell (gate shift with the forget bias), or [None] * 4
    main_ln: list
    hyper_eps: float
    main_eps: float


def _stamp(params) -> tuple:
    return tuple((p._version, p.data_ptr()) for p in params)


def _step_plan(cell) -> _StepPlan:
    params = cell.__dict__.get("_step_params")
    if params is None:
        params = cell.__dict__["_step_params"] = list(cell.parameters())
    plan = cell.__dict__.get("_step_plan")
    stamp = _stamp(params)
    if plan is not None and plan.stamp == stamp:
        return plan
    hyper, hcell, fb = cell.hyper, cell.hyper.cell, cell.forget_bias
    like = cell.weight_hh

    def kernel_ln(c):
        if not c.layer_norm:
            return [None] * 4
        shift = c.ln_gates.bias + _forget_vector(c.hidden_size, fb, like).view(NUM_GATES, -1)  # R2
        return [c.ln_gates.weight, shift, c.ln_cell.weight, c.ln_cell.bias]

    hat_bias = hcell.bias
    if not hcell.layer_norm:
        hat_bias = _forget_vector(hcell.hidden_size, fb, like) + (0 if hat_bias is None else hat_bias)
    plan = _StepPlan(
        stamp, cell.weight_hh.t(), hcell.weight_ih.t(), hat_bias, hcell.weight_hh.t(), hyper.weight_z.t(),
        torch.cat([hyper.bias_z, like.new_zeros(NUM_GATES * hyper.n_z)]), hyper.weight_d.flatten(0, 1),
        (cell.bias + _forget_vector(cell.hidden_size, 0.0 if cell.layer_norm else fb, like)).view(NUM_GATES, -1),
        cell.weight_ih.t(), kernel_ln(hcell), kernel_ln(cell),
        hcell.ln_cell.eps if hcell.layer_norm else 0.0, cell.ln_cell.eps if cell.layer_norm else 0.0)
    cell.__dict__["_step_plan"] = plan
    return plan


def _inference_step_kernel(cell, x: Tensor, state) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """`_inference_step` with the two fused kernel calls (hyper cell; main cell with Eq. 12 inside)."""
    ops, P, B = cpu_kernels.ops(), _step_plan(cell), x.shape[0]
    hh = torch.mm(state.h, P.w_hh).view(B, NUM_GATES, -1)  # W_h h_{t-1}
    x_hat = torch.cat([x, state.h], 1)  # Eq. 10, x̂ = [x_t; h_{t-1}] (R9)
    hpre = torch.mm(x_hat, P.w_hat) if P.hat_bias is None else torch.addmm(P.hat_bias, x_hat, P.w_hat)
    hpre = hpre.addmm_(state.h_hat, P.w_hh_hat).view(B, NUM_GATES, -1)
    h_hat, c_hat = _inference_update_kernel(ops, hpre, None, state.c_hat, None, P.hyper_ln, P.hyper_eps)
    z = torch.addmm(P.b_z, h_hat, P.w_z).view(B, 3 * NUM_GATES, -1)  # Eq. 11 from ĥ_t (R1)
    x_proj = torch.mm(x, P.w_ih).view(B, NUM_GATES, -1)
    h, c = _inference_update_kernel(ops, hh, x_proj, state.c, (None, z, P.w_d, P.d_bias), P.main_ln, P.main_eps)
    return h, c, h_hat, c_hat


_step_scratch = threading.local()  # per thread: the one-step kernels' scratch buffers, by shape and dtype


def _inference_scratch(c_prev: Tensor, ln: bool) -> Tuple[Tensor, ...]:
    """(act, xhat, rstd, c_mean, c_rstd, tanh) buffers that one step overwrites and nothing keeps."""
    B, n = c_prev.shape
    cache = _step_scratch.__dict__.setdefault("buffers", {})
    key = (B, n, c_prev.dtype, c_prev.device, ln)
    if key not in cache:
        new = c_prev.new_empty
        cache[key] = (new(B, NUM_GATES, n), *((new(B, NUM_GATES, n), new(B, NUM_GATES), new(B), new(B)) if ln
                                             else (None,) * 4), new(B, n))
        while len(cache) > 16:
            cache.pop(next(iter(cache)))
    return cache[key]


def _inference_update_kernel(ops, p1: Tensor, p2: Optional[Tensor], c_prev: Tensor, scale, ln: list, eps: float):
    """One `cell_forward` call; returns new (h_t, c_t), the rest goes to per-thread scratch."""
    B, n = c_prev.shape
    act, xhat, rstd, c_mean, c_rstd, tc = _inference_scratch(c_prev, ln[0] is not None)
    h, c = c_prev.new_empty(B, n), c_prev.new_empty(B, n)
    ops.cell_forward.default(p1, p2, *(scale or [None] * 4), c_prev, None, *ln, eps,
                             act, xhat, rstd, c, c_mean, c_rstd, tc, h)
    return h, c


def _inference_update(cell, pre: Tensor, c: Tensor) -> Tuple[Tensor, Tensor]:
    """Eq. 13 on pre (B, 4, n) (b_0 included), in place where possible; returns (h_t, c_t)."""
    n = c.shape[1]
    if cell.layer_norm:
        pre = F.layer_norm(pre, (n,), eps=cell.ln_gates.eps)
        pre.mul_(cell.ln_gates.weight).add_(cell.ln_gates.bias)
    pre[:, 1] += cell.forget_bias  # R2
    act = torch.sigmoid(pre)
    torch.tanh(pre[:, 2], out=act[:, 2])
    c = torch.addcmul(act[:, 1] * c, act[:, 0], act[:, 2])  # Eq. 13
    c_out = F.layer_norm(c, (n,), cell.ln_cell.weight, cell.ln_cell.bias, cell.ln_cell.eps) if cell.layer_norm else c
    return act[:, 3] * torch.tanh(c_out), c


def _forget_vector(n: int, forget_bias: float, like: Tensor) -> Tensor:
    """The forget bias on the f gate's block of a (4·n) bias: a constant, made once per size/dtype/device."""
    return _forget_constant(n, float(forget_bias), like.dtype, like.device)


@lru_cache(maxsize=64)
def _forget_constant(n: int, forget_bias: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    v = torch.zeros(NUM_GATES, n, dtype=dtype, device=device)
    v[1] = forget_bias  # gate order i, f, g, o (R2)
    return v.flatten()  # shared: only ever read


def _ln_params(cell, forget_bias: float, like: Tensor) -> _LN:
    shift = cell.ln_gates.bias + _forget_vector(cell.hidden_size, forget_bias, like).view(NUM_GATES, -1)
    return _LN(cell.ln_gates.weight.unsqueeze(1), shift.unsqueeze(1), cell.ln_cell.weight, cell.ln_cell.bias)


# -- one cell's update (Eq. 13 with optional LN, R8), forward and backward ------------------------
# Gate-major layout: pre-activations and activations are (4, B, n), so every gate is one contiguous
# (B, n) block. `_Cell` holds one cell's per-step saved buffers (T, ...) and its scratch buffers.

_SAVED = ("act", "tc", "xhat", "rstd", "c_mean", "c_rstd", "c_new")


class _Cell:
    """Buffers and the update (Eq. 13) of one cell over T steps: the main cell or the hyper cell."""

    def __init__(self, like: Tensor, T: int, B: int, n: int, ln: Optional[_LN], eps: float, fresh_c: bool,
                 saved: Optional[List[Optional[Tensor]]] = None):
        self.n, self.ln, self.eps = n, ln, eps
        new = partial(_empty, like)
        if saved is None:
            saved = [new(T, NUM_GATES, B, n), new(T, B, n)]
            saved += [new(T, NUM_GATES, B, n), new(T, NUM_GATES, B, 1), new(T, B, 1), new(T, B, 1)] if ln else [None] * 4
            saved += [new(T, B, n) if (ln is not None and fresh_c) else None]
        self.saved = saved
        # per-step views, made once (one unbind instead of an index per use)
        self.act, self.tc, self.xhat, self.rstd, self.c_mean, self.c_rstd, self.c_new = (
            None if b is None else b.unbind(0) for b in saved)
        self.like, self.B, self.T = like, B, T
        self.scratch = {}

    def buf(self, name: str, *shape: int) -> Tensor:
        t = self.scratch.get(name)
        if t is None:
            t = self.scratch[name] = self.like.new_empty(shape)
        return t

    def forward(self, t: int, pre: Tensor, c_prev: Tensor, mask: Optional[Tensor], h_out: Tensor, c_out: Tensor):
        """pre (4, B, n) incl. b_0 and, without LN, the forget bias -> writes h_t, c_t (Eq. 12-13)."""
        n, B, ln, act, tc = self.n, self.B, self.ln, self.act[t], self.tc[t]
        if ln is not None:
            torch.ops.aten.native_layer_norm.out(pre, [n], None, None, self.eps, out0=self.xhat[t],
                                                 out1=self.buf("mean", NUM_GATES, B, 1), out2=self.rstd[t])
            # per-gate LN (R8); the forget bias sits in the shift (R2)
            pre = torch.addcmul(ln.gate_b, self.xhat[t], ln.gate_w, out=self.buf("y", NUM_GATES, B, n))
        a_i, a_f, a_g, a_o = act.unbind(0)
        p_i, p_f, p_g, p_o = pre.unbind(0)
        torch.sigmoid(pre[:2], out=act[:2])
        torch.tanh(p_g, out=a_g)
        torch.sigmoid(p_o, out=a_o)
        g = a_g if mask is None else torch.mul(a_g, mask, out=self.buf("g", B, n))  # dropout (R6)
        torch.mul(a_f, c_prev, out=c_out)
        c_out.addcmul_(a_i, g)  # Eq. 13
        if ln is not None:
            if self.c_new is not None:
                self.c_new[t].copy_(c_out)
            c_norm = self.buf("c_norm", B, n)
            torch.ops.aten.native_layer_norm.out(c_out, [n], ln.cell_w, ln.cell_b, self.eps, out0=c_norm,
                                                 out1=self.c_mean[t], out2=self.c_rstd[t])
            torch.tanh(c_norm, out=tc)  # LN(c_t) on the output path only (R8)
        else:
            torch.tanh(c_out, out=tc)
        torch.mul(a_o, tc, out=h_out)

    def _kernel_views(self, t: int):
        """Step t's saved buffers as the kernels take them: (B, 4, n) rows, per-(b, gate) scalars."""
        ln = self.ln is not None
        return (self.act[t].transpose(0, 1), self.xhat[t].transpose(0, 1) if ln else None,
                self.rstd[t].squeeze(-1).t() if ln else None, self.c_mean[t] if ln else None,
                self.c_rstd[t] if ln else None)

    def forward_kernel(self, ops, t: int, p1: Tensor, p2: Tensor, c_prev: Tensor, mask: Optional[Tensor],
                       h_out: Tensor, c_out: Tensor, scale=None) -> None:
        """`forward` in one fused call (csrc/hyperlstm_cell.cpp): pre = p1 + p2 for the hyper cell, or, with
        `scale` = (d, z, W_d, b_0), Eq. 12's b_0 + β + d_h ⊙ p1 + d_x ⊙ p2 for the main cell; p*: (B, 4, n);
        d: (B, 12, n) = d_h, d_x, β, or None and then computed in the kernel from z (B, 12, N_z) and W_d."""
        ln = self.ln
        act, xhat, rstd, c_mean, c_rstd = self._kernel_views(t)
        d, z, w_d, d_bias = scale if scale is not None else [None] * 4
        ops.cell_forward(p1, p2, d, z, w_d, d_bias, c_prev, mask, *(_kernel_ln(ln) if ln else [None] * 4), self.eps,
                         act, xhat, rstd, c_out, c_mean, c_rstd, self.tc[t], h_out)
        if ln is not None and self.c_new is not None:
            self.c_new[t].copy_(c_out)

    def backward_kernel(self, ops, t: int, dh: Tensor, dc: Tensor, c_prev: Tensor, c_new: Optional[Tensor],
                        mask: Optional[Tensor], dc_out: Tensor, dpre: Tensor, scaled=None) -> None:
        """`backward` (+ `gate_ln_backward`) in one fused call; dpre (B, 4, n) gets the pre-activation
        gradient. `scaled` = (p1, p2, d, z, W_d, dp1, dp2, e1, e2, dz, dβ) for the main cell: Eq. 12
        backward too (dz written by the kernel when z is given; dβ summed over the batch)."""
        ln = self.ln
        act, xhat, rstd, c_mean, c_rstd = self._kernel_views(t)
        p1, p2, d, z, w_d, dp1, dp2, e1, e2, dz, d_beta = scaled if scaled is not None else [None] * 11
        gate_w, _, cell_w, _ = _kernel_ln(ln) if ln else [None] * 4
        sums = [self.dgw, self.dgb, self.dcw, self.dcb] if ln else [None] * 4
        ops.cell_backward(dh, dc, act, self.tc[t], c_prev, c_new, c_mean, c_rstd, mask, xhat, rstd, gate_w,
                          cell_w, p1, p2, d, z, w_d, dc_out, dpre, dp1, dp2, e1, e2, dz, *sums, d_beta)

    def start_backward(self, kernel: bool = False) -> None:
        """Per-step LN gain/shift gradients land in (T, ...) buffers, summed once by `ln_grads`;
        the kernels sum over steps themselves, into (4, n) / (n) accumulators."""
        if self.ln is not None and kernel:
            zeros, n = self.like.new_zeros, self.n
            self.dgw, self.dgb, self.dcw, self.dcb = zeros(NUM_GATES, n), zeros(NUM_GATES, n), zeros(n), zeros(n)
        elif self.ln is not None:
            T, B, n = self.T, self.B, self.n
            self.dgw, self.dgb = self.like.new_empty(T, NUM_GATES, 1, n), self.like.new_empty(T, NUM_GATES, 1, n)
            self.dcw, self.dcb = self.like.new_empty(T, n), self.like.new_empty(T, n)
            self.buf("zero", NUM_GATES, B, 1).zero_()
            self.buf("one", NUM_GATES, B, 1).fill_(1.0)

    def ln_grads(self) -> List[Tensor]:
        """[gate gain, gate shift, LN(c) gain, LN(c) shift] gradients, summed over steps."""
        if self.dcw.dim() == 1:  # the kernels' accumulators
            return [self.dgw.unsqueeze(1), self.dgb.unsqueeze(1), self.dcw, self.dcb]
        return [self.dgw.sum(0), self.dgb.sum(0), self.dcw.sum(0), self.dcb.sum(0)]

    def backward(self, t: int, dh: Tensor, dc: Tensor, c_prev: Tensor, c_new: Optional[Tensor],
                 mask: Optional[Tensor], dy_out: Tensor, dc_out: Tensor) -> None:
        """Gradients of Eq. 13: (dh_t, dc_t) -> gate gradient (4, B, n) into `dy_out`, dc_{t-1} into `dc_out`.

        With LN, `dy_out` receives the gradient of the normalised gates' output y (`gate_ln_backward`
        turns it into the pre-activation gradient).
        """
        n, B, ln, act, tc = self.n, self.B, self.ln, self.act[t], self.tc[t]
        a_i, a_f, a_g, a_o = act.unbind(0)
        dcn = self.buf("dcn", B, n)
        torch.mul(dh, a_o, out=dcn)
        torch.ops.aten.tanh_backward(dcn, tc, grad_input=dcn)
        dct = self.buf("dct", B, n)
        if ln is not None:
            dcx = self.buf("dcx", B, n)
            torch.ops.aten.native_layer_norm_backward.out(
                dcn, c_new, [n], self.c_mean[t], self.c_rstd[t], ln.cell_w, ln.cell_b, [True, True, True],
                out0=dcx, out1=self.dcw[t], out2=self.dcb[t])
            torch.add(dc, dcx, out=dct)
        else:
            torch.add(dc, dcn, out=dct)
        dact = self.buf("dact", NUM_GATES, B, n)
        d_i, d_f, d_g, d_o = dact.unbind(0)
        g = a_g if mask is None else torch.mul(a_g, mask, out=self.buf("g", B, n))
        torch.mul(dct, g, out=d_i)
        torch.mul(dct, c_prev, out=d_f)
        torch.mul(dct, a_i, out=d_g)
        if mask is not None:
            d_g.mul_(mask)
        torch.mul(dh, tc, out=d_o)
        y_i, y_f, y_g, y_o = dy_out.unbind(0)
        torch.ops.aten.sigmoid_backward(dact[:2], act[:2], grad_input=dy_out[:2])
        torch.ops.aten.tanh_backward(d_g, a_g, grad_input=y_g)
        torch.ops.aten.sigmoid_backward(d_o, a_o, grad_input=y_o)
        torch.mul(dct, a_f, out=dc_out)

    def gate_ln_backward(self, t: int, dy: Tensor, out: Tensor) -> None:
        """Per-gate LN backward from x̂ and rstd: dx = rstd·(g - mean g - x̂·mean(g x̂)), g = dy·w.

        ATen's kernel runs on x̂ itself with mean 0 and rstd 1; dx is then scaled by the saved rstd.
        The gain/shift gradients Σ_b dy·x̂ and Σ_b dy go to this step's slots.
        """
        n, B, xhat = self.n, self.B, self.xhat[t]
        g = self.buf("gw", NUM_GATES, B, n)
        torch.mul(dy, self.ln.gate_w, out=g)
        dx = torch.ops.aten.native_layer_norm_backward(
            g, xhat, [n], self.scratch["zero"], self.scratch["one"], None, None, [True, False, False])[0]
        torch.mul(dx, self.rstd[t], out=out)
        torch.mul(dy, xhat, out=g)
        torch.sum(g, 1, keepdim=True, out=self.dgw[t])
        torch.sum(dy, 1, keepdim=True, out=self.dgb[t])


# -- the layer ---------------------------------------------------------------------------------------


def _kernel_ln(ln: _LN) -> List[Tensor]:
    """The kernels' layer-norm parameters: gate gain/shift as (4, n), LN(c) gain/shift as (n)."""
    return [ln.gate_w.squeeze(1), ln.gate_b.squeeze(1), ln.cell_w, ln.cell_b]


def _batch_major(t: Tensor, T: int) -> List[Tensor]:
    """(T, B, 4·n) -> per-step (B, 4, n) views, the kernels' layout."""
    return _steps(t.view(T, t.shape[1], NUM_GATES, -1), T)


def _gate_major(t: Tensor) -> Tensor:
    """(B, 4·n) -> (4, B, n) view."""
    return t.view(t.shape[0], NUM_GATES, -1).transpose(0, 1)


def _steps(t: Optional[Tensor], T: int) -> List[Optional[Tensor]]:
    """Per-step views of a (T, ...) tensor in one call; [None] * T for None."""
    return [None] * T if t is None else list(t.unbind(0))


class _FusedLayer(torch.autograd.Function):
    """Forward and hand-written backward through time of one HyperLSTM layer (Eq. 10-13)."""

    @staticmethod
    def forward(ctx, meta, xp, hxp, h0, c0, hh0, hc0, w_hh, w_hx, w_hh_hat, w_z, b_z, w_d, d_bias,
                mask, hmask, keep, *ln_params):
        n_ln, n_hln, eps, heps, kernel = meta
        ops = cpu_kernels.ops() if kernel else None
        ln = _LN(*ln_params[:4]) if n_ln else None
        hln = _LN(*ln_params[n_ln:n_ln + 4]) if n_hln else None
        T, B, G4 = xp.shape
        N, NH = G4 // NUM_GATES, hxp.shape[2] // NUM_GATES
        NZ = w_d.shape[1]
        new = partial(_empty, xp)
        Hs, Cs, HHs, HCs = new(T + 1, B, N), new(T + 1, B, N), new(T + 1, B, NH), new(T + 1, B, NH)
        Hs[0], Cs[0], HHs[0], HCs[0] = h0, c0, hh0, hc0
        G = new(T, B, G4 + NUM_GATES * NH)  # [W_h h_{t-1} | Ŵ_x[:, N_x:] h_{t-1}] per step
        Z = new(T, B, 3 * NUM_GATES * NZ)
        padded = keep is not None
        # with padding, the new (pre-`where`) values get their own buffers; ĥ_t's feeds dW_z
        NEW = [new(T, B, N), new(T, B, N), new(T, B, NH), new(T, B, NH)] if padded else None
        out = new(T, B, N) if padded else None
        main, hyper = _Cell(xp, T, B, N, ln, eps, padded), _Cell(xp, T, B, NH, hln, heps, padded)
        # [W_h; Ŵ_x[:, N_x:]]ᵀ made contiguous once: a GEMM with a transposed operand is ~25% slower on CPU
        w_cat_t = torch.cat([w_hh, w_hx]).t().contiguous()
        w_hh_hat_t, w_z_t = w_hh_hat.t(), w_z.t()
        w_d_hx, w_d_b = w_d[:2 * NUM_GATES], w_d[2 * NUM_GATES:]
        hpre, d_hx = new(B, NUM_GATES * NH), new(2 * NUM_GATES, B, N)
        d_h, d_x = d_hx[:NUM_GATES], d_hx[NUM_GATES:]
        hpre_g = _gate_major(hpre)
        pre = new(NUM_GATES, B, N)
        states = [_steps(b, T + 1) for b in (Hs, Cs, HHs, HCs)]
        news = [[b[t + 1] for b in states] for t in range(T)] if not padded else list(zip(*(_steps(b, T) for b in NEW)))
        Gs, G_hx = _steps(G, T), _steps(G[..., G4:], T)
        G_hh_g = _steps(G[..., :G4].view(T, B, NUM_GATES, N).transpose(1, 2), T)
        xp_g = _steps(xp.view(T, B, NUM_GATES, N).transpose(1, 2), T)
        Zs = _steps(Z, T)
        zts = _steps(Z.view(T, B, 3 * NUM_GATES, NZ).transpose(1, 2), T)  # (12, B, N_z) per step
        hxps, masks, hmasks = _steps(hxp, T), _steps(mask, T), _steps(hmask, T)
        if ops is not None:  # batch-major per-step views for the fused kernels
            D = None if NZ <= KERNEL_MAX_NZ else new(3 * NUM_GATES, B, N)  # d_h, d_x, β (Eq. 12), large N_z
            d_bias_k, hpre_b = d_bias.view(NUM_GATES, N), hpre.view(B, NUM_GATES, NH)
            G_hh_b, G_hx_b, xp_b = _batch_major(G[..., :G4], T), _batch_major(G[..., G4:], T), _batch_major(xp, T)
            z_b = _steps(Z.view(T, B, 3 * NUM_GATES, NZ), T)
        for t in range(T):
            h, c, hh, hc = (b[t] for b in states)
            h_new, c_new, hh_new, hc_new = news[t]
            torch.mm(h, w_cat_t, out=Gs[t])  # [W_h h_{t-1} | Ŵ_x[:, N_x:] h_{t-1}]
            torch.addmm(hxps[t], hh, w_hh_hat_t, out=hpre)
            if ops is not None:  # Eq. 10 with x̂ = [x_t; h_{t-1}] (R9): hpre + Ŵ_x[:, N_x:] h_{t-1} in the kernel
                hyper.forward_kernel(ops, t, hpre_b, G_hx_b[t], hc, hmasks[t], hh_new, hc_new)
            else:
                hpre += G_hx[t]  # Eq. 10 with x̂ = [x_t; h_{t-1}] (R9)
                hyper.forward(t, hpre_g, hc, hmasks[t], hh_new, hc_new)
            torch.addmm(b_z, hh_new, w_z_t, out=Zs[t])  # Eq. 11 from the current ĥ_t (R1)
            zt = zts[t]
            if ops is not None:  # Eq. 12 in the kernel; d_h, d_x, β from one bmm for large N_z
                scale = (None, z_b[t], w_d, d_bias_k) if D is None else (torch.bmm(zt, w_d, out=D).transpose(0, 1),
                                                                          None, None, d_bias_k)
                main.forward_kernel(ops, t, G_hh_b[t], xp_b[t], c, masks[t], h_new, c_new, scale)
            else:
                torch.bmm(zt[:2 * NUM_GATES], w_d_hx, out=d_hx)  # d_h, d_x (8, B, N), Eq. 12
                torch.baddbmm(d_bias, zt[2 * NUM_GATES:], w_d_b, out=pre)  # β + b_0 (4, B, N)
                pre.addcmul_(d_h, G_hh_g[t])  # + d_h ⊙ W_h h_{t-1}
                pre.addcmul_(d_x, xp_g[t])  # + d_x ⊙ W_x x_t  (Eq. 12)
                main.forward(t, pre, c, masks[t], h_new, c_new)
            if padded:  # state frozen after a sequence's end, output zero
                k = keep[t].bool()
                for dst, val, old in zip((b[t + 1] for b in states), news[t], (h, c, hh, hc)):
                    torch.where(k, val, old, out=dst)
                torch.mul(h_new, keep[t], out=out[t])
        if out is None:
            out = Hs[1:]
        ctx.meta = meta
        ctx.save_for_backward(xp, w_hh, w_hx, w_hh_hat, w_z, w_d, d_bias, mask, hmask, keep,
                              Hs, Cs, HHs, HCs, G, Z, None if NEW is None else NEW[2],
                              *ln_params, *main.saved, *hyper.saved)
        return out, Hs[T].clone(), Cs[T].clone(), HHs[T].clone(), HCs[T].clone()

    @staticmethod
    def backward(ctx, d_out, dhT, dcT, dhhT, dhcT):
        (xp, w_hh, w_hx, w_hh_hat, w_z, w_d, d_bias, mask, hmask, keep,
         Hs, Cs, HHs, HCs, G, Z, h_hat_new, *rest) = ctx.saved_tensors
        n_ln, n_hln, eps, heps, kernel = ctx.meta
        ops = cpu_kernels.ops() if kernel else None
        ln = _LN(*rest[:4]) if n_ln else None
        hln = _LN(*rest[n_ln:n_ln + 4]) if n_hln else None
        cells = rest[n_ln + n_hln:]
        T, B, G4 = xp.shape
        N, NH = G4 // NUM_GATES, HHs.shape[2]
        NZ = w_d.shape[1]
        padded = keep is not None
        k_ = len(_SAVED)
        main = _Cell(xp, T, B, N, ln, eps, padded, list(cells[:k_]))
        hyper = _Cell(xp, T, B, NH, hln, heps, padded, list(cells[k_:]))
        main.start_backward(ops is not None)
        hyper.start_backward(ops is not None)
        new, zeros = partial(_empty, xp), xp.new_zeros
        dh, dc = (zeros(B, N) if g is None else g.clone() for g in (dhT, dcT))
        dhh, dhc = (zeros(B, NH) if g is None else g.clone() for g in (dhhT, dhcT))
        d_outs = _steps(zeros(T, B, N) if d_out is None else d_out, T)
        DG = new(T, B, G.shape[2])  # grads of G, i.e. [d(W_h h) | dĥ-pre], per step
        DXP = new(T, B, G4)
        DZ = new(T, B, Z.shape[2])
        DYg = new(NUM_GATES, B, N) if ln is not None else None
        DYh = new(NUM_GATES, B, NH) if hln is not None else None
        E = new(3, NUM_GATES, B, N)  # (d(d_h), d(d_x), dβ = dpre) gate-major, one step
        e, dpre = E.view(3 * NUM_GATES, B, N), E[2]
        E_h, E_x = E[0], E[1]
        d_hx, dz = new(2 * NUM_GATES, B, N), new(3 * NUM_GATES, B, NZ)
        d_h, d_x = d_hx[:NUM_GATES], d_hx[NUM_GATES:]
        dz_bt = dz.transpose(0, 1)
        dh_new, dhh_new = new(B, N), new(B, NH)
        dw_d = torch.zeros_like(w_d)
        d_beta = zeros(NUM_GATES, 1, N)
        w_d_hx, w_d_t = w_d[:2 * NUM_GATES], w_d.transpose(1, 2)
        Cs_, HCs_ = _steps(Cs, T + 1), _steps(HCs, T + 1)
        G_hh_g = _steps(G[..., :G4].view(T, B, NUM_GATES, N).transpose(1, 2), T)
        xp_g = _steps(xp.view(T, B, NUM_GATES, N).transpose(1, 2), T)
        w_cat = torch.cat([w_hh, w_hx])  # rebuilt rather than saved: keeps the saved bytes down
        DGs, DG_hx = _steps(DG, T), _steps(DG[..., G4:], T)
        DG_hh_g = _steps(DG[..., :G4].view(T, B, NUM_GATES, N).transpose(1, 2), T)
        DG_hx_g = _steps(DG[..., G4:].view(T, B, NUM_GATES, NH).transpose(1, 2), T)
        DXP_g = _steps(DXP.view(T, B, NUM_GATES, N).transpose(1, 2), T)
        DZs = _steps(DZ, T)
        DZ_12 = _steps(DZ.view(T, B, 3 * NUM_GATES, NZ), T)
        zts = _steps(Z.view(T, B, 3 * NUM_GATES, NZ).transpose(1, 2), T)
        masks, hmasks = _steps(mask, T), _steps(hmask, T)
        if ops is not None:  # batch-major per-step views for the fused kernels
            D = None if NZ <= KERNEL_MAX_NZ else new(3 * NUM_GATES, B, N)
            E_b = E.transpose(1, 2)  # (3, B, 4, N)
            z_b, DZ_b = _steps(Z.view(T, B, 3 * NUM_GATES, NZ), T), _steps(DZ.view(T, B, 3 * NUM_GATES, NZ), T)
            G_hh_b, xp_b = _batch_major(G[..., :G4], T), _batch_major(xp, T)
            DG_hh_b, DG_hx_b, DXP_b = _batch_major(DG[..., :G4], T), _batch_major(DG[..., G4:], T), _batch_major(DXP, T)
            d_beta_k = d_beta.view(NUM_GATES, N)
        for t in reversed(range(T)):
            torch.add(dh, d_outs[t], out=dh_new)
            dc_new, dhh_in, dhc_new = dc, dhh, dhc
            if padded:
                k, nk = keep[t], 1.0 - keep[t]
                carry = (dh * nk, dc * nk, dhh * nk, dhc * nk)
                dh_new.mul_(k)
                dc_new, dhh_in, dhc_new = dc * k, dhh * k, dhc * k
            # main cell: Eq. 13, then Eq. 12
            c_new = None if ln is None else (main.c_new[t] if padded else Cs_[t + 1])
            zt = zts[t]
            if ops is not None:  # Eq. 13 and Eq. 12 backward in one call; d recomputed (in it for small N_z)
                d_z = (None, z_b[t], w_d, DZ_b[t]) if D is None else (torch.bmm(zt, w_d, out=D).transpose(0, 1),
                                                                      None, None, None)
                scaled = (G_hh_b[t], xp_b[t], *d_z[:3], DG_hh_b[t], DXP_b[t], E_b[0], E_b[1], d_z[3], d_beta_k)
                main.backward_kernel(ops, t, dh_new, dc_new, Cs_[t], c_new, masks[t], dc, E_b[2], scaled)
            else:
                main.backward(t, dh_new, dc_new, Cs_[t], c_new, masks[t], dpre if ln is None else DYg, dc)
                if ln is not None:
                    main.gate_ln_backward(t, DYg, dpre)
                torch.bmm(zt[:2 * NUM_GATES], w_d_hx, out=d_hx)  # recomputed d_h, d_x
                torch.mul(dpre, G_hh_g[t], out=E_h)
                torch.mul(dpre, xp_g[t], out=E_x)
                torch.mul(dpre, d_h, out=DG_hh_g[t])
                torch.mul(dpre, d_x, out=DXP_g[t])
                d_beta += dpre.sum(1, keepdim=True)
            dw_d.baddbmm_(zt.transpose(1, 2), e)
            if ops is None or D is not None:
                torch.bmm(e, w_d_t, out=dz)  # (12, B, N_z)
                DZ_12[t].copy_(dz_bt)
            # hyper cell: ĥ_t feeds z (Eq. 11) and the next step
            torch.addmm(dhh_in, DZs[t], w_z, out=dhh_new)
            hc_new = None if hln is None else (hyper.c_new[t] if padded else HCs_[t + 1])
            if ops is not None:
                hyper.backward_kernel(ops, t, dhh_new, dhc_new, HCs_[t], hc_new, hmasks[t], dhc, DG_hx_b[t])
            else:
                dyh = DG_hx_g[t]
                hyper.backward(t, dhh_new, dhc_new, HCs_[t], hc_new, hmasks[t], dyh if hln is None else DYh, dhc)
                if hln is not None:
                    hyper.gate_ln_backward(t, DYh, dyh)
            torch.mm(DGs[t], w_cat, out=dh)
            torch.mm(DG_hx[t], w_hh_hat, out=dhh)
            if padded:
                dh += carry[0]
                dc += carry[1]
                dhh += carry[2]
                dhc += carry[3]
        TB = T * B
        h_prev = Hs[:T].reshape(TB, N)
        d_w_hh, d_w_hx = DG.view(TB, -1).t().mm(h_prev).split([G4, G.shape[2] - G4])
        d_w_hh_hat = DG[..., G4:].reshape(TB, -1).t().mm(HHs[:T].reshape(TB, NH))
        h_hat_new = HHs[1:] if h_hat_new is None else h_hat_new
        d_w_z = DZ.view(TB, -1).t().mm(h_hat_new.reshape(TB, NH))
        d_b_z = DZ.sum((0, 1))
        ln_grads = (main.ln_grads() if ln is not None else []) + (hyper.ln_grads() if hln is not None else [])
        return (None, DXP, DG[..., G4:], dh, dc, dhh, dhc, d_w_hh, d_w_hx, d_w_hh_hat, d_w_z, d_b_z, dw_d,
                d_beta, None, None, None, *ln_grads)
