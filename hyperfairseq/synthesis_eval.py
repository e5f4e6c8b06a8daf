"""`python -m hyperfairseq.synthesis_eval`: the alignment and legibility measurements of issue 15.

    python -m hyperfairseq.synthesis_eval alignment --path CKPT --data D [--split valid] --json OUT
    python -m hyperfairseq.synthesis_eval legibility --path CKPT --data D [--split test] [--texts 100]
        [--distractors 5] [--bias 1.0] [--temperature 1.0] [--seed 1] --json OUT

alignment: teacher-forced over every line of the split. A line is *aligned* when, at its final step,
the window's centre lies on the last character: argmax_{1 ≤ u ≤ U} φ(T, u) = U (reported as a share of
lines), and κ never decreases (the smallest step Δκ over all lines, Gaussians and steps is reported;
Eq. 51 makes it positive by construction, the number checks the code).

legibility (Hershey datasets): for each of the first `--texts` texts of the split that have at least
`--distractors` other texts of the same number of characters, the model writes the text once; the sample
counts as legible when its dynamic-time-warping distance to the Hershey rendering of the text is smaller
than to the renderings of each of `--distractors` same-length other texts (chance: 1 / (1 + distractors)).
Trajectories are normalised (ours): absolute pen points, minus their mean, divided by their y standard
deviation, resampled to `RESAMPLED` points evenly spaced along the path; references are rendered without
augmentation in every face of the dataset, and the distance to a text is the smallest over its faces.
DTW: dtaidistance's 2-D DTW (squared Euclidean step cost; it returns the root of the path sum).

Each command writes a run record (command, commit, hardware, versions, result) to --json.
"""

import json
import shlex
import sys
import time
from typing import Dict, List

import numpy as np
import torch

from hyperfairseq import cli, run_record
from hyperfairseq.data import hershey
from hyperfairseq.data import strokes as S
from hyperfairseq.data.kanjivg import default_pkg_dir
from hyperfairseq.data.synthesis_data import read_texts
from hyperfairseq.data.text_stroke_dataset import TextStrokeDataset

RESAMPLED = 256


def load(path: str):
    from hyperfairseq.sample_handwriting import load_model
    from hyperfairseq.synthesize import is_synthesis_model

    model, _ = load_model(path)
    if not is_synthesis_model(model):
        raise ValueError(f"{path}: not a synthesis checkpoint (--task handwriting_synthesis)")
    return model.float().eval()


@torch.no_grad()
def alignment(model, data: str, split: str, batch_size: int = 64) -> dict:
    ds = TextStrokeDataset.load(data, split, alphabet=model.alphabet)
    aligned, lines, min_step = 0, 0, float("inf")
    for start in range(0, len(ds), batch_size):
        b = ds.collater([ds[i] for i in range(start, min(start + batch_size, len(ds)))])
        net = b["net_input"]
        out = model(**net)
        last = out.window.phi[torch.arange(len(net["lengths"])), net["lengths"] - 1]  # (B, U + 1) at t = T
        for phi, u in zip(last, net["char_lengths"]):
            aligned += int(torch.argmax(phi[:u]) == u - 1)
        kappa = torch.cat([torch.zeros_like(out.window.kappa[:, :1]), out.window.kappa], 1)
        steps = torch.arange(kappa.shape[1] - 1)[None, :] < net["lengths"][:, None]
        min_step = min(min_step, float(kappa.diff(dim=1)[steps].min()))
        lines += len(net["lengths"])
    return {"lines": lines, "aligned_lines": aligned, "aligned_share": aligned / lines,
            "min_kappa_step": min_step, "kappa_never_decreases": min_step >= 0}


def normalised(rows_pen: np.ndarray) -> np.ndarray:
    """Absolute points of (T, 3) pen rows, centred, scaled by the y std, resampled along the path."""
    points = np.cumsum(np.asarray(rows_pen, dtype=np.float64)[:, :2], axis=0)
    points = points - points.mean(0)
    points = points / max(points[:, 1].std(), 1e-9)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    at = np.linspace(0.0, arc[-1], RESAMPLED)
    return np.column_stack([np.interp(at, arc, points[:, 0]), np.interp(at, arc, points[:, 1])])


def references(texts: List[str], meta: dict, wheel: str) -> Dict[str, List[np.ndarray]]:
    """Each text rendered (no augmentation) in every face of the dataset, normalised."""
    faces = meta["options"]["faces"]
    fonts = hershey.load_faces(wheel, faces)
    spacing = meta["options"]["spacing"]
    return {t: [normalised(S.line_rows(hershey.render_line(t, fonts[f], spacing))) for f in faces] for t in set(texts)}


