"""The fast layer (fused_layer: fused kernels + hand-written backward) against the reference (run_layer).

Float64 comparisons hold to 1e-10: the fast path reorders sums only (a handful of ulps of values of
order 1 over T = 6 steps is ~1e-15). Float32 is judged against float64 truth (`assert_float32_accuracy`):
the fast path's error may be at most FLOAT32_FACTOR times the float32 reference's own error on the same
problem (floor FLOAT32_FLOOR ulps of the tensor's scale). The equivalence tests run for hyper and baseline
(LSTM / LN-LSTM) layers,
through both kernel backends (the C++ kernels, which must build here: no skip; the Triton kernels under
TRITON_INTERPRET=1, at 3 steps since the interpreter is slow), and through the CUDA-graph plan logic in
its CPU `replay` mode as well as eagerly (`path` fixture).
"""

import warnings

import pytest
import torch
from program_accesses import assert_row_local, bounds_checked, record_accesses  # noqa: F401 (a fixture)
from test_hyperlstm import perturbed

from hyperfairseq.modules import HyperLSTM, HyperLSTMState, cuda_graphs, kernels, one_step, triton_cell, workspace
from hyperfairseq.modules import hyperlstm as ref_module
from hyperfairseq.modules.fused_layer import fused_layer
from hyperfairseq.modules.fused_loops import KERNEL_MAX_NZ
from hyperfairseq.modules.hyperlstm import run_layer
from hyperfairseq.modules.state import CellState
from hyperfairseq.modules.triton_kernels import Tile

pytestmark = pytest.mark.usefixtures("bounds_checked")  # out-of-bounds accesses refused
T, B, N_X, N_H, N_HAT, N_Z = 6, 4, 5, 8, 6, 3
# (kernels, runner): the C++ kernels eagerly and through the CUDA-graph plan logic (its CPU `replay` mode, an
# eager re-run standing in for each graph), and the Triton kernels under TRITON_INTERPRET=1 (slow: 3 steps)
PATHS = ["cpp-eager", "cpp-replay", "triton-eager"]


def _use(monkeypatch, backend: str, runner: str = "eager") -> str:
    monkeypatch.setenv(kernels.KERNELS_ENV, backend)
    monkeypatch.setenv(cuda_graphs.GRAPHS_ENV, "0" if runner == "eager" else "replay")
    assert kernels.kernels_for(torch.device("cpu")) is not None, f"the {backend} kernels are unavailable"
    return backend


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    """Run a test through each fused path (the backend forced for CPU tensors)."""
    backend, runner = request.param.split("-")
    _use(monkeypatch, backend, runner)
    return request.param


@pytest.fixture(params=["cpp", "triton"])
def backend(request, monkeypatch):
    return _use(monkeypatch, request.param)


def steps_for(path_or_backend: str) -> int:
    return 3 if path_or_backend.startswith("triton") else T


def random_cell_state(hyper=True, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    r = lambda n: torch.randn(B, n, generator=g, dtype=dtype).requires_grad_()  # noqa: E731
    return CellState(r(N_H), r(N_H), r(N_HAT) if hyper else None, r(N_HAT) if hyper else None)


def make_layer(use_hyper=True, layer_norm=False, dropout=0.0, n_z=N_Z, dtype=torch.float64, n_h=N_H):
    torch.manual_seed(0)
    rnn = HyperLSTM(N_X, n_h, 1, N_HAT, n_z, use_hyper=use_hyper, layer_norm=layer_norm,
                    recurrent_dropout=dropout, hyper_recurrent_dropout=dropout)
    return perturbed(rnn).to(dtype).layers[0]


def keep_of(lengths, steps=T):
    return None if lengths is None else (torch.arange(steps).unsqueeze(1) < torch.tensor(lengths)).unsqueeze(-1)


def run(fn, cell, x, state, keep, seed=123):
    """Outputs, final state and the gradients of a fixed random loss w.r.t. x, state and parameters."""
    torch.manual_seed(seed)  # same RNG stream: masks must be drawn identically
    out, final, _ = fn(cell, x, state, keep, False)
    g = torch.Generator().manual_seed(7)
    # the loss's weights drawn in float32 whatever the dtype: a float64 truth run weighs exactly the same way
    loss = (out * torch.randn(out.shape, generator=g).to(out.dtype)).sum()
    loss = loss + sum((s * torch.randn(s.shape, generator=g).to(s.dtype)).sum() for s in final if s is not None)
    inputs = [x, *(s for s in state if s is not None), *cell.parameters()]
    return out, final, torch.autograd.grad(loss, inputs)


def run_both(use_hyper=True, layer_norm=False, dropout=0.0, lengths=None, dtype=torch.float64, n_z=N_Z, calls=1,
             steps=T):
    """The same layer, input, state and masks through run_layer and (`calls` times) fused_layer."""
    cell = make_layer(use_hyper, layer_norm, dropout, n_z, dtype)
    x = torch.randn(steps, B, N_X, dtype=dtype).requires_grad_()
    state = random_cell_state(use_hyper, dtype)
    keep = keep_of(None if lengths is None else [min(n, steps) for n in lengths], steps)
    ref = run(run_layer, cell, x, state, keep)
    fused = [run(fused_layer, cell, x, state, keep) for _ in range(calls)]
    names = ["x", *(f for f, s in zip(CellState._fields, state) if s is not None),
             *(n for n, _ in cell.named_parameters())]
    return ref, fused, names


def assert_same(ref, fused, names, rtol=1e-10, atol=1e-10):
    (out, final, grads), (f_out, f_final, f_grads) = ref, fused
    torch.testing.assert_close(f_out, out, rtol=rtol, atol=atol, msg="outputs")
    for name, a, b in zip(CellState._fields, f_final, final):
        if b is not None:
            torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=f"final {name}")
    for name, a, b in zip(names, f_grads, grads):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=f"gradient of {name}")


# Float32: a rounding error is relative to the size of the terms summed, not to the result, so an element
# where terms cancel (a gradient through layer norm over 6-8 units, scaled by 1/σ) can be off by far more
# than 1e-4 of itself; an elementwise tolerance then fails on one CPU and passes on another (it did, on an
# Intel Xeon, at 139 ulps of the tensor's scale). Both float32 paths evaluate the same function, so they
# share its condition number; they differ in the order of the sums (the kernels sum a row's units and the
# per-program partial sums sequentially, autograd pairwise), whose error growth differs by up to n / log2 n
# for n terms, ~10 for the T·B = 24-48 terms of a parameter gradient here. So: the fast path's largest
# error, in ulps of the tensor's scale (max(‖truth‖∞, 1)), is at most FLOAT32_FACTOR = 64 times the float32
# reference's own (~6x that growth ratio), and never needs to be below FLOAT32_FLOOR = 128 ulps (1.5e-5 of
# the scale). Measured (20 seeds x 4 layer kinds, Intel Xeon): worst ratio 17.5 at N_H 8, 3.2 at N_H 128;
# a wrong mask, gate or sum is off by ~1e6 ulps.
FLOAT32_FACTOR, FLOAT32_FLOOR = 64, 128


