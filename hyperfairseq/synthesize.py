"""Handwriting synthesis from a `hyperlstm_synthesis` checkpoint: write a given text (Graves 2013 §5.1–5.2).

Run through the sampler's command line (issue 15)::

    python -m hyperfairseq.sample_handwriting --path CKPT --text "any text" [--prime-data D --prime-line N]
        [--bias B] [--temperature T] [--steps LIMIT] [-n N] [--seed S] --out DIR

Sampling feeds each sampled row back, one step at a time, with κ and w in the state. It stops when the
window has passed the last character (Graves §5.1: φ(t, U + 1) > φ(t, u) for all u ≤ U; the row of
that step is the last one written) or at the step limit (default 30 rows per character), and says
which. Priming (Graves §5.2): the model first reads a real line of `--prime-data` while its window reads
that line's transcript; the text to write is appended to the transcript after a space, so the window
carries on from the prime into the new text, in the primed style.

Writes, per sample i: sample_<i>.svg / .png (the written text; with a prime, the prime and then the
continuation), alignment_<i>.png (the text above φ(t, u), Graves Fig. 13); samples.npz (`save_samples`:
rows in pen units and the same rows normalised, prime first; lengths, φ) and samples.json (the arguments and
each stop reason).
"""

import json
import os
from typing import List, NamedTuple, Optional, Tuple

import numpy as np
import torch

from hyperfairseq.data.stroke_dataset import START_ROW
from hyperfairseq.data.synthesis_data import encode, read_texts
from hyperfairseq.modules.mdn import sample_point
from hyperfairseq.modules.soft_window import passed_end

STEPS_PER_CHARACTER = 30  # default step limit per character of the text (Hershey lines: ~11 rows each)
WINDOW_RULE = "the window passed the last character (Graves' rule)"


class Written(NamedTuple):
    """rows (n, T, 3) normalised, zero after each line's end; lengths (n,) rows written; phi (n, T, U + 1);
    stopped_by: one reason per sample; chars: each line's full character sequence (prime transcript + text)."""

    rows: torch.Tensor
    lengths: torch.Tensor
    phi: torch.Tensor
    stopped_by: List[str]
    chars: List[str]


def is_synthesis_model(model) -> bool:
    return hasattr(model, "alphabet") and hasattr(getattr(model, "decoder", None), "window")


def check_text(text: str, alphabet: str) -> str:
    """The text to write, or ValueError naming what is wrong with it."""
    if not text or not text.strip():
        raise ValueError("--text is empty: give the text to write, e.g. --text \"hello world\"")
    outside = sorted(set(text) - set(alphabet))
    if outside:
        raise ValueError(f"--text has characters outside the model's alphabet: {''.join(outside)!r} "
                         f"(the model writes {alphabet!r})")
    return text


def encode_batch(texts: List[str], alphabet: str, device) -> Tuple[torch.Tensor, torch.Tensor]:
    """(chars (n, U) padded with 0, lengths (n,)) of `texts` (data/synthesis_data.py's encoding)."""
    codes = [torch.from_numpy(encode(t, alphabet)) for t in texts]
    lengths = torch.tensor([len(c) for c in codes])
    chars = torch.zeros(len(codes), int(lengths.max()), dtype=torch.long)
    for i, c in enumerate(codes):
        chars[i, : len(c)] = c
    return chars.to(device), lengths.to(device)


@torch.no_grad()
def write(model, texts: List[str], generator: torch.Generator, max_steps: int, bias: float = 0.0,
          temperature: float = 1.0, prime: Optional[torch.Tensor] = None, prime_text: str = "") -> Written:
    """Sample one line per entry of `texts` (after `prime_text`, which the prime rows spell)."""
    model.eval()
    weight = next(model.parameters())
    n = len(texts)
    full = [(prime_text + " " + t) if prime_text else t for t in texts]
    chars, char_lengths = encode_batch(full, model.alphabet, weight.device)
    x = torch.tensor(START_ROW, dtype=weight.dtype, device=weight.device).expand(n, 1, 3)
    state = None
    if prime is not None and len(prime):
        seq = torch.cat([x, prime.to(weight).expand(n, -1, 3)], dim=1)
        state = model(seq[:, :-1], chars, bias=bias).state
        x = seq[:, -1:]
    rows, phis = [], []
    lengths = torch.full((n,), max_steps, dtype=torch.long)
    done = torch.zeros(n, dtype=torch.bool)
    for t in range(max_steps):
        out = model(x, chars, state=state, bias=bias)
        state = out.state
        x = sample_point(type(out.mixture)(*(f[:, -1] for f in out.mixture)), generator, temperature).unsqueeze(1)
        rows.append(torch.where(done.to(x.device)[:, None, None], torch.zeros_like(x), x))
        phis.append(out.window.phi[:, -1])
        stop = passed_end(out.window.phi[:, -1], char_lengths).cpu() & ~done
        lengths[stop] = t + 1
        done |= stop
        if bool(done.all()):
            break
    reasons = [f"{WINDOW_RULE} at step {int(k)}" if d else f"the step limit of {max_steps} rows"
               for d, k in zip(done.tolist(), lengths)]
    return Written(torch.cat(rows, 1), lengths, torch.stack(phis, 1), reasons, full)


