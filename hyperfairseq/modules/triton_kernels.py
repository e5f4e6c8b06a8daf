"""Triton kernels of one HyperLSTM cell step on CUDA: the elementwise work between the per-step GEMMs.

The same computation as the fused CPU kernels (`csrc/hyperlstm_cell.cpp`, the specification), per batch
row b and gate k in (i, f, g, o) (Ha, Dai & Le, arXiv 1609.09106, Eq. 12-13; paper-spec R2, R6, R8):

    pre_k = b_0,k + β_k + d_h,k ⊙ p1_k + d_x,k ⊙ p2_k    main cell (SCALE_Z: d = z W_d here; SCALE_D: d given)
    pre_k = p1_k (+ p2_k)                                   hyper cell / LSTM baseline (SCALE_NONE)
    y_k   = LN(pre_k) · gain_k + shift_k                    per-gate LN (R8), shift incl. the forget bias (R2)
    c_t   = σ(y_f) ⊙ c_{t-1} + σ(y_i) ⊙ tanh(y_g) ⊙ m      m: recurrent-dropout mask (R6)
    h_t   = σ(y_o) ⊙ tanh(LN(c_t))                         LN(c) on the output path only (R8)

and the exact gradient of the same expressions (`cell_backward_kernel`).

Layout of the work: one program owns BLOCK_B whole batch rows (BLOCK_H ≥ n lanes, masked), so the
layer-norm statistics and the dz reductions over units never leave the program: no grid barrier, no
atomics. Gates are handled one at a time: only one gate's (BLOCK_B, BLOCK_H) tile and the running c_t
are live, which keeps n = 2048 free of register spills; the activations, x̂ and the statistics go to
their saved buffers as each gate finishes. Weight-side sums (LN gains/shifts, β) are added into the
program's own slot of a (P, ...) accumulator (P = number of programs): deterministic, summed over P
by the caller once after the time loop.

Storage may be float32, bfloat16 or float16 (math in float32) or float64 (math in float64): `ACC` is
the math type; every load is converted to it and every store converts to the pointer's element type.

Only `triton` and `triton.language` are imported, so the AOT compile gate
(`benchmarks/triton_aot_gate.py`) can compile these kernels in a venv that holds nothing but triton.
The host side (strides, checks, launches) is `triton_cell.py`.
"""

from typing import NamedTuple

import triton
import triton.language as tl

SCALE_NONE, SCALE_Z, SCALE_D = 0, 1, 2  # how the main cell's d_h, d_x, β arrive (Eq. 12); NONE: hyper cell
Z_CHUNK = 2  # JC: columns of z / rows of W_d per step of the N_z loop (Eq. 12); 4 spills at n = 2048
# the same as values a kernel may read (Triton accepts only constexpr globals); _G: gates per cell
_NONE, _D, _G = tl.constexpr(SCALE_NONE), tl.constexpr(SCALE_D), tl.constexpr(4)


class Tile(NamedTuple):
    """Batch rows per program and warps per program of one kernel launch."""

    block_b: int
    num_warps: int


class TileRow(NamedTuple):
    """Tiles for rows of up to `block_h` units (BLOCK_H = next power of two >= n)."""

    block_h: int
    forward: Tile
    backward: Tile


# Rows per program and warps: ~8 values per thread and tile (BLOCK_B * BLOCK_H / (32 * warps)) with at most
# 8 warps, so that ptxas may use up to 255 registers per thread (16 warps cap it at 128).
# Checked by `benchmarks/triton_aot_gate.py` (sm_90, triton 3.6.0 and 3.8.0: no spills, shared memory
# within the H200's 232,448 B; registers per kernel in docs/runs/triton_aot_gate.json); speed untested.
TILES = (
    TileRow(64, Tile(4, 1), Tile(4, 1)),
    TileRow(128, Tile(2, 2), Tile(2, 2)),
    TileRow(256, Tile(2, 4), Tile(2, 4)),
    TileRow(512, Tile(2, 4), Tile(2, 4)),
    TileRow(1024, Tile(2, 8), Tile(2, 8)),
    TileRow(2048, Tile(1, 8), Tile(1, 8)),
)
# Other tiles the microbenchmark (benchmarks/bench_triton_cell.py) times against the table's; the gate
# compiles them for its cases.
TILE_ALTERNATIVES = {
    128: (Tile(1, 1), Tile(4, 4)),
    256: (Tile(1, 2), Tile(4, 4)),
    1024: (Tile(1, 8), Tile(1, 4)),
    2048: (Tile(1, 16),),
}