def float32_error(value, truth) -> float:
    """The largest error of `value` against float64 `truth`, in float32 ulps of truth's scale."""
    scale = truth.abs().max().clamp_min(1)
    return ((value.double() - truth).abs().max() / scale).item() / torch.finfo(torch.float32).eps


def assert_float32_accuracy(fast, reference, truth, what):
    """`fast` and `reference` are float32 evaluations of what float64 `truth` holds (see FLOAT32_FACTOR)."""
    fast_error, reference_error = float32_error(fast, truth), float32_error(reference, truth)
    assert reference_error < FLOAT32_FLOOR * FLOAT32_FACTOR, (
        f"{what}: the float32 reference is off by {reference_error:.0f} ulps: `truth` is not the same problem")
    bound = max(FLOAT32_FACTOR * reference_error, FLOAT32_FLOOR)
    assert fast_error <= bound, (f"{what}: the fast path is off by {fast_error:.0f} ulps of the scale, the "
                                 f"float32 reference by {reference_error:.0f} (bound {bound:.0f})")


def float32_values(result):
    """Outputs, final state and gradients of `run` as one list (None entries dropped)."""
    out, final, grads = result
    return [out, *(s for s in final if s is not None), *grads]


LAYERS = [(True, False), (True, True), (False, False), (False, True)]
LAYER_IDS = ["hyper", "ln-hyper", "lstm", "ln-lstm"]


@pytest.mark.parametrize("use_hyper,layer_norm", LAYERS, ids=LAYER_IDS)
def test_fused_equals_reference_float64(use_hyper, layer_norm, path):
    calls = 3 if path.endswith("replay") else 1  # the 2nd call makes a plan, the 3rd replays it
    ref, fused, names = run_both(use_hyper, layer_norm, calls=calls, steps=steps_for(path))
    for result in fused:
        assert_same(ref, result, names)


@pytest.mark.parametrize("used", ["outputs", "final c", "final c_hat"])
def test_a_loss_of_one_output_gets_the_references_gradients(used, path):
    """A language model's loss uses the outputs only, a decoder's initial state the final state only:
    autograd then hands the backward zeros for the rest (materialised gradients), which it relies on."""
    steps = steps_for(path)
    cell, x = make_layer(True, True), torch.randn(steps, B, N_X, dtype=torch.float64).requires_grad_()
    state = random_cell_state()

    def gradients(fn):
        out, final, _ = fn(cell, x, state, None, False)
        loss = {"outputs": out, "final c": final.c, "final c_hat": final.c_hat}[used].square().sum()
        return torch.autograd.grad(loss, [x, *cell.parameters()])

    reference = gradients(run_layer)
    for _ in range(3 if path.endswith("replay") else 1):  # the 2nd call makes a plan, the 3rd replays it
        for name, a, b in zip(["x", *dict(cell.named_parameters())], gradients(fused_layer), reference):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=f"gradient of {name}")


@pytest.fixture
def poisoned_buffers(monkeypatch):
    """Every `Tensor.new_empty` (each buffer of the fast path: trace, scratch, partial sums, graph-plan and
    one-step buffers) starts as NaN (integers and bools as 1), so a read before a write shows in the result.
    Without it, a fresh CPU buffer is often zero-filled memory, while the GPU's caching allocator hands
    back whatever an earlier kernel left: a kernel that relied on zeros would pass here and fail there."""
    real = torch.Tensor.new_empty

    def new_empty(self, *size, **kwargs):
        t = real(self, *size, **kwargs)
        return t.fill_(float("nan") if t.is_floating_point() else 1)

    monkeypatch.setattr(torch.Tensor, "new_empty", new_empty)
    one_step._scratch.__dict__.pop("buffers", None)  # the one-step scratch is made again, poisoned
    yield
    one_step._scratch.__dict__.pop("buffers", None)


@pytest.mark.parametrize("use_hyper,layer_norm", LAYERS, ids=LAYER_IDS)
def test_fused_equals_reference_with_recurrent_dropout_and_padding(use_hyper, layer_norm, path, poisoned_buffers):
    """Also: no buffer is read before it is written (every buffer starts as NaN)."""
    steps, lengths = steps_for(path), [T, 2, 0, 5]
    ref, fused, names = run_both(use_hyper, layer_norm, dropout=0.4, lengths=lengths, steps=steps,
                                 calls=2 if path.endswith("replay") else 1)
    for result in fused:
        assert_same(ref, result, names)
    out = fused[-1][0]
    assert torch.all(out[2:, 1] == 0) and torch.all(out[:, 2] == 0)
    clean, _, _ = run_both(use_hyper, layer_norm, lengths=lengths, steps=steps)  # the masks really were applied
    assert not torch.allclose(clean[1].c, ref[1].c)


@pytest.mark.parametrize("use_hyper", [True, False], ids=["ln-hyper", "ln-lstm"])
def test_triton_programs_of_a_layer_touch_no_bytes_another_program_writes(use_hyper, monkeypatch):
    """A layer's Triton launches (hyper and main cell, forward and backward, dropout, padding incl. length
    0, then one-step decoding) with one batch row per program forward and two backward: no program loads
    or stores a byte that another program of its launch stores (the interpreter runs them in turn; the
    GPU at once)."""
    _use(monkeypatch, "triton")
    with triton_cell.tile_override(forward=Tile(1, 1), backward=Tile(2, 1)), record_accesses() as launches:
        ref, fused, names = run_both(use_hyper, True, dropout=0.4, lengths=[3, 2, 0, 1], steps=3)
        cell, x = make_layer(use_hyper, True).eval(), torch.randn(1, B, N_X, dtype=torch.float64)
        with torch.no_grad():
            fused_layer(cell, x, random_cell_state(use_hyper), None)  # one-step decoding
    assert_row_local(launches, expect_kernels=["cell_forward_kernel", "cell_backward_kernel"])
    assert_same(ref, fused[0], names)


