"""Figure 5: normalised histograms of φ(c_t) = tanh(c_t) (tanh(LN(c_t)) in layer-normalised models),
the cell output before the output gate, collected over a sampled sequence (paper-spec §5).

`cell.ln_cell` is the layer norm of c on the way to h_t (an identity without LN), so φ = tanh(ln_cell(c))
is exactly what Eq. 13 multiplies by σ(o_t). Values of every layer and unit are pooled; the histogram has
fixed bins on [−1, 1] and density=True, so it integrates to one.
"""

from typing import List, Optional, Sequence

import numpy as np
import torch

from .common import Trace, finish_figure, pyplot

BINS = 50


@torch.no_grad()
def cell_outputs(trace: Trace, rnn, layer: Optional[int] = None) -> np.ndarray:
    """φ(c_t) of every step and unit, of one layer or (None) all layers pooled: a flat array."""
    layers = range(rnn.num_layers) if layer is None else [layer % rnn.num_layers]
    values = [torch.tanh(rnn.layers[index].ln_cell(trace.internals.c[index])).flatten() for index in layers]
    return torch.cat(values).numpy()


def histogram(values: np.ndarray, bins: int = BINS):
    """(density, edges): a normalised histogram on [−1, 1] (Σ density·width = 1)."""
    return np.histogram(values, bins=bins, range=(-1.0, 1.0), density=True)


def plot(histograms: Sequence, labels: List[str], out: str, title: str = "") -> None:
    """Overlay (density, edges) histograms as step lines, one per checkpoint."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for (density, edges), label in zip(histograms, labels):
        ax.stairs(density, edges, label=label, linewidth=1.5)
    ax.set_xlabel(r"$\tanh(c_t)$ ($\tanh(\mathrm{LN}(c_t))$ with layer norm)")
    ax.set_ylabel("density")
    ax.set_xlim(-1.0, 1.0)
    ax.legend(fontsize=8)
    finish_figure(fig, ax, out, title)
