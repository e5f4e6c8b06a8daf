"""Triton cell kernels (`modules/triton_cell.py`) under TRITON_INTERPRET=1 (set by tests/conftest.py).

Every case runs one cell step forward and backward three ways on identical inputs: through the Triton
ops, through the fused C++ ops (`cpu_kernels.ops()`, the specification) and through an independent
float64 autograd version of the step written here from Eq. 12-13 (per-gate LN, LN(c), R2, R6, R8). In
float64 all three agree to 1e-10. Every buffer the Triton ops see is a view into a larger NaN-filled
buffer, with NaN lanes after every row and NaN margins around it, laid out with the fused layer's strides
(gate-major saved buffers, (B, 4) statistics with a unit batch stride, ...): the NaNs around must be
untouched afterwards, and no output may hold one (the interpreter does not catch out-of-bounds accesses,
so a read past a row or a batch would surface as a NaN, a write as a lost NaN). The interpreter runs a
launch's programs one after another, so every run also records which bytes each program touches: none
that one program stores may be loaded or stored by another (`program_accesses.py`).
"""

import math
from typing import NamedTuple, Optional

import pytest
import torch
from program_accesses import assert_row_local, bounds_checked, record_accesses  # noqa: F401 (a fixture)

from hyperfairseq.modules import cpu_kernels, triton_cell
from hyperfairseq.modules.triton_kernels import Tile

pytestmark = pytest.mark.usefixtures("bounds_checked")  # out-of-bounds accesses refused
EPS = 1e-3  # the layer-norm epsilon of the model (R8)
PAD, MARGIN = 3, 5  # NaN lanes after every row; NaN elements before and after every buffer
NAN = float("nan")


class Case(NamedTuple):
    mode: str  # "hyper": pre = p1 (+ p2); "z": d = z W_d in the kernel; "d": d given (Eq. 12)
    ln: bool
    mask: bool
    B: int = 5
    n: int = 50
    n_z: int = 3
    block_b: Optional[int] = 4  # None: the tile table's choice
    driver_layout: bool = True  # the fused layer's strides; else contiguous rows
    alias_dc: bool = False  # dc_prev is dc (the driver's in-place carry)
    p2: bool = True


# -- buffers -----------------------------------------------------------------------------------------


class Guarded:
    """Views into NaN-filled buffers (rows padded by PAD, MARGIN around), checked untouched afterwards."""

    def __init__(self):
        self.buffers = []

    def new(self, shape, dtype, order=None, fill=NAN):
        """A `shape` view whose dims lie in memory in `order` (the last one innermost, unit stride)."""
        order = tuple(order or range(len(shape)))
        mem = [shape[d] for d in order]
        mem[-1] += PAD
        strides, acc = [0] * len(shape), 1
        for i in reversed(range(len(order))):
            strides[order[i]] = acc
            acc *= mem[i]
        base = torch.full((acc + 2 * MARGIN,), NAN, dtype=dtype)
        view = base.as_strided(shape, strides, MARGIN)
        if not math.isnan(fill):
            view.fill_(fill)
        self.buffers.append((base, view))
        return view

    def copy(self, t: Optional[torch.Tensor], dtype, order=None):
        if t is None:
            return None
        out = self.new(t.shape, dtype, order)
        out.copy_(t)
        return out

    def assert_untouched(self):
        for base, view in self.buffers:
            inside = torch.zeros(base.numel(), dtype=torch.bool)
            inside.as_strided(view.shape, view.stride(), view.storage_offset()).fill_(True)
            assert torch.isnan(base[~inside].float()).all(), "a guard band around a buffer was written"


GATE_MAJOR = (1, 0, 2)  # (B, K, n) stored as (K, B, n): act, xhat, dpre, e1, e2, d in the fused layer


