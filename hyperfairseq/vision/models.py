"""Main networks whose convolution kernels come from a kernel source (paper §4.1, §4.2).

* ``WideResNet``: WRN-depth-k of Zagoruyko & Komodakis as in the paper's Table 1 -- conv1 3x3x16,
  three groups of N = (depth - 4) / 6 pre-activation blocks (BN-ReLU-conv3x3-BN-ReLU-conv3x3) of
  widths 16k, 32k, 64k, 1x1 projection shortcuts where the shape changes (C2), final BN-ReLU,
  global average pool, linear classifier.  The 2 * 3 * N = 36 3x3 kernels of groups conv2..conv4 come
  from the kernel source (ordinary parameters, or a ``StaticHyperNetwork`` with N_z = 64 and 16x16x3x3
  basic kernels, paper-spec §1.6); conv1, shortcuts, BN and the classifier stay ordinary (C2).
* ``ConvNet``: the MNIST network of Table 7 (reference notebook, paper-spec §3.1): conv 7x7 1->16,
  ReLU, max-pool 2 -> conv 7x7 16->16 (the kernel from the source; N_z = 4 when generated) + bias,
  ReLU, max-pool 2 -> linear 7*7*16 -> 10.

Both take ``forward(x, kernels=None)``; with ``kernels`` omitted they ask their source.
"""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hyperfairseq.vision.kernels import PlainKernels, make_kernel_source

__all__ = ["WideResNet", "ConvNet", "PreActBlock"]