def max_registers(num_warps: int) -> int:
    """The launch's `maxnreg`: all of the SM's 64K registers to one program (the grids are about one wave,
    so occupancy does not matter). Without it ptxas limited itself to 96 and spilled (bf16, LN, n 512)."""
    return min(255, 65536 // (32 * num_warps))


def block_h_of(n: int) -> int:
    """BLOCK_H of rows of n units: the next power of two (the kernels mask the lanes past n)."""
    return 1 << (max(int(n), 1) - 1).bit_length()


def tile_row(n: int) -> TileRow:
    width = block_h_of(n)
    for row in TILES:
        if width <= row.block_h:
            return row
    raise ValueError(f"triton cell: rows of {n} units exceed the tile table (at most {TILES[-1].block_h} units)")


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _tanh(x):
    # 1 - 2 / (1 + e^{2x}): one exp, saturates to ±1 without inf/inf (the C++ kernel's formula)
    return 1.0 - 2.0 / (1.0 + tl.exp(2.0 * x))


@triton.jit
def _normalise(x, m2, n, EPS: tl.constexpr):
    """Row-wise x̂ = (x - mean) / sqrt(var + eps) over the n valid lanes (two passes, as the C++ kernel);
    padded lanes never enter the statistics and give x̂ = 0. Returns (x̂, mean, rstd)."""
    x = tl.where(m2, x, 0.0)
    mean = tl.sum(x, axis=1) / n
    diff = tl.where(m2, x - mean[:, None], 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(diff * diff, axis=1) / n + EPS)
    return diff * rstd[:, None], mean, rstd


@triton.jit
def _add_slot(slot_ptrs, part, mh):
    """Accumulate one program's per-unit partial sum into its own slot (the slot belongs to no other)."""
    old = tl.load(slot_ptrs, mask=mh, other=0.0)
    tl.store(slot_ptrs, old + part.to(old.dtype), mask=mh)


@triton.jit
def _scales_forward(K: tl.constexpr, d, d_sk, zr, z_sk, wd_ptr, wd_s0, wd_s1, n_z, rh, mb, mh, m2,
                    SCALE: tl.constexpr, ACC: tl.constexpr, JC: tl.constexpr, BLOCK_B: tl.constexpr,
                    BLOCK_H: tl.constexpr):
    """d_h, d_x, β of gate K as (BLOCK_B, BLOCK_H) tiles: loaded (SCALE_D) or z W_d (SCALE_Z), Eq. 12.
    Rows K, 4+K, 8+K of z / W_d hold z_h -> d_h, z_x -> d_x, z_b -> β; N_z is walked in chunks of JC."""
    if SCALE == _D:
        d_h = tl.load(d + K * d_sk, mask=m2, other=0.0).to(ACC)
        d_x = tl.load(d + (_G + K) * d_sk, mask=m2, other=0.0).to(ACC)
        beta = tl.load(d + (2 * _G + K) * d_sk, mask=m2, other=0.0).to(ACC)
    else:
        d_h = tl.zeros((BLOCK_B, BLOCK_H), dtype=ACC)
        d_x = tl.zeros((BLOCK_B, BLOCK_H), dtype=ACC)
        beta = tl.zeros((BLOCK_B, BLOCK_H), dtype=ACC)
        for j0 in range(0, n_z, JC):  # (BLOCK_B, JC) z and (JC, BLOCK_H) W_d tiles, columns past N_z read 0
            jj = j0 + tl.arange(0, JC)
            zc, mz = zr[:, None] + jj[None, :], mb[:, None] & (jj < n_z)[None, :]
            wc, mw = wd_ptr + jj[:, None] * wd_s1 + rh[None, :], (jj < n_z)[:, None] & mh[None, :]
            z = tl.load(zc + K * z_sk, mask=mz, other=0.0).to(ACC)
            w = tl.load(wc + K * wd_s0, mask=mw, other=0.0).to(ACC)
            d_h += tl.sum(z[:, :, None] * w[None, :, :], axis=1)
            z = tl.load(zc + (_G + K) * z_sk, mask=mz, other=0.0).to(ACC)
            w = tl.load(wc + (_G + K) * wd_s0, mask=mw, other=0.0).to(ACC)
            d_x += tl.sum(z[:, :, None] * w[None, :, :], axis=1)
            z = tl.load(zc + (2 * _G + K) * z_sk, mask=mz, other=0.0).to(ACC)
            w = tl.load(wc + (2 * _G + K) * wd_s0, mask=mw, other=0.0).to(ACC)
            beta += tl.sum(z[:, :, None] * w[None, :, :], axis=1)
    return d_h, d_x, beta


@triton.jit
def _pre_activation(K: tl.constexpr, p1, p1_sk, p2, p2_sk, d, d_sk, zr, z_sk, wd_ptr, wd_s0, wd_s1, n_z,
                    db_ptr, db_s0, rh, mb, mh, m2, SCALE: tl.constexpr, HAS_P2: tl.constexpr,
                    ACC: tl.constexpr, JC: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr):
    """pre_k: Eq. 12 for the main cell, p1 (+ p2) for the hyper cell (its biases are already in p1)."""
    x1 = tl.load(p1 + K * p1_sk, mask=m2, other=0.0).to(ACC)
    if SCALE == _NONE:
        pre = x1
        if HAS_P2:
            pre = x1 + tl.load(p2 + K * p2_sk, mask=m2, other=0.0).to(ACC)
    else:
        x2 = tl.load(p2 + K * p2_sk, mask=m2, other=0.0).to(ACC)
        d_h, d_x, beta = _scales_forward(K, d, d_sk, zr, z_sk, wd_ptr, wd_s0, wd_s1, n_z, rh, mb, mh, m2,
                                         SCALE, ACC, JC, BLOCK_B, BLOCK_H)
        b_0 = tl.load(db_ptr + K * db_s0 + rh, mask=mh, other=0.0).to(ACC)
        pre = b_0[None, :] + beta + d_h * x1 + d_x * x2  # Eq. 12
    return pre


@triton.jit
def _gate_forward(K: tl.constexpr, p1, p1_sk, p2, p2_sk, d, d_sk, zr, z_sk, wd_ptr, wd_s0, wd_s1, n_z,
                  db_ptr, db_s0, gw_ptr, gw_s0, gb_ptr, gb_s0, act, act_sk, xh, xh_sk, rs, rs_s1, n,
                  rh, mb, mh, m2, EPS: tl.constexpr, SCALE: tl.constexpr, HAS_P2: tl.constexpr,
                  LN: tl.constexpr, ACC: tl.constexpr, JC: tl.constexpr, BLOCK_B: tl.constexpr,
                  BLOCK_H: tl.constexpr):
    """Gate K: pre-activation, per-gate LN (saves x̂ and rstd), activation (saved); returns the activation."""
    y = _pre_activation(K, p1, p1_sk, p2, p2_sk, d, d_sk, zr, z_sk, wd_ptr, wd_s0, wd_s1, n_z, db_ptr, db_s0,
                        rh, mb, mh, m2, SCALE, HAS_P2, ACC, JC, BLOCK_B, BLOCK_H)
    if LN:
        xhat, _, rstd = _normalise(y, m2, n, EPS)
        tl.store(xh + K * xh_sk, xhat, mask=m2)
        tl.store(rs + K * rs_s1, rstd, mask=mb)
        gain = tl.load(gw_ptr + K * gw_s0 + rh, mask=mh, other=0.0).to(ACC)
        shift = tl.load(gb_ptr + K * gb_s0 + rh, mask=mh, other=0.0).to(ACC)  # incl. the forget bias (R2)
        y = xhat * gain[None, :] + shift[None, :]  # R8
    if K == 2:
        a = _tanh(y)
    else:
        a = _sigmoid(y)
    tl.store(act + K * act_sk, a, mask=m2)
    return a


@triton.jit
def _cell_output(c, a_o, rb, rh, mb, mh, m2, n, cw_ptr, cw_sb, cb_ptr, cb_sb, c_ptr, c_sb, cm_ptr, cm_s0,
                 cr_ptr, cr_s0, tc_ptr, tc_sb, h_ptr, h_sb, EPS: tl.constexpr, LN: tl.constexpr,
                 ACC: tl.constexpr):
    """Stores c_t, then h_t = o ⊙ tanh(LN(c_t)) (R8: LN(c) on the output path only) and that tanh."""
    tl.store(c_ptr + rb[:, None] * c_sb + rh[None, :], c, mask=m2)
    u = c
    if LN:
        chat, mean, r = _normalise(c, m2, n, EPS)
        tl.store(cm_ptr + rb * cm_s0, mean, mask=mb)
        tl.store(cr_ptr + rb * cr_s0, r, mask=mb)
        gain = tl.load(cw_ptr + rb[:, None] * cw_sb + rh[None, :], mask=m2, other=0.0).to(ACC)
        shift = tl.load(cb_ptr + rb[:, None] * cb_sb + rh[None, :], mask=m2, other=0.0).to(ACC)
        u = chat * gain + shift
    t = _tanh(u)
    tl.store(tc_ptr + rb[:, None] * tc_sb + rh[None, :], t, mask=m2)
    tl.store(h_ptr + rb[:, None] * h_sb + rh[None, :], a_o * t, mask=m2)


@triton.jit
def cell_forward_kernel(
        p1_ptr, p1_sb, p1_sk, p2_ptr, p2_sb, p2_sk, d_ptr, d_sb, d_sk, z_ptr, z_sb, z_sk,
        wd_ptr, wd_s0, wd_s1, n_z, db_ptr, db_s0, cp_ptr, cp_sb, mask_ptr, mask_sb,
        gw_ptr, gw_s0, gb_ptr, gb_s0, cw_ptr, cw_sb, cb_ptr, cb_sb,
        act_ptr, act_sb, act_sk, xh_ptr, xh_sb, xh_sk, rs_ptr, rs_s0, rs_s1,
        c_ptr, c_sb, cm_ptr, cm_s0, cr_ptr, cr_s0, tc_ptr, tc_sb, h_ptr, h_sb, B, n,
        EPS: tl.constexpr, SCALE: tl.constexpr, HAS_P2: tl.constexpr,
        HAS_MASK: tl.constexpr, LN: tl.constexpr, ACC: tl.constexpr, JC: tl.constexpr, BLOCK_B: tl.constexpr,
        BLOCK_H: tl.constexpr):
    """One forward step (Eq. 12-13) for BLOCK_B batch rows; gates in the order f, i, g, o so that only
    c_t and at most one more gate's activation are live besides the gate being computed."""
    rb = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    rh = tl.arange(0, BLOCK_H)
    mb, mh = rb < B, rh < n
    m2 = mb[:, None] & mh[None, :]
    row = rb[:, None]
    p1, p2, d = p1_ptr + row * p1_sb + rh[None, :], p2_ptr + row * p2_sb + rh[None, :], d_ptr + row * d_sb + rh[None, :]
    act, xh = act_ptr + row * act_sb + rh[None, :], xh_ptr + row * xh_sb + rh[None, :]
    zr, rs = z_ptr + rb * z_sb, rs_ptr + rb * rs_s0
    c = _gate_forward(1, p1, p1_sk, p2, p2_sk, d, d_sk, zr, z_sk, wd_ptr, wd_s0, wd_s1, n_z, db_ptr, db_s0, gw_ptr,
                      gw_s0, gb_ptr, gb_s0, act, act_sk, xh, xh_sk, rs, rs_s1, n, rh, mb, mh, m2, EPS, SCALE,
                      HAS_P2, LN, ACC, JC, BLOCK_B, BLOCK_H)
    c = c * tl.load(cp_ptr + row * cp_sb + rh[None, :], mask=m2, other=0.0).to(ACC)  # σ(y_f) ⊙ c_{t-1}
    a_i = _gate_forward(0, p1, p1_sk, p2, p2_sk, d, d_sk, zr, z_sk, wd_ptr, wd_s0, wd_s1, n_z, db_ptr, db_s0, gw_ptr,
                        gw_s0, gb_ptr, gb_s0, act, act_sk, xh, xh_sk, rs, rs_s1, n, rh, mb, mh, m2, EPS, SCALE,
                        HAS_P2, LN, ACC, JC, BLOCK_B, BLOCK_H)
    g = _gate_forward(2, p1, p1_sk, p2, p2_sk, d, d_sk, zr, z_sk, wd_ptr, wd_s0, wd_s1, n_z, db_ptr, db_s0, gw_ptr,
                      gw_s0, gb_ptr, gb_s0, act, act_sk, xh, xh_sk, rs, rs_s1, n, rh, mb, mh, m2, EPS, SCALE,
                      HAS_P2, LN, ACC, JC, BLOCK_B, BLOCK_H)
    if HAS_MASK:
        g = g * tl.load(mask_ptr + row * mask_sb + rh[None, :], mask=m2, other=0.0).to(ACC)  # recurrent dropout (R6)
    c = c + a_i * g  # Eq. 13
    a_o = _gate_forward(3, p1, p1_sk, p2, p2_sk, d, d_sk, zr, z_sk, wd_ptr, wd_s0, wd_s1, n_z, db_ptr, db_s0, gw_ptr,
                        gw_s0, gb_ptr, gb_s0, act, act_sk, xh, xh_sk, rs, rs_s1, n, rh, mb, mh, m2, EPS, SCALE,
                        HAS_P2, LN, ACC, JC, BLOCK_B, BLOCK_H)
    _cell_output(c, a_o, rb, rh, mb, mh, m2, n, cw_ptr, cw_sb, cb_ptr, cb_sb, c_ptr, c_sb, cm_ptr, cm_s0,
                 cr_ptr, cr_s0, tc_ptr, tc_sb, h_ptr, h_sb, EPS, LN, ACC)


# -- backward ---------------------------------------------------------------------------------------


@triton.jit
def _cell_input_grad(dh, a_o, t, rb, rh, mb, mh, m2, n, cn_ptr, cn_sb, cm_ptr, cm_s0, cr_ptr, cr_s0,
                     cw_ptr, cw_sb, pc_dw, pc_db, LN: tl.constexpr, ACC: tl.constexpr):
    """Gradient at c_t from h_t = o ⊙ tanh(u), u = LN(c_t) or c_t (R8); adds LN(c)'s gain/shift sums."""
    du = tl.where(m2, dh * a_o * (1.0 - t * t), 0.0)
    if LN:
        mean = tl.load(cm_ptr + rb * cm_s0, mask=mb, other=0.0).to(ACC)
        r = tl.load(cr_ptr + rb * cr_s0, mask=mb, other=0.0).to(ACC)
        c = tl.load(cn_ptr + rb[:, None] * cn_sb + rh[None, :], mask=m2, other=0.0).to(ACC)
        chat = tl.where(m2, (c - mean[:, None]) * r[:, None], 0.0)
        _add_slot(pc_dw + rh, tl.sum(du * chat, axis=0), mh)
        _add_slot(pc_db + rh, tl.sum(du, axis=0), mh)
        g = du * tl.load(cw_ptr + rb[:, None] * cw_sb + rh[None, :], mask=m2, other=0.0).to(ACC)
        s_g, s_gc = tl.sum(g, axis=1), tl.sum(g * chat, axis=1)
        du = r[:, None] * (g - s_g[:, None] / n - chat * (s_gc[:, None] / n))
    return du


@triton.jit
def _input_gate_grads(dct, act, act_sk, mask, m2, HAS_MASK: tl.constexpr, ACC: tl.constexpr):
    """Gradients at y_i and y_g from the one at c_t: c_t = σ(y_f) c_{t-1} + σ(y_i) tanh(y_g) m (Eq. 13, R6)."""
    a_i = tl.load(act, mask=m2, other=0.0).to(ACC)
    a_g = tl.load(act + 2 * act_sk, mask=m2, other=0.0).to(ACC)
    if HAS_MASK:
        dct = dct * tl.load(mask, mask=m2, other=0.0).to(ACC)  # recurrent dropout (R6)
    return dct * a_g * a_i * (1.0 - a_i), dct * a_i * (1.0 - a_g * a_g)


@triton.jit
def _gate_ln_backward(K: tl.constexpr, dy, xh, xh_sk, rs, rs_s1, gw_ptr, gw_s0, pg_dw, pg_db, pg_sk, n,
                      rh, mb, mh, m2, ACC: tl.constexpr):
    """Per-gate LN backward: dpre = rstd (g - mean g - x̂ mean(g x̂)), g = dy ⊙ gain; adds the gain/shift sums."""
    xhat = tl.load(xh + K * xh_sk, mask=m2, other=0.0).to(ACC)
    _add_slot(pg_dw + K * pg_sk + rh, tl.sum(dy * xhat, axis=0), mh)
    _add_slot(pg_db + K * pg_sk + rh, tl.sum(dy, axis=0), mh)
    g = dy * tl.load(gw_ptr + K * gw_s0 + rh, mask=mh, other=0.0).to(ACC)[None, :]
    s_g, s_gx = tl.sum(g, axis=1), tl.sum(g * xhat, axis=1)
    rstd = tl.load(rs + K * rs_s1, mask=mb, other=0.0).to(ACC)
    return rstd[:, None] * (g - s_g[:, None] / n - xhat * (s_gx[:, None] / n))


@triton.jit
def _scales_backward(K: tl.constexpr, dp, e1, e2, d, d_sk, zr, z_sk, dzr, dz_sk, wd_ptr, wd_s0, wd_s1, n_z,
                     rh, mb, mh, m2, SCALE: tl.constexpr, ACC: tl.constexpr, JC: tl.constexpr,
                     BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr):
    """d_h, d_x of gate K (loaded, or z W_d recomputed) and, with z, dz = (e1, e2, dpre) · W_dᵀ (Eq. 12)."""
    if SCALE == _D:
        d_h = tl.load(d + K * d_sk, mask=m2, other=0.0).to(ACC)
        d_x = tl.load(d + (_G + K) * d_sk, mask=m2, other=0.0).to(ACC)
    else:
        d_h = tl.zeros((BLOCK_B, BLOCK_H), dtype=ACC)
        d_x = tl.zeros((BLOCK_B, BLOCK_H), dtype=ACC)
        for j0 in range(0, n_z, JC):  # as in `_scales_forward`; dz: (BLOCK_B, JC) sums over the units
            jj = j0 + tl.arange(0, JC)
            zc, mz = zr[:, None] + jj[None, :], mb[:, None] & (jj < n_z)[None, :]
            wc, mw = wd_ptr + jj[:, None] * wd_s1 + rh[None, :], (jj < n_z)[:, None] & mh[None, :]
            dzc = dzr[:, None] + jj[None, :]
            w = tl.load(wc + K * wd_s0, mask=mw, other=0.0).to(ACC)[None, :, :]
            d_h += tl.sum(tl.load(zc + K * z_sk, mask=mz, other=0.0).to(ACC)[:, :, None] * w, axis=1)
            tl.store(dzc + K * dz_sk, tl.sum(e1[:, None, :] * w, axis=2), mask=mz)
            w = tl.load(wc + (_G + K) * wd_s0, mask=mw, other=0.0).to(ACC)[None, :, :]
            d_x += tl.sum(tl.load(zc + (_G + K) * z_sk, mask=mz, other=0.0).to(ACC)[:, :, None] * w, axis=1)
            tl.store(dzc + (_G + K) * dz_sk, tl.sum(e2[:, None, :] * w, axis=2), mask=mz)
            w = tl.load(wc + (2 * _G + K) * wd_s0, mask=mw, other=0.0).to(ACC)[None, :, :]
            tl.store(dzc + (2 * _G + K) * dz_sk, tl.sum(dp[:, None, :] * w, axis=2), mask=mz)
    return d_h, d_x


@triton.jit
def _gate_backward(K: tl.constexpr, dy, xh, xh_sk, rs, rs_s1, gw_ptr, gw_s0, pg_dw, pg_db, pg_sk, dpre, dpre_sk,
                   p1, p1_sk, p2, p2_sk, d, d_sk, zr, z_sk, dzr, dz_sk, wd_ptr, wd_s0, wd_s1, n_z,
                   dp1, dp1_sk, dp2, dp2_sk, e1p, e1_sk, e2p, e2_sk, pb, pb_sk, n, rh, mb, mh, m2,
                   SCALE: tl.constexpr, LN: tl.constexpr, ACC: tl.constexpr, JC: tl.constexpr,
                   BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr):
    """Gate K from dy (gradient at y_k): LN backward, then Eq. 12 backward (dp1, dp2, e1, e2, dz, dβ sums)."""
    dp = tl.where(m2, dy, 0.0)  # padded rows and lanes never enter the sums
    if LN:
        dp = _gate_ln_backward(K, dp, xh, xh_sk, rs, rs_s1, gw_ptr, gw_s0, pg_dw, pg_db, pg_sk, n, rh, mb, mh,
                               m2, ACC)
    dp = tl.where(m2, dp, 0.0)
    tl.store(dpre + K * dpre_sk, dp, mask=m2)
    if SCALE != _NONE:
        e1 = dp * tl.load(p1 + K * p1_sk, mask=m2, other=0.0).to(ACC)  # gradient of d_h
        e2 = dp * tl.load(p2 + K * p2_sk, mask=m2, other=0.0).to(ACC)  # gradient of d_x
        tl.store(e1p + K * e1_sk, e1, mask=m2)
        tl.store(e2p + K * e2_sk, e2, mask=m2)
        _add_slot(pb + K * pb_sk + rh, tl.sum(dp, axis=0), mh)  # dβ (= db_0) summed over the rows
        d_h, d_x = _scales_backward(K, dp, e1, e2, d, d_sk, zr, z_sk, dzr, dz_sk, wd_ptr, wd_s0, wd_s1, n_z, rh, mb,
                                    mh, m2, SCALE, ACC, JC, BLOCK_B, BLOCK_H)
        tl.store(dp1 + K * dp1_sk, dp * d_h, mask=m2)
        tl.store(dp2 + K * dp2_sk, dp * d_x, mask=m2)


@triton.jit
def cell_backward_kernel(
        dh_ptr, dh_sb, dc_ptr, dc_sb, act_ptr, act_sb, act_sk, tc_ptr, tc_sb, cp_ptr, cp_sb,
        cn_ptr, cn_sb, cm_ptr, cm_s0, cr_ptr, cr_s0, mask_ptr, mask_sb, xh_ptr, xh_sb, xh_sk,
        rs_ptr, rs_s0, rs_s1, gw_ptr, gw_s0, cw_ptr, cw_sb, p1_ptr, p1_sb, p1_sk, p2_ptr, p2_sb, p2_sk,
        d_ptr, d_sb, d_sk, z_ptr, z_sb, z_sk, wd_ptr, wd_s0, wd_s1, n_z, dcp_ptr, dcp_sb, dpre_ptr, dpre_sb, dpre_sk,
        dp1_ptr, dp1_sb, dp1_sk, dp2_ptr, dp2_sb, dp2_sk, e1_ptr, e1_sb, e1_sk, e2_ptr, e2_sb, e2_sk,
        dz_ptr, dz_sb, dz_sk, gdw_ptr, gdb_ptr, g_sp, g_sk, cdw_ptr, cdb_ptr, c_sp, pb_ptr, pb_sp, pb_sk, B, n,
        SCALE: tl.constexpr, HAS_MASK: tl.constexpr, LN: tl.constexpr, ACC: tl.constexpr, JC: tl.constexpr,
        BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr):
    """One backward step for BLOCK_B rows: Eq. 13 backward, then the gates o, i, g, f one at a time, each
    through `_gate_backward`; program p adds its weight-side sums into slot p of the (P, ...) accumulators."""
    pid = tl.program_id(0)
    rb = pid * BLOCK_B + tl.arange(0, BLOCK_B)
    rh = tl.arange(0, BLOCK_H)
    mb, mh = rb < B, rh < n
    m2 = mb[:, None] & mh[None, :]
    row, col = rb[:, None], rh[None, :]
    act, xh, rs = act_ptr + row * act_sb + col, xh_ptr + row * xh_sb + col, rs_ptr + rb * rs_s0
    p1, p2, d = p1_ptr + row * p1_sb + col, p2_ptr + row * p2_sb + col, d_ptr + row * d_sb + col
    zr, dzr = z_ptr + rb * z_sb, dz_ptr + rb * dz_sb
    dp1, dp2 = dp1_ptr + row * dp1_sb + col, dp2_ptr + row * dp2_sb + col
    e1, e2, dpre = e1_ptr + row * e1_sb + col, e2_ptr + row * e2_sb + col, dpre_ptr + row * dpre_sb + col
    pg_dw, pg_db, pb = gdw_ptr + pid * g_sp, gdb_ptr + pid * g_sp, pb_ptr + pid * pb_sp
    dh = tl.load(dh_ptr + row * dh_sb + col, mask=m2, other=0.0).to(ACC)
    a_o = tl.load(act + 3 * act_sk, mask=m2, other=0.0).to(ACC)
    t = tl.load(tc_ptr + row * tc_sb + col, mask=m2, other=0.0).to(ACC)
    dy = dh * t * a_o * (1.0 - a_o)  # output gate (Eq. 13 backward)
    du = _cell_input_grad(dh, a_o, t, rb, rh, mb, mh, m2, n, cn_ptr, cn_sb, cm_ptr, cm_s0, cr_ptr, cr_s0, cw_ptr,
                          cw_sb, cdw_ptr + pid * c_sp, cdb_ptr + pid * c_sp, LN, ACC)
    _gate_backward(3, dy, xh, xh_sk, rs, rs_s1, gw_ptr, gw_s0, pg_dw, pg_db, g_sk, dpre, dpre_sk, p1, p1_sk, p2,
                   p2_sk, d, d_sk, zr, z_sk, dzr, dz_sk, wd_ptr, wd_s0, wd_s1, n_z, dp1, dp1_sk, dp2, dp2_sk, e1, e1_sk,
                   e2, e2_sk, pb, pb_sk, n, rh, mb, mh, m2, SCALE, LN, ACC, JC, BLOCK_B, BLOCK_H)
    dct = tl.load(dc_ptr + row * dc_sb + col, mask=m2, other=0.0).to(ACC) + du  # the gradient at c_t
    dy, dy_g = _input_gate_grads(dct, act, act_sk, mask_ptr + row * mask_sb + col, m2, HAS_MASK, ACC)
    _gate_backward(0, dy, xh, xh_sk, rs, rs_s1, gw_ptr, gw_s0, pg_dw, pg_db, g_sk, dpre, dpre_sk, p1, p1_sk, p2,
                   p2_sk, d, d_sk, zr, z_sk, dzr, dz_sk, wd_ptr, wd_s0, wd_s1, n_z, dp1, dp1_sk, dp2, dp2_sk, e1, e1_sk,
                   e2, e2_sk, pb, pb_sk, n, rh, mb, mh, m2, SCALE, LN, ACC, JC, BLOCK_B, BLOCK_H)
    _gate_backward(2, dy_g, xh, xh_sk, rs, rs_s1, gw_ptr, gw_s0, pg_dw, pg_db, g_sk, dpre, dpre_sk, p1, p1_sk, p2,
                   p2_sk, d, d_sk, zr, z_sk, dzr, dz_sk, wd_ptr, wd_s0, wd_s1, n_z, dp1, dp1_sk, dp2, dp2_sk, e1, e1_sk,
                   e2, e2_sk, pb, pb_sk, n, rh, mb, mh, m2, SCALE, LN, ACC, JC, BLOCK_B, BLOCK_H)
    a_f = tl.load(act + act_sk, mask=m2, other=0.0).to(ACC)
    dy = dct * tl.load(cp_ptr + row * cp_sb + col, mask=m2, other=0.0).to(ACC) * a_f * (1.0 - a_f)
    tl.debug_barrier()  # dc_prev may alias dc: every thread has read its dc before any writes dc_prev
    tl.store(dcp_ptr + row * dcp_sb + col, dct * a_f, mask=m2)
    _gate_backward(1, dy, xh, xh_sk, rs, rs_s1, gw_ptr, gw_s0, pg_dw, pg_db, g_sk, dpre, dpre_sk, p1, p1_sk, p2,
                   p2_sk, d, d_sk, zr, z_sk, dzr, dz_sk, wd_ptr, wd_s0, wd_s1, n_z, dp1, dp1_sk, dp2, dp2_sk, e1, e1_sk,
                   e2, e2_sk, pb, pb_sk, n, rh, mb, mh, m2, SCALE, LN, ACC, JC, BLOCK_B, BLOCK_H)
