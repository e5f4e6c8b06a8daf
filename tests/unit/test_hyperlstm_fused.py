"""Fast HyperLSTM layer (hyperlstm_fused) against the reference time loop (hyperlstm.run_layer).

Float64 comparisons hold to 1e-10 (the fast path reorders sums only); float32 through the module's
dispatch holds to 2e-5 relative / 2e-6 absolute on outputs and 1e-4 / 1e-5 on gradients. The main
equivalence tests run twice: through the fused C++ cell kernels (csrc/hyperlstm_cell.cpp, which must
build here: no skip) and through the ATen version used where they cannot.
"""

import pytest
import torch

from hyperfairseq.modules import HyperLSTM, HyperLSTMState
from hyperfairseq.modules import hyperlstm as ref_module
from hyperfairseq.modules import cpu_kernels, hyperlstm_fused
from hyperfairseq.modules.hyperlstm import _CellState, run_layer
from hyperfairseq.modules.hyperlstm_fused import fused_layer
from test_hyperlstm import perturbed

T, B, N_X, N_H, N_HAT, N_Z = 6, 4, 5, 8, 6, 3


def random_cell_state(dtype=torch.float64, seed=1, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    r = lambda n: torch.randn(B, n, generator=g, dtype=dtype).to(device).requires_grad_()  # noqa: E731
    return _CellState(r(N_H), r(N_H), r(N_HAT), r(N_HAT))


@pytest.fixture(params=["kernel", "aten"])
def backend(request, monkeypatch):
    """Run a test through the fused C++ kernels, then through the ATen fallback."""
    if request.param == "kernel":
        assert cpu_kernels.ops() is not None, f"the fused CPU kernels did not build: {cpu_kernels._state['error']}"
    else:
        monkeypatch.setenv(cpu_kernels.ENV, "0")
    return request.param


def run_both(layer_norm, dropout=0.0, hyper_dropout=0.0, lengths=None, dtype=torch.float64, seed=0, device="cpu",
             n_z=N_Z):
    """The same layer, input, state and masks through run_layer and fused_layer; returns both results."""
    torch.manual_seed(seed)
    rnn = perturbed(HyperLSTM(N_X, N_H, 1, N_HAT, n_z, layer_norm=layer_norm, recurrent_dropout=dropout,
                              hyper_recurrent_dropout=hyper_dropout)).to(dtype=dtype, device=device)
    cell = rnn.layers[0]
    x = torch.randn(T, B, N_X, dtype=dtype).to(device).requires_grad_()
    state = random_cell_state(dtype, device=device)
    keep = None
    if lengths is not None:
        keep = (torch.arange(T).unsqueeze(1) < torch.tensor(lengths).unsqueeze(0)).unsqueeze(-1).to(device)
    g = torch.Generator().manual_seed(7)
    w_out = torch.randn(T, B, N_H, generator=g, dtype=dtype).to(device)
    w_state = [torch.randn(B, n, generator=g, dtype=dtype).to(device) for n in (N_H, N_H, N_HAT, N_HAT)]
    results = []
    for run in (run_layer, fused_layer):
        torch.manual_seed(123)  # same RNG stream: masks must be drawn identically
        out, final, _ = run(cell, x, state, keep, False)
        loss = (out * w_out).sum() + sum((s * w).sum() for s, w in zip(final, w_state))
        inputs = [x, *state, *cell.parameters()]
        grads = torch.autograd.grad(loss, inputs)
        results.append((out, final, grads))
    names = ["x", "h0", "c0", "h_hat0", "c_hat0", *(n for n, _ in cell.named_parameters())]
    return results, names


def assert_same(results, names, rtol=1e-10, atol=1e-10, grad_rtol=None, grad_atol=None):
    (out, final, grads), (f_out, f_final, f_grads) = results
    torch.testing.assert_close(f_out, out, rtol=rtol, atol=atol, msg="outputs")
    for name, a, b in zip(_CellState._fields, f_final, final):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=f"final {name}")
    for name, a, b in zip(names, f_grads, grads):
        torch.testing.assert_close(a, b, rtol=grad_rtol or rtol, atol=grad_atol or atol,
                                   msg=f"gradient of {name}")


@pytest.mark.parametrize("layer_norm", [False, True])
def test_fused_equals_reference_float64(layer_norm, backend):
    assert_same(*run_both(layer_norm))


@pytest.mark.parametrize("layer_norm", [False, True])
def test_fused_equals_reference_large_n_z(layer_norm, backend):
    """Above KERNEL_MAX_NZ the kernels take d = z W_d from one bmm instead of computing it themselves."""
    n_z = hyperlstm_fused.KERNEL_MAX_NZ + 1
    assert_same(*run_both(layer_norm, dropout=0.3, lengths=[T, 3, 1, 5], n_z=n_z))


@pytest.mark.parametrize("layer_norm", [False, True])
def test_fused_equals_reference_with_recurrent_dropout_same_masks(layer_norm, backend):
    results, names = run_both(layer_norm, dropout=0.4, hyper_dropout=0.3)
    assert_same(results, names)
    # the masks really were applied: without dropout the outputs differ
    clean, _ = run_both(layer_norm)
    assert not torch.allclose(clean[1][0], results[1][0])