def make_inputs(case: Case, seed: int = 0) -> dict:
    """float64 inputs of one step (the test rounds them to the storage dtype)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, scale=1.0: torch.randn(*s, generator=g, dtype=torch.float64) * scale  # noqa: E731
    B, n, main = case.B, case.n, case.mode != "hyper"
    x = dict(p1=r(B, 4, n), p2=r(B, 4, n) if case.p2 or main else None, c_prev=r(B, n), dh=r(B, n), dc=r(B, n))
    x["mask"] = (torch.rand(B, n, generator=g) > 0.2).double() / 0.8 if case.mask else None  # R6
    if case.ln:
        x.update(gate_w=1 + r(4, n, scale=0.2), gate_b=r(4, n, scale=0.2), cell_w=1 + r(n, scale=0.2),
                 cell_b=r(n, scale=0.2))
    if main:
        z, w_d = r(B, 12, case.n_z, scale=0.7), r(12, case.n_z, n, scale=0.7)
        x.update(d_bias=r(4, n, scale=0.3))
        if case.mode == "z":
            x.update(z=z, w_d=w_d)
        else:
            x["d"] = torch.einsum("brj,rjn->brn", z, w_d)  # the caller's bmm for large N_z
    return x


def _get(x: dict, *names):
    return [x.get(k) for k in names]


def forward_outputs(case: Case, new, dtype, stat_dtype) -> dict:
    B, n, ln, order = case.B, case.n, case.ln, GATE_MAJOR if case.driver_layout else None
    out = dict(act=new((B, 4, n), dtype, order), c=new((B, n), dtype), tc=new((B, n), dtype), h=new((B, n), dtype))
    if ln:
        stat_shape = (B, 1) if case.driver_layout else (B,)
        rstd_order = (1, 0) if case.driver_layout else None  # the fused layer's (4, B, 1) buffer, transposed
        out.update(xhat=new((B, 4, n), dtype, order), rstd=new((B, 4), stat_dtype, rstd_order),
                   c_mean=new(stat_shape, stat_dtype), c_rstd=new(stat_shape, stat_dtype))
    return out


def run_forward(op, x: dict, o: dict) -> None:
    op.cell_forward(*_get(x, "p1", "p2", "d", "z", "w_d", "d_bias", "c_prev", "mask", "gate_w", "gate_b", "cell_w",
                          "cell_b"), EPS, *_get(o, "act", "xhat", "rstd", "c", "c_mean", "c_rstd", "tc", "h"))


def backward_outputs(case: Case, new, dtype, stat_dtype, P: int, dc, prefill: float = 0.0) -> dict:
    B, n, order, main = case.B, case.n, GATE_MAJOR if case.driver_layout else None, case.mode != "hyper"
    out = dict(dc_prev=dc if case.alias_dc else new((B, n), dtype), dpre=new((B, 4, n), dtype, order))
    if main:
        out.update(dp1=new((B, 4, n), dtype), dp2=new((B, 4, n), dtype), e1=new((B, 4, n), dtype, order),
                   e2=new((B, 4, n), dtype, order), d_beta=new((P, 4, n), stat_dtype, fill=prefill))
    if case.mode == "z":
        out["dz"] = new((B, 12, case.n_z), dtype)
    if case.ln:
        out.update({k: new((P, 4, n), stat_dtype, fill=prefill) for k in ("gate_dw", "gate_db")})
        out.update({k: new((P, n), stat_dtype, fill=prefill) for k in ("cell_dw", "cell_db")})
    return out


def run_backward(op, x: dict, f: dict, b: dict, dc) -> None:
    op.cell_backward(x["dh"], dc, f["act"], f["tc"], x["c_prev"], f["c"] if "xhat" in f else None,
                     *_get(f, "c_mean", "c_rstd"), x["mask"], *_get(f, "xhat", "rstd"), *_get(x, "gate_w", "cell_w"),
                     *(_get(x, "p1", "p2") if "dp1" in b else [None, None]), *_get(x, "d", "z", "w_d"),
                     *_get(b, "dc_prev", "dpre", "dp1", "dp2", "e1", "e2", "dz", "gate_dw", "gate_db", "cell_dw",
                           "cell_db", "d_beta"))


class Run(NamedTuple):
    forward: dict
    backward: dict


def run_triton(case: Case, x64: dict, dtype=torch.float64, stat_dtype=None, prefill: float = 0.0,
               per_slot: bool = False) -> Run:
    """The Triton ops on guarded copies of the inputs; asserts the guard bands afterwards. The (P, ...)
    accumulators start at `prefill` and are summed over P unless `per_slot`."""
    stat_dtype = stat_dtype or dtype
    guard = Guarded()
    x = {k: guard.copy(v, dtype, GATE_MAJOR if (k == "d" and case.driver_layout) else None) for k, v in x64.items()}
    tiles = dict(forward=Tile(case.block_b, 1), backward=Tile(case.block_b, 1)) if case.block_b else {}
    with triton_cell.tile_override(**tiles), record_accesses() as launches:
        P = triton_cell.sum_slots(case.B, case.n)
        f = forward_outputs(case, guard.new, dtype, stat_dtype)
        run_forward(triton_cell, x, f)
        dc = x["dc"]
        b = backward_outputs(case, guard.new, dtype, stat_dtype, P, dc, prefill)
        run_backward(triton_cell, x, f, b, dc)
        several = [k for k, bwd in (("cell_forward_kernel", False), ("cell_backward_kernel", True))
                   if math.ceil(case.B / triton_cell.tile(case.n, bwd).block_b) > 1]
    guard.assert_untouched()
    assert_row_local(launches, expect_kernels=several)  # what a race on the GPU would need (program_accesses.py)
    return Run(f, {k: v.sum(0) if k in SUMMED and not per_slot else v for k, v in b.items()})


SUMMED = ("gate_dw", "gate_db", "cell_dw", "cell_db", "d_beta")


def run_cpp(case: Case, x64: dict, dtype=torch.float64) -> Run:
    """The C++ ops (P = 1 accumulators), contiguous buffers."""
    ops = cpu_kernels.ops()
    assert ops is not None, f"the fused CPU kernels did not build: {cpu_kernels._state['error']}"
    x = {k: None if v is None else v.to(dtype) for k, v in x64.items()}
    new = lambda shape, dt, order=None, fill=0.0: torch.full(shape, fill, dtype=dt)  # noqa: E731
    f = forward_outputs(case._replace(driver_layout=False), new, dtype, dtype)
    run_forward(ops, x, f)
    dc = x["dc"].clone()
    b = backward_outputs(case._replace(driver_layout=False), new, dtype, dtype, 1, dc)
    run_backward(ops, x, f, b, dc)
    return Run(f, {k: v.sum(0) if k in SUMMED else v for k, v in b.items()})


# -- the independent float64 step --------------------------------------------------------------------


def _layer_norm(v):
    mean = v.mean(-1, keepdim=True)
    rstd = 1.0 / torch.sqrt(((v - mean) ** 2).mean(-1, keepdim=True) + EPS)
    return (v - mean) * rstd, mean.squeeze(-1), rstd.squeeze(-1)


def reference(case: Case, x64: dict) -> Run:
    """One step in float64 autograd from Eq. 12-13; the op's outputs are its values and gradients."""
    leaf = {k: v.clone().requires_grad_(k not in ("dh", "dc", "mask")) for k, v in x64.items() if v is not None}
    if case.mode == "hyper":
        pre = leaf["p1"] + leaf["p2"] if "p2" in leaf else leaf["p1"] * 1.0
    else:
        scales = torch.einsum("brj,rjn->brn", leaf["z"], leaf["w_d"]) if case.mode == "z" else leaf["d"]
        scales.retain_grad()
        d_h, d_x, beta = scales[:, 0:4], scales[:, 4:8], scales[:, 8:12]
        pre = leaf["d_bias"] + beta + d_h * leaf["p1"] + d_x * leaf["p2"]  # Eq. 12
    pre.retain_grad()
    f = {}
    y = pre
    if case.ln:
        f["xhat"], _, f["rstd"] = _layer_norm(pre)
        y = f["xhat"] * leaf["gate_w"] + leaf["gate_b"]  # per-gate LN (R8)
    act = torch.stack([torch.sigmoid(y[:, 0]), torch.sigmoid(y[:, 1]), torch.tanh(y[:, 2]), torch.sigmoid(y[:, 3])], 1)
    g = act[:, 2] * leaf["mask"] if "mask" in leaf else act[:, 2]  # recurrent dropout (R6)
    c = act[:, 1] * leaf["c_prev"] + act[:, 0] * g  # Eq. 13
    u = c
    if case.ln:
        c_hat, f["c_mean"], f["c_rstd"] = _layer_norm(c)
        u = c_hat * leaf["cell_w"] + leaf["cell_b"]  # LN(c) on the output path only (R8)
    tc = torch.tanh(u)
    h = act[:, 3] * tc
    ((h * leaf["dh"]).sum() + (c * leaf["dc"]).sum()).backward()
    f.update(act=act, c=c, tc=tc, h=h)
    grad = lambda k: leaf[k].grad  # noqa: E731
    b = dict(dc_prev=grad("c_prev"), dpre=pre.grad)
    if case.mode != "hyper":
        b.update(dp1=grad("p1"), dp2=grad("p2"), e1=scales.grad[:, 0:4], e2=scales.grad[:, 4:8], d_beta=grad("d_bias"))
    if case.mode == "z":
        b["dz"] = grad("z")
    if case.ln:
        b.update(gate_dw=grad("gate_w"), gate_db=grad("gate_b"), cell_dw=grad("cell_w"), cell_db=grad("cell_b"))
    return Run({k: v.detach() for k, v in f.items()}, {k: v.detach() for k, v in b.items()})


