"""Named architectures (paper Tables 2 and 7) and export of a hyper network to a plain one.

| name             | paper row                         | params (ours, CIFAR-10 / MNIST input) | paper     |
| ---------------- | --------------------------------- | ------------------------------------- | --------- |
| ``wrn_40_1``     | Table 2, WRN 40-1 (their impl.)   | 566,650                               | 0.563 M   |
| ``hyper_wrn_40_1`` | Table 2, Hyper Residual Net 40-1 | 98,954                               | 0.097 M   |
| ``wrn_40_2``     | Table 2, WRN 40-2 (their impl.)   | 2,248,954                             | 2.236 M   |
| ``hyper_wrn_40_2`` | Table 2, Hyper Residual Net 40-2 | 156,026                              | 0.148 M   |
| ``convnet``      | Table 7, Normal Convnet           | 21,210 (conv2 kernel 12,544)          | 12,544    |
| ``hyper_convnet`` | Table 7, Hyper Convnet           | 12,910 (conv2 kernel 4,244)           | 4,244     |

The counts are asserted in tests/unit/test_vision_models.py; ``examples/hyper_resnet/train.py
--count-params`` prints the breakdown and explains the gap to the paper (C2).
"""
from typing import Callable, Dict

import torch

from hyperfairseq.vision.models import ConvNet, VisionNet, WideResNet

__all__ = ["ARCHITECTURES", "UnknownArchitectureError", "build_model", "export_plain", "plain_arch"]

#: parameters of the generated (or learned) conv2 kernel of the Table 7 convnets; asserted on build
TABLE7_CONV2_PARAMS = {"convnet": 12_544, "hyper_convnet": 4_244}


class UnknownArchitectureError(ValueError):
    """An architecture name that is not in ``ARCHITECTURES``."""


def _wrn(widen_factor: int, use_hyper: bool) -> Callable[..., VisionNet]:
    def build(num_classes: int = 10, in_channels: int = 3, image_size: int = 32, **kwargs) -> VisionNet:
        return WideResNet(40, widen_factor, use_hyper=use_hyper, num_classes=num_classes,
                          in_channels=in_channels, **kwargs)
    return build


def _convnet(use_hyper: bool) -> Callable[..., VisionNet]:
    def build(num_classes: int = 10, in_channels: int = 1, image_size: int = 28, **kwargs) -> VisionNet:
        model = ConvNet(use_hyper=use_hyper, num_classes=num_classes, in_channels=in_channels,
                        image_size=image_size, **kwargs)
        name = "hyper_convnet" if use_hyper else "convnet"
        layer = sum(p.numel() for p in model.kernel_source.parameters())
        assert layer == TABLE7_CONV2_PARAMS[name], (
            f"{name}: conv2 has {layer} parameters, Table 7 says {TABLE7_CONV2_PARAMS[name]}"
        )
        return model
    return build


ARCHITECTURES: Dict[str, Callable[..., VisionNet]] = {
    "wrn_40_1": _wrn(1, False),
    "hyper_wrn_40_1": _wrn(1, True),
    "wrn_40_2": _wrn(2, False),
    "hyper_wrn_40_2": _wrn(2, True),
    "convnet": _convnet(False),
    "hyper_convnet": _convnet(True),
}


def build_model(arch: str, **kwargs) -> VisionNet:
    """Build a named architecture; unknown names raise ``UnknownArchitectureError`` listing choices."""
    if arch not in ARCHITECTURES:
        raise UnknownArchitectureError(
            f"unknown architecture {arch!r}; expected one of: {', '.join(sorted(ARCHITECTURES))}")
    model = ARCHITECTURES[arch](**kwargs)
    model.arch = arch
    return model


def plain_arch(arch: str) -> str:
    """``hyper_wrn_40_2`` -> ``wrn_40_2`` (plain names map to themselves)."""
    return arch[len("hyper_"):] if arch.startswith("hyper_") else arch


def export_plain(model: VisionNet) -> VisionNet:
    """A plain network of the same shape whose kernels are ``model``'s generated kernels.

    Everything except the kernel source is copied by name; the generated kernels are materialised
    (computed once, in eval mode, without grad) into ordinary parameters.  The result computes the
    same function as ``model`` and can be trained or saved as an ordinary network.
    """
    config = {k: v for k, v in model.config.items() if k not in ("use_hyper", "n_z", "hyper_init")}
    config.pop("depth", None)
    config.pop("widen_factor", None)
    plain = build_model(plain_arch(model.arch), **config)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("kernel_source.")}
    missing, unexpected = plain.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("kernel_source.") for k in missing), (missing, unexpected)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for target, kernel in zip(plain.kernel_source.weights, model.main_kernels()):
            target.copy_(kernel)
    model.train(was_training)
    plain.train(was_training)
    return plain
