"""Figure 4 / Figure 7: how much the HyperLSTM changes its recurrent weights at every step.

The effective recurrent matrix of gate y at step t is diag(d_h^y(t)) W_h^y (Eq. 12: d_h scales the rows
of W_h h_{t-1}), so the change from one step to the next is (paper-spec §5, R17)

    Δ_t^y = || diag(d_h^y(t) − d_h^y(t−1)) W_h^y ||_F = sqrt( Σ_k (d_h^y(t)_k − d_h^y(t−1)_k)² ||W_h^y[k,:]||² ),

with W_h^y rows y·N_h … (y+1)·N_h of `weight_hh` (gates stored i, f, g, o). For text, d_h(t−1) of the
first character is the d_h of the step that read the end-of-line symbol before it, so every character
has a defined Δ. For sampled strokes there is no step before the first: Δ_0 = 0.
Heat-map rows are scaled per gate by that gate's 99th percentile of Δ over the sequence (0 white, the
percentile and above darkest), so that the transient of the first steps after a zero state does not wash
out the rest; the unscaled maxima go to the figure's .json record.
"""

from typing import Optional

import numpy as np
import torch
from torch import Tensor

from hyperfairseq.modules.hyperlstm import GATES, NUM_GATES

from .common import Trace, finish_figure, pyplot

GATE_LABELS = [f"$W_h^{{{g}}}$" for g in GATES]


def gate_row_norms(weight_hh: Tensor) -> Tensor:
    """(4·N_h, N_h) W_h -> (4, N_h) squared Euclidean norms of every gate block's rows."""
    hidden = weight_hh.shape[1]
    return weight_hh.detach().view(NUM_GATES, hidden, hidden).pow(2).sum(-1)


def weight_change(d_h: Tensor, weight_hh: Tensor, d_h_before: Optional[Tensor] = None) -> Tensor:
    """Δ_t^y for a (T, 4, N_h) sequence of d_h: returns (T, 4), Δ_0 = 0 when `d_h_before` is None."""
    before = d_h[:1] if d_h_before is None else d_h_before.reshape(1, *d_h.shape[1:])
    diff = d_h - torch.cat([before, d_h[:-1]], dim=0)
    return (diff.pow(2) * gate_row_norms(weight_hh)).sum(-1).sqrt()


def trace_weight_change(trace: Trace, rnn, layer: int = -1) -> Tensor:
    """(T, 4) Δ of one layer over a trace (batch 1)."""
    if trace.internals.d_h is None:
        raise ValueError("weight-change needs a HyperLSTM checkpoint (d_h exists only with the hypernetwork)")
    layer = layer % rnn.num_layers
    before = None if trace.d_h_before is None else trace.d_h_before[layer, 0, 0]
    return weight_change(trace.internals.d_h[layer, :, 0], rnn.layers[layer].weight_hh, before)


def _normalised(delta: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    top = np.percentile(delta, percentile, axis=0, keepdims=True)
    return np.clip(delta / np.where(top > 0, top, 1.0), 0.0, 1.0)


def plot_text(symbols, delta: np.ndarray, out_stem: str, width: int = 80, title: str = "") -> None:
    """Characters with four heat-map rows (one per gate) under every character, wrapped every `width`."""
    plt = pyplot()
    scaled = _normalised(delta)
    chunks = [range(s, min(s + width, len(symbols))) for s in range(0, len(symbols), width)]
    fig, axes = plt.subplots(len(chunks), 1, figsize=(0.13 * width + 0.8, 0.75 * len(chunks) + 0.6), squeeze=False)
    for ax, chunk in zip(axes[:, 0], chunks):
        block = np.ma.masked_all((NUM_GATES, width))
        block[:, : len(chunk)] = scaled[list(chunk)].T
        cmap = plt.get_cmap("Reds").with_extremes(bad="white")
        ax.imshow(block, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
        ax.set_xticks(range(len(chunk)))
        ax.set_xticklabels([symbols[i] for i in chunk], fontfamily="monospace", fontsize=8)
        ax.xaxis.tick_top()
        ax.tick_params(axis="x", length=0, pad=1)
        ax.set_yticks(range(NUM_GATES))
        ax.set_yticklabels(GATE_LABELS, fontsize=6)
        ax.set_xlim(-0.5, width - 0.5)
    finish_figure(fig, None, f"{out_stem}.png", title)


def plot_strokes(pen: np.ndarray, delta: np.ndarray, out_stem: str, title: str = "") -> None:
    """Rendered strokes above four heat-map rows (one per gate) over the pen steps."""
    from hyperfairseq.render import rows_to_strokes

    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 4.5), gridspec_kw={"height_ratios": [3, 1]})
    for stroke in rows_to_strokes(pen):
        top.plot(stroke[:, 0], stroke[:, 1], "k-", linewidth=1.2)
    top.set_aspect("equal")
    top.axis("off")
    bottom.imshow(_normalised(delta).T, cmap="Reds", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    pen_up = np.flatnonzero(pen[:, 2] > 0.5)
    bottom.plot(pen_up, np.full(len(pen_up), -0.75), "kv", markersize=3, clip_on=False, label="pen up")
    bottom.set_ylim(NUM_GATES - 0.5, -0.5)
    bottom.set_yticks(range(NUM_GATES))
    bottom.set_yticklabels(GATE_LABELS, fontsize=7)
    bottom.set_xlabel("pen step (▼ end of stroke)")
    finish_figure(fig, None, f"{out_stem}.png", title)