def assert_close(got: Run, want: Run, atol: float, rtol: float, what: str) -> None:
    for part in ("forward", "backward"):
        g, w = getattr(got, part), getattr(want, part)
        assert set(w) <= set(g), f"{what}: outputs {set(w) - set(g)} missing"
        for k, ref in w.items():
            val = g[k].double().reshape(ref.shape)
            assert not torch.isnan(val).any(), f"{what}: {k} holds NaN (a masked read or a missing write)"
            torch.testing.assert_close(val, ref.double(), atol=atol, rtol=rtol, msg=lambda m: f"{what} {k}: {m}")


# -- float64: the C++ ops, the autograd step, all modes and boundary shapes -------------------------

CASES64 = [
    Case("hyper", ln=False, mask=False, p2=False, driver_layout=False),
    Case("hyper", ln=True, mask=True, B=7, n=100, alias_dc=True),
    Case("z", ln=False, mask=True, n_z=1, block_b=None),
    Case("z", ln=True, mask=False, B=13, n_z=3, alias_dc=True),
    Case("z", ln=True, mask=True, B=7, n=100, n_z=4, block_b=2, driver_layout=False),
    Case("d", ln=False, mask=False, n_z=17, driver_layout=False),
    Case("d", ln=True, mask=True, B=7, n=100, n_z=17, alias_dc=True),
    Case("z", ln=True, mask=True, B=2, n=1000, n_z=4, block_b=2),  # a paper-size row at tiny B
    Case("hyper", ln=True, mask=True, B=1, n=1000, block_b=None),  # the LN-LSTM baseline's row
]


