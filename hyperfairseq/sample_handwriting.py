"""`python -m hyperfairseq.sample_handwriting`: unconditional handwriting from a trained checkpoint.

    python -m hyperfairseq.sample_handwriting --path checkpoints/checkpoint_best.pt --out samples/ -n 8 \
        [--steps 700] [--temperature 1.0] [--bias 0.0] [--seed 1] \
        [--prime-data data-bin/iam_ondb --prime-split valid --prime-line 0]

Writes samples/sample_NN.svg and .png per sample and samples.npz (`rows`: (n, P + steps, 3) in pen units,
`rows_normalised` the same rows normalised, the prime's `prime_length` P rows first: synthesize.save_samples).
Graves' bias b sharpens samples (π ∝ exp(π̂(1+b)), σ = exp(σ̂ − b)); temperature τ scales the mixture logits
by 1/τ and the variances by τ (not the end-of-stroke probability). With a prime, the model first reads a
real line, and the drawing shows the prime followed by the continuation.
The checkpoint alone suffices: the normalisation constants are model buffers. Sampling under a seed is
reproducible. `generate(..., record_internals=True)` also returns the per-step HyperLSTM internals
(d_h, d_x, β: what Figure 7's heat-map shows). With a `hyperlstm_synthesis` checkpoint, `--text "..."`
writes that text (synthesize.py: Graves' stop rule, an alignment figure, priming with a transcribed line).
"""

import json
import os
import sys
from typing import List, NamedTuple, Optional

import numpy as np
import torch

from hyperfairseq import cli, synthesize
from hyperfairseq.data.stroke_dataset import START_ROW
from hyperfairseq.data.strokes import read_split
from hyperfairseq.errors import InputError
from hyperfairseq.modules.mdn import sample_point
from hyperfairseq.render import render


class Generated(NamedTuple):
    """rows: (n, steps, 3) normalised samples; internals: one HyperLSTMInternals per step (T = 1), or None."""

    rows: torch.Tensor
    internals: Optional[List]


@torch.no_grad()
def generate(
    model, n: int, steps: int, generator: torch.Generator, temperature: float = 1.0, bias: float = 0.0,
    prime: Optional[torch.Tensor] = None, record_internals: bool = False,
) -> Generated:
    """Sample `steps` rows for `n` lines, one step at a time, carrying the recurrent state."""
    model.eval()
    weight = next(model.parameters())
    dtype, device = weight.dtype, weight.device
    x = torch.tensor(START_ROW, dtype=dtype, device=device).expand(n, 1, 3)
    state = None
    if prime is not None and len(prime):
        seq = torch.cat([x, prime.to(device, dtype).expand(n, -1, 3)], dim=1)
        state = model(seq[:, :-1], bias=bias).state
        x = seq[:, -1:]
    rows, internals = [], [] if record_internals else None
    for _ in range(steps):
        out = model(x, state=state, return_internals=record_internals, bias=bias)
        state = out.state
        if record_internals:
            internals.append(out.internals)
        step_params = type(out.mixture)(*(f[:, -1] for f in out.mixture))
        x = sample_point(step_params, generator, temperature).unsqueeze(1)
        rows.append(x)
    return Generated(torch.cat(rows, dim=1), internals)


def load_model(path: str, cpu: bool = True):
    """(model, task) from a checkpoint written by fairseq-train with --task handwriting (read weights_only)."""
    model, _cfg, task = cli.load_model_and_task(path)
    if not hasattr(getattr(model, "decoder", None), "norm_mean"):
        raise InputError(
            f"{path}: not a handwriting checkpoint (a {type(model).__name__}; train with --task handwriting)"
        )
    return (model if cpu or not torch.cuda.is_available() else model.cuda()), task


def denormalise(rows: torch.Tensor, model) -> torch.Tensor:
    mean, std = model.decoder.norm_mean, model.decoder.norm_std
    out = rows.clone()
    out[..., :2] = rows[..., :2] * std + mean
    return out


def main(argv=None) -> int:
    parser = cli.parser("sample_handwriting", __doc__)
    parser.add_argument("--path", required=True, help="checkpoint, e.g. checkpoints/checkpoint_best.pt")
    parser.add_argument("--out", required=True, help="output folder for SVG, PNG and samples.npz")
    parser.add_argument("-n", "--num-samples", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None,
                        help="rows per sample (default 700, IAM lines: about 700); with --text the step limit "
                             "(default 30 per character)")
    parser.add_argument("--text", default=None, help="the text to write (synthesis checkpoints only)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--bias", type=float, default=0.0, help="Graves' sampling bias b >= 0")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--prime-data", default=None, help="prepared dataset to take a priming line from")
    parser.add_argument("--prime-split", default="valid")
    parser.add_argument("--prime-line", type=int, default=0)
    parser.add_argument("--cpu", action="store_true", help="sample on the CPU even when a GPU is present")
    args = parser.parse_args(argv)
    for name in ("num_samples", "steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer; got {getattr(args, name)}")
    if not (0 < args.temperature < float("inf") and 0 <= args.bias < float("inf")):
        parser.error(f"--temperature must be > 0 and --bias >= 0, both finite; got {args.temperature}, {args.bias}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.error(f"--out {args.out} is a file; expected a folder for the samples")
    try:
        model, _task = load_model(args.path, cpu=args.cpu)
        if synthesize.is_synthesis_model(model) or args.text is not None:
            return _synthesis(args, model)
        prime = _prime(args)
    except (OSError, ValueError, IndexError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    args.steps = args.steps or 700
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(args.seed)
    gen = generate(model, args.num_samples, args.steps, generator, args.temperature, args.bias,
                   None if prime is None else prime.to(device))
    rows = gen.rows if prime is None else torch.cat([prime.to(device).expand(args.num_samples, -1, 3), gen.rows], 1)
    pen = denormalise(rows, model).cpu().numpy()
    os.makedirs(args.out, exist_ok=True)
    for i, line in enumerate(pen):
        render(line, os.path.join(args.out, f"sample_{i:02d}"),
               title=f"sample {i} (T={args.temperature}, b={args.bias})")
    synthesize.save_samples(args.out, rows, pen, 0 if prime is None else len(prime))
    with open(os.path.join(args.out, "samples.json"), "w") as f:
        json.dump(vars(args), f, indent=2)
    print(f"wrote {len(pen)} samples to {args.out}")
    return 0


def _synthesis(args, model) -> int:
    if not synthesize.is_synthesis_model(model):
        raise ValueError(f"{args.path} is an unconditional handwriting model ({type(model).__name__}); --text needs a "
                         "synthesis checkpoint (fairseq-train --task handwriting_synthesis --arch hyperlstm_synthesis)")
    if args.text is None:
        raise ValueError(f"{args.path} is a synthesis model: give the text to write with --text")
    return synthesize.run(args, model, denormalise)


def _prime(args) -> Optional[torch.Tensor]:
    if args.prime_data is None:
        return None
    rows, index = read_split(args.prime_data, args.prime_split)
    if not 0 <= args.prime_line < len(index) - 1:
        raise IndexError(f"--prime-line {args.prime_line} outside the {len(index) - 1} lines of "
                         f"{args.prime_data}/{args.prime_split}")
    return torch.from_numpy(np.array(rows[index[args.prime_line] : index[args.prime_line + 1]], dtype=np.float32))


if __name__ == "__main__":
    sys.exit(main())
