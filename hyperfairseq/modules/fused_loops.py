"""The time loops of the fast path: forward and hand-written backward through time of one layer.

Ha, Dai & Le, Eq. 10-13 (paper-spec §2.5, decisions R1-R9), rearranged for speed; `fused_layer` prepares
the inputs and `tests/unit/test_hyperlstm_fused.py` holds the result equal to the reference
(`hyperlstm.run_layer`). Per step, forward (hyper layer; a baseline LSTM layer has only steps 1 and 4):

1. G_t = h_{t-1} [W_h; Ŵ_x[:, N_x:]]ᵀ    one GEMM for W_h h (Eq. 12) and h's part of the hyper input (R9)
2. hpre = ĥ_{t-1} Ŵ_hᵀ + Ŵ_x[:, :N_x] x_t + b̂   one GEMM (the x part was projected for all steps at once)
3. hyper cell: `cell_forward(hpre, G_hx)` -> ĥ_t, ĉ_t (Eq. 10); z = ĥ_t W_zᵀ + b_z, one GEMM (Eq. 11, R1)
4. main cell: `cell_forward(G_hh, x_proj, z, W_d, b_0)` -> h_t, c_t: d = z W_d, pre = d_h ⊙ W_h h + d_x ⊙
   W_x x + β + b_0 (Eq. 12), per-gate LN, σ/tanh, dropout mask, c_t, LN(c_t), h_t (Eq. 13), one kernel

and the backward runs the same steps in reverse (`cell_backward`, two GEMMs for dh_{t-1} and dĥ_{t-1});
the weight gradients of W_h, Ŵ_x, Ŵ_h and W_z are one GEMM each over all T·B rows after the loop.
The kernels (`kernels.Kernels`: C++ on CPU, Triton on CUDA) own whole batch rows, so the loop is the same
for both. Nothing inside the loops allocates or synchronises with the host: every buffer lives in a
`Trace` / `GradBuffers` made before the loop, which is what lets `cuda_graphs` capture each loop once.
Layouts are batch-major: a step's gates are (B, 4, n) views whose rows are contiguous.
"""

from typing import Callable, List, NamedTuple, Optional

import torch
from torch import Tensor

from .kernels import BlockGemm, Kernels, StepGemm, gemm_packs, wide_mm

NUM_GATES = 4
KERNEL_MAX_NZ = 16  # up to this N_z the kernels compute d = z W_d themselves (Eq. 12); beyond, a BlockGemm


class LayerTensors(NamedTuple):
    """Everything one layer's loops read, as the autograd Function receives it (order = argument order).

    Shapes: T steps, B batch, N = N_h, NH = N_ĥ, NZ = N_z. Baseline layers leave the hyper fields None.
    """

    x_proj: Tensor  # (T, B, 4N) W_x x_t; the baseline's also holds b_0 (+ forget bias without LN, R2)
    hyper_x_proj: Optional[Tensor]  # (T, B, 4NH) Ŵ_x[:, :N_x] x_t + b̂ (+ forget bias without LN)
    h0: Tensor  # (B, N)
    c0: Tensor
    h_hat0: Optional[Tensor]  # (B, NH)
    c_hat0: Optional[Tensor]
    w_hh: Tensor  # (4N, N) W_h
    w_hx: Optional[Tensor]  # (4NH, N) Ŵ_x[:, N_x:], h_{t-1}'s part of the hyper input x̂ = [x; h] (R9)
    w_hh_hat: Optional[Tensor]  # (4NH, NH) Ŵ_h
    w_z: Optional[Tensor]  # (12 NZ, NH) rows [z_h, z_x, z_b] x gates (Eq. 11)
    b_z: Optional[Tensor]  # (12 NZ,) biases of z_h, z_x; zeros for z_b
    w_d: Optional[Tensor]  # (12, NZ, N) the maps z -> d_h, d_x, β (Eq. 12)
    d_bias: Optional[Tensor]  # (4, N) b_0 (+ forget bias without LN)
    gate_w: Optional[Tensor]  # (4, N) per-gate LN gain of the main cell (R8)
    gate_b: Optional[Tensor]  # (4, N) its shift, forget bias included (R2)
    cell_w: Optional[Tensor]  # (N,) LN(c) gain
    cell_b: Optional[Tensor]  # (N,) LN(c) shift
    hyper_gate_w: Optional[Tensor]  # the same four for the hyper cell (NH)
    hyper_gate_b: Optional[Tensor]
    hyper_cell_w: Optional[Tensor]
    hyper_cell_b: Optional[Tensor]
    mask: Optional[Tensor]  # (T, B, N) recurrent-dropout mask of the main cell (R6), already scaled
    hyper_mask: Optional[Tensor]  # (T, B, NH)
    keep: Optional[Tensor]  # (T, B, 1) 1.0 while a step lies inside its sequence, 0.0 after (padding)