@pytest.mark.parametrize("case", CASES64, ids=lambda c: f"{c.mode}-ln{int(c.ln)}-mask{int(c.mask)}-B{c.B}-n{c.n}"
                         f"-nz{c.n_z}-bb{c.block_b}{'-alias' if c.alias_dc else ''}")
def test_float64_matches_cpp_ops_and_autograd_step(case):
    x = make_inputs(case)
    got = run_triton(case, x)
    assert_close(got, run_cpp(case, x), 1e-10, 1e-10, "vs the C++ ops")
    assert_close(got, reference(case, x), 1e-10, 1e-10, "vs float64 autograd")


BATCH_INPUTS = ("p1", "p2", "d", "z", "c_prev", "mask", "dh", "dc")


def test_each_program_adds_its_own_rows_into_its_own_slot():
    """Slot p of every accumulator = its value before + the sums over program p's rows only (checked
    against the float64 step on those rows alone): no program writes another's slot, none overwrites."""
    case = Case("z", ln=True, mask=True, B=7, n=50, n_z=3, block_b=2)  # 4 programs, the last one half full
    x = make_inputs(case, seed=4)
    got = run_triton(case, x, prefill=0.25, per_slot=True)
    for p in range(4):
        rows = slice(2 * p, min(2 * p + 2, case.B))
        part = {k: v[rows] if k in BATCH_INPUTS and v is not None else v for k, v in x.items()}
        want = reference(case._replace(B=rows.stop - rows.start), part).backward
        for k in SUMMED:
            torch.testing.assert_close(got.backward[k][p], want[k] + 0.25, atol=1e-10, rtol=1e-10,
                                       msg=lambda m: f"slot {p} of {k}: {m}")


# -- float32 and 16-bit storage ------------------------------------------------------------------------


