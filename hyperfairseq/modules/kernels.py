"""Which fused row kernels serve a tensor, and the per-step GEMM of the fast path.

One fused implementation per device (issue 13): the C++ kernels (`csrc/hyperlstm_cell.cpp`, built by
`cpu_kernels`) on CPU and the Triton kernels (`triton_cell`) on CUDA. Both implement the same two
operations, `cell_forward` and `cell_backward`, with the same arguments, so the time loop of
`fused_layer` is written once. Where neither applies, `HyperLSTM` runs the reference path.

`HYPERFAIRSEQ_KERNELS=cpp|triton` forces a backend (the tests run the Triton kernels on CPU tensors
under `TRITON_INTERPRET=1`); `HYPERFAIRSEQ_CPU_GEMM=auto|mkl|onednn` picks the library of the CPU GEMMs
(`StepGemm`, `BlockGemm`, `wide_mm`; `auto` by the CPU's ISA, see `_onednn`).
"""

import os
from typing import Callable, NamedTuple, Optional

import torch
from torch import Tensor

from . import cpu_kernels

KERNELS_ENV = "HYPERFAIRSEQ_KERNELS"
GEMM_ENV = "HYPERFAIRSEQ_CPU_GEMM"
COMPUTE_DTYPES = {"cpp": (torch.float32, torch.float64),
                  "triton": (torch.float32, torch.float64, torch.bfloat16, torch.float16)}


class Kernels(NamedTuple):
    """One device's fused row kernels: Eq. 12-13 of one cell and step, forward and backward.

    `sum_slots(B, n)` is the number of partial-sum slots (leading axis of the LN-gain/shift and β
    accumulators) a backward call fills: one per program on CUDA (deterministic, no atomics), 1 on CPU.
    """

    name: str
    cell_forward: Callable
    cell_backward: Callable
    sum_slots: Callable[[int, int], int]
    max_units: Optional[int]  # the widest row the kernels take (None: any)


def _cpp() -> Optional[Kernels]:
    ops = cpu_kernels.ops()
    if ops is None:
        return None
    return Kernels("cpp", ops.cell_forward.default, ops.cell_backward.default, lambda batch, n: 1, None)


def _triton() -> Optional[Kernels]:
    try:
        from . import triton_cell
    except ImportError:  # no triton, or no kernels in this checkout
        return None
    return Kernels("triton", triton_cell.cell_forward, triton_cell.cell_backward, triton_cell.sum_slots,
                   triton_cell.MAX_UNITS)


def backend_name(device: torch.device) -> Optional[str]:
    """'cpp' on CPU, 'triton' on CUDA, or the forced backend; None on other devices."""
    forced = os.environ.get(KERNELS_ENV, "").strip().lower()
    if forced in ("cpp", "triton"):
        return forced
    return {"cpu": "cpp", "cuda": "triton"}.get(device.type)


def kernels_for(device: torch.device) -> Optional[Kernels]:
    """The fused kernels for tensors on `device`, or None where none is available."""
    name = backend_name(device)
    if name == "cpp":
        return _cpp() if device.type == "cpu" else None
    if name == "triton":
        return _triton()
    return None


def compute_dtype(device: torch.device, dtype: torch.dtype) -> Optional[torch.dtype]:
    """The dtype the fused kernels compute a `dtype` input in: itself where supported, float32 for 16-bit
    inputs on CPU (the C++ kernels are float32/float64), None where no fused path serves it."""
    name = backend_name(device)
    if name is None:
        return None
    if dtype in COMPUTE_DTYPES[name]:
        return dtype
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else None


GEMM_CHOICES = ("auto", "onednn", "mkl")
WIDE_ONEDNN_ISAS = ("AVX512",)  # ATen's CPU capability where oneDNN's wide GEMMs beat MKL's (docs/speed.md)


def _onednn(wide: bool = False) -> bool:
    """Whether a CPU GEMM goes to oneDNN rather than MKL's `torch.mm`. `HYPERFAIRSEQ_CPU_GEMM=onednn|mkl`
    forces one library for all; by default (`auto`) the per-step GEMM (`StepGemm`) always takes oneDNN, and
    the wide ones (`wide_mm`, `BlockGemm`: `wide=True`) only where ATen runs AVX-512 code. One thread,
    GFLOP/s oneDNN against MKL: AMD EPYC Zen 5 (AVX-512) weight gradients ~190 against ~90; Zen 3 (AVX2)
    40-74 against 89 (BlockGemm's blocks 0.7-0.8x bmm's speed), yet the per-step GEMM 58 against 46
    (docs/speed.md)."""
    choice = os.environ.get(GEMM_ENV, "auto").strip().lower()
    if choice not in GEMM_CHOICES:
        raise ValueError(f"{GEMM_ENV}={os.environ[GEMM_ENV]!r}: expected one of {', '.join(GEMM_CHOICES)}")
    if choice == "mkl" or not torch.backends.mkldnn.is_available():
        return False
    return choice == "onednn" or not wide or torch.backends.cpu.get_cpu_capability() in WIDE_ONEDNN_ISAS


def cpu_gemm_libraries() -> dict:
    """The library of each kind of CPU GEMM under the current setting, for benchmark records."""
    return {kind: "onednn" if _onednn(wide) else "mkl" for kind, wide in (("per_step", False), ("wide", True))}


PACK_MIN_NUMEL = 1 << 20  # below ~512 x 2048 weights oneDNN's per-call cost outweighs its faster kernel
PACK_MIN_STEPS = 8  # packing costs ~3-6 GEMMs of the same size