class LayerShape(NamedTuple):
    """What fixes a layer's buffers: sizes, flags, dtype and device (the key of a CUDA-graph plan)."""

    T: int
    B: int
    N: int
    NH: int  # 0 without the hypernetwork
    NZ: int
    layer_norm: bool
    hyper_layer_norm: bool
    masked: bool
    hyper_masked: bool
    padded: bool
    dtype: torch.dtype
    device: torch.device
    eps: float
    hyper_eps: float

    @property
    def hyper(self) -> bool:
        return self.NH > 0

    @property
    def G4(self) -> int:
        return NUM_GATES * self.N


def shape_of(t: LayerTensors, eps: float, hyper_eps: float) -> LayerShape:
    T, B, G4 = t.x_proj.shape
    NH = 0 if t.h_hat0 is None else t.h_hat0.shape[1]
    NZ = 0 if t.w_d is None else t.w_d.shape[1]
    return LayerShape(T, B, G4 // NUM_GATES, NH, NZ, t.gate_w is not None, t.hyper_gate_w is not None,
                      t.mask is not None, t.hyper_mask is not None, t.keep is not None,
                      t.x_proj.dtype, t.x_proj.device, eps, hyper_eps)


# -- buffers ---------------------------------------------------------------------------------------


class CellSaved(NamedTuple):
    """One cell's per-step buffers that its backward reads, each (T, ...); LN fields None without LN."""

    act: Tensor  # (T, B, 4, n) activations σ(i), σ(f), tanh(g), σ(o)
    tc: Tensor  # (T, B, n) tanh(LN(c_t)) or tanh(c_t)
    xhat: Optional[Tensor]  # (T, B, 4, n) normalised gates
    rstd: Optional[Tensor]  # (T, B, 4)
    c_mean: Optional[Tensor]  # (T, B)
    c_rstd: Optional[Tensor]  # (T, B)


class Trace(NamedTuple):
    """The forward buffers of one call: states (T + 1, B, ·) with the initial state at index 0, the
    per-step GEMM results, both cells' saved buffers, and (with padding) the un-selected new states."""

    H: Tensor
    C: Tensor
    HH: Optional[Tensor]
    HC: Optional[Tensor]
    G: List[Tensor]  # per step (B, 4N [+ 4NH]): [W_h h_{t-1} | Ŵ_x[:, N_x:] h_{t-1}] (views of one buffer, or
    #                  the CPU GEMM's own results: see `StepGemm`)
    Z: Optional[Tensor]  # (T, B, 12 NZ)
    main: CellSaved
    hyper: Optional[CellSaved]
    new_h: Optional[Tensor]  # (T, B, N) h_t, c_t, ĥ_t, ĉ_t before the padding select (padded batches only)
    new_c: Optional[Tensor]
    new_h_hat: Optional[Tensor]
    new_c_hat: Optional[Tensor]
    out: Tensor  # (T, B, N) the layer's outputs (H[1:] without padding)


class Scratch(NamedTuple):
    """Per-call scratch of the loops and the weights derived from the inputs (recomputed every call)."""

    w_cat: Tensor  # (4N [+ 4NH], N) [W_h; Ŵ_x[:, N_x:]], the per-step GEMM's weight: contiguous rows where
    #               `StepGemm` packs it for oneDNN, else the transposed view of a contiguous buffer (MKL, cuBLAS)
    hpre: Optional[Tensor]  # (B, 4, NH) hyper pre-activations of one step
    D: Optional[Tensor]  # (12, B, N) d_h, d_x, β of one step (N_z > KERNEL_MAX_NZ)
    keep_bool: Optional[Tensor]  # (T, B, 1)


