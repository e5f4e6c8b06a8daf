"""Kernel figures (paper Figs. 2, 12, 13): tile layout and a PNG from a hyper WRN."""
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vision_fixtures as vf  # noqa: E402

sys.path.insert(0, str(vf.EXAMPLE))
import kernel_figures  # noqa: E402

from hyperfairseq.vision import build_model  # noqa: E402


def test_kernel_grid_puts_input_channels_on_rows_and_outputs_on_columns():
    kernel = torch.zeros(3, 2, 2, 2)  # (out, in, f, f)
    kernel[2, 1] = 7.0
    img = kernel_figures.kernel_grid(kernel, gap=1)
    assert img.shape == (2 * 3 - 1, 3 * 3 - 1)
    assert np.all(img[3:5, 6:8] == 7.0)  # row block 1 (input 1), column block 2 (output 2)
    assert np.isnan(img[2, 0]) and np.nansum(img) == 7.0 * 4


def test_figure_of_a_hyper_wrn_shows_a_16x16_and_a_32x32_layer(tmp_path):
    torch.manual_seed(0)
    model = build_model("hyper_wrn_40_1")
    panels = kernel_figures.figure_layers(model)
    assert [tuple(k.shape) for _, k in panels] == [(16, 16, 3, 3), (32, 32, 3, 3)]
    out = tmp_path / "fig.png"
    kernel_figures.save_figure(panels, str(out), title="test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