@pytest.mark.parametrize("layer_norm", [False, True])
def test_fused_equals_reference_with_lengths_padding(layer_norm, backend):
    results, names = run_both(layer_norm, dropout=0.2, lengths=[T, 2, 0, 5])
    assert_same(results, names)
    out = results[1][0]
    assert torch.all(out[2:, 1] == 0) and torch.all(out[:, 2] == 0)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_fused_float32_tolerance(layer_norm, backend):
    assert_same(*run_both(layer_norm, dropout=0.2, dtype=torch.float32), rtol=2e-5, atol=2e-6,
                grad_rtol=1e-4, grad_atol=1e-5)


def test_cpu_kernels_build_and_apply_by_default_to_cpu_float32_and_float64():
    assert cpu_kernels.ops() is not None, f"the fused CPU kernels did not build: {cpu_kernels._state['error']}"
    assert cpu_kernels.applies(torch.zeros(1)) and cpu_kernels.applies(torch.zeros(1, dtype=torch.float64))
    assert not cpu_kernels.applies(torch.zeros(1, dtype=torch.bfloat16))


def test_cpu_kernels_switch_off(monkeypatch):
    monkeypatch.setenv(cpu_kernels.ENV, "0")
    assert cpu_kernels.ops() is None and not cpu_kernels.applies(torch.zeros(1))


@pytest.fixture
def small_workspace(monkeypatch):
    """Let the buffer reuse take the tiny buffers of these tests (it normally starts at 8 MiB)."""
    monkeypatch.setattr(hyperlstm_fused, "_REUSE_MIN_BYTES", 0)
    hyperlstm_fused.WORKSPACE.clear()
    yield hyperlstm_fused.WORKSPACE
    hyperlstm_fused.WORKSPACE.clear()


def _train_step(cell, x, state, retain=False):
    out, final, _ = fused_layer(cell, x, state, None)
    loss = out.square().sum() + final.c.sum()
    grads = torch.autograd.grad(loss, [x, *cell.parameters()], retain_graph=retain)
    return out, grads, loss


@pytest.mark.parametrize("layer_norm", [False, True])
def test_workspace_reuses_buffers_and_never_changes_a_result(small_workspace, layer_norm, backend):
    torch.manual_seed(0)
    cell = perturbed(HyperLSTM(N_X, N_H, 1, N_HAT, N_Z, layer_norm=layer_norm)).double().layers[0]
    x = torch.randn(T, B, N_X, dtype=torch.float64, requires_grad=True)
    state = random_cell_state()
    out1, grads1, _ = _train_step(cell, x, state)  # out1 stays alive: its buffer must not be handed out
    kept = out1.clone()
    out2, grads2, _ = _train_step(cell, x, state)
    torch.testing.assert_close(out1, kept, rtol=0, atol=0)
    assert out2.data_ptr() != out1.data_ptr()
    for a, b in zip(grads2, grads1):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # buffers of a finished step are reused: once its outputs are gone, a third step allocates nothing new
    del out1, out2
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
    cell = HyperLSTM(N_X, N_H, 1, N_HAT, N_Z).double().layers[0]
    _train_step(cell, torch.randn(T, B, N_X, dtype=torch.float64, requires_grad=True), random_cell_state())
    assert not small_workspace.entries


@pytest.mark.parametrize("layer_norm", [False, True])
def test_module_dispatch_two_layers_carried_state_float32(layer_norm):
    torch.manual_seed(0)
    fast = perturbed(HyperLSTM(N_X, N_H, 2, N_HAT, N_Z, layer_norm=layer_norm, dropout=0.2,
                               recurrent_dropout=0.3))
    ref = HyperLSTM(N_X, N_H, 2, N_HAT, N_Z, layer_norm=layer_norm, dropout=0.2, recurrent_dropout=0.3,
                    fast=False)
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(2 * T, B, N_X)
    lengths = torch.tensor([2 * T, 3, 7, 2 * T])
    results = []
    for rnn in (ref, fast):
        torch.manual_seed(5)
        first, state = rnn(x[:T])
        second, final = rnn(x[T:], state)
        loss = torch.cat([first, second]).square().sum() + final.c.sum()
        grads = torch.autograd.grad(loss, list(rnn.parameters()))
        padded, _ = rnn(x, lengths=lengths)
        results.append((torch.cat([first, second]), final, grads, padded))
    (o, f, g, p), (fo, ff, fg, fp) = results
    torch.testing.assert_close(fo, o, rtol=2e-5, atol=2e-6)
    torch.testing.assert_close(fp, p, rtol=2e-5, atol=2e-6)
    for a, b in zip(ff, f):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-6)
    for (name, _), a, b in zip(fast.named_parameters(), fg, g):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