Alloc = Callable[..., Tensor]  # alloc(*shape, dtype=None) -> uninitialised tensor


def _cell_saved(alloc: Alloc, T: int, B: int, n: int, ln: bool, stat) -> CellSaved:
    return CellSaved(alloc(T, B, NUM_GATES, n), alloc(T, B, n),
                     alloc(T, B, NUM_GATES, n) if ln else None, alloc(T, B, NUM_GATES, dtype=stat) if ln else None,
                     alloc(T, B, dtype=stat) if ln else None, alloc(T, B, dtype=stat) if ln else None)


def stat_dtype(dtype: torch.dtype) -> torch.dtype:
    """LN statistics and gradient accumulators stay float32 when the storage is 16-bit."""
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


def new_trace(s: LayerShape, alloc: Alloc) -> Trace:
    T, B, N, NH, stat = s.T, s.B, s.N, s.NH, stat_dtype(s.dtype)
    pad = s.padded
    hyper = _cell_saved(alloc, T, B, NH, s.hyper_layer_norm, stat) if s.hyper else None
    H = alloc(T + 1, B, N)
    return Trace(
        H, alloc(T + 1, B, N), alloc(T + 1, B, NH) if s.hyper else None, alloc(T + 1, B, NH) if s.hyper else None,
        [None] * T if _packs(s)
        else list(alloc(T, B, s.G4 + NUM_GATES * NH).unbind(0)),
        alloc(T, B, 3 * NUM_GATES * s.NZ) if s.hyper else None,
        _cell_saved(alloc, T, B, N, s.layer_norm, stat), hyper,
        alloc(T, B, N) if pad else None, alloc(T, B, N) if pad else None,
        alloc(T, B, NH) if pad and s.hyper else None, alloc(T, B, NH) if pad and s.hyper else None,
        alloc(T, B, N) if pad else H[1:])


def _packs(s: LayerShape) -> bool:
    return gemm_packs(s.device, s.dtype, s.N * (s.G4 + NUM_GATES * s.NH), s.T)


def new_scratch(s: LayerShape, alloc: Alloc) -> Scratch:
    NH, rows = s.NH, s.G4 + NUM_GATES * s.NH
    w_cat = alloc(rows, s.N) if _packs(s) else alloc(s.N, rows).t()
    return Scratch(w_cat, alloc(s.B, NUM_GATES, NH) if s.hyper else None,
                   alloc(3 * NUM_GATES, s.B, s.N) if s.hyper and s.NZ > KERNEL_MAX_NZ else None,
                   alloc(s.T, s.B, 1, dtype=torch.bool) if s.padded else None)


def _per_step(nt, fields):
    """A copy of the named tuple whose (T, ...) `fields` are lists of per-step views: one `unbind` per
    buffer and call instead of one indexing op per use (each costs microseconds of host time)."""
    return nt._replace(**{f: None if getattr(nt, f) is None else list(getattr(nt, f).unbind(0)) for f in fields})


def step_views(inp: LayerTensors, tr: Trace, sc: Scratch, gb: Optional["GradBuffers"] = None):
    """(inputs, trace, scratch[, gradient buffers]) with every per-step field indexable by step."""
    cells = [None if c is None else _per_step(c, CellSaved._fields) for c in (tr.main, tr.hyper)]
    tr = _per_step(tr._replace(main=cells[0], hyper=cells[1]),
                   ("H", "C", "HH", "HC", "Z", "new_h", "new_c", "new_h_hat", "new_c_hat", "out"))
    views = (_per_step(inp, ("x_proj", "hyper_x_proj", "mask", "hyper_mask", "keep")), tr,
             _per_step(sc, ("keep_bool",)))
    return views if gb is None else (*views, _per_step(gb, ("DG", "DXP", "DZ", "keep_off")))