def float32_tolerance(n: int) -> float:
    """Float32 math (unit roundoff u = 2^-24) on O(1) values: every output is ≲ 40 roundings of O(1)
    terms plus row sums of n terms (error ≤ n·u each, Higham's γ_n) passed through LN's backward (which
    multiplies errors by ≲ 4 here: |x̂| ≲ 3, rstd ≲ 1.5); so |err| ≤ 4 (n + 40) u, used as atol and rtol."""
    return 4 * (n + 40) * 2.0 ** -24


STORAGE_ULP = {torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}


def storage_tolerance(dtype) -> float:
    """16-bit storage, float32 math: each stored value (act, x̂, tanh, c, h, gradients) is rounded once
    (half an ulp, 2^-9 relative for bf16) and the backward reads up to ~6 stored forward values per
    product (each with its rounding) before its result is rounded again; products of O(1) factors add
    relative errors: ≤ 8 half-ulps = 4 ulps, plus the LN backward's cancellation (≲ ×4): 16 ulps."""
    return 16 * STORAGE_ULP[dtype]


CASES32 = [
    Case("hyper", ln=True, mask=True, B=7, n=100),
    Case("z", ln=True, mask=True, B=5, n=50, n_z=4, alias_dc=True),
    Case("d", ln=True, mask=False, B=5, n=100, n_z=17),
]


@pytest.mark.parametrize("case", CASES32, ids=lambda c: f"{c.mode}-n{c.n}")
def test_float32_matches_cpp_ops_and_autograd_step(case):
    x = make_inputs(case, seed=1)
    x32 = {k: None if v is None else v.float().double() for k, v in x.items()}  # what float32 storage holds
    got = run_triton(case, x32, torch.float32)
    tol = float32_tolerance(case.n)
    assert_close(got, reference(case, x32), tol, tol, "float32 vs float64 autograd")
    assert_close(got, run_cpp(case, x32, torch.float32), 2 * tol, 2 * tol, "float32 vs the C++ ops")


@pytest.mark.parametrize("dtype,case", [
    (torch.bfloat16, Case("z", ln=True, mask=True, B=5, n=100, n_z=4)),
    (torch.bfloat16, Case("hyper", ln=True, mask=False, B=7, n=50)),
    (torch.float16, Case("d", ln=True, mask=True, B=5, n=50, n_z=17)),
], ids=["bf16-z", "bf16-hyper", "fp16-d"])
def test_16bit_storage_with_float32_statistics_stays_within_its_rounding(dtype, case):
    x = make_inputs(case, seed=2)
    xs = {k: None if v is None else v.to(dtype).double() for k, v in x.items()}  # the stored inputs
    got = run_triton(case, xs, dtype, stat_dtype=torch.float32)
    tol = storage_tolerance(dtype)
    assert_close(got, reference(case, xs), tol, tol, f"{dtype} storage vs float64 autograd")


# -- a float64 gradcheck through the ops -------------------------------------------------------------


class TritonStep(torch.autograd.Function):
    """One main-cell step (z given, LN, mask) through the two ops, as the driver calls them; dW_d is the
    driver's Σ_b z ⊗ (e1, e2, dpre) and the slot sums are summed over P here."""

    @staticmethod
    def forward(ctx, p1, p2, z, w_d, d_bias, c_prev, gate_w, gate_b, cell_w, cell_b, mask):
        B, n = c_prev.shape
        new = p1.new_empty
        f = dict(act=new(B, 4, n), xhat=new(B, 4, n), rstd=new(B, 4), c=new(B, n), c_mean=new(B), c_rstd=new(B),
                 tc=new(B, n), h=new(B, n))
        x = dict(p1=p1, p2=p2, z=z, w_d=w_d, d_bias=d_bias, c_prev=c_prev, gate_w=gate_w, gate_b=gate_b,
                 cell_w=cell_w, cell_b=cell_b, mask=mask)
        run_forward(triton_cell, x, f)
        ctx.x, ctx.f = x, f
        return f["h"].clone(), f["c"].clone()

    @staticmethod
    def backward(ctx, dh, dc):
        x, f = ctx.x, ctx.f
        B, n = x["c_prev"].shape
        case = Case("z", ln=True, mask=True, B=B, n=n, n_z=x["z"].shape[2], driver_layout=False)
        P = triton_cell.sum_slots(B, n)
        new = lambda shape, dt, order=None, fill=0.0: torch.full(shape, fill, dtype=dt)  # noqa: E731
        b = backward_outputs(case, new, dh.dtype, dh.dtype, P, None)
        run_backward(triton_cell, dict(x, dh=dh.contiguous()), f, b, dc.contiguous())
        e = torch.cat([b["e1"], b["e2"], b["dpre"]], 1)  # (B, 12, n): gradients of d_h, d_x, β
        d_w_d = torch.einsum("brj,brn->rjn", x["z"], e)  # Eq. 12: d = z W_d
        return (b["dp1"], b["dp2"], b["dz"], d_w_d, b["d_beta"].sum(0), b["dc_prev"], b["gate_dw"].sum(0),
                b["gate_db"].sum(0), b["cell_dw"].sum(0), b["cell_db"].sum(0), None)


