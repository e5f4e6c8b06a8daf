"""The HyperLSTM cell step on CUDA: `cell_forward` / `cell_backward` launching the Triton kernels.

Drop-in twins of the fused CPU ops (`torch.ops.hyperfairseq.cell_forward` / `cell_backward`, schema at
the end of `csrc/hyperlstm_cell.cpp`): the same positional signatures, the same semantics (Ha, Dai & Le,
Eq. 12-13; paper-spec R2, R6, R8), out-style (every output buffer belongs to the caller), so one time
loop can call either. The kernels are `triton_kernels.py`; this file holds strides, tiles and checks.

Differences from the C++ ops, all deliberate:
* the weight-side accumulators `gate_dw`, `gate_db` (P, 4, n), `cell_dw`, `cell_db` (P, n) and `d_beta`
  (P, 4, n) carry a leading slot axis, P = `sum_slots(B, n)`: program p adds its sums over its own batch
  rows into slot p (deterministic, no atomics); the caller sums over P once after the time loop. They
  are required whenever their terms exist (LN: the four LN sums; a main cell: `d_beta`);
* layer norm is on or off for the gates and LN(c) together (`gate_w` and `cell_w` both or neither);
* d (B, 12, n) and z (B, 12, N_z) exclude each other; z up to N_z = `MAX_NZ`, larger N_z passes d;
* storage may also be bfloat16 or float16 (math in float32); float64 runs with float64 math. The
  statistics (`rstd`, `c_mean`, `c_rstd`) and the accumulators may be float32 under 16-bit storage.

`dc_prev` may alias `dc` (each program reads its dc rows before it writes dc_prev; the element sets
coincide); nothing else may alias. On CPU tensors the kernels run only under TRITON_INTERPRET=1 (set
before this module is imported), which is how the tests run them.
"""

from contextlib import contextmanager
from typing import NamedTuple, Optional

import torch
import triton
from torch import Tensor

from . import triton_kernels as kernels

MAX_UNITS = kernels.TILES[-1].block_h  # the widest row the tile table (and the AOT gate) covers: 2048
MAX_NZ = 16  # up to this N_z the kernels compute d = z W_d themselves (Eq. 12); beyond, the caller passes d
STORAGE_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)
Tile = kernels.Tile
_overrides: dict = {}


def tile(n: int, backward: bool) -> Tile:
    """The tile of the forward or backward kernel for rows of n units (an active `tile_override` first)."""
    key = "backward" if backward else "forward"
    if key in _overrides:
        return _overrides[key]
    row = kernels.tile_row(n)
    return row.backward if backward else row.forward


@contextmanager
def tile_override(forward: Optional[Tile] = None, backward: Optional[Tile] = None):
    """Use these tiles for every launch (and `sum_slots`) inside the block: tests and the benchmark."""
    saved = dict(_overrides)
    _overrides.update({k: v for k, v in (("forward", forward), ("backward", backward)) if v is not None})
    try:
        yield
    finally:
        _overrides.clear()
        _overrides.update(saved)


def sum_slots(B: int, n: int) -> int:
    """P, the number of backward programs for B rows of n units: the accumulators' leading axis."""
    return triton.cdiv(B, tile(n, backward=True).block_b) if B > 0 else 1


class _Rows(NamedTuple):
    """A rows tensor ((B, K, n), (B, n) or (n), unit stride along units) as pointer + (batch, gate) strides,
    with the C++ `Rows` convention: a 2-d (K, n) parameter is indexed by its first stride."""

    t: Tensor
    sb: int
    sk: int


def _rows(name: str, t: Optional[Tensor], stand_in: Tensor) -> _Rows:
    if t is None:
        return _Rows(stand_in, 0, 0)  # never dereferenced: its constexpr flag compiles the access out
    if t.dim() > 0 and t.stride(-1) != 1 and t.size(-1) != 1:
        raise ValueError(f"triton_cell: {name} must be contiguous along units (stride 1), got strides {t.stride()}")
    return _Rows(t, t.stride(0) if t.dim() > 1 else 0, t.stride(1) if t.dim() > 2 else 0)


def _scalars(t: Optional[Tensor], stand_in: Tensor) -> _Rows:
    """One value per (b, k): (B, K) or (B) with any strides (a (B, 1) view reads column 0)."""
    if t is None:
        return _Rows(stand_in, 0, 0)
    return _Rows(t, t.stride(0), t.stride(1) if t.dim() > 1 else 0)


class _Mode(NamedTuple):
    """What the launch computes: the kernels' constexpr flags."""

    scale: int  # kernels.SCALE_NONE / SCALE_Z / SCALE_D
    n_z: int
    ln: bool
    acc: object  # tl.float32 or tl.float64: the math type