def gates(t: Tensor) -> Tensor:
    """(..., B, 4·n) -> (..., B, 4, n) view: a step's gate rows as the kernels take them."""
    return t.view(*t.shape[:-1], NUM_GATES, -1)


def _ln_args(gate_w, gate_b, cell_w, cell_b) -> list:
    return [gate_w, gate_b, cell_w, cell_b]


def _saved_args(saved: CellSaved, t: int) -> list:
    """act, xhat, rstd of step t (the kernels' forward outputs besides c, c stats, tanh and h)."""
    ln = saved.xhat is not None
    return [saved.act[t], saved.xhat[t] if ln else None, saved.rstd[t] if ln else None]


def _stat_args(saved: CellSaved, t: int) -> list:
    ln = saved.xhat is not None
    return [saved.c_mean[t] if ln else None, saved.c_rstd[t] if ln else None]


# -- forward -----------------------------------------------------------------------------------------


def prepare(inp: LayerTensors, tr: Trace, sc: Scratch) -> None:
    """Initial states and derived weights into the call's buffers (inside a captured graph on CUDA)."""
    tr.H[0].copy_(inp.h0)
    tr.C[0].copy_(inp.c0)
    if tr.HH is not None:
        tr.HH[0].copy_(inp.h_hat0)
        tr.HC[0].copy_(inp.c_hat0)
    _gather_w_cat(inp, sc.w_cat)
    if sc.keep_bool is not None:
        torch.gt(inp.keep, 0.5, out=sc.keep_bool)


def _gather_w_cat(inp: LayerTensors, w_cat: Tensor) -> None:
    """[W_h; Ŵ_x[:, N_x:]] into `w_cat` (oneDNN packs contiguous rows ~3x faster than a transposed view;
    MKL multiplies a contiguous transposed operand faster)."""
    G4 = inp.w_hh.shape[0]
    w_cat[:G4].copy_(inp.w_hh)
    if inp.w_hx is not None:
        w_cat[G4:].copy_(inp.w_hx)


def forward_loop(k: Kernels, inp: LayerTensors, tr: Trace, sc: Scratch, s: LayerShape) -> None:
    """Steps 1-4 of the module docstring for t = 0 .. T-1, into `tr`."""
    gemm = StepGemm(sc.w_cat, s.B, s.T)
    d_gemm = BlockGemm(inp.w_d, s.B, s.T) if sc.D is not None else None  # d = z W_d by GEMMs (Eq. 12)
    G = tr.G
    inp, tr, sc = step_views(inp, tr, sc)
    for t in range(s.T):
        G[t] = gemm(tr.H[t], out=G[t], copy=False)  # step 1: [W_h h_{t-1} | Ŵ_x[:, N_x:] h_{t-1}]
        h_new, c_new = (tr.new_h[t], tr.new_c[t]) if s.padded else (tr.H[t + 1], tr.C[t + 1])
        if s.hyper:
            scale = _hyper_forward(k, inp, tr, sc, s, t, d_gemm)
            p1, p2 = gates(tr.G[t][:, : s.G4]), gates(inp.x_proj[t])
        else:
            scale, p1, p2 = [None] * 4, gates(tr.G[t]), gates(inp.x_proj[t])
        k.cell_forward(p1, p2, *scale, tr.C[t], None if inp.mask is None else inp.mask[t],
                       *_ln_args(inp.gate_w, inp.gate_b, inp.cell_w, inp.cell_b), s.eps,
                       *_saved_args(tr.main, t), c_new, *_stat_args(tr.main, t), tr.main.tc[t], h_new)  # Eq. 12-13
        if s.padded:
            _select_padded(inp, tr, sc, t)