# N_z 3 runs in every test above; the Triton kernels' z- and d-modes are also covered op by op (test_triton_cell).
# The C++ kernels have unrolled copies for N_z 4 and 16 (`with_nz`) beside the run-time loop (1, 3).
N_Z_CASES = [(b, ln, nz) for b in ("cpp", "triton") for ln in (False, True)
             for nz in ((1, 4, KERNEL_MAX_NZ, KERNEL_MAX_NZ + 1) if b == "cpp" else (1, KERNEL_MAX_NZ + 1))]


@pytest.mark.parametrize("kernel_backend,layer_norm,n_z", N_Z_CASES)
def test_fused_equals_reference_for_every_n_z(kernel_backend, layer_norm, n_z, monkeypatch):
    """Up to KERNEL_MAX_NZ the kernels compute d = z W_d themselves; above, `kernels.BlockGemm` feeds them d."""
    _use(monkeypatch, kernel_backend)
    ref, fused, names = run_both(True, layer_norm, dropout=0.3, lengths=[T, 3, 1, 5], n_z=n_z,
                                 steps=steps_for(kernel_backend))
    assert_same(ref, fused[0], names)


def force_onednn(monkeypatch, on: bool):
    """All CPU GEMMs through oneDNN (the per-step `kernels.StepGemm` with a packed weight, `kernels.BlockGemm`
    and `kernels.wide_mm`: the defaults at the real sizes with AVX-512), forced at the tests' sizes whatever
    the CPU; or all MKL's torch.mm and torch.bmm."""
    monkeypatch.setenv(kernels.GEMM_ENV, "onednn" if on else "mkl")
    if on:
        for threshold in ("PACK_MIN_NUMEL", "PACK_MIN_STEPS", "WIDE_MIN_K", "WIDE_MIN_MACS"):
            monkeypatch.setattr(kernels, threshold, 1)


@pytest.mark.parametrize("isa,wide", [("AVX512", True), ("AVX2", False)])
def test_the_default_gemm_choice_takes_onednn_for_the_wide_gemms_only_with_avx512(isa, wide, monkeypatch):
    """`auto`: the per-step GEMM through oneDNN on every CPU; `wide_mm` and `BlockGemm` only where ATen runs
    AVX-512 code (on an AVX2 Zen 3 oneDNN's weight gradients run at under half MKL's rate)."""
    force_onednn(monkeypatch, True)  # the size thresholds at 1
    monkeypatch.delenv(kernels.GEMM_ENV)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: isa)
    cpu = torch.device("cpu")
    assert kernels.gemm_packs(cpu, torch.float32, 1, 1)
    assert kernels.gemm_packs(cpu, torch.float32, 1, 1, wide=True) == wide
    assert kernels.wide_onednn(torch.ones(2, 2), torch.ones(2, 2)) == wide
    assert (kernels.BlockGemm(torch.ones(3, 2, 2), 2, 1).packed is not None) == wide
    assert kernels.cpu_gemm_libraries() == {"per_step": "onednn", "wide": "onednn" if wide else "mkl"}


def test_an_unknown_gemm_library_is_refused_by_name(monkeypatch):
    monkeypatch.setenv(kernels.GEMM_ENV, "openblas")
    with pytest.raises(ValueError, match="HYPERFAIRSEQ_CPU_GEMM='openblas': expected one of auto, onednn, mkl"):
        kernels.gemm_packs(torch.device("cpu"), torch.float32, 1 << 30, 100)


# N_z past KERNEL_MAX_NZ: d = z W_d by `kernels.BlockGemm` (oneDNN's per block, or torch.bmm) in the loops
FLOAT32_CASES = ([("cpp", *layer, onednn, N_Z) for layer in LAYERS for onednn in (False, True)]
                 + [("cpp", True, ln, onednn, KERNEL_MAX_NZ + 1) for ln in (False, True) for onednn in (False, True)]
                 + [("triton", True, True, False, N_Z), ("triton", False, False, False, N_Z)])


@pytest.mark.parametrize("kernel_backend,use_hyper,layer_norm,onednn,n_z", FLOAT32_CASES)
def test_fused_float32_accuracy(kernel_backend, use_hyper, layer_norm, onednn, n_z, monkeypatch):
    _use(monkeypatch, kernel_backend)
    steps = steps_for(kernel_backend)
    force_onednn(monkeypatch, onednn)
    assert kernels.gemm_packs(torch.device("cpu"), torch.float32, 4 * N_H * N_H, steps) == onednn
    assert kernels.wide_onednn(torch.ones(2, 2), torch.ones(2, 2)) == onednn
    ref, fused, names = run_both(use_hyper, layer_norm, dropout=0.2, dtype=torch.float32, n_z=n_z, steps=steps)
    # truth: the reference in float64 on exactly the float32 layer, input and state (same seed, same masks)
    cell = make_layer(use_hyper, layer_norm, 0.2, n_z, dtype=torch.float32).double()  # reseeds: x as in run_both
    x = torch.randn(steps, B, N_X, dtype=torch.float32).double().requires_grad_()
    state = CellState(*(None if s is None else s.detach().double().requires_grad_()
                        for s in random_cell_state(use_hyper, torch.float32)))
    truth = run(run_layer, cell, x, state, None)
    labels = ["outputs", *(f"final {f}" for f, s in zip(CellState._fields, state) if s is not None),
              *(f"gradient of {n}" for n in names)]
    for what, a, b, c in zip(labels, float32_values(fused[0]), float32_values(ref), float32_values(truth)):
        assert_float32_accuracy(a, b, c, what)


WIDE_OPERANDS = {  # a, b of wide_mm as the fast path passes them: rows, and the weight gradients' aᵀ b
    "rows @ w": lambda: (torch.randn(300, 450), torch.randn(450, 100)),
    "rows @ wᵀ": lambda: (torch.randn(300, 450), torch.randn(100, 450).t()),
    "aᵀ b": lambda: (torch.randn(300, 450).t(), torch.randn(300, 100)),
    "aᵀ b of a column slice": lambda: (torch.randn(300, 527)[:, 77:].t(), torch.randn(300, 100)),
    "strided rows @ w": lambda: (torch.randn(600, 450)[::2], torch.randn(450, 100)),
}
SPARSE_OPERANDS = ("aᵀ b of a column slice", "strided rows @ w")  # oneDNN's reference kernel: wide_mm takes MKL


