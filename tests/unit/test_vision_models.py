"""Main networks of Tables 2 and 7: parameter counts, generated layers, export, real 32x32 input."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vision_fixtures as vf  # noqa: E402

from hyperfairseq.vision import UnknownArchitectureError, build_model, export_plain  # noqa: E402
from hyperfairseq.vision.datasets import load_cifar10  # noqa: E402

# totals and the breakdown printed by --count-params (paper: 0.563 M, 0.097 M, 2.236 M, 0.148 M)
COUNTS = {
    "wrn_40_1": (563_930, {"kernels": 557_568, "bn": 2_720, "shortcuts": 2_560}),
    "hyper_wrn_40_1": (97_770, {"embeddings": 242 * 64, "generator": 75_920, "bn": 2_720}),
    "wrn_40_2": (2_243_546, {"kernels": 2_225_664, "bn": 5_408, "shortcuts": 10_752}),
    "hyper_wrn_40_2": (155_626, {"embeddings": 966 * 64, "generator": 75_920, "bn": 5_408}),
    "convnet": (21_210, {"kernels": 12_544}),  # reference notebook total 21,210 (spec §7.3)
    "hyper_convnet": (12_910, {"embeddings": 4, "generator": 4_240}),  # 12,910; layer 4,244
}
PAPER = {"wrn_40_1": 0.563e6, "hyper_wrn_40_1": 0.097e6, "wrn_40_2": 2.236e6, "hyper_wrn_40_2": 0.148e6}


@pytest.mark.parametrize("arch", sorted(COUNTS))
def test_parameter_counts(arch):
    model = build_model(arch)
    total, parts = COUNTS[arch]
    assert sum(p.numel() for p in model.parameters()) == total
    breakdown = model.parameter_breakdown()
    assert sum(breakdown.values()) == total
    for key, value in parts.items():
        assert breakdown[key] == value, key
    if arch in PAPER:
        assert abs(total - PAPER[arch]) / PAPER[arch] < 0.06


def test_table7_generated_layer_has_4244_parameters():
    hyper, plain = build_model("hyper_convnet"), build_model("convnet")
    assert sum(p.numel() for p in hyper.kernel_source.parameters()) == 4_244
    assert sum(p.numel() for p in plain.kernel_source.parameters()) == 12_544
    assert [tuple(k.shape) for k in hyper.main_kernels()] == [(16, 16, 7, 7)]


def test_wrn_generates_exactly_the_36_kernels_of_groups_2_to_4():
    model = build_model("hyper_wrn_40_2")
    kernels = model.main_kernels()
    assert len(kernels) == 36
    widths = [k.shape[0] for k in kernels]
    assert widths == [32] * 12 + [64] * 12 + [128] * 12
    assert kernels[12].shape[1] == 32 and kernels[24].shape[1] == 64  # first conv of a group
    assert not any(p is model.conv1.weight for p in model.kernel_source.parameters())


def test_l2_targets_generated_kernels_not_generator():
    model = build_model("hyper_convnet")
    kernels = model.main_kernels()
    decayed = model.decayed_weights(kernels)
    assert decayed[0] is kernels[0]
    ids = {id(t) for t in decayed}
    assert id(model.kernel_source.weight2) not in ids and id(model.kernel_source.z) not in ids
    assert id(model.fc.weight) in ids and id(model.conv1.weight) in ids


def _randomise_bn(model):
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)


@pytest.mark.parametrize("arch,shape", [("hyper_wrn_40_1", (3, 3, 32, 32)), ("hyper_convnet", (3, 1, 28, 28))])
def test_exported_plain_network_gives_the_same_logits(arch, shape):
    torch.manual_seed(0)
    model = build_model(arch)
    _randomise_bn(model)
    x = torch.randn(shape)
    plain = export_plain(model)
    assert not plain.use_hyper and plain.arch == arch[len("hyper_"):]
    model.eval(), plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(x), model(x), rtol=1e-5, atol=1e-5)
    assert sum(p.numel() for p in plain.parameters()) > sum(p.numel() for p in model.parameters())


def test_forward_on_real_cifar10_images_from_foolbox():
    data = load_cifar10(str(vf.cifar_fixture_dir()), "test")
    assert data.images.shape == (20, 3, 32, 32) and data.labels.tolist() == vf.FOOLBOX_LABELS
    x = (data.images.float() / 255 - 0.5) / 0.25
    torch.manual_seed(0)
    for arch in ("hyper_wrn_40_1", "wrn_40_1"):
        model = build_model(arch).eval()
        with torch.no_grad():
            logits = model(x)
        assert logits.shape == (20, 10) and torch.isfinite(logits).all()
        assert logits.std(0).mean() > 0  # different images give different outputs


def test_unknown_architecture_names_the_choices():
    with pytest.raises(UnknownArchitectureError, match="hyper_wrn_40_2"):
        build_model("hyper_wrn_40_3")