def _hyper_forward(k: Kernels, inp: LayerTensors, tr: Trace, sc: Scratch, s: LayerShape, t: int,
                   d_gemm: Optional[BlockGemm]) -> list:
    """Steps 2-3: the hyper cell (Eq. 10) and z (Eq. 11); returns the main cell's (d, z, W_d, b_0) args."""
    hh_new, hc_new = (tr.new_h_hat[t], tr.new_c_hat[t]) if s.padded else (tr.HH[t + 1], tr.HC[t + 1])
    hpre = sc.hpre.view(s.B, -1)
    torch.addmm(inp.hyper_x_proj[t], tr.HH[t], inp.w_hh_hat.t(), out=hpre)  # Eq. 10, x̂ = [x_t; h_{t-1}] (R9)
    k.cell_forward(sc.hpre, gates(tr.G[t][:, s.G4:]), None, None, None, None, tr.HC[t],
                   None if inp.hyper_mask is None else inp.hyper_mask[t],
                   *_ln_args(inp.hyper_gate_w, inp.hyper_gate_b, inp.hyper_cell_w, inp.hyper_cell_b), s.hyper_eps,
                   *_saved_args(tr.hyper, t), hc_new, *_stat_args(tr.hyper, t), tr.hyper.tc[t], hh_new)
    torch.addmm(inp.b_z, hh_new, inp.w_z.t(), out=tr.Z[t])  # Eq. 11 from the current ĥ_t (R1)
    z = tr.Z[t].view(s.B, 3 * NUM_GATES, s.NZ)
    if sc.D is None:  # the kernel computes d = z W_d (Eq. 12)
        return [None, z, inp.w_d, inp.d_bias]
    d_gemm(z.transpose(0, 1), out=sc.D)  # d_h, d_x, β (12, B, N), Eq. 12
    return [sc.D.transpose(0, 1), None, None, inp.d_bias]


def _select_padded(inp: LayerTensors, tr: Trace, sc: Scratch, t: int) -> None:
    """After a sequence's end its state stays frozen and its output is zero."""
    k = sc.keep_bool[t]
    for state, new in ((tr.H, tr.new_h), (tr.C, tr.new_c), (tr.HH, tr.new_h_hat), (tr.HC, tr.new_c_hat)):
        if state is not None:
            torch.where(k, new[t], state[t], out=state[t + 1])
    torch.mul(tr.new_h[t], inp.keep[t], out=tr.out[t])


# -- backward ----------------------------------------------------------------------------------------


class Sums(NamedTuple):
    """One cell's LN gain/shift gradient accumulators with a leading slot axis P (`Kernels.sum_slots`)."""

    gate_dw: Tensor  # (P, 4, n)
    gate_db: Tensor
    cell_dw: Tensor  # (P, n)
    cell_db: Tensor


class GradBuffers(NamedTuple):
    """The backward's buffers: per-step gradients (T, ...), the running state gradients (B, ·), scratch,
    and the accumulators the kernels add into."""

    DG: Tensor  # (T, B, 4N [+ 4NH]) gradient of G; the baseline's dpre (= gradient of x_proj too)
    DXP: Optional[Tensor]  # (T, B, 4N) gradient of x_proj (hyper layers)
    DZ: Optional[Tensor]  # (T, B, 12 NZ)
    E: Optional[Tensor]  # (3, 4, B, N) one step's gradients of d_h, d_x and β (= dpre), gate-major
    dz: Optional[Tensor]  # (12, B, NZ) one step's dz (N_z > KERNEL_MAX_NZ)
    D: Optional[Tensor]  # (12, B, N) one step's d recomputed (N_z > KERNEL_MAX_NZ); the backward's own buffer, so
    #                      a retained graph's saved tensors stay untouched (a second backward reads them again)
    dh: Tensor  # (B, N) gradient of h_t, then of h_{t-1}
    dc: Tensor
    dhh: Optional[Tensor]  # (B, NH)
    dhc: Optional[Tensor]
    dh_new: Tensor  # (B, N) dh_t + d out_t
    dhh_new: Optional[Tensor]  # (B, NH) + the gradient through z (Eq. 11)
    keep_off: Optional[Tensor]  # (T, B, 1) 1 - keep (padded batches)
    carried: Optional[List[Tensor]]  # padded rows' parts of dh, dc, dĥ, dĉ that skip the step
    gated: Optional[List[Tensor]]  # the parts of dc, dĥ, dĉ that enter the step
    main_sums: Optional[Sums]
    hyper_sums: Optional[Sums]
    d_beta: Optional[Tensor]  # (P, 4, N) gradient of d_bias
    dw_d: Optional[Tensor]  # (12, NZ, N)
    w_cat: Tensor  # (4N [+ 4NH], N) [W_h; Ŵ_x[:, N_x:]]