@pytest.mark.parametrize("dtype,unit_roundoff", [(torch.float32, 2.0 ** -24), (torch.float64, 2.0 ** -53)])
@pytest.mark.parametrize("onednn", [True, False], ids=["onednn", "mkl"])
@pytest.mark.parametrize("operands", WIDE_OPERANDS, ids=list(WIDE_OPERANDS))
def test_wide_mm_equals_the_product_within_the_rounding_bound(operands, onednn, dtype, unit_roundoff, monkeypatch):
    """|fl(a @ b) − a @ b| ≤ γ_K |a| @ |b| elementwise, γ_K ≈ K·u (any order of the K products and sums; u
    the dtype's unit roundoff), whatever strides the operands have and whichever library multiplies them;
    float64 (the gradient checks' dtype) always by MKL. The reference, a @ b in float64, is itself within
    K·2⁻⁵³ |a| @ |b| of the exact product: the bound adds that."""
    force_onednn(monkeypatch, onednn)
    torch.manual_seed(0)
    a, b = (t.to(dtype) for t in WIDE_OPERANDS[operands]())
    assert kernels.wide_onednn(a, b) == (onednn and dtype == torch.float32 and operands not in SPARSE_OPERANDS)
    got = kernels.wide_mm(a, b).double()
    bound = a.shape[1] * (unit_roundoff + 2.0 ** -53) * (a.double().abs() @ b.double().abs())
    assert got.shape == (a.shape[0], b.shape[1])
    assert ((got - a.double() @ b.double()).abs() <= bound).all()


ROW_OFFSETS = {"bias": 1000.0, "weight_hh": 25.0}  # parameters by name ending (LN gains and shifts untouched)
STATE_OFFSETS = CellState(h=10.0, c=50.0, h_hat=10.0, c_hat=50.0)


def offset_layer_and_state(cell, state):
    """Gate rows whose mean is hundreds of times their spread: biases + 1000, W_h + 25 with h_0 + 10 (every
    unit of a row then gets 25 · Σ h_0 ≈ 2000 at the first step, give or take ~10), and c_0 + 50."""
    with torch.no_grad():
        for name, p in cell.named_parameters():
            offset = next((v for end, v in ROW_OFFSETS.items() if name.endswith(end) and "ln_" not in name), 0.0)
            p.add_(offset)
    return CellState(*(None if s is None else (s.detach() + o).requires_grad_() for s, o in zip(state, STATE_OFFSETS)))


@pytest.mark.parametrize("kernel_backend", ["cpp", "triton"])
@pytest.mark.parametrize("use_hyper", [True, False], ids=["ln-hyper", "ln-lstm"])
def test_float32_layer_norm_of_rows_far_from_zero(kernel_backend, use_hyper, monkeypatch):
    """Layer norm of rows far from zero (offset_layer_and_state). Storing a pre-activation m + δ in float32
    already costs δ about m/|δ| ulps, in both paths alike; a variance taken in one pass (E[x²] - mean²)
    costs it (m/|δ|)² more, hundreds of times the two-pass error here, so FLOAT32_FACTOR sees it."""
    _use(monkeypatch, kernel_backend)
    steps, lengths = steps_for(kernel_backend), [T, 2, 0, 5]
    values = []
    for layer_fn, dtype in ((fused_layer, torch.float32), (run_layer, torch.float32), (run_layer, torch.float64)):
        cell = make_layer(use_hyper, True, 0.2, dtype=torch.float32)  # reseeds: the same x each time
        x = torch.randn(steps, B, N_X)
        state = offset_layer_and_state(cell, random_cell_state(use_hyper, torch.float32))
        state = CellState(*(None if s is None else s.detach().to(dtype).requires_grad_() for s in state))
        values.append(float32_values(run(layer_fn, cell.to(dtype), x.to(dtype).requires_grad_(), state,
                                         keep_of(lengths, steps))))
    for i, (a, b, c) in enumerate(zip(*values)):
        assert_float32_accuracy(a, b, c, f"value {i} (outputs, final state, then the gradients)")


def test_cpu_kernels_build_and_serve_cpu_float32_and_float64():
    assert kernels.kernels_for(torch.device("cpu")) is not None, "the fused CPU kernels did not build"
    assert kernels.compute_dtype(torch.device("cpu"), torch.float32) == torch.float32
    assert kernels.compute_dtype(torch.device("cpu"), torch.float64) == torch.float64
    assert kernels.compute_dtype(torch.device("cpu"), torch.bfloat16) == torch.float32  # 16-bit: fp32 kernels


def test_cpu_kernels_switch_off(monkeypatch):
    from hyperfairseq.modules import cpu_kernels

    monkeypatch.setenv(cpu_kernels.ENV, "0")
    assert kernels.kernels_for(torch.device("cpu")) is None
    assert not ref_module.fast_path_applies(make_layer(dtype=torch.float32), torch.zeros(2, 1, N_X), False)


@pytest.fixture
def small_workspace(monkeypatch):
    """Let the buffer reuse take the tiny buffers of these tests (it normally starts at 8 MiB)."""
    monkeypatch.setattr(workspace, "_REUSE_MIN_BYTES", 0)
    monkeypatch.setenv(cuda_graphs.GRAPHS_ENV, "0")
    workspace.WORKSPACE.clear()
    yield workspace.WORKSPACE
    workspace.WORKSPACE.clear()


def _train_step(cell, x, state, retain=False):
    out, final, _ = fused_layer(cell, x, state, None)
    loss = out.square().sum() + final.c.sum()
    grads = torch.autograd.grad(loss, [x, *cell.parameters()], retain_graph=retain)
    return out, grads, loss


@pytest.mark.parametrize("layer_norm", [False, True])
def test_workspace_reuses_buffers_and_never_changes_a_result(small_workspace, layer_norm):
    cell = make_layer(layer_norm=layer_norm)
    x = torch.randn(T, B, N_X, dtype=torch.float64, requires_grad=True)
    state = random_cell_state()
    out1, grads1, _ = _train_step(cell, x, state)  # out1 stays alive: its buffer must not be handed out
    kept = out1.clone()
    out2, grads2, _ = _train_step(cell, x, state)
    torch.testing.assert_close(out1, kept, rtol=0, atol=0)
    assert out2.data_ptr() != out1.data_ptr()
    for a, b in zip(grads2, grads1):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # buffers of a finished step are reused: once its outputs and gradients are gone, a third step
    # allocates nothing new
    del out1, out2, grads1, grads2
    before = {t.data_ptr() for t in small_workspace.entries}
    _train_step(cell, x, state)
    assert {t.data_ptr() for t in small_workspace.entries} == before and before
    # a graph kept for a second backward keeps its buffers: the second backward is exact
    out, final, _ = fused_layer(cell, x, state, None)
    loss = out.square().sum() + final.c.sum()
    first = torch.autograd.grad(loss, list(cell.parameters()), retain_graph=True)
    _train_step(cell, x, state)  # would overwrite the kept graph's buffers if they were handed out
    second = torch.autograd.grad(loss, list(cell.parameters()))
    for a, b in zip(second, first):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_workspace_off(monkeypatch, small_workspace):
    monkeypatch.setenv("HYPERFAIRSEQ_CPU_WORKSPACE_MB", "0")
    _train_step(make_layer(), torch.randn(T, B, N_X, dtype=torch.float64, requires_grad=True), random_cell_state())
    assert not small_workspace.entries


