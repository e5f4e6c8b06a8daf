"""StaticHyperNetwork: Eq. 2 generator, Eq. 3 tiling, parameter formula, C1 init, eval cache."""
from unittest import mock

import pytest
import torch

from hyperfairseq.modules.static_hypernet import StaticHyperNetwork, tile_basic_kernels


def test_generated_kernel_shapes_follow_declared_layers():
    shapes = [(16, 16), (32, 16), (64, 32), (16, 48)]
    hyper = StaticHyperNetwork(shapes, kernel_size=3, n_z=8)
    kernels = hyper()
    assert [tuple(k.shape) for k in kernels] == [(o, i, 3, 3) for o, i in shapes]
    assert hyper.z.shape == (1 + 2 + 8 + 3, 8)


def test_tiling_places_block_p_q_at_input_row_p_output_column_q():
    """Eq. 3: N_in=32, N_out=64 -> 2 x 4 grid, K1..K4 first row (input block 0), K5..K8 second."""
    torch.manual_seed(0)
    hyper = StaticHyperNetwork([(64, 32)], kernel_size=3, n_z=8)
    (kernel,) = hyper()
    basic = hyper.generate_basic(hyper.z)  # (8, 16 out, 16 in, 3, 3)
    for p in range(2):
        for q in range(4):
            block = kernel[q * 16:(q + 1) * 16, p * 16:(p + 1) * 16]
            torch.testing.assert_close(block, basic[p * 4 + q], rtol=0, atol=0)


def test_tile_basic_kernels_on_labelled_blocks():
    basic = torch.arange(6.0).view(6, 1, 1, 1, 1).expand(6, 2, 2, 1, 1)  # block b filled with b
    kernel = tile_basic_kernels(basic, in_blocks=2, out_blocks=3)  # (6 out, 4 in)
    expected = torch.tensor([[0, 0, 3, 3], [0, 0, 3, 3], [1, 1, 4, 4], [1, 1, 4, 4], [2, 2, 5, 5], [2, 2, 5, 5]])
    assert torch.equal(kernel[:, :, 0, 0], expected.float())


def test_basic_kernel_equals_eq2_slice_by_slice():
    """K_i = <W_out, W_i z + B_i> + B_out is the filter bank of *input* channel i."""
    torch.manual_seed(1)
    hyper = StaticHyperNetwork([(16, 16)], kernel_size=7, n_z=4)
    with torch.no_grad():
        hyper.bias1.normal_()
        hyper.bias2.normal_()
    (kernel,) = hyper()
    z, d = hyper.z[0], hyper.hidden_size
    for i in range(16):
        w_i, b_i = hyper.weight1[:, i * d:(i + 1) * d], hyper.bias1[i * d:(i + 1) * d]
        a_i = z @ w_i + b_i
        k_i = (a_i @ hyper.weight2 + hyper.bias2).view(16, 7, 7)  # (N_out, f, f)
        torch.testing.assert_close(kernel[:, i], k_i)


@pytest.mark.parametrize("n_z,f,shapes", [(4, 7, [(16, 16)]), (64, 3, [(16, 16), (32, 16), (64, 64)])])
def test_parameter_count_matches_paper_formula(n_z, f, shapes):
    hyper = StaticHyperNetwork(shapes, kernel_size=f, n_z=n_z)
    blocks = sum((o // 16) * (i // 16) for o, i in shapes)
    d = n_z
    formula = n_z * blocks + d * (n_z + 1) * 16 + f * 16 * f * (d + 1)  # paper-spec §1.4
    assert sum(p.numel() for p in hyper.parameters()) == formula
    if n_z == 4:
        assert formula == 4244  # Table 7


def test_all_kernels_come_from_one_batched_generator_call():
    shapes = [(16, 16)] * 12 + [(32, 16)] + [(32, 32)] * 11 + [(64, 32)] + [(64, 64)] * 11
    hyper = StaticHyperNetwork(shapes, kernel_size=3, n_z=64)
    with mock.patch.object(hyper, "generate_basic", wraps=hyper.generate_basic) as gen:
        kernels = hyper()
    assert gen.call_count == 1
    assert gen.call_args.args[0].shape[0] == 242  # every basic block of WRN-40-1 in that one call
    assert len(kernels) == 36


def test_he_init_gives_generated_kernels_he_variance():
    """C1: Var(K) ~= 2 / (f^2 N_in_b) at initialisation; the notebook init is far smaller."""
    torch.manual_seed(0)
    shapes = [(32, 32)] * 20
    kernels = torch.cat([k.flatten() for k in StaticHyperNetwork(shapes, 3, 64)()])
    target = 2.0 / (9 * 16)
    assert abs(kernels.var().item() / target - 1) < 0.2
    assert abs(kernels.mean().item()) < 0.1 * target ** 0.5
    notebook = torch.cat([k.flatten() for k in StaticHyperNetwork(shapes, 3, 64, init="notebook")()])
    assert notebook.var().item() < 0.05 * target


def test_eval_cache_reuses_kernels_until_a_parameter_changes():
    hyper = StaticHyperNetwork([(32, 16)], kernel_size=3, n_z=8).eval()
    with torch.no_grad():
        first, second = hyper()[0], hyper()[0]
        assert first.data_ptr() == second.data_ptr()  # served from the cache
        hyper.z.add_(1.0)  # an optimizer step changes a parameter's version
        third = hyper()[0]
    assert third.data_ptr() != first.data_ptr()
    torch.testing.assert_close(third, hyper.train()()[0].detach())
    # training mode never caches and keeps the graph to every parameter
    hyper()[0].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in (hyper.z, hyper.weight1, hyper.weight2))


def test_layer_not_a_multiple_of_the_basic_kernel_is_rejected():
    with pytest.raises(ValueError, match="multiple of the basic kernel"):
        StaticHyperNetwork([(24, 16)], kernel_size=3, n_z=8)