def _sums(alloc: Alloc, P: int, n: int, dtype) -> Sums:
    return Sums(alloc(P, NUM_GATES, n, dtype=dtype), alloc(P, NUM_GATES, n, dtype=dtype),
                alloc(P, n, dtype=dtype), alloc(P, n, dtype=dtype))


def new_grad_buffers(s: LayerShape, alloc: Alloc, slots: Callable[[int, int], int]) -> GradBuffers:
    T, B, N, NH, NZ, stat = s.T, s.B, s.N, s.NH, s.NZ, stat_dtype(s.dtype)
    hy, pad = s.hyper, s.padded
    state_sizes = (N, N, NH, NH) if hy else (N, N)
    return GradBuffers(
        alloc(T, B, s.G4 + NUM_GATES * NH), alloc(T, B, s.G4) if hy else None,
        alloc(T, B, 3 * NUM_GATES * NZ) if hy else None, alloc(3, NUM_GATES, B, N) if hy else None,
        alloc(3 * NUM_GATES, B, NZ) if hy and NZ > KERNEL_MAX_NZ else None,
        alloc(3 * NUM_GATES, B, N) if hy and NZ > KERNEL_MAX_NZ else None,
        alloc(B, N), alloc(B, N), alloc(B, NH) if hy else None, alloc(B, NH) if hy else None,
        alloc(B, N), alloc(B, NH) if hy else None, alloc(T, B, 1) if pad else None,
        [alloc(B, n) for n in state_sizes] if pad else None, [alloc(B, n) for n in state_sizes[1:]] if pad else None,
        _sums(alloc, slots(B, N), N, stat) if s.layer_norm else None,
        _sums(alloc, slots(B, NH), NH, stat) if s.hyper_layer_norm else None,
        alloc(slots(B, N), NUM_GATES, N, dtype=stat) if hy else None, alloc(3 * NUM_GATES, NZ, N) if hy else None,
        alloc(s.G4 + NUM_GATES * NH, N))


def for_backward(inp: LayerTensors, tr: Trace, sc: Scratch) -> tuple:
    """What the backward reads of a forward's inputs and buffers; the rest is not kept (saved bytes)."""
    ln, hln = inp.gate_w is not None, inp.hyper_gate_w is not None
    tr = tr._replace(new_h=None, out=None, new_c=tr.new_c if ln else None, new_c_hat=tr.new_c_hat if hln else None)
    return inp._replace(hyper_x_proj=None), tr, sc._replace(w_cat=None, hpre=None, D=None)


def prepare_backward(inp: LayerTensors, gb: GradBuffers, finals: List[Optional[Tensor]]) -> None:
    """Zero the accumulators, start the state gradients from the final states' gradients and gather
    [W_h; Ŵ_x[:, N_x:]] for dh_{t-1}. autograd hands zeros for an unused output (materialised gradients),
    so a gradient is None only where its state is (no hyper cell)."""
    _gather_w_cat(inp, gb.w_cat)
    for acc in (*(gb.main_sums or ()), *(gb.hyper_sums or ()), gb.d_beta, gb.dw_d):
        if acc is not None:
            acc.zero_()
    for buf, grad in zip((gb.dh, gb.dc, gb.dhh, gb.dhc), finals):
        if buf is not None:
            buf.copy_(grad)
    if gb.keep_off is not None:
        torch.sub(1.0, inp.keep, out=gb.keep_off)