@pytest.mark.parametrize("runner", ["eager", "replay"])
def test_inference_mode_calls_then_training_call(small_workspace, monkeypatch, runner):
    """Bug: buffers made under torch.inference_mode were reused by the next training call ("Inplace update
    to inference tensor outside InferenceMode"): the CPU pool's, and a CUDA-graph plan's (made by the second
    call of a shape, under inference mode, then served the training call)."""
    _use(monkeypatch, "cpp", runner)
    cell = make_layer(dtype=torch.float32)
    x = torch.randn(T, B, N_X)
    with torch.inference_mode():
        for _ in range(2):
            fused_layer(cell, x, random_cell_state(dtype=torch.float32), None)
    _train_step(cell, x.requires_grad_(), random_cell_state(dtype=torch.float32))
    if runner == "eager":
        assert any(t.is_inference() for t in small_workspace.entries)  # the pool did hold inference buffers
    else:
        (plan,) = cell._graph_plans.values()  # made under inference mode, and it served the training call
        assert plan.generation == 2 and not plan.inputs.x_proj.is_inference()  # one replay each


def _two_calls_and_padded(rnn, x, lengths):
    """{what: tensor}: two calls carrying the state, a loss's gradients, one padded call (masks from seed 5)."""
    torch.manual_seed(5)
    first, state = rnn(x[:T])
    second, final = rnn(x[T:], state)
    loss = torch.cat([first, second]).square().sum() + final.c.sum()
    grads = torch.autograd.grad(loss, list(rnn.parameters()))
    padded, _ = rnn(x, lengths=lengths)
    values = {"outputs": torch.cat([first, second]), "padded outputs": padded}
    values.update((f"final {f}", s) for f, s in zip(HyperLSTMState._fields, final) if s is not None)
    values.update((f"gradient of {n}", g) for (n, _), g in zip(rnn.named_parameters(), grads))
    return values


@pytest.mark.parametrize("use_hyper,layer_norm", LAYERS, ids=LAYER_IDS)
def test_module_dispatch_two_layers_carried_state_float32(use_hyper, layer_norm):
    torch.manual_seed(0)
    kwargs = dict(use_hyper=use_hyper, layer_norm=layer_norm, dropout=0.2, recurrent_dropout=0.3)
    fast = perturbed(HyperLSTM(N_X, N_H, 2, N_HAT, N_Z, **kwargs))
    ref = HyperLSTM(N_X, N_H, 2, N_HAT, N_Z, fast=False, **kwargs)
    truth = HyperLSTM(N_X, N_H, 2, N_HAT, N_Z, fast=False, **kwargs).double()
    ref.load_state_dict(fast.state_dict())
    truth.load_state_dict(fast.state_dict())
    x = torch.randn(2 * T, B, N_X)
    lengths = torch.tensor([2 * T, 3, 7, 2 * T])
    fast_values, ref_values = _two_calls_and_padded(fast, x, lengths), _two_calls_and_padded(ref, x, lengths)
    true_values = _two_calls_and_padded(truth, x.double(), lengths)
    assert fast_values.keys() == true_values.keys()
    for what, truth_value in true_values.items():
        assert_float32_accuracy(fast_values[what], ref_values[what], truth_value, what)


def test_fast_path_is_selected_by_default_for_hyper_and_baseline_cpu_float32(monkeypatch):
    calls = []
    real = ref_module.fused_layer

    def spy(*args):
        calls.append(args[1].dtype)
        return real(*args)

    monkeypatch.setattr(ref_module, "fused_layer", spy)
    rnn = HyperLSTM(N_X, N_H, 2, N_HAT, N_Z)
    rnn(torch.randn(T, B, N_X))
    assert calls == [torch.float32, torch.float32]
    calls.clear()
    rnn(torch.randn(1, B, N_X))  # the one-step (incremental) path too
    HyperLSTM(N_X, N_H, 1, use_hyper=False)(torch.randn(T, B, N_X))  # LSTM baseline: the same kernels
    HyperLSTM(N_X, N_H, 1, use_hyper=False, layer_norm=True)(torch.randn(T, B, N_X))
    assert len(calls) == 4
    calls.clear()
    rnn(torch.randn(T, B, N_X), return_internals=True)  # internals: reference
    rnn.double()(torch.randn(T, B, N_X, dtype=torch.float64))  # float64: reference
    HyperLSTM(N_X, N_H, 1, N_HAT, N_Z, fast=False)(torch.randn(T, B, N_X))  # forced reference
    assert calls == []


def test_bfloat16_runs_and_stays_close_to_float32():
    torch.manual_seed(0)
    rnn = HyperLSTM(N_X, N_H, 1, N_HAT, N_Z, layer_norm=True)
    x = torch.randn(T, B, N_X)
    out32, _ = rnn(x)
    out16, _ = rnn.to(torch.bfloat16)(x.to(torch.bfloat16))
    out16.float().sum().backward()
    assert out16.dtype == torch.bfloat16
    torch.testing.assert_close(out16.float(), out32, rtol=0.05, atol=0.03)


@pytest.mark.parametrize("use_hyper", [True, False])
def test_autocast_bfloat16_trains_and_matches_float32(use_hyper):
    """Bug: under autocast the input projection came out bf16 and the weights fp32: `mm(out=)` raised."""
    torch.manual_seed(0)
    rnn = perturbed(HyperLSTM(N_X, N_H, 2, N_HAT, N_Z, use_hyper=use_hyper, layer_norm=True))
    x = torch.randn(T, B, N_X)
    ref, _ = rnn(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, state = rnn(x)
    out.float().square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in rnn.parameters())
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.03)  # bf16 input projections: ~3 digits


