"""Static hypernetwork for convolutional kernels (Ha, Dai & Le, arXiv 1609.09106, §3.1, Eq. 2-3).

Implements ``paper-spec.md`` §1: one learned embedding ``z`` per *basic* kernel, a two-layer
**linear** generator ``g`` shared by every generated layer, and tiling of basic
``N_in_b x N_out_b x f x f`` kernels (16 x 16 in the paper's ResNets) into any layer whose channel
counts are multiples of the basic ones.

Shapes (defined once for this module):
    L      number of generated layers
    M      total number of basic blocks (embeddings) over all layers
    N_z    embedding size;  d  generator hidden width (the paper sets d = N_z)
    f      kernel size;  N_in_b, N_out_b  basic kernel channels

Decisions where the paper is silent or ambiguous (paper-spec §6):
    C1  initialisation: z ~ N(0, 1), W1 ~ N(0, 1/N_z), W2 ~ N(0, 2 / (d f^2 fan_in)), biases 0, so a
        generated kernel starts with He variance 2 / (f^2 fan_in); ``fan_in`` defaults to the basic
        kernel's N_in_b (the generator is shared, so one scale serves all layers; BN follows every
        generated conv in the WRN).  ``init="notebook"`` reproduces the reference notebook (spec §7.3).
    C4  tiling order: Eq. 3 layout, row = input-channel block, column = output-channel block; the
        embeddings of one layer are stored row-major (K1..K4 first row, K5..K8 second row).

Pure PyTorch: no fairseq import (design.md).
"""
from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn

__all__ = ["StaticHyperNetwork", "tile_basic_kernels"]


def tile_basic_kernels(basic: Tensor, in_blocks: int, out_blocks: int) -> Tensor:
    """Assemble one layer's kernel from its basic kernels (Eq. 3, decision C4).

    Args:
        basic: ``(in_blocks * out_blocks, N_out_b, N_in_b, f, f)``, in row-major Eq. 3 order:
            block ``p * out_blocks + q`` is row ``p`` (input channels ``p*N_in_b ...``) and column ``q``
            (output channels ``q*N_out_b ...``).
    Returns:
        ``(out_blocks * N_out_b, in_blocks * N_in_b, f, f)``, PyTorch's conv weight layout.
    """
    n_out_b, n_in_b, kh, kw = basic.shape[1:]
    grid = basic.reshape(in_blocks, out_blocks, n_out_b, n_in_b, kh, kw)
    # (row p, col q, o, i) -> (q, o, p, i): output channel = q*N_out_b + o, input = p*N_in_b + i
    grid = grid.permute(1, 2, 0, 3, 4, 5)
    return grid.reshape(out_blocks * n_out_b, in_blocks * n_in_b, kh, kw)