def _mode(op: str, c_prev: Tensor, d, z, w_d, gate_w, cell_w, with_scale=(), with_ln=(), with_z=()) -> _Mode:
    """Checks the optional arguments as the C++ op does (plus the differences in the module docstring);
    with_*: (name, tensor) pairs that must be given when d or z / layer norm / z is."""
    if c_prev.dim() != 2:
        raise ValueError(f"{op}: c_prev must be (B, n), got shape {tuple(c_prev.shape)}")
    if c_prev.dtype not in STORAGE_DTYPES:
        raise ValueError(f"{op}: storage must be one of {STORAGE_DTYPES}, got {c_prev.dtype}")
    if c_prev.device.type != "cuda" and not _interpreted():
        raise ValueError(f"{op}: {c_prev.device} tensors need CUDA, or TRITON_INTERPRET=1 set before import")
    if c_prev.size(1) > MAX_UNITS:
        raise ValueError(f"{op}: rows of {c_prev.size(1)} units; the Triton cell takes at most {MAX_UNITS}")
    if d is not None and z is not None:
        raise ValueError(f"{op}: give d or z (with w_d), not both")
    if z is not None and w_d is None:
        raise ValueError(f"{op}: z needs w_d")
    n_z = z.size(2) if z is not None else 0
    if n_z > MAX_NZ:
        raise ValueError(f"{op}: N_z = {n_z} > {MAX_NZ} takes d, not z")
    if (gate_w is None) != (cell_w is None):
        raise ValueError(f"{op}: gate_w and cell_w go together (layer norm on the gates and LN(c), or neither)")
    scale = kernels.SCALE_D if d is not None else kernels.SCALE_Z if z is not None else kernels.SCALE_NONE
    ln = gate_w is not None
    for active, what, pairs in ((scale, "with d or z", with_scale), (ln, "with layer norm", with_ln),
                                (n_z, "with z", with_z)):
        missing = [name for name, value in pairs if value is None] if active else []
        if missing:
            raise ValueError(f"{op}: {', '.join(missing)} required {what}")
    acc = triton.language.float64 if c_prev.dtype == torch.float64 else triton.language.float32
    return _Mode(scale, n_z, ln, acc)


def _interpreted() -> bool:
    return type(kernels.cell_forward_kernel).__name__ == "InterpretedFunction"


def _flags(mode: _Mode, has_mask: bool, n: int, t: Tile) -> dict:
    """The constexprs both kernels take, and the launch's warps."""
    return dict(SCALE=mode.scale, HAS_MASK=has_mask, LN=mode.ln, ACC=mode.acc, JC=kernels.Z_CHUNK,
                BLOCK_B=t.block_b, BLOCK_H=kernels.block_h_of(n), num_warps=t.num_warps,
                maxnreg=kernels.max_registers(t.num_warps))


def cell_forward(p1, p2, d, z, w_d, d_bias, c_prev, mask, gate_w, gate_b, cell_w, cell_b, eps, act, xhat,
                 rstd, c_out, c_mean, c_rstd, tc, h_out) -> None:
    """One cell step forward (Eq. 12-13), writing act, xhat, rstd, c_out, c_mean, c_rstd, tc, h_out.

    p1, p2, act, xhat: (B, 4, n); d: (B, 12, n) or z: (B, 12, N_z) with w_d (12, N_z, n) and d_bias
    (4, n) for the main cell; c_prev, mask, c_out, tc, h_out: (B, n); gate_w, gate_b: (4, n); cell_w,
    cell_b: (n); rstd: (B, 4); c_mean, c_rstd: (B) or (B, 1). Absent ones are None, as in the C++ op.
    """
    mode = _mode("cell_forward", c_prev, d, z, w_d, gate_w, cell_w,
                 with_scale=(("p2", p2), ("d_bias", d_bias)),
                 with_ln=(("gate_b", gate_b), ("cell_b", cell_b), ("xhat", xhat), ("rstd", rstd),
                          ("c_mean", c_mean), ("c_rstd", c_rstd)))
    B, n = c_prev.shape
    if B == 0:
        return
    t = tile(n, backward=False)
    args = (_kernel_args((("p1", p1, "rk"), ("p2", p2, "rk"), ("d", d, "rk"), ("z", z, "rk"), ("w_d", w_d, "rk")),
                         c_prev) + [mode.n_z] +
            _kernel_args((("d_bias", d_bias, "r"), ("c_prev", c_prev, "r"), ("mask", mask, "r"),
                          ("gate_w", gate_w, "r"), ("gate_b", gate_b, "r"), ("cell_w", cell_w, "r"),
                          ("cell_b", cell_b, "r"), ("act", act, "rk"), ("xhat", xhat, "rk"), ("rstd", rstd, "sk"),
                          ("c_out", c_out, "r"), ("c_mean", c_mean, "s"), ("c_rstd", c_rstd, "s"), ("tc", tc, "r"),
                          ("h_out", h_out, "r")), c_prev))
    kernels.cell_forward_kernel[(triton.cdiv(B, t.block_b),)](
        *args, B, n, EPS=float(eps) if mode.ln else 0.0, HAS_P2=p2 is not None,
        **_flags(mode, mask is not None, n, t))