def test_fast_path_is_selected_by_default_for_cpu_float32_only(monkeypatch):
    calls = []
    real = hyperlstm_fused.fused_layer

    def spy(*args):
        calls.append(args[1].dtype)
        return real(*args)

    monkeypatch.setattr(ref_module, "fused_layer", spy)
    rnn = HyperLSTM(N_X, N_H, 2, N_HAT, N_Z)
    rnn(torch.randn(T, B, N_X))
    assert calls == [torch.float32, torch.float32]
    calls.clear()
    rnn(torch.randn(1, B, N_X))  # the one-step (incremental) path too
    assert len(calls) == 2
    calls.clear()
    rnn(torch.randn(T, B, N_X), return_internals=True)  # internals: reference
    rnn.double()(torch.randn(T, B, N_X, dtype=torch.float64))  # float64: reference
    HyperLSTM(N_X, N_H, 1, N_HAT, N_Z, fast=False)(torch.randn(T, B, N_X))  # forced reference
    HyperLSTM(N_X, N_H, 1, use_hyper=False)(torch.randn(T, B, N_X))  # plain LSTM: reference
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


def test_full_state_gradcheck_small_float64():
    """gradcheck of the hand-written backward itself (independent of the reference)."""
    torch.manual_seed(0)
    cell = perturbed(HyperLSTM(3, 4, 1, 3, 2, layer_norm=True)).double().layers[0]
    x = torch.randn(3, 2, 3, dtype=torch.float64, requires_grad=True)
    g = torch.Generator().manual_seed(1)
    st = [torch.randn(2, n, generator=g, dtype=torch.float64, requires_grad=True) for n in (4, 4, 3, 3)]
    keep = torch.tensor([[True, True], [True, False], [True, False]]).unsqueeze(-1)

    def f(x, *st):
        out, final, _ = fused_layer(cell, x, _CellState(*st), keep)
        return out, *final

    assert torch.autograd.gradcheck(f, (x, *st))
    assert HyperLSTMState  # re-exported state type stays importable alongside the fast path


@pytest.mark.parametrize("layer_norm", [False, True])
def test_incremental_one_step_inference_equals_reference(layer_norm, backend):
    torch.manual_seed(0)
    cell = perturbed(HyperLSTM(N_X, N_H, 1, N_HAT, N_Z, layer_norm=layer_norm, recurrent_dropout=0.3)).double()
    cell = cell.eval().layers[0]
    state = random_cell_state()
    x = torch.randn(1, B, N_X, dtype=torch.float64)
    with torch.no_grad():
        out, final, _ = run_layer(cell, x, state, None, False)
        f_out, f_final, _ = fused_layer(cell, x, state, None)
    torch.testing.assert_close(f_out, out, rtol=1e-10, atol=1e-10)
    for name, a, b in zip(_CellState._fields, f_final, final):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=name)


def test_one_step_plan_follows_parameter_updates():
    """The one-step path keeps derived weights on the cell; an in-place update or a dtype change renews them."""
    torch.manual_seed(0)
    cell = perturbed(HyperLSTM(N_X, N_H, 1, N_HAT, N_Z, layer_norm=True)).double().eval().layers[0]
    state = random_cell_state()
    x = torch.randn(1, B, N_X, dtype=torch.float64)

    def both():
        with torch.no_grad():
            return fused_layer(cell, x, state, None)[0], run_layer(cell, x, state, None, False)[0]

    fast, ref = both()
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    with torch.no_grad():
        for p in cell.parameters():  # an optimizer-like in-place step
            p.add_(0.05 * torch.randn_like(p))
    fast2, ref2 = both()
    assert not torch.allclose(ref2, ref)
    torch.testing.assert_close(fast2, ref2, rtol=1e-10, atol=1e-10)
    cell.float()
    x, state = x.float(), _CellState(*(t.detach().float() for t in state))
    fast3, ref3 = both()
    torch.testing.assert_close(fast3, ref3, rtol=2e-5, atol=2e-6)


def test_kernels_split_the_batch_across_threads_exactly():
    """Wide enough rows that the kernels' parallel_for splits the batch (thread-local LN and β sums)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        cell = perturbed(HyperLSTM(N_X, 2048, 1, N_HAT, N_Z, layer_norm=True, recurrent_dropout=0.2)).double().layers[0]
        x = torch.randn(3, 8, N_X, dtype=torch.float64, requires_grad=True)
        state = _CellState(*(torch.randn(8, n, dtype=torch.float64) for n in (2048, 2048, N_HAT, N_HAT)))
        results = []
        for run in (run_layer, fused_layer):
            torch.manual_seed(3)
            out, final, _ = run(cell, x, state, None, False)
            loss = out.square().sum() + final.c.sum()
            results.append((out, torch.autograd.grad(loss, [x, *cell.parameters()])))
        (out, grads), (f_out, f_grads) = results
        torch.testing.assert_close(f_out, out, rtol=1e-10, atol=1e-10)
        for (name, _), a, b in zip(cell.named_parameters(), f_grads[1:], grads[1:]):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=name)
    finally:
        torch.set_num_threads(threads)
