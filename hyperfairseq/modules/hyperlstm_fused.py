"""Fast path of one HyperLSTM layer: the time loop of `hyperlstm.run_layer` with a hand-written backward.

Same mathematics as the reference (`HyperLSTMCell.step`, Eq. 10-13 of Ha, Dai & Le, with the decisions
R1-R9 of paper-spec §6), rearranged for speed; `tests/unit/test_hyperlstm_fused.py` holds the two equal.

What changes against the reference:
* h_{t-1} is multiplied by W_h (Eq. 12) and by the h-part of the hyper cell's input weight (x̂ = [x_t; h_{t-1}],
  Eq. 10, R9) into one per-step buffer G, whose gradient is the one buffer the weight gradients need;
* the 12 maps z -> d_h, d_x, β (Eq. 12) are one batched matmul (`baddbmm`) whose bias is b_0 (+ the
  forget bias, R2, when there is no layer norm);
* per-step elementwise work uses fused ATen kernels (`addcmul`, `sigmoid_backward`, `tanh_backward`,
  `native_layer_norm[_backward]`) writing into preallocated buffers;
* the backward through time is hand-written (`_FusedLayer.backward`): per step only what feeds the
  recurrence; the weight gradients of W_h, Ŵ_x, Ŵ_h and W_z are one matmul each over all T·B rows.

Only the layer's recurrence lives here: input projections, recurrent-dropout masks and the bias folds
stay in autograd (`fused_layer`), so the masks are drawn by `HyperLSTMCell.dropout_masks` exactly as in
the reference (same RNG calls, same order).
"""

from typing import List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

NUM_GATES = 4
FAST_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


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
        (len(ln_flat), len(hln_flat), eps, heps),
        x_proj, hyper_x_proj, state.h, state.c, state.h_hat, state.c_hat,
        cast(cell.weight_hh), cast(hcell.weight_ih[:, cell.input_size:]), cast(hcell.weight_hh), cast(hyper.weight_z), cast(bz),
        cast(hyper.weight_d.flatten(0, 1)), cast(d_bias), masks, hyper_masks, keep_f,
        *[cast(t) for t in ln_flat], *[cast(t) for t in hln_flat],
    )
    out, h, c, h_hat, c_hat = outs
    return out, _CellState(h, c, h_hat, c_hat), None


def _forget_vector(n: int, forget_bias: float, like: Tensor) -> Tensor:
    v = like.new_zeros(NUM_GATES, n)
    v[1] = forget_bias  # gate order i, f, g, o (R2)
    return v.flatten()


def _ln_params(cell, forget_bias: float, like: Tensor) -> _LN:
    shift = cell.ln_gates.bias + _forget_vector(cell.hidden_size, forget_bias, like).view(NUM_GATES, -1)
    return _LN(cell.ln_gates.weight.unsqueeze(1), shift.unsqueeze(1), cell.ln_cell.weight, cell.ln_cell.bias)


# -- one cell's update (Eq. 13 with optional LN, R8), forward and backward ------------------------
# Gate-major layout: pre-activations and activations are (4, B, n), so every gate is one contiguous
# (B, n) block.


class _UpdateSaved(NamedTuple):
    act: Tensor  # (4, B, n): σ(i), σ(f), tanh(g) (before dropout), σ(o)
    tc: Tensor  # (B, n): tanh(LN(c_t)) or tanh(c_t)
    xhat: Optional[Tensor]  # (4, B, n) normalised gate pre-activations (LN only)
    rstd: Optional[Tensor]  # (4, B, 1)
    c_new: Optional[Tensor]  # (B, n) un-normalised c_t (LN only: the input of LN(c))
    c_mean: Optional[Tensor]
    c_rstd: Optional[Tensor]


def _update_forward(pre, c_prev, ln: Optional[_LN], eps, mask, h_out, c_out) -> _UpdateSaved:
    """pre (4, B, n) incl. b_0 and, without LN, the forget bias -> writes h_t, c_t (Eq. 12-13)."""
    n = c_prev.shape[1]
    xhat = rstd = c_mean = c_rstd = None
    if ln is not None:
        xhat, _, rstd = torch.native_layer_norm(pre, [n], None, None, eps)
        pre = torch.addcmul(ln.gate_b, xhat, ln.gate_w)  # per-gate LN (R8); forget bias in the shift (R2)
    act = torch.empty_like(pre, memory_format=torch.contiguous_format)
    torch.sigmoid(pre[:2], out=act[:2])
    torch.tanh(pre[2], out=act[2])
    torch.sigmoid(pre[3], out=act[3])
    g = act[2] if mask is None else act[2] * mask  # recurrent dropout on the candidate only (R6)
    torch.mul(act[1], c_prev, out=c_out)
    c_out.addcmul_(act[0], g)  # Eq. 13
    if ln is not None:
        c_norm, c_mean, c_rstd = torch.native_layer_norm(c_out, [n], ln.cell_w, ln.cell_b, eps)
        tc = torch.tanh(c_norm)  # LN(c_t) on the output path only (R8)
    else:
        tc = torch.tanh(c_out)
    torch.mul(act[3], tc, out=h_out)
    return _UpdateSaved(act, tc, xhat, rstd, c_out if ln is not None else None, c_mean, c_rstd)