def test_full_state_gradcheck_small_float64():
    """gradcheck of the hand-written backward itself (independent of the reference)."""
    torch.manual_seed(0)
    cell = perturbed(HyperLSTM(3, 4, 1, 3, 2, layer_norm=True)).double().layers[0]
    x = torch.randn(3, 2, 3, dtype=torch.float64, requires_grad=True)
    g = torch.Generator().manual_seed(1)
    st = [torch.randn(2, n, generator=g, dtype=torch.float64, requires_grad=True) for n in (4, 4, 3, 3)]
    keep = torch.tensor([[True, True], [True, False], [True, False]]).unsqueeze(-1)

    def f(x, *st):
        out, final, _ = fused_layer(cell, x, CellState(*st), keep)
        return out, *final

    assert torch.autograd.gradcheck(f, (x, *st))
    assert HyperLSTMState  # the stacked state type stays importable alongside the fast path


def test_hyper_cell_uses_its_own_forget_bias():
    """Bug: the fast path added the main cell's forget bias inside the hyper cell."""
    for layer_norm in (False, True):
        cell = make_layer(layer_norm=layer_norm)
        cell.hyper.cell.forget_bias = -0.7
        x, state = torch.randn(T, B, N_X, dtype=torch.float64), random_cell_state()
        with torch.no_grad():
            out, final, _ = run_layer(cell, x, state, None, False)
            f_out, f_final, _ = fused_layer(cell, x, state, None)
        torch.testing.assert_close(f_out, out, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(f_final.h_hat, final.h_hat, rtol=1e-10, atol=1e-10)


ONE_STEP_CASES = [(*layer, N_Z) for layer in LAYERS] + [
    (True, False, KERNEL_MAX_NZ + 1), (True, True, KERNEL_MAX_NZ + 1),
]


@pytest.mark.parametrize("use_hyper,layer_norm,n_z", ONE_STEP_CASES)
def test_incremental_one_step_inference_equals_reference(use_hyper, layer_norm, n_z, backend, poisoned_buffers):
    cell = make_layer(use_hyper, layer_norm, dropout=0.3, n_z=n_z).eval()
    state = random_cell_state(use_hyper)
    x = torch.randn(1, B, N_X, dtype=torch.float64)
    with torch.no_grad():
        out, final, _ = run_layer(cell, x, state, None, False)
        f_out, f_final, _ = fused_layer(cell, x, state, None)
    torch.testing.assert_close(f_out, out, rtol=1e-10, atol=1e-10)
    for name, a, b in zip(CellState._fields, f_final, final):
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=name)


def _one_step_both(cell, x, state):
    with torch.no_grad():
        return fused_layer(cell, x, state, None)[0], run_layer(cell, x, state, None, False)[0]


def test_one_step_plan_follows_parameter_updates():
    """The one-step path keeps derived weights on the cell; an in-place update or a dtype change renews them."""
    cell = make_layer(layer_norm=True).eval()
    state, x = random_cell_state(), torch.randn(1, B, N_X, dtype=torch.float64)
    fast, ref = _one_step_both(cell, x, state)
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    with torch.no_grad():
        for p in cell.parameters():  # an optimizer-like in-place step
            p.add_(0.05 * torch.randn_like(p))
    fast2, ref2 = _one_step_both(cell, x, state)
    assert not torch.allclose(ref2, ref)
    torch.testing.assert_close(fast2, ref2, rtol=1e-10, atol=1e-10)
    cell.float()
    x, state = x.float(), CellState(*(t.detach().float() for t in state))
    fast3, ref3 = _one_step_both(cell, x, state)
    torch.testing.assert_close(fast3, ref3, rtol=2e-5, atol=2e-6)


def test_one_step_plan_follows_load_state_dict_assign():
    """Bug: the plan was stamped by the old Parameter objects, so after `load_state_dict(..., assign=True)`
    one-step decoding silently kept the old weights."""
    cell = make_layer(layer_norm=True).eval()
    state, x = random_cell_state(), torch.randn(1, B, N_X, dtype=torch.float64)
    _one_step_both(cell, x, state)  # makes the plan
    other = perturbed(make_layer(layer_norm=True), seed=5).state_dict()
    cell.load_state_dict(other, assign=True)
    fast, ref = _one_step_both(cell, x, state)
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    assert one_step.step_plan(cell, torch.float64).params[0] is next(cell.parameters())


def test_one_step_plan_follows_data_writes_across_a_mode_switch_and_setting_changes():
    """Bug: a write through `p.data` bumps no version (fairseq's FP16Optimizer copies its fp32 master weights
    so), and the plan ignored the forget bias it folds in: one-step decoding kept the old values. A mode switch
    (fairseq's trainer and generator make one before decoding) now drops the plan; settings are in its stamp."""
    cell = make_layer(layer_norm=True).eval()
    state, x = random_cell_state(), torch.randn(1, B, N_X, dtype=torch.float64)
    _one_step_both(cell, x, state)  # makes the plan
    for p in cell.parameters():
        p.data.copy_(p.data + 0.05 * torch.randn_like(p))
    cell.train().eval()
    fast, ref = _one_step_both(cell, x, state)
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    for target in (cell, cell.hyper.cell):
        target.forget_bias += 0.5
        fast, ref = _one_step_both(cell, x, state)
        torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n_z", [N_Z, KERNEL_MAX_NZ + 1])
