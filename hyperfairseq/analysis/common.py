"""Loading checkpoints through fairseq and tracing the HyperLSTM's internals over a sequence.

A trace runs the recurrent network once with `return_internals=True` (which forces the reference path
of `hyperfairseq.modules.hyperlstm`), so every analysis reads the same per-step tensors the module
computes: d_h (Figures 4, 7) and the cell state c (Figure 5). Text traces feed the end-of-line symbol
first and then the text; the step that reads the end-of-line symbol supplies d_h(t-1) for the first
character. Handwriting traces sample strokes one step at a time from the start row.
"""

import os
import shlex
import sys
from typing import List, NamedTuple, Optional

import numpy as np
import torch

from hyperfairseq.errors import InputError
from hyperfairseq.modules import HyperLSTM
from hyperfairseq.modules.hyperlstm import HyperLSTMInternals


class Loaded(NamedTuple):
    """A checkpoint loaded through fairseq: `kind` is "lm" or "handwriting"; `lm` is a CharLM for LMs."""

    kind: str
    model: torch.nn.Module
    rnn: HyperLSTM
    arch: str
    lm: Optional[object]


class Trace(NamedTuple):
    """Internals (L, T, 1, ...) over one sequence; `d_h_before` (L, 1, 4, N_h) is d_h of the step before
    the first (None: Δ_0 = 0); exactly one of `symbols` (text, one per step) and `pen` ((T, 3) rows in pen
    units) is set."""

    internals: HyperLSTMInternals
    d_h_before: Optional[torch.Tensor]
    symbols: Optional[List[str]]
    pen: Optional[np.ndarray]


def load(path: str, data: Optional[str] = None) -> Loaded:
    """Any hyperfairseq LM or handwriting checkpoint, on the CPU in float32, eval mode (read weights_only)."""
    from hyperfairseq.cli import load_model_and_task
    from hyperfairseq.sample import CharLM

    overrides = {"data": data} if data else None
    model, cfg, task = load_model_and_task(path, overrides)
    model = model.float().cpu().eval()
    arch = str(getattr(cfg.model, "_name", None) or getattr(cfg.model, "arch", "") or type(model).__name__)
    rnn = getattr(getattr(model, "decoder", None), "rnn", None)
    if not isinstance(rnn, HyperLSTM):
        raise InputError(f"{path}: not a hyperfairseq HyperLSTM checkpoint (no decoder.rnn HyperLSTM)")
    if getattr(model.decoder, "supports_carry", False):
        return Loaded("lm", model, rnn, arch, CharLM(model, task.target_dictionary))
    return Loaded("handwriting", model, rnn, arch, None)


def display_symbol(lm, index: int) -> str:
    text = lm.decode([index])
    return "⏎" if text == "\n" else text


@torch.no_grad()
def trace_text(loaded: Loaded, text: str) -> Trace:
    """Read `text` from the start of a line (after the end-of-line symbol) and keep the internals."""
    lm = loaded.lm
    if lm is None:
        raise ValueError("text traces need a language model checkpoint")
    ids = lm.encode(text, line_ends=False)
    if not ids:
        raise ValueError("nothing to analyse: the text is empty")
    tokens = torch.tensor([[lm.dictionary.eos()] + ids])
    x = lm.decoder.embed(tokens)
    _, _, internals = loaded.rnn(x, return_internals=True)
    first = internals.d_h[:, :1] if internals.d_h is not None else None
    steps = HyperLSTMInternals(*(None if f is None else f[:, 1:] for f in internals))
    return Trace(steps, first, [display_symbol(lm, i) for i in ids], None)


@torch.no_grad()
def trace_strokes(loaded: Loaded, steps: int, seed: int, temperature: float, bias: float) -> Trace:
    """Sample `steps` pen rows from a handwriting checkpoint, keeping every step's internals."""
    from hyperfairseq.sample_handwriting import denormalise, generate

    generator = torch.Generator().manual_seed(seed)
    gen = generate(loaded.model, 1, steps, generator, temperature, bias, record_internals=True)
    per_step = gen.internals
    internals = HyperLSTMInternals(
        *(None if per_step[0][k] is None else torch.cat([s[k] for s in per_step], dim=1)
          for k in range(len(per_step[0])))
    )
    pen = denormalise(gen.rows, loaded.model)[0].numpy()
    return Trace(internals, None, None, pen)


def sample_trace(loaded: Loaded, length: int, seed: int, temperature: float, prefix: str = "",
                 bias: float = 0.0) -> Trace:
    """A sampled sequence: text (prefix + `length` symbols) for LMs, `length` pen steps for handwriting."""
    if loaded.kind == "lm":
        return trace_text(loaded, loaded.lm.sample(prefix, length, temperature, seed))
    return trace_strokes(loaded, length, seed, temperature, bias)


def pyplot():
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def finish_figure(fig, ax, out: str, title: Optional[str] = None) -> None:
    """Title (on `ax`, or the whole figure when ax is None), layout, save as `out` (and an SVG beside a PNG), close."""
    if title:
        (fig.suptitle if ax is None else ax.set_title)(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    if out.endswith(".png"):
        fig.savefig(out[:-4] + ".svg")
    pyplot().close(fig)


def write_sidecar(figure: str, info: dict, argv: Optional[List[str]] = None) -> str:
    """Write `<figure without extension>.json`: how the figure was made (command, commit, hardware...)."""
    from hyperfairseq import run_record

    stem = os.path.splitext(figure)[0]
    argv = sys.argv[1:] if argv is None else argv
    record = {"figure": os.path.basename(figure),
              **run_record.stamp("python -m hyperfairseq.analysis " + " ".join(shlex.quote(str(a)) for a in argv)),
              **info}
    record["hardware"].pop("load_average_1min", None)
    return str(run_record.write(stem + ".json", record))