def _update_backward(dh, dc, s: _UpdateSaved, c_prev, ln: Optional[_LN], mask, ln_grads, dy_out):
    """Gradients of Eq. 13: (dh_t, dc_t) -> gate gradient (4, B, n) written to `dy_out`; returns dc_{t-1}.

    With LN, `dy_out` receives the gradient of the normalised gates (see `_gate_ln_backward`) and
    ln_grads [gate_w, gate_b, cell_w, cell_b] receives the LN(c) gain/shift gradients in place.
    """
    n = dh.shape[1]
    act = s.act
    dcn = torch.ops.aten.tanh_backward(dh * act[3], s.tc)
    if ln is not None:
        dcx, dcw, dcb = torch.ops.aten.native_layer_norm_backward(
            dcn, s.c_new, [n], s.c_mean, s.c_rstd, ln.cell_w, ln.cell_b, [True, True, True]
        )
        ln_grads[2] += dcw
        ln_grads[3] += dcb
        dc = dc + dcx
    else:
        dc = dc + dcn
    dact = torch.empty_like(act)
    g = act[2] if mask is None else act[2] * mask
    torch.mul(dc, g, out=dact[0])
    torch.mul(dc, c_prev, out=dact[1])
    torch.mul(dc, act[0], out=dact[2])
    if mask is not None:
        dact[2] *= mask
    torch.mul(dh, s.tc, out=dact[3])
    torch.ops.aten.sigmoid_backward(dact[:2], act[:2], grad_input=dy_out[:2])
    torch.ops.aten.tanh_backward(dact[2], act[2], grad_input=dy_out[2])
    torch.ops.aten.sigmoid_backward(dact[3], act[3], grad_input=dy_out[3])
    return dc * act[1]


def _gate_ln_backward(dy, s: _UpdateSaved, ln: _LN, zero, one, out):
    """Per-gate LN backward from x̂ and rstd: dx = rstd·(g - mean g - x̂·mean(g x̂)), g = dy·w.

    ATen's kernel is called on x̂ itself with mean 0 and rstd 1, then scaled by the saved rstd.
    """
    dx, _, _ = torch.ops.aten.native_layer_norm_backward(
        dy * ln.gate_w, s.xhat, [dy.shape[-1]], zero, one, None, None, [True, False, False]
    )
    torch.mul(dx, s.rstd, out=out)


# -- the layer ---------------------------------------------------------------------------------------


def _gate_major(t: Tensor) -> Tensor:
    """(B, 4·n) -> (4, B, n) view."""
    return t.view(t.shape[0], NUM_GATES, -1).transpose(0, 1)