def test_a_retained_graph_backpropagates_twice_to_twice_the_gradients(n_z):
    """Bug: with N_z > KERNEL_MAX_NZ the backward recomputed d into a buffer the retained graph had saved,
    so a second backward failed autograd's version check. Two backwards accumulate exactly twice (float64)."""
    cell = make_layer(layer_norm=True, n_z=n_z)
    x = torch.randn(T, B, N_X, dtype=torch.float64, requires_grad=True)
    out, final, _ = fused_layer(cell, x, random_cell_state(), None)
    loss = out.square().sum() + final.c_hat.sum()
    first = torch.autograd.grad(loss, [x, *cell.parameters()], retain_graph=True)
    second = torch.autograd.grad(loss, [x, *cell.parameters()])
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_second_order_gradients_are_refused_by_name_and_the_reference_gives_them():
    """Bug: `create_graph=True` failed inside the hand-written backward with an unrelated out= message."""
    for fast in (True, False):
        rnn = HyperLSTM(N_X, N_H, 1, N_HAT, N_Z, fast=fast)
        x = torch.randn(T, B, N_X, requires_grad=True)
        out, _ = rnn(x)
        if fast:
            with pytest.raises(RuntimeError, match=r"not differentiable \(create_graph=True\).*fast=False"):
                torch.autograd.grad(out.square().sum(), x, create_graph=True)
        else:
            (gx,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
            (gw,) = torch.autograd.grad(gx.square().sum(), rnn.layers[0].weight_hh)
            assert gw.abs().sum() > 0


def test_parameters_and_states_that_are_views_give_the_references_results():
    """Bug: an LN gain or W_d installed by `load_state_dict(assign=True)` as a strided view, or a state
    whose c is one, reached the kernels ("rows must be contiguous along units")."""
    cell = make_layer(layer_norm=True)
    strided = {k: torch.stack([v, torch.full_like(v, float("nan"))], -1)[..., 0] for k, v in
               cell.state_dict().items()}
    assert not strided["ln_cell.weight"].is_contiguous()
    cell.load_state_dict(strided, assign=True)
    state = random_cell_state()
    state = state._replace(c=torch.stack([state.c, state.c], -1)[..., 1], c_hat=state.c_hat.t().contiguous().t())
    x = torch.randn(T, B, N_X, dtype=torch.float64)
    for steps in (T, 1):
        for mode in (cell.train, cell.eval):
            mode()
            with torch.no_grad():
                out, final, _ = run_layer(cell, x[:steps], state, None, False)
                f_out, f_final, _ = fused_layer(cell, x[:steps], state, None)
            torch.testing.assert_close(f_out, out, rtol=1e-10, atol=1e-10)
            torch.testing.assert_close(f_final.c, final.c, rtol=1e-10, atol=1e-10)


def test_kernels_split_the_batch_across_threads_exactly():
    """Wide enough rows that the kernels' parallel_for splits the batch (thread-local LN and β sums)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cell = make_layer(layer_norm=True, dropout=0.2, n_h=2048)
        x = torch.randn(3, 8, N_X, dtype=torch.float64, requires_grad=True)
        state = CellState(*(torch.randn(8, n, dtype=torch.float64) for n in (2048, 2048, N_HAT, N_HAT)))
        results = []
        for fn in (run_layer, fused_layer):
            torch.manual_seed(3)
            out, final, _ = fn(cell, x, state, None, False)
            loss = out.square().sum() + final.c.sum()
            results.append((out, torch.autograd.grad(loss, [x, *cell.parameters()])))
        (out, grads), (f_out, f_grads) = results
        torch.testing.assert_close(f_out, out, rtol=1e-10, atol=1e-10)
        for (name, _), a, b in zip(cell.named_parameters(), f_grads[1:], grads[1:]):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=name)
    finally:
        torch.set_num_threads(threads)


def test_torch_compile_of_a_model_runs_and_matches_eager():
    torch.manual_seed(0)
    rnn = perturbed(HyperLSTM(N_X, N_H, 2, N_HAT, N_Z, layer_norm=True))
    model = torch.nn.Sequential(rnn)
    x = torch.randn(T, B, N_X)
    ref, _ = rnn(x)
    ref_grads = torch.autograd.grad(ref.sum(), list(rnn.parameters()))
    compiled = torch.compile(lambda x: model(x)[0], backend="eager")
    out = compiled(x)  # the fused layer is a graph break: the same kernels, the same arithmetic, bit for bit
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    grads = torch.autograd.grad(out.sum(), list(rnn.parameters()))
    for (name, _), a, b in zip(rnn.named_parameters(), grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


class _OpLog(torch.utils._python_dispatch.TorchDispatchMode):
    """Records every ATen / custom op run inside it, and whether it returned a tensor on new memory."""

    def __init__(self, known_storages):
        super().__init__()
        self.known, self.ops, self.allocations = known_storages, [], []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        self.ops.append(func)
        for t in result if isinstance(result, (tuple, list)) else [result]:
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in self.known:
                self.allocations.append(func)
        return result


HOST_SYNC_OPS = {"aten::_local_scalar_dense", "aten::nonzero", "aten::item", "aten::is_nonzero", "aten::equal"}


@pytest.mark.parametrize("use_hyper,layer_norm", LAYERS, ids=LAYER_IDS)
@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
def test_time_loops_allocate_nothing_sync_nothing_and_repeat_bit_for_bit(use_hyper, layer_norm, padded, monkeypatch):
    """What a CUDA graph of the loops needs, checked on CPU: no op inside the time loops allocates (every
    result lands in a buffer made before the loop) or reads a value back to the host; each step runs the
    expected compute ops; and running the loops twice on the same inputs gives bit-identical results."""
    from hyperfairseq.modules import fused_loops as L
    from hyperfairseq.modules.fused_layer import layer_tensors

    monkeypatch.setenv(kernels.GEMM_ENV, "mkl")  # torch.mm(out=), as cuBLAS on CUDA (oneDNN returns new tensors)
    cell = make_layer(use_hyper, layer_norm, dropout=0.3, dtype=torch.float32)
    x = torch.randn(T, B, N_X)
    state = CellState(*(None if s is None else s.detach().float() for s in random_cell_state(use_hyper)))
    with torch.no_grad():
        inp = layer_tensors(cell, x, state, keep_of([T, 2, 0, 5] if padded else None))
    k, s = kernels.kernels_for(x.device), L.shape_of(inp, 1e-3, 1e-3)
    results = []
    for _ in range(2):
        results.append(_loops_logged(k, s, inp, x, use_hyper, padded))
    for a, b in zip(*results):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)


@torch.no_grad()  # as inside the autograd Function
def _loops_logged(k, s, inp, x, use_hyper, padded):
    """Both loops on fresh buffers under `_OpLog`; returns every buffer and gradient they produced."""
    from hyperfairseq.modules import fused_loops as L

    alloc = lambda *shape, dtype=None: x.new_empty(shape, dtype=dtype or x.dtype)  # noqa: E731
    tr, sc, gb = L.new_trace(s, alloc), L.new_scratch(s, alloc), L.new_grad_buffers(s, alloc, k.sum_slots)
    d_out = torch.randn(T, B, N_H, generator=torch.Generator().manual_seed(3))
    L.prepare(inp, tr, sc)
    L.prepare_backward(inp, gb, [torch.ones(B, n) if n else None for n in (N_H, N_H, *(N_HAT,) * 2 * use_hyper)])
    known = {t.untyped_storage().data_ptr() for t in torch.utils._pytree.tree_leaves((inp, tr, sc, gb, d_out))
             if isinstance(t, torch.Tensor)}
    with _OpLog(known) as fwd:
        L.forward_loop(k, inp, tr, sc, s)
    with _OpLog(known) as bwd:
        L.backward_loop(k, inp, tr, sc, gb, s, d_out)
    for log in (fwd, bwd):
        assert not log.allocations, f"ops that allocate inside a time loop: {sorted(map(str, log.allocations))}"
        assert not HOST_SYNC_OPS & {op.name() for op in log.ops}
    fwd_ops = [op.name() for op in fwd.ops if not op.is_view]
    bwd_ops = [op.name() for op in bwd.ops if not op.is_view]
    assert fwd_ops == T * expected_forward_step(use_hyper, padded), fwd_ops[:12]
    assert bwd_ops.count("hyperfairseq::cell_backward") == T * (2 if use_hyper else 1)
    assert sum(op.startswith("aten::mm") for op in bwd_ops) == T * (2 if use_hyper else 1)
    return torch.utils._pytree.tree_leaves((tr, L.weight_grads(tr, gb, s)))


def expected_forward_step(use_hyper, padded):
    """The compute ops of one forward step (views aside): module docstring of fused_loops, steps 1-4."""
    ops = ["aten::mm.out"]  # step 1: G_t
    if use_hyper:  # steps 2-3: the hyper pre-activations, the hyper cell, z
        ops += ["aten::addmm.out", "hyperfairseq::cell_forward", "aten::addmm.out"]
    ops += ["hyperfairseq::cell_forward"]  # step 4: the main cell
    if padded:
        ops += ["aten::where.self_out"] * (4 if use_hyper else 2) + ["aten::mul.out"]
    return ops


def _plan_of(cell):
    plans = cell.__dict__.get("_graph_plans", {})
    assert len(plans) == 1, f"expected one graph plan, found {len(plans)}"
    return next(iter(plans.values()))


def test_graph_plan_copies_every_input_in_at_every_call(monkeypatch):
    """A plan's graph reads static buffers: parameters updated in place, other masks (another RNG draw),
    another state must all reach a replay (the stale-graph bug)."""
    _use(monkeypatch, "cpp", "replay")
    cell = make_layer(layer_norm=True, dropout=0.3)
    x = torch.randn(T, B, N_X, dtype=torch.float64, requires_grad=True)
    for call in range(4):  # call 0 runs eagerly, call 1 makes the plan, calls 2 and 3 replay it
        state = random_cell_state(seed=10 + call)
        ref = run(run_layer, cell, x, state, None, seed=call)
        fused = run(fused_layer, cell, x, state, None, seed=call)
        assert_same(ref, fused, ["x"] * len(ref[2]))
        with torch.no_grad():  # an optimizer-like in-place step
            for p in cell.parameters():
                p.add_(0.02 * torch.randn_like(p))
    assert _plan_of(cell).generation == 3  # calls 1-3 were served by the plan


def test_what_a_planned_call_returned_survives_the_next_replay(monkeypatch):
    """A plan's graph writes its outputs into its static buffers at every replay: a call's outputs and final
    state are copies, so keeping them across the next call (fairseq's validation, a caller's list of outputs)
    keeps that call's values. Inference calls: the plan is never busy, so each call after the first replays."""
    _use(monkeypatch, "cpp", "replay")
    cell = make_layer(layer_norm=True)
    kept = []
    with torch.no_grad():
        for call in range(4):  # call 0 eager, call 1 makes the plan, calls 2 and 3 replay it
            x, state = torch.randn(T, B, N_X, dtype=torch.float64), random_cell_state(seed=call)
            kept.append((fused_layer(cell, x, state, None), run_layer(cell, x, state, None, False)))
    for (out, final, _), (ref, ref_final, _) in kept:  # float64: the two paths agree to ~1e-15
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(final.c, ref_final.c, rtol=1e-10, atol=1e-10)
    assert _plan_of(cell).generation == 3


def test_a_graph_capture_that_fails_warns_once_and_its_calls_run_eagerly_without_another_try(monkeypatch):
    """CUDA-graph capture had never run on real hardware: where making a plan raises, the call that tried and
    every later call of that shape run eagerly with the eager path's results, after one warning that names
    the error and the switch, and the capture is not tried again."""
    _use(monkeypatch, "cpp", "eager")
    cell = make_layer(layer_norm=True, dropout=0.3)
    x, state = torch.randn(T, B, N_X, dtype=torch.float64, requires_grad=True), random_cell_state()
    eager = run(fused_layer, cell, x, state, None)
    monkeypatch.setenv(cuda_graphs.GRAPHS_ENV, "replay")
    tries = []

    class FailingCapture:
        def __init__(self, fn, device):
            tries.append(device)
            raise RuntimeError("operation not permitted when stream is capturing (simulated)")

    monkeypatch.setattr(cuda_graphs, "_Capture", FailingCapture)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        calls = [run(fused_layer, cell, x, state, None) for _ in range(4)]  # the 2nd would make the plan
    assert len(tries) == 1 and not cell.__dict__.get("_graph_plans")
    failed = [w for w in caught if "CUDA graph capture failed" in str(w.message)]
    assert len(failed) == 1, [str(w.message) for w in caught]
    assert "simulated" in str(failed[0].message) and f"{cuda_graphs.GRAPHS_ENV}=0" in str(failed[0].message)
    for got in calls:  # bit for bit: the same kernels, the same masks (seeded), eagerly
        assert_same(eager, got, ["x"] * len(eager[2]), rtol=0, atol=0)


def test_graph_plan_is_used_by_one_outstanding_forward_and_refuses_a_stale_retained_graph(monkeypatch):
    _use(monkeypatch, "cpp", "replay")
    cell = make_layer()
    x, state = torch.randn(T, B, N_X, dtype=torch.float64, requires_grad=True), random_cell_state()
    for _ in range(2):
        fused_layer(cell, x, state, None)[0].sum().backward()
    plan = _plan_of(cell)
    first = fused_layer(cell, x, state, None)[0]  # the plan is now busy until this graph's backward
    gen = plan.generation
    second = fused_layer(cell, x, state, None)[0]  # so this one runs eagerly
    assert plan.generation == gen and torch.equal(first, second)
    (first.sum() + second.sum()).backward()
    assert plan.busy is None
    with torch.no_grad():  # a forward without autograd leaves the plan free
        fused_layer(cell, x, state, None)
    assert plan.busy is None
    kept = fused_layer(cell, x, state, None)[0].sum()
    kept.backward(retain_graph=True)
    fused_layer(cell, x, state, None)  # replays the plan: the kept graph's buffers are overwritten
    with pytest.raises(RuntimeError, match="retain_graph"):
        kept.backward()