class PreActBlock(nn.Module):
    """Pre-activation residual block; its two 3x3 kernels are passed in (no weights of its own)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.stride = stride
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.needs_projection = in_channels != out_channels or stride != 1
        self.shortcut = (
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
            if self.needs_projection
            else nn.Identity()
        )

    def forward(self, x: Tensor, kernel_a: Tensor, kernel_b: Tensor) -> Tensor:
        pre = F.relu(self.bn1(x))
        residual = self.shortcut(pre) if self.needs_projection else x
        out = F.conv2d(pre, kernel_a, stride=self.stride, padding=1)
        out = F.conv2d(F.relu(self.bn2(out)), kernel_b, padding=1)
        return out + residual


class VisionNet(nn.Module):
    """Shared surface: ``kernel_source``, ``main_kernels()``, ``decayed_weights()``, breakdown."""

    config: Dict

    def main_kernels(self) -> List[Tensor]:
        """The kernels the network convolves with: learned, or generated (one batched call)."""
        return self.kernel_source()

    @property
    def use_hyper(self) -> bool:
        return not isinstance(self.kernel_source, PlainKernels)

    def decayed_weights(self, kernels: List[Tensor]) -> List[Tensor]:
        """Tensors under L2 (C3): the main network's kernels -- generated ones for hyper models,
        never the embeddings or generator -- plus the other conv and linear weights."""
        others = [
            p for n, p in self.named_parameters()
            if self._category(n) in ("stem", "shortcuts", "classifier") and n.endswith("weight")
        ]
        return list(kernels) + others

    def _category(self, name: str) -> str:
        raise NotImplementedError

    def parameter_breakdown(self) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for name, p in self.named_parameters():
            cat = self._category(name)
            counts[cat] = counts.get(cat, 0) + p.numel()
        return counts


class WideResNet(VisionNet):
    """WRN-depth-k (paper Table 1) with its 3x3 kernels in groups 2-4 from a kernel source.

    Args:
        depth: 40 in the paper (N = 6 blocks per group); widen_factor: k (1 or 2).
        use_hyper: generate the 36 kernels with a ``StaticHyperNetwork`` (N_z = ``n_z`` = 64).
        num_classes, in_channels: 10 and 3 for CIFAR-10.
        hyper_init: C1 initialisation of the generator (``"he"`` or ``"notebook"``).

    Inputs: ``x`` ``(B, in_channels, H, W)``; optional ``kernels`` as returned by ``main_kernels()``.
    Outputs: logits ``(B, num_classes)``.
    """

    def __init__(self, depth: int = 40, widen_factor: int = 1, use_hyper: bool = False, n_z: int = 64,
                 num_classes: int = 10, in_channels: int = 3, hyper_init: str = "he"):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet: depth={depth}; expected 6N + 4")
        n = (depth - 4) // 6
        self.config = dict(depth=depth, widen_factor=widen_factor, use_hyper=use_hyper, n_z=n_z,
                           num_classes=num_classes, in_channels=in_channels, hyper_init=hyper_init)
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        blocks, shapes, width = [], [], 16
        for group, out_width in enumerate((16 * widen_factor, 32 * widen_factor, 64 * widen_factor)):
            for b in range(n):
                stride = 2 if group > 0 and b == 0 else 1
                blocks.append(PreActBlock(width, out_width, stride))
                shapes += [(out_width, width), (out_width, out_width)]
                width = out_width
        self.blocks = nn.ModuleList(blocks)
        hyper_kwargs = {"init": hyper_init} if use_hyper else {}
        self.kernel_source = make_kernel_source(shapes, 3, use_hyper, n_z, **hyper_kwargs)
        self.bn = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, num_classes)
        nn.init.kaiming_normal_(self.conv1.weight, nonlinearity="relu")
        for block in self.blocks:
            if block.needs_projection:
                nn.init.kaiming_normal_(block.shortcut.weight, nonlinearity="relu")
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: Tensor, kernels: Optional[List[Tensor]] = None) -> Tensor:
        kernels = self.main_kernels() if kernels is None else kernels
        out = self.conv1(x)
        for i, block in enumerate(self.blocks):
            out = block(out, kernels[2 * i], kernels[2 * i + 1])
        out = F.relu(self.bn(out))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))

    def _category(self, name: str) -> str:
        if name.startswith("kernel_source."):
            return {"z": "embeddings"}.get(name.split(".")[1], "generator" if self.use_hyper else "kernels")
        if name.startswith("conv1."):
            return "stem"
        if name.startswith("fc."):
            return "classifier"
        if ".shortcut." in name:
            return "shortcuts"
        if ".bn" in name or name.startswith("bn."):
            return "bn"
        raise KeyError(f"WideResNet: parameter {name} has no category")


class ConvNet(VisionNet):
    """The two-layer MNIST convnet of Table 7 (paper-spec §3.1, §7.3); conv2 from the kernel source.

    Args:
        use_hyper: generate conv2's 7x7x16x16 kernel from one embedding (N_z = d = ``n_z`` = 4).
        in_channels, image_size: 1 and 28 for MNIST / Fashion-MNIST.

    Inputs: ``x`` ``(B, in_channels, H, W)``; optional ``kernels`` (a list of one kernel).
    Outputs: logits ``(B, num_classes)``.
    """

    def __init__(self, use_hyper: bool = False, n_z: int = 4, num_classes: int = 10, in_channels: int = 1,
                 image_size: int = 28, hyper_init: str = "he"):
        super().__init__()
        self.config = dict(use_hyper=use_hyper, n_z=n_z, num_classes=num_classes, in_channels=in_channels,
                           image_size=image_size, hyper_init=hyper_init)
        self.conv1 = nn.Conv2d(in_channels, 16, 7, padding=3)
        hyper_kwargs = {"init": hyper_init} if use_hyper else {}
        self.kernel_source = make_kernel_source([(16, 16)], 7, use_hyper, n_z, **hyper_kwargs)
        self.conv2_bias = nn.Parameter(torch.zeros(16))
        pooled = image_size // 4
        self.fc = nn.Linear(16 * pooled * pooled, num_classes)
        nn.init.kaiming_normal_(self.conv1.weight, nonlinearity="relu")
        nn.init.zeros_(self.conv1.bias)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: Tensor, kernels: Optional[List[Tensor]] = None) -> Tensor:
        (kernel,) = self.main_kernels() if kernels is None else kernels
        out = F.max_pool2d(F.relu(self.conv1(x)), 2)
        out = F.max_pool2d(F.relu(F.conv2d(out, kernel, self.conv2_bias, padding=3)), 2)
        return self.fc(torch.flatten(out, 1))

    def _category(self, name: str) -> str:
        if name.startswith("kernel_source."):
            return {"z": "embeddings"}.get(name.split(".")[1], "generator" if self.use_hyper else "kernels")
        if name.startswith("conv1."):
            return "stem"
        if name == "conv2_bias":
            return "conv_biases"
        if name.startswith("fc."):
            return "classifier"
        raise KeyError(f"ConvNet: parameter {name} has no category")