def alignment_figure(rows_pen: np.ndarray, phi: np.ndarray, chars: str, path: str, title: str = "") -> None:
    """The written line above φ(t, u) (Graves Fig. 13): t across, one row per character u."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hyperfairseq.render import rows_to_strokes

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6.0, 0.25 * len(chars) + 3), 5.0),
                                      gridspec_kw={"height_ratios": [1, 1.6]})
    for stroke in rows_to_strokes(rows_pen):
        top.plot(stroke[:, 0], stroke[:, 1], "k-" if len(stroke) > 1 else "k.", linewidth=1.2, markersize=2)
    top.set_aspect("equal")
    top.axis("off")
    top.set_title(title, fontsize=9)
    bottom.imshow(phi[:, : len(chars)].T, aspect="auto", origin="upper", cmap="Greys", interpolation="nearest")
    bottom.set_yticks(range(len(chars)))
    bottom.set_yticklabels([c if c != " " else "␣" for c in chars], fontsize=7, family="monospace")
    bottom.set_xlabel("step t")
    bottom.set_ylabel("character u")
    bottom.set_title("window weights φ(t, u)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def prime_line(args, model):
    """(rows, transcript) of `--prime-line` in `--prime-data`, or (None, "")."""
    if args.prime_data is None:
        return None, ""
    from hyperfairseq.data.strokes import read_split

    rows, index = read_split(args.prime_data, args.prime_split)
    texts = read_texts(args.prime_data, args.prime_split)
    if not 0 <= args.prime_line < len(index) - 1:
        raise IndexError(f"--prime-line {args.prime_line} outside the {len(index) - 1} lines of "
                         f"{args.prime_data}/{args.prime_split}")
    text = texts[args.prime_line]
    unknown = sorted(set(text) - set(model.alphabet))
    if unknown:
        raise ValueError(
            f"the prime's transcript {text!r} has characters outside the model's alphabet: {''.join(unknown)!r}"
        )
    return torch.from_numpy(np.array(rows[index[args.prime_line] : index[args.prime_line + 1]], dtype=np.float32)), text


def save_samples(folder: str, rows: torch.Tensor, pen: np.ndarray, prime_length: int, **extra: np.ndarray) -> None:
    """samples.npz, the same for both samplers: `rows` (n, P + steps, 3) in pen units and `rows_normalised`,
    the same rows as the model reads them (H1); the prime's P rows first in both, `prime_length` P (0 without
    a prime); `extra` arrays (synthesis: `lengths`, rows written after the prime, and `phi`)."""
    np.savez(os.path.join(folder, "samples.npz"), rows=pen, rows_normalised=rows.cpu().numpy(),
             prime_length=np.int64(prime_length), **extra)


def run(args, model, denormalise) -> int:
    """The sampler's synthesis mode (args from sample_handwriting's parser). Raises ValueError / IndexError
    / FileNotFoundError on bad input, before anything is written."""
    text = check_text(args.text, model.alphabet)
    prime, prime_text = prime_line(args, model)
    chars = len(text) + (len(prime_text) + 1 if prime_text else 0)
    limit = args.steps or STEPS_PER_CHARACTER * chars
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(args.seed)
    out = write(model, [text] * args.num_samples, generator, limit, args.bias, args.temperature, prime, prime_text)
    rows = out.rows if prime is None else torch.cat([prime.to(device).expand(args.num_samples, -1, 3), out.rows], 1)
    start = 0 if prime is None else len(prime)
    pen = denormalise(rows, model).cpu().numpy()
    os.makedirs(args.out, exist_ok=True)
    from hyperfairseq.render import render

    for i, line in enumerate(pen):
        line = line[: start + int(out.lengths[i])]
        render(line, os.path.join(args.out, f"sample_{i:02d}"), title=f"{text!r} (T={args.temperature}, b={args.bias})")
        alignment_figure(line[start:], out.phi[i, : int(out.lengths[i])].cpu().numpy(), out.chars[i],
                         os.path.join(args.out, f"alignment_{i:02d}.png"), title=text)
        print(f"sample {i}: {int(out.lengths[i])} rows; stopped by {out.stopped_by[i]}")
    save_samples(args.out, rows, pen, start, lengths=out.lengths.numpy(), phi=out.phi.cpu().numpy())
    with open(os.path.join(args.out, "samples.json"), "w") as f:
        json.dump(dict(vars(args), characters=out.chars[0], stopped_by=out.stopped_by, step_limit=limit), f, indent=2)
    print(f"wrote {len(pen)} samples of {text!r} to {args.out}")
    return 0