def gemm_packs(device: torch.device, dtype: torch.dtype, numel: int, steps: int, wide: bool = False) -> bool:
    """Whether `StepGemm` (`BlockGemm`: `wide=True`) runs oneDNN with a packed weight: CPU float32, a large
    weight, enough steps (measured on AMD EPYC: oneDNN 1.1-1.3x faster than MKL from 512 units, slower at
    64-256), oneDNN chosen (`_onednn`)."""
    return (device.type == "cpu" and dtype == torch.float32 and numel >= PACK_MIN_NUMEL and steps >= PACK_MIN_STEPS
            and _onednn(wide))


WIDE_MIN_K = 256  # oneDNN's gain is in the reduction: at K = 64 it matches MKL (the char embeddings' projection)
WIDE_MIN_MACS = 1 << 26  # below ~0.07 G multiply-adds its per-call cost outweighs the faster kernel


def wide_onednn(a: Tensor, b: Tensor) -> bool:
    """Whether `wide_mm(a, b)` runs oneDNN: CPU float32, a long reduction, a large product, and dense
    operands (a column slice, rows with a gap between them, sends oneDNN to its reference kernel: ~1000x
    slower, measured at the hyper cell's weight gradient)."""
    (m, k), n = a.shape, b.shape[1]
    return (a.device.type == "cpu" and a.dtype == b.dtype == torch.float32 and k >= WIDE_MIN_K
            and m * k * n >= WIDE_MIN_MACS and _dense(a) and _dense(b) and _onednn(wide=True))


def _dense(t: Tensor) -> bool:
    return t.is_contiguous() or t.t().is_contiguous()


def wide_mm(a: Tensor, b: Tensor) -> Tensor:
    """a @ b for the GEMMs over all T·B rows (input projections, their data gradients, the weight
    gradients). On CPU float32 with AVX-512 through oneDNN's matmul: on an AMD EPYC Zen 5 it runs these
    at ~2x MKL's rate (~190 against ~90 GFLOP/s, one thread), MKL taking its AVX2 code there (on AVX2
    oneDNN is the slower one: `_onednn`). A transposed `a` (the weight gradients' aᵀ b over rows) is
    multiplied as (bᵀ a)ᵀ, oneDNN's fastest layout of it; the result is then a transposed view. Elsewhere
    `torch.mm`."""
    if not wide_onednn(a, b):
        return torch.mm(a, b)
    linear = torch.ops.mkldnn._linear_pointwise  # (input, weight) -> input @ weightᵀ
    if not a.is_contiguous():  # a = cᵀ for a contiguous c
        return linear(b.t(), a, None, "none", [], "").t()
    return linear(a, b.t(), None, "none", [], "")


class StepGemm:
    """y = a @ Wᵀ for one weight W (M, K) used at every step of a call: `__call__(a, out)`.

    On CPU float32 the weight is packed once for oneDNN, whose small-M GEMM is up to ~1.7x faster than
    MKL's on AMD EPYC (gpu-design §6) and no slower on Intel; elsewhere `torch.mm` into `out` (cuBLAS on
    CUDA, capturable in a CUDA graph). Both are deterministic for fixed shapes.
    """

    def __init__(self, weight: Tensor, batch: int, steps: int):
        self.packed = None
        if gemm_packs(weight.device, weight.dtype, weight.numel(), steps):
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), batch)
        # a transposed operand makes MKL ~25% slower; cuBLAS takes it as it is
        self.weight_t = None if self.packed is not None else (
            weight.t().contiguous() if weight.device.type == "cpu" else weight.t())

    def __call__(self, a: Tensor, out: Tensor, copy: bool = True) -> Tensor:
        """a @ Wᵀ into `out`; with `copy=False` oneDNN's own result tensor is returned instead (its op has
        no out= form, and the copy costs ~10 % of the GEMM)."""
        if self.packed is None:
            return torch.mm(a, self.weight_t, out=out)
        y = torch.ops.mkldnn._linear_pointwise(a, self.packed, None, "none", [], "")
        return out.copy_(y) if copy else y


class BlockGemm:
    """out[k] = a[k] @ W[k] for a stack of weights W (K, P, Q) used at every step of a call: Eq. 12's
    twelve maps z -> d_h, d_x, β (and their transposes in the backward) where N_z is too wide for the
    kernels. `__call__(a, out)`: a (K, B, P), out (K, B, Q).

    On CPU float32 with AVX-512 each block's weight is packed once for oneDNN, as in `StepGemm` (at enwik8's
    N_z = 64 ~2x the rate of MKL's bmm on AMD EPYC Zen 5; on AVX2 bmm is the faster one: `_onednn`), and
    each result is copied into `out` (oneDNN's op has no out= form); elsewhere `torch.bmm` into `out`
    (capturable in a CUDA graph).
    """

    def __init__(self, weight: Tensor, batch: int, steps: int):
        self.weight, self.packed = weight, None
        if gemm_packs(weight.device, weight.dtype, weight.numel(), steps, wide=True):
            self.packed = [torch.ops.mkldnn._reorder_linear_weight(w.t().contiguous(), batch) for w in weight.detach()]

    def __call__(self, a: Tensor, out: Tensor) -> Tensor:
        if self.packed is None:
            return torch.bmm(a, self.weight, out=out)
        for a_k, w_k, out_k in zip(a, self.packed, out):  # a_k dense: a strided input sends oneDNN to its ref kernel
            out_k.copy_(torch.ops.mkldnn._linear_pointwise(a_k.contiguous(), w_k, None, "none", [], ""))
        return out