def backward_loop(k: Kernels, inp: LayerTensors, tr: Trace, sc: Scratch, gb: GradBuffers, s: LayerShape,
                  d_out: Tensor) -> None:
    """The steps of `forward_loop` in reverse, t = T-1 .. 0: the gradients of every step into `gb`."""
    gemm = StepGemm(gb.w_cat.t(), s.B, s.T)  # dh_{t-1} = DG_t [W_h; Ŵ_x[:, N_x:]]
    d_maps = None if gb.D is None else DMaps(BlockGemm(inp.w_d, s.B, s.T), BlockGemm(inp.w_d.transpose(1, 2), s.B, s.T))
    inp, tr, sc, gb = step_views(inp, tr, sc, gb)
    d_out = d_out.unbind(0)
    for t in reversed(range(s.T)):
        torch.add(gb.dh, d_out[t], out=gb.dh_new)
        dc, dhh, dhc = _split_padded(inp, gb, t) if s.padded else (gb.dc, gb.dhh, gb.dhc)
        if s.hyper:
            _main_backward_hyper(k, inp, tr, gb, s, t, dc, d_maps)
            _hyper_backward(k, inp, tr, gb, s, t, dhh, dhc)
        else:
            k.cell_backward(gb.dh_new, dc, *_saved_for_backward(inp, tr, tr.main, s, t, main=True),
                            *[None] * 5, gb.dc, gates(gb.DG[t]), *[None] * 5, *_sum_args(gb.main_sums), None)
        gemm(gb.DG[t], out=gb.dh)
        if s.hyper:
            torch.mm(gb.DG[t][:, s.G4:], inp.w_hh_hat, out=gb.dhh)  # dĥ_{t-1} through Ŵ_h (Eq. 10)
        if s.padded:
            for grad, part in zip((gb.dh, gb.dc, gb.dhh, gb.dhc), gb.carried):
                grad.add_(part)


def _split_padded(inp: LayerTensors, gb: GradBuffers, t: int):
    """Padded rows skip step t: their state gradients are carried past it; the rest enter it."""
    on, off = inp.keep[t], gb.keep_off[t]
    grads = [g for g in (gb.dh, gb.dc, gb.dhh, gb.dhc) if g is not None]
    for grad, part in zip(grads, gb.carried):
        torch.mul(grad, off, out=part)
    gb.dh_new.mul_(on)
    for grad, part in zip(grads[1:], gb.gated):
        torch.mul(grad, on, out=part)
    return tuple(gb.gated) + (None,) * (3 - len(gb.gated))


def _sum_args(sums: Optional[Sums]) -> list:
    return [None] * 4 if sums is None else list(sums)


def _saved_for_backward(inp: LayerTensors, tr: Trace, saved: CellSaved, s: LayerShape, t: int, main: bool) -> list:
    """act, tc, c_{t-1}, c_t (LN), c stats, mask, x̂, rstd, gate gain, LN(c) gain of one cell at step t."""
    ln = saved.xhat is not None
    if main:
        C, new_c, mask, gate_w, cell_w = tr.C, tr.new_c, inp.mask, inp.gate_w, inp.cell_w
    else:
        C, new_c, mask, gate_w, cell_w = tr.HC, tr.new_c_hat, inp.hyper_mask, inp.hyper_gate_w, inp.hyper_cell_w
    c_t = (new_c[t] if s.padded else C[t + 1]) if ln else None
    return [saved.act[t], saved.tc[t], C[t], c_t, *_stat_args(saved, t), None if mask is None else mask[t],
            saved.xhat[t] if ln else None, saved.rstd[t] if ln else None, gate_w, cell_w]


class DMaps(NamedTuple):
    """The backward's GEMMs through W_d where the kernels do not compute d (N_z > KERNEL_MAX_NZ)."""

    d: BlockGemm  # d = z W_d, recomputed (Eq. 12)
    dz: BlockGemm  # dz = e W_dᵀ