def test_float64_gradcheck_of_one_step_through_the_ops():
    case = Case("z", ln=True, mask=True, B=3, n=6, n_z=3)
    x = make_inputs(case, seed=3)
    names = ("p1", "p2", "z", "w_d", "d_bias", "c_prev", "gate_w", "gate_b", "cell_w", "cell_b")
    inputs = [x[k].clone().requires_grad_() for k in names]
    with triton_cell.tile_override(forward=Tile(4, 1), backward=Tile(4, 1)):  # one program, a padded row
        assert torch.autograd.gradcheck(lambda *a: TritonStep.apply(*a, x["mask"]), inputs, fast_mode=True)


# -- tiles, slots and bad input ----------------------------------------------------------------------


def test_the_tile_table_covers_the_paper_rows_and_sum_slots_counts_backward_programs():
    for n in (128, 256, 512, 1000, 1250, 1800, 2000, 2048):
        t = triton_cell.tile(n, backward=True)
        assert triton_cell.sum_slots(128, n) == math.ceil(128 / t.block_b)
    with triton_cell.tile_override(backward=Tile(4, 1)):
        assert triton_cell.sum_slots(13, 50) == 4
    assert triton_cell.sum_slots(13, 50) == math.ceil(13 / triton_cell.tile(50, backward=True).block_b)
    with pytest.raises(ValueError, match="at most 2048"):
        triton_cell.tile(2049, backward=False)


def _bad_forward(**change):
    case = Case("z", ln=True, mask=False, B=2, n=8, n_z=2, driver_layout=False)
    x = make_inputs(case)
    x.update(change)
    f = forward_outputs(case, lambda shape, dt, order=None, fill=0.0: torch.zeros(shape, dtype=dt), torch.float64,
                        torch.float64)
    run_forward(triton_cell, x, f)


@pytest.mark.parametrize("change,message", [
    (dict(d=torch.zeros(2, 12, 8, dtype=torch.float64)), "give d or z"),
    (dict(w_d=None), "z needs w_d"),
    (dict(z=torch.zeros(2, 12, 17, dtype=torch.float64), w_d=torch.zeros(12, 17, 8, dtype=torch.float64)),
     "N_z = 17 > 16 takes d"),
    (dict(cell_w=None), "gate_w and cell_w go together"),
    (dict(d_bias=None), "d_bias required with d or z"),
    (dict(p1=torch.zeros(2, 8, 4, dtype=torch.float64).transpose(1, 2)), "p1 must be contiguous along units"),
    (dict(c_prev=torch.zeros(2, 8, dtype=torch.int32)), "storage must be one of"),
])
def test_bad_arguments_get_one_line_messages(change, message):
    with pytest.raises(ValueError, match=message):
        _bad_forward(**change)


def test_backward_rejects_accumulators_without_one_slot_per_program():
    case = Case("hyper", ln=True, mask=False, B=5, n=8, driver_layout=False)
    x = make_inputs(case)
    new = lambda shape, dt, order=None, fill=0.0: torch.zeros(shape, dtype=dt)  # noqa: E731
    with triton_cell.tile_override(forward=Tile(4, 1), backward=Tile(4, 1)):
        f = forward_outputs(case, new, torch.float64, torch.float64)
        run_forward(triton_cell, x, f)
        b = backward_outputs(case, new, torch.float64, torch.float64, 1, None)  # P = 1, but 2 programs
        with pytest.raises(ValueError, match=r"gate_dw must be \(P, \.\.\., n\) with P = sum_slots\(B, n\) = 2"):
            run_backward(triton_cell, x, f, b, x["dc"])