def _kernel_args(items, stand_in: Tensor) -> list:
    """Pointer and stride arguments in a kernel's order, from (name, tensor, kind): kind "r" rows (pointer,
    batch stride), "rk" rows with their gate stride, "s" scalars (pointer, stride), "sk" with a second."""
    out = []
    for name, t, kind in items:
        v = _scalars(t, stand_in) if kind[0] == "s" else _rows(name, t, stand_in)
        out += [v.t, v.sb, v.sk] if kind.endswith("k") else [v.t, v.sb]
    return out


class _Slots(NamedTuple):
    """An accumulator (P, 4, n) or (P, n) as pointer + slot stride + gate stride."""

    t: Tensor
    sp: int
    sk: int


def _slots(name: str, t: Optional[Tensor], P: int, stand_in: Tensor) -> _Slots:
    if t is None:
        return _Slots(stand_in, 0, 0)
    if t.dim() < 2 or t.size(0) != P or t.stride(-1) != 1:
        raise ValueError(f"cell_backward: {name} must be (P, ..., n) with P = sum_slots(B, n) = {P} and unit "
                         f"stride along units, got shape {tuple(t.shape)}, strides {t.stride()}")
    return _Slots(t, t.stride(0), t.stride(1) if t.dim() > 2 else 0)


def cell_backward(dh, dc, act, tc, c_prev, c_new, c_mean, c_rstd, mask, xhat, rstd, gate_w, cell_w, p1, p2, d,
                  z, w_d, dc_prev, dpre, dp1, dp2, e1, e2, dz, gate_dw, gate_db, cell_dw, cell_db, d_beta) -> None:
    """One cell step backward: dc_prev, dpre (B, 4, n) and, for the main cell, dp1 = dpre ⊙ d_h,
    dp2 = dpre ⊙ d_x, e1 = dpre ⊙ p1, e2 = dpre ⊙ p2 (B, 4, n), dz (B, 12, N_z) when z is given; adds
    the LN gain/shift and dβ sums into the caller's (P, ...) slots (module docstring)."""
    mode = _mode("cell_backward", c_prev, d, z, w_d, gate_w, cell_w,
                 with_scale=(("p1", p1), ("p2", p2), ("dp1", dp1), ("dp2", dp2), ("e1", e1), ("e2", e2),
                             ("d_beta", d_beta)),
                 with_ln=(("c_new", c_new), ("c_mean", c_mean), ("c_rstd", c_rstd), ("xhat", xhat), ("rstd", rstd),
                          ("gate_dw", gate_dw), ("gate_db", gate_db), ("cell_dw", cell_dw), ("cell_db", cell_db)),
                 with_z=(("dz", dz),))
    B, n = c_prev.shape
    if B == 0:
        return
    t, P = tile(n, backward=True), sum_slots(B, n)
    rows = (_kernel_args((("dh", dh, "r"), ("dc", dc, "r"), ("act", act, "rk"), ("tc", tc, "r"),
                          ("c_prev", c_prev, "r"), ("c_new", c_new, "r"), ("c_mean", c_mean, "s"),
                          ("c_rstd", c_rstd, "s"), ("mask", mask, "r"), ("xhat", xhat, "rk"), ("rstd", rstd, "sk"),
                          ("gate_w", gate_w, "r"), ("cell_w", cell_w, "r"), ("p1", p1, "rk"), ("p2", p2, "rk"),
                          ("d", d, "rk"), ("z", z, "rk"), ("w_d", w_d, "rk")), c_prev) + [mode.n_z] +
            _kernel_args((("dc_prev", dc_prev, "r"), ("dpre", dpre, "rk"), ("dp1", dp1, "rk"), ("dp2", dp2, "rk"),
                          ("e1", e1, "rk"), ("e2", e2, "rk"), ("dz", dz, "rk")), c_prev))
    slots = lambda name, x, on: _slots(name, x if on else None, P, c_prev)  # noqa: E731
    GDW, GDB = slots("gate_dw", gate_dw, mode.ln), slots("gate_db", gate_db, mode.ln)
    CDW, CDB = slots("cell_dw", cell_dw, mode.ln), slots("cell_db", cell_db, mode.ln)
    PB = slots("d_beta", d_beta, mode.scale)
    if (GDW.sp, GDW.sk, CDW.sp) != (GDB.sp, GDB.sk, CDB.sp):
        raise ValueError("cell_backward: gate_dw and gate_db (and cell_dw and cell_db) must have equal strides")
    kernels.cell_backward_kernel[(P,)](
        *rows, GDW.t, GDB.t, GDW.sp, GDW.sk, CDW.t, CDB.t, CDW.sp, PB.t, PB.sp, PB.sk, B, n,
        **_flags(mode, mask is not None, n, t))
