"""Kernel sources for the main networks: ordinary learned kernels or a static hypernetwork.

Following the hypnettorch separation (style.md §7): a main network declares the shapes of the
kernels it wants generated and takes them as arguments in ``forward``; a *kernel source* supplies
them.  ``PlainKernels`` holds ordinary parameters (the baseline); ``StaticHyperNetwork``
(paper §3.1, hyperfairseq.modules.static_hypernet) generates them.  Both are called with no input
and return the list of kernels, so a network never branches on which one it has.
"""
from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn

from hyperfairseq.modules.static_hypernet import StaticHyperNetwork

__all__ = ["PlainKernels", "StaticHyperNetwork", "make_kernel_source"]


class PlainKernels(nn.Module):
    """Ordinary learned kernels ``(out_channels, in_channels, f, f)``, He (fan-in) initialised.

    Attributes:
        weights: ``nn.ParameterList``, one kernel per declared shape, in declaration order.
    """

    def __init__(self, kernel_shapes: Sequence[Tuple[int, int]], kernel_size: int):
        super().__init__()
        self.kernel_shapes = [tuple(s) for s in kernel_shapes]
        self.kernel_size = kernel_size
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(out_c, in_c, kernel_size, kernel_size))
            for out_c, in_c in self.kernel_shapes
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for w in self.weights:
            nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu")

    def forward(self) -> List[Tensor]:
        return list(self.weights)

    def parameter_breakdown(self) -> dict:
        return {"kernels": sum(w.numel() for w in self.weights)}


def make_kernel_source(
    kernel_shapes: Sequence[Tuple[int, int]], kernel_size: int, use_hyper: bool, n_z: int, **hyper_kwargs
) -> nn.Module:
    """``StaticHyperNetwork`` when ``use_hyper`` else ``PlainKernels`` for the same shapes."""
    if use_hyper:
        return StaticHyperNetwork(kernel_shapes, kernel_size=kernel_size, n_z=n_z, **hyper_kwargs)
    return PlainKernels(kernel_shapes, kernel_size)