def _main_backward_hyper(k: Kernels, inp: LayerTensors, tr: Trace, gb: GradBuffers, s: LayerShape, t: int,
                         dc: Tensor, d_maps: Optional[DMaps]) -> None:
    """Eq. 13 and Eq. 12 backward of the main cell: dG_hh, dx_proj, dz and dW_d, dβ."""
    B, NZ = s.B, s.NZ
    z = tr.Z[t].view(B, 3 * NUM_GATES, NZ)
    if gb.D is None:
        d, zk, w_d, dz = None, z, inp.w_d, gb.DZ[t].view(B, 3 * NUM_GATES, NZ)
    else:  # d recomputed by the BlockGemm; dz by the other below
        d, zk, w_d, dz = d_maps.d(z.transpose(0, 1), out=gb.D).transpose(0, 1), None, None, None
    E = gb.E.transpose(1, 2)  # (3, B, 4, N) views of the gate-major buffer
    k.cell_backward(gb.dh_new, dc, *_saved_for_backward(inp, tr, tr.main, s, t, main=True),
                    gates(tr.G[t][:, : s.G4]), gates(inp.x_proj[t]), d, zk, w_d, gb.dc, E[2],
                    gates(gb.DG[t][:, : s.G4]), gates(gb.DXP[t]), E[0], E[1], dz, *_sum_args(gb.main_sums), gb.d_beta)
    e = gb.E.view(3 * NUM_GATES, B, s.N)
    gb.dw_d.baddbmm_(z.transpose(0, 1).transpose(1, 2), e)  # dW_d += zᵀ e (Eq. 12)
    if gb.D is not None:
        d_maps.dz(e, out=gb.dz)
        gb.DZ[t].view(B, 3 * NUM_GATES, NZ).copy_(gb.dz.transpose(0, 1))


def _hyper_backward(k: Kernels, inp: LayerTensors, tr: Trace, gb: GradBuffers, s: LayerShape, t: int,
                    dhh: Tensor, dhc: Tensor) -> None:
    """ĥ_t feeds z (Eq. 11) and the next step; then the hyper cell's Eq. 10 backward into DG_hx."""
    torch.addmm(dhh, gb.DZ[t], inp.w_z, out=gb.dhh_new)
    k.cell_backward(gb.dhh_new, dhc, *_saved_for_backward(inp, tr, tr.hyper, s, t, main=False),
                    *[None] * 5, gb.dhc, gates(gb.DG[t][:, s.G4:]), *[None] * 5, *_sum_args(gb.hyper_sums), None)


class LayerGrads(NamedTuple):
    """Gradients of the loops' differentiable inputs (the `LayerTensors` fields of the same names)."""

    x_proj: Tensor
    hyper_x_proj: Optional[Tensor]
    h0: Tensor
    c0: Tensor
    h_hat0: Optional[Tensor]
    c_hat0: Optional[Tensor]
    w_hh: Tensor
    w_hx: Optional[Tensor]
    w_hh_hat: Optional[Tensor]
    w_z: Optional[Tensor]
    b_z: Optional[Tensor]
    w_d: Optional[Tensor]
    d_bias: Optional[Tensor]
    main_ln: List[Optional[Tensor]]  # gate_w, gate_b, cell_w, cell_b
    hyper_ln: List[Optional[Tensor]]

    def for_inputs(self) -> tuple:
        """In `LayerTensors` order (None for the masks and `keep`)."""
        return (*self[:13], *self.main_ln, *self.hyper_ln, None, None, None)


def weight_grads(tr: Trace, gb: GradBuffers, s: LayerShape) -> LayerGrads:
    """After the loop: the weight gradients as one GEMM each over all T·B rows, and the accumulators summed."""
    TB, G4, NH = s.T * s.B, s.G4, s.NH
    DG = gb.DG.view(TB, -1)
    d_w_cat = wide_mm(DG.t(), tr.H[: s.T].reshape(TB, s.N))
    ln = [None] * 4 if gb.main_sums is None else [a.sum(0) for a in gb.main_sums]
    hln = [None] * 4 if gb.hyper_sums is None else [a.sum(0) for a in gb.hyper_sums]
    if not s.hyper:
        return LayerGrads(gb.DG, None, gb.dh, gb.dc, None, None, d_w_cat, *[None] * 6, ln, hln)
    h_hat_new = (tr.new_h_hat if s.padded else tr.HH[1:]).reshape(TB, NH)
    DZ = gb.DZ.view(TB, -1)
    return LayerGrads(gb.DXP, gb.DG[..., G4:], gb.dh, gb.dc, gb.dhh, gb.dhc, d_w_cat[:G4], d_w_cat[G4:],
                      wide_mm(DG[:, G4:].t(), tr.HH[: s.T].reshape(TB, NH)), wide_mm(DZ.t(), h_hat_new), DZ.sum(0),
                      gb.dw_d, gb.d_beta.sum(0), ln, hln)
