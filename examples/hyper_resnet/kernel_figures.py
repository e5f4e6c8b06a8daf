"""Kernel figures in the style of the paper's Figures 2, 12 and 13 (paper-spec §5).

    python examples/hyper_resnet/kernel_figures.py --checkpoint runs/convnet/checkpoint.pt \
        --checkpoint runs/hyper_convnet/checkpoint.pt --out docs/figures/fig2_mnist_kernels.png

Each kernel ``(N_out, N_in, f, f)`` is drawn as a grid of f x f grey tiles, row = input channel and
column = output channel (the Eq. 3 layout, C4), so a tiled generated 32x32 layer shows its four
16x16 basic kernels.  Next to each grid: a histogram of the kernel's values.
"""
import argparse
import os
import sys
from typing import List, Sequence, Tuple

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)  # train.py (imported in main) puts the checkout on sys.path if needed


def kernel_grid(kernel: torch.Tensor, gap: int = 1) -> np.ndarray:
    """``(N_out, N_in, f, f)`` -> 2-D image, tile (i, o) at row i, column o, NaN gaps between tiles."""
    n_out, n_in, kh, kw = kernel.shape
    k = kernel.detach().float().cpu().numpy()
    img = np.full((n_in * (kh + gap) - gap, n_out * (kw + gap) - gap), np.nan)
    for i in range(n_in):
        for o in range(n_out):
            img[i * (kh + gap): i * (kh + gap) + kh, o * (kw + gap): o * (kw + gap) + kw] = k[o, i]
    return img


def figure_layers(model) -> List[Tuple[str, torch.Tensor]]:
    """The layers the paper shows: conv2 for the convnet; a 16x16 and a 32x32 3x3 layer for WRNs."""
    model.eval()
    with torch.no_grad():
        kernels = model.main_kernels()
    if len(kernels) == 1:
        return [("conv2 7x7x16x16", kernels[0].detach())]
    chosen = []
    for want in (16, 32):
        for j, k in enumerate(kernels):
            if k.shape[0] == want and k.shape[1] == want:
                chosen.append((f"layer {j} 3x3x{want}x{want}", k.detach()))
                break
    return chosen


def save_figure(panels: Sequence[Tuple[str, torch.Tensor]], out: str, title: str = "") -> None:
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # a DEBUG root logger would flood output
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 5 * len(panels)), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 1]})
    for (name, kernel), (ax_img, ax_hist) in zip(panels, axes):
        lim = float(kernel.abs().max()) or 1.0
        ax_img.imshow(kernel_grid(kernel), cmap="gray", vmin=-lim, vmax=lim, interpolation="nearest")
        ax_img.set_title(name)
        ax_img.set_xlabel("output channel")
        ax_img.set_ylabel("input channel")
        ax_img.set_xticks([])
        ax_img.set_yticks([])
        ax_hist.hist(kernel.detach().float().flatten().cpu().numpy(), bins=60, color="0.3")
        ax_hist.set_title("values")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)


def save_model_kernels(model, out: str, title: str = "") -> None:
    save_figure(figure_layers(model), out, title)


def main(argv=None) -> int:
    import train as T

    p = argparse.ArgumentParser(description="learned vs generated kernels (paper Figs. 2, 12, 13)")
    p.add_argument("--checkpoint", action="append", required=True, help="a train.py checkpoint (repeatable)")
    p.add_argument("--out", required=True, help="PNG path")
    args = p.parse_args(argv)
    panels = []
    try:
        for path in args.checkpoint:
            ckpt = T.load_checkpoint(path)
            model = T.make_model(ckpt["arch"], ckpt["dataset"], ckpt["settings"]["hyper_init"])
            T.restore_model(model, ckpt, path)
            kind = "generated" if model.use_hyper else "learned"
            panels += [(f"{ckpt['arch']} ({kind}), {name}", k) for name, k in figure_layers(model)]
    except T.UsageError as err:
        print(f"kernel_figures.py: error: {err}", file=sys.stderr)
        return 2
    save_figure(panels, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