def legibility_trials(texts: List[str], n_texts: int, distractors: int, seed: int):
    """[(text, [distractor texts])] for the first n_texts texts with enough same-length partners."""
    rng = np.random.default_rng(seed)
    unique = list(dict.fromkeys(texts))
    trials = []
    for text in unique:
        others = [t for t in unique if len(t) == len(text) and t != text]
        if len(others) >= distractors:
            trials.append((text, [others[i] for i in rng.choice(len(others), distractors, replace=False)]))
        if len(trials) == n_texts:
            break
    return trials


def legibility(model, data: str, split: str, args) -> dict:
    from dtaidistance import dtw_ndim

    from hyperfairseq.sample_handwriting import denormalise
    from hyperfairseq.synthesize import STEPS_PER_CHARACTER, write

    meta = S.read_meta(data)
    trials = legibility_trials(read_texts(data, split), args.texts, args.distractors, args.seed)
    if len(trials) < args.texts:
        raise ValueError(f"{data}/{split}.text: only {len(trials)} texts have {args.distractors} same-length others")
    refs = references([t for trial in trials for t in [trial[0], *trial[1]]], meta,
                      hershey.find_wheel(args.pkgs or default_pkg_dir()))
    texts = [t for t, _ in trials]
    generator = torch.Generator().manual_seed(args.seed)
    out = write(model, texts, generator, STEPS_PER_CHARACTER * max(map(len, texts)), args.bias, args.temperature)
    pen = denormalise(out.rows, model).numpy()
    legible, margins = 0, []
    for i, (text, others) in enumerate(trials):
        sample = normalised(pen[i, : int(out.lengths[i])])
        dist = lambda t: min(dtw_ndim.distance(sample, r, use_c=True) for r in refs[t])  # noqa: E731
        own, nearest_other = dist(text), min(dist(t) for t in others)
        legible += int(own < nearest_other)
        margins.append(nearest_other - own)
    stopped = sum("window" in r for r in out.stopped_by)
    return {"texts": len(trials), "legible": legible, "legible_share": legible / len(trials),
            "chance": 1.0 / (1 + args.distractors), "distractors": args.distractors,
            "median_margin": float(np.median(margins)), "stopped_by_window_rule": stopped,
            "bias": args.bias, "temperature": args.temperature, "seed": args.seed}


def write_record(path: str, name: str, result: dict, argv: List[str], wall: float, ckpt: str) -> None:
    command = "python -m hyperfairseq.synthesis_eval " + " ".join(map(shlex.quote, argv))
    run_record.write(path, {"name": name, **run_record.stamp(command, checkpoint=ckpt, wall_seconds=round(wall, 1),
                                                             result=result)})


def _check_legibility_args(parser, args) -> None:
    """Counts of at least 1, a positive temperature, a bias of at least 0 (NaN fails each comparison)."""
    for flag, value in (("--texts", args.texts), ("--distractors", args.distractors)):
        if value < 1:
            parser.error(f"{flag} must be at least 1; got {value}")
    if not args.temperature > 0:
        parser.error(f"--temperature must be positive; got {args.temperature}")
    if not args.bias >= 0:
        parser.error(f"--bias must be at least 0; got {args.bias}")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = cli.parser("synthesis_eval", __doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, split in (("alignment", "valid"), ("legibility", "test")):
        p = sub.add_parser(name)
        p.add_argument("--path", required=True, help="a hyperlstm_synthesis checkpoint")
        p.add_argument("--data", required=True, help="the prepared synthesis dataset")
        p.add_argument("--split", default=split)
        p.add_argument("--json", required=True, help="run record to write")
        if name == "legibility":
            p.add_argument("--texts", type=int, default=100)
            p.add_argument("--distractors", type=int, default=5)
            p.add_argument("--bias", type=float, default=1.0)
            p.add_argument("--temperature", type=float, default=1.0)
            p.add_argument("--seed", type=int, default=1)
            p.add_argument("--pkgs", default=None, help="folder holding the Hershey-Fonts wheel")
    args = parser.parse_args(argv)
    if args.command == "legibility":
        _check_legibility_args(parser, args)
    torch.manual_seed(0)
    start = time.time()
    try:
        model = load(args.path)
        if args.command == "alignment":
            result = alignment(model, args.data, args.split)
        else:
            result = legibility(model, args.data, args.split, args)
    except (FileNotFoundError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result.update(split=args.split, data=args.data, dataset_label=S.read_meta(args.data).get("label"))
    write_record(args.json, f"synthesis_{args.command}", result, argv, time.time() - start, args.path)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