class _FusedLayer(torch.autograd.Function):
    """Forward and hand-written backward through time of one HyperLSTM layer (Eq. 10-13)."""

    @staticmethod
    def forward(ctx, meta, xp, hxp, h0, c0, hh0, hc0, w_hh, w_hx, w_hh_hat, w_z, b_z, w_d, d_bias,
                mask, hmask, keep, *ln_params):
        n_ln, n_hln, eps, heps = meta
        ln = _LN(*ln_params[:4]) if n_ln else None
        hln = _LN(*ln_params[n_ln:n_ln + 4]) if n_hln else None
        T, B, G4 = xp.shape
        N, NH = G4 // NUM_GATES, hxp.shape[2] // NUM_GATES
        NZ = w_d.shape[1]
        new = xp.new_empty
        Hs, Cs, HHs, HCs = new(T + 1, B, N), new(T + 1, B, N), new(T + 1, B, NH), new(T + 1, B, NH)
        Hs[0], Cs[0], HHs[0], HCs[0] = h0, c0, hh0, hc0
        G = new(T, B, G4 + NUM_GATES * NH)  # [W_h h_{t-1} | Ŵ_x[:, N_x:] h_{t-1}] per step
        Z = new(T, B, 3 * NUM_GATES * NZ)
        out = new(T, B, N) if keep is not None else None
        saved, hsaved = [], []
        w_hh_t, w_hx_t, w_hh_hat_t, w_z_t = w_hh.t(), w_hx.t(), w_hh_hat.t(), w_z.t()
        w_d_hx, w_d_b = w_d[:2 * NUM_GATES], w_d[2 * NUM_GATES:]
        for t in range(T):
            h, c, hh, hc = Hs[t], Cs[t], HHs[t], HCs[t]
            torch.mm(h, w_hh_t, out=G[t, :, :G4])  # W_h h_{t-1}
            torch.mm(h, w_hx_t, out=G[t, :, G4:])
            hpre = torch.addmm(hxp[t], hh, w_hh_hat_t)
            hpre += G[t, :, G4:]  # Eq. 10 with x̂ = [x_t; h_{t-1}] (R9)
            if keep is None:
                targets = (Hs[t + 1], Cs[t + 1], HHs[t + 1], HCs[t + 1])
            else:  # fresh buffers: the saved c_t of LN cells must outlive the step
                targets = [new(B, N), new(B, N), new(B, NH), new(B, NH)]
            hsaved.append(_update_forward(_gate_major(hpre), hc, hln, heps, None if hmask is None else hmask[t],
                                          targets[2], targets[3]))
            torch.addmm(b_z, targets[2], w_z_t, out=Z[t])  # Eq. 11 from the current ĥ_t (R1)
            zt = Z[t].view(B, 3 * NUM_GATES, NZ).transpose(0, 1)  # (12, B, N_z)
            d_hx = torch.bmm(zt[:2 * NUM_GATES], w_d_hx)  # d_h, d_x (8, B, N), Eq. 12
            pre = torch.baddbmm(d_bias, zt[2 * NUM_GATES:], w_d_b)  # β + b_0 (4, B, N)
            pre.addcmul_(d_hx[:NUM_GATES], _gate_major(G[t, :, :G4]))  # + d_h ⊙ W_h h_{t-1}
            pre.addcmul_(d_hx[NUM_GATES:], _gate_major(xp[t]))  # + d_x ⊙ W_x x_t  (Eq. 12)
            saved.append(_update_forward(pre, c, ln, eps, None if mask is None else mask[t],
                                         targets[0], targets[1]))
            if keep is not None:  # padding: state frozen after a sequence's end, output zero
                k = keep[t].bool()
                for dst, val, old in zip((Hs[t + 1], Cs[t + 1], HHs[t + 1], HCs[t + 1]), targets, (h, c, hh, hc)):
                    torch.where(k, val, old, out=dst)
                torch.mul(targets[0], keep[t], out=out[t])
        if out is None:
            out = Hs[1:]
        ctx.meta = meta
        per_step = [v for s_ in saved + hsaved for v in s_]  # through save_for_backward: hooks see all
        ctx.save_for_backward(xp, w_hh, w_hx, w_hh_hat, w_z, w_d, d_bias, mask, hmask, keep,
                              Hs, Cs, HHs, HCs, G, Z, *ln_params, *per_step)
        return out, Hs[T].clone(), Cs[T].clone(), HHs[T].clone(), HCs[T].clone()

    @staticmethod
    def backward(ctx, d_out, dhT, dcT, dhhT, dhcT):
        (xp, w_hh, w_hx, w_hh_hat, w_z, w_d, d_bias, mask, hmask, keep,
         Hs, Cs, HHs, HCs, G, Z, *rest) = ctx.saved_tensors
        n_ln, n_hln, eps, heps = ctx.meta
        ln_params, per_step = rest[:n_ln + n_hln], rest[n_ln + n_hln:]
        k_ = len(_UpdateSaved._fields)
        steps = [_UpdateSaved(*per_step[i:i + k_]) for i in range(0, len(per_step), k_)]
        saved, hsaved = steps[:len(steps) // 2], steps[len(steps) // 2:]
        ln = _LN(*ln_params[:4]) if n_ln else None
        hln = _LN(*ln_params[n_ln:n_ln + 4]) if n_hln else None
        T, B, G4 = xp.shape
        N, NH = G4 // NUM_GATES, HHs.shape[2]
        NZ = w_d.shape[1]
        zeros = lambda *s: xp.new_zeros(*s)  # noqa: E731
        dh = zeros(B, N) if dhT is None else dhT.clone()
        dc = zeros(B, N) if dcT is None else dcT.clone()
        dhh = zeros(B, NH) if dhhT is None else dhhT.clone()
        dhc = zeros(B, NH) if dhcT is None else dhcT.clone()
        d_out = zeros(T, B, N) if d_out is None else d_out
        DG = xp.new_empty(T, B, G.shape[2])  # grads of G, i.e. [d(W_h h) | dĥ-pre], per step
        DXP = xp.new_empty(T, B, G4)
        DZ = xp.new_empty(T, B, Z.shape[2])
        DYg = xp.new_empty(T, NUM_GATES, B, N) if ln is not None else None
        DYh = xp.new_empty(T, NUM_GATES, B, NH) if hln is not None else None
        E = xp.new_empty(3, NUM_GATES, B, N)  # (d(d_h), d(d_x), dβ = dpre) gate-major, one step
        e = E.view(3 * NUM_GATES, B, N)
        dpre = E[2]
        dw_d = torch.zeros_like(w_d)
        d_beta = zeros(NUM_GATES, 1, N)
        ln_g = [zeros(p.shape) for p in ln_params[:4]] if ln is not None else None
        hln_g = [zeros(p.shape) for p in ln_params[n_ln:n_ln + 4]] if hln is not None else None
        zero, one = zeros(NUM_GATES, B, 1), xp.new_ones(NUM_GATES, B, 1)
        w_d_hx, w_d_t = w_d[:2 * NUM_GATES], w_d.transpose(1, 2)
        for t in reversed(range(T)):
            if keep is None:
                dh_new, dc_new, dhh_new, dhc_new = dh + d_out[t], dc, dhh, dhc
                carry = None
            else:
                k = keep[t]
                dh_new, dc_new, dhh_new, dhc_new = (dh + d_out[t]) * k, dc * k, dhh * k, dhc * k
                nk = 1.0 - k
                carry = (dh * nk, dc * nk, dhh * nk, dhc * nk)
            # main cell: Eq. 13, then Eq. 12
            m = None if mask is None else mask[t]
            dc = _update_backward(dh_new, dc_new, saved[t], Cs[t], ln, m, ln_g, dpre if ln is None else DYg[t])
            if ln is not None:
                _gate_ln_backward(DYg[t], saved[t], ln, zero, one, out=dpre)
            zt = Z[t].view(B, 3 * NUM_GATES, NZ).transpose(0, 1)
            d_hx = torch.bmm(zt[:2 * NUM_GATES], w_d_hx)  # recomputed d_h, d_x
            torch.mul(dpre, d_hx[:NUM_GATES], out=_gate_major(DG[t, :, :G4]))
            torch.mul(dpre, d_hx[NUM_GATES:], out=_gate_major(DXP[t]))
            torch.mul(dpre, _gate_major(G[t, :, :G4]), out=E[0])
            torch.mul(dpre, _gate_major(xp[t]), out=E[1])
            dw_d.baddbmm_(zt.transpose(1, 2), e)
            dz = torch.bmm(e, w_d_t)  # (12, B, N_z)
            DZ[t].view(B, 3 * NUM_GATES, NZ).copy_(dz.transpose(0, 1))
            d_beta += dpre.sum(1, keepdim=True)
            # hyper cell: ĥ_t feeds z (Eq. 11) and the next step
            dhh_new = torch.addmm(dhh_new, DZ[t], w_z)
            hm = None if hmask is None else hmask[t]
            dyh = _gate_major(DG[t, :, G4:]) if hln is None else DYh[t]
            dhc = _update_backward(dhh_new, dhc_new, hsaved[t], HCs[t], hln, hm, hln_g, dyh)
            if hln is not None:
                _gate_ln_backward(dyh, hsaved[t], hln, zero[:, :, :], one, out=_gate_major(DG[t, :, G4:]))
            dh = torch.mm(DG[t, :, :G4], w_hh).addmm_(DG[t, :, G4:], w_hx)
            dhh = torch.mm(DG[t, :, G4:], w_hh_hat)
            if carry is not None:
                dh += carry[0]
                dc = dc + carry[1]
                dhh += carry[2]
                dhc = dhc + carry[3]
        TB = T * B
        h_prev = Hs[:T].reshape(TB, N)
        d_w_hh = DG[..., :G4].reshape(TB, -1).t().mm(h_prev)
        d_w_hx = DG[..., G4:].reshape(TB, -1).t().mm(h_prev)
        d_w_hh_hat = DG[..., G4:].reshape(TB, -1).t().mm(HHs[:T].reshape(TB, NH))
        h_hat_new = torch.stack([s_.act[3] * s_.tc for s_ in hsaved]) if keep is not None else HHs[1:]
        d_w_z = DZ.view(TB, -1).t().mm(h_hat_new.reshape(TB, NH))
        d_b_z = DZ.sum((0, 1))
        ln_grads: List[Optional[Tensor]] = []
        for grads, DY, steps_ in ((ln_g, DYg, saved), (hln_g, DYh, hsaved)):
            if grads is None:
                continue
            xhat = torch.stack([s_.xhat for s_ in steps_])
            grads[0] += (DY * xhat).sum((0, 2), keepdim=True)[0]
            grads[1] += DY.sum((0, 2), keepdim=True)[0]
            ln_grads += grads
        return (None, DXP, DG[..., G4:], dh, dc, dhh, dhc, d_w_hh, d_w_hx, d_w_hh_hat, d_w_z, d_b_z, dw_d,
                d_beta, None, None, None, *ln_grads)