class StaticHyperNetwork(nn.Module):
    r"""Generates all convolution kernels of a main network from per-block embeddings.

    .. math::
        a_i^j = W_i z^j + B_i, \qquad K_i^j = \langle W_{out}, a_i^j \rangle + B_{out}   \quad (Eq. 2)

    in the batched form of paper-spec §1.2: ``A = z W1 + b1`` reshaped to ``(N_in_b, d)``, then
    ``K = A W2 + b2`` reshaped to ``(N_in_b, N_out_b, f, f)``.  Every basic kernel of every layer is
    produced by these two matmuls in a single call (``generate_basic``); layers are then cut out
    and tiled (Eq. 3).

    Args:
        kernel_shapes: ``(out_channels, in_channels)`` of each generated layer, in the order the main
            network consumes them; each must be a multiple of the basic kernel channels.
        kernel_size: f (3 for the WRNs, 7 for the MNIST convnet).
        n_z: N_z, embedding size (64 CIFAR, 4 MNIST).
        hidden_size: d, generator hidden width; defaults to ``n_z`` as in the paper.
        basic_in_channels, basic_out_channels: N_in_b, N_out_b (16 in the paper).
        init: ``"he"`` (C1, default) or ``"notebook"`` (trunc-normal 0.01 generator, spec §7.3).
        init_fan_in: fan-in used by the ``"he"`` target variance; default ``basic_in_channels``.

    Inputs: none.
    Outputs: list of L tensors, layer j of shape ``(out_channels_j, in_channels_j, f, f)``.

    Attributes:
        z: ``(M, N_z)`` embeddings, layer-major, row-major within a layer (C4).
        weight1, bias1: ``(N_z, N_in_b * d)``, ``(N_in_b * d,)`` -- the N_in_b maps W_i, B_i.
        weight2, bias2: ``(d, N_out_b * f * f)``, ``(N_out_b * f * f,)`` -- W_out, B_out.

    Note:
        Parameter count ``N_z M + d (N_z + 1) N_in_b + f N_out_b f (d + 1)`` (paper-spec §1.4);
        4,244 for the MNIST layer.  In eval mode under ``torch.no_grad()`` the generated kernels are
        cached until a parameter changes (tracked by tensor version counters) or ``train()`` is called.

    Example::

        >>> hyper = StaticHyperNetwork([(32, 16), (32, 32)], kernel_size=3, n_z=64)
        >>> [tuple(k.shape) for k in hyper()]
        [(32, 16, 3, 3), (32, 32, 3, 3)]
    """

    def __init__(
        self,
        kernel_shapes: Sequence[Tuple[int, int]],
        kernel_size: int = 3,
        n_z: int = 64,
        hidden_size: int = None,
        basic_in_channels: int = 16,
        basic_out_channels: int = 16,
        init: str = "he",
        init_fan_in: int = None,
    ):
        super().__init__()
        if len(kernel_shapes) == 0:
            raise ValueError("StaticHyperNetwork: kernel_shapes is empty; expected at least one layer")
        self.kernel_shapes = [tuple(int(c) for c in s) for s in kernel_shapes]
        self.kernel_size = kernel_size
        self.n_z = n_z
        self.hidden_size = n_z if hidden_size is None else hidden_size
        self.basic_in_channels = basic_in_channels
        self.basic_out_channels = basic_out_channels
        self.blocks_per_layer = [self._grid(shape) for shape in self.kernel_shapes]
        num_blocks = sum(r * c for r, c in self.blocks_per_layer)
        d, f = self.hidden_size, kernel_size
        self.z = nn.Parameter(torch.empty(num_blocks, n_z))
        self.weight1 = nn.Parameter(torch.empty(n_z, basic_in_channels * d))
        self.bias1 = nn.Parameter(torch.empty(basic_in_channels * d))
        self.weight2 = nn.Parameter(torch.empty(d, basic_out_channels * f * f))
        self.bias2 = nn.Parameter(torch.empty(basic_out_channels * f * f))
        self.init = init
        self.init_fan_in = basic_in_channels if init_fan_in is None else init_fan_in
        self._cache: List[Tensor] = []
        self._cache_key: tuple = ()
        self.reset_parameters()

    def _grid(self, shape: Tuple[int, int]) -> Tuple[int, int]:
        out_channels, in_channels = shape
        if in_channels % self.basic_in_channels or out_channels % self.basic_out_channels:
            raise ValueError(
                f"StaticHyperNetwork: layer of {in_channels} in / {out_channels} out channels is not a "
                f"multiple of the basic kernel ({self.basic_in_channels} in / "
                f"{self.basic_out_channels} out); expected multiples for tiling (paper Eq. 3)"
            )
        return in_channels // self.basic_in_channels, out_channels // self.basic_out_channels

    def reset_parameters(self) -> None:
        """C1 (``"he"``) or the reference notebook's values (``"notebook"``, paper-spec §7.3)."""
        d, f = self.hidden_size, self.kernel_size
        nn.init.zeros_(self.bias1)
        nn.init.zeros_(self.bias2)
        if self.init == "he":
            # Var(a) = N_z * 1 * (1/N_z) = 1; Var(K) = d * 1 * 2/(d f^2 fan_in) = 2/(f^2 fan_in)
            nn.init.normal_(self.z, 0.0, 1.0)
            nn.init.normal_(self.weight1, 0.0, (1.0 / self.n_z) ** 0.5)
            nn.init.normal_(self.weight2, 0.0, (2.0 / (d * f * f * self.init_fan_in)) ** 0.5)
        elif self.init == "notebook":
            # the notebook's truncated_normal_initializer(0.01) sets the *mean* of z (spec §7.3)
            nn.init.trunc_normal_(self.z, 0.01, 1.0, 0.01 - 2.0, 0.01 + 2.0)
            nn.init.trunc_normal_(self.weight1, 0.0, 0.01, -0.02, 0.02)
            nn.init.trunc_normal_(self.weight2, 0.0, 0.01, -0.02, 0.02)
        else:
            raise ValueError(f"StaticHyperNetwork: init={self.init!r}; expected 'he' or 'notebook'")

    def generate_basic(self, z: Tensor) -> Tensor:
        """All basic kernels in one batched call: ``(M, N_z)`` -> ``(M, N_out_b, N_in_b, f, f)``."""
        m, d, f = z.shape[0], self.hidden_size, self.kernel_size
        a = torch.addmm(self.bias1, z, self.weight1).reshape(m * self.basic_in_channels, d)  # a_i^j, Eq. 2
        k = torch.addmm(self.bias2, a, self.weight2)  # K_i^j = <W_out, a_i^j> + B_out, Eq. 2
        # slice i (one per input channel) holds the filters of all N_out_b outputs for that input
        k = k.reshape(m, self.basic_in_channels, self.basic_out_channels, f, f)
        return k.transpose(1, 2)

    def _generate(self) -> List[Tensor]:
        basic = self.generate_basic(self.z)
        sizes = [r * c for r, c in self.blocks_per_layer]
        return [
            tile_basic_kernels(chunk, r, c)  # Eq. 3
            for chunk, (r, c) in zip(torch.split(basic, sizes), self.blocks_per_layer)
        ]

    def _version_key(self) -> tuple:
        return tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in self.parameters())

    def forward(self) -> List[Tensor]:
        if self.training or torch.is_grad_enabled():
            self._cache, self._cache_key = [], ()
            return self._generate()
        key = self._version_key()
        if key != self._cache_key:
            self._cache, self._cache_key = self._generate(), key
        return list(self._cache)

    def train(self, mode: bool = True) -> "StaticHyperNetwork":
        self._cache, self._cache_key = [], ()
        return super().train(mode)

    def parameter_breakdown(self) -> dict:
        """``{"embeddings": N_z M, "generator": d (N_z+1) N_in_b + f N_out_b f (d+1)}``."""
        generator = sum(p.numel() for p in (self.weight1, self.bias1, self.weight2, self.bias2))
        return {"embeddings": self.z.numel(), "generator": generator}

    def extra_repr(self) -> str:
        return (
            f"layers={len(self.kernel_shapes)}, blocks={self.z.shape[0]}, n_z={self.n_z}, "
            f"d={self.hidden_size}, basic=({self.basic_out_channels}, {self.basic_in_channels}, "
            f"{self.kernel_size}, {self.kernel_size}), init={self.init!r}"
        )
