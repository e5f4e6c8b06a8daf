"""`python -m hyperfairseq.analysis SUBCOMMAND`: the paper's analyses (Figures 4-7) and the results page.

    python -m hyperfairseq.analysis weight-change --path CKPT [--text "..." | --length 200 --seed 1] \
        --out docs/figures/fig4_weight_change_ptb            # Figure 4 (text) / Figure 7 (strokes)
    python -m hyperfairseq.analysis saturation --path A.pt B.pt --labels LSTM HyperLSTM \
        --out docs/figures/fig5_saturation_ptb.png          # Figure 5
    python -m hyperfairseq.analysis curves --log a/train.log b/train.log --labels A B \
        --out docs/figures/fig6_curves_ptb.png              # Figure 6
    python -m hyperfairseq.analysis results --runs docs/runs --out docs/results.md [--readme README.md] [--smoke]

Checkpoints are loaded through fairseq (`--data` overrides the folder of dict.txt for LMs). Every figure
gets a `<name>.json` beside it saying how it was made (command, checkpoint, commit, hardware), which
the results page reads.
"""

import argparse
import os
import sys

import numpy as np

from hyperfairseq import cli


def _stem(out: str) -> str:
    root, ext = os.path.splitext(out)
    return root if ext.lower() in (".png", ".svg") else out


def weight_change_main(args) -> int:
    from . import common, weight_change

    loaded = common.load(args.path, args.data)
    if args.text is not None or args.text_file is not None:
        text = args.text if args.text is not None else open(args.text_file, encoding="utf-8").read()
        trace = common.trace_text(loaded, text)
    else:
        trace = common.sample_trace(loaded, args.length, args.seed, args.temperature, args.prefix, args.bias)
    delta = weight_change.trace_weight_change(trace, loaded.rnn, args.layer).numpy()
    stem = _stem(args.out)
    os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
    title = args.title or (f"{loaded.arch}: ||diag(d_h(t) - d_h(t-1)) W_h||_F per gate"
                           " (each row scaled to its 99th percentile)")
    if trace.symbols is not None:
        weight_change.plot_text(trace.symbols, delta, stem, args.width, title)
        shown = {"text": "".join(trace.symbols).replace("⏎", "\n")}
    else:
        weight_change.plot_strokes(trace.pen, delta, stem, title)
        shown = {"pen_steps": int(len(trace.pen))}
    common.write_sidecar(stem + ".png", {
        "analysis": "weight-change", "note": args.note, "checkpoint": args.path, "arch": loaded.arch,
        "layer": args.layer, "sampled": args.text is None and args.text_file is None, "seed": args.seed,
        "temperature": args.temperature,
        "max_delta_per_gate": dict(zip("ifgo", np.round(delta.max(0), 6).tolist())), **shown,
    })
    print(f"wrote {stem}.png, {stem}.svg ({len(delta)} steps)")
    return 0


def saturation_main(args) -> int:
    from . import common, saturation

    labels = args.labels or []
    if labels and len(labels) != len(args.path):
        raise ValueError(f"--labels takes one label per --path ({len(args.path)}); got {len(labels)}")
    histograms, names, stats = [], [], []
    for index, path in enumerate(args.path):
        loaded = common.load(path, args.data)
        trace = common.sample_trace(loaded, args.length, args.seed, args.temperature, args.prefix)
        values = saturation.cell_outputs(trace, loaded.rnn)
        histograms.append(saturation.histogram(values, args.bins))
        names.append(labels[index] if labels else loaded.arch)
        saturated = float(np.mean(np.abs(values) > 0.9))
        stats.append({"checkpoint": path, "arch": loaded.arch, "label": names[-1], "values": int(values.size),
                      "fraction_abs_above_0.9": round(saturated, 4)})
        print(f"{names[-1]}: {values.size} values, {saturated:.1%} with |tanh| > 0.9")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    saturation.plot(histograms, names, args.out, args.title or f"sampled {args.length} steps, seed {args.seed}")
    common.write_sidecar(args.out, {"analysis": "saturation", "note": args.note, "checkpoints": stats,
                                    "seed": args.seed, "temperature": args.temperature, "length": args.length})
    print(f"wrote {args.out}")
    return 0


def curves_main(args) -> int:
    from . import common, curves

    labels = args.labels or [os.path.basename(os.path.dirname(os.path.abspath(p))) for p in args.log]
    if len(labels) != len(args.log):
        raise ValueError(f"--labels takes one label per --log ({len(args.log)}); got {len(labels)}")
    runs = [curves.read_log(path) for path in args.log]
    for run in runs:
        for problem in run.problems:
            print(f"warning: {problem}", file=sys.stderr)
    if not any(run.train or run.valid for run in runs):
        print("error: no loss points in any log", file=sys.stderr)
        return 2
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    curves.plot(runs, labels, args.out, args.title, args.ylabel)
    common.write_sidecar(args.out, {"analysis": "curves", "note": args.note, "logs": [
        {"log": p, "label": label, "train_points": len(r.train), "valid_points": len(r.valid),
         "problems": len(r.problems)}
        for p, label, r in zip(args.log, labels, runs)]})
    print(f"wrote {args.out}")
    return 0


def results_main(args) -> int:
    from . import results

    return results.main(args.runs, args.out, args.figures, args.smoke, args.readme)


def _figure_of_samples(sub, name: str, func, length: int, temperature: float, out: str, help: str,
                       several: bool = False) -> argparse.ArgumentParser:
    """A figure drawn from what checkpoint(s) --path sample: its sub-parser, with the sampling options
    (`out`: the help of --out; `several`: --path takes one checkpoint per curve)."""
    p = sub.add_parser(name, help=help)
    p.add_argument("--path", nargs="+" if several else None, required=True)
    p.add_argument("--out", required=True, help=out)
    p.add_argument("--data", help="folder with the LM's dict.txt, if it moved since training")
    p.add_argument("--length", type=int, default=length, help="symbols (LM) or pen steps (handwriting) to sample")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--temperature", type=float, default=temperature)
    p.add_argument("--prefix", default="", help="LM: text to continue")
    p.add_argument("--title", default="")
    p.add_argument("--note", default="", help="how the checkpoint was made, kept in the figure's .json record")
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = cli.parser("analysis", __doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = _figure_of_samples(sub, "weight-change", weight_change_main, 200, 0.8,
                           out="output stem; writes STEM.png, STEM.svg and STEM.json",
                           help="Figure 4 / 7: per-gate change of diag(d_h) W_h under every step")
    p.add_argument("--text", help="LM: analyse this text instead of a sample")
    p.add_argument("--text-file", help="LM: analyse this file's text")
    p.add_argument("--bias", type=float, default=0.0, help="handwriting: Graves' sampling bias")
    p.add_argument("--layer", type=int, default=-1, help="layer to show (default: the top one)")
    p.add_argument("--width", type=int, default=80, help="characters per row of the text figure")
    p = _figure_of_samples(sub, "saturation", saturation_main, 1000, 1.0, several=True,
                           out="PNG (an SVG and a .json are written beside it)",
                           help="Figure 5: histograms of tanh(c_t) over a sample, checkpoints overlaid")
    p.add_argument("--labels", nargs="+")
    p.add_argument("--bins", type=int, default=50)

    p = sub.add_parser("curves", help="Figure 6: train/valid loss against updates from fairseq json logs")
    p.add_argument("--log", nargs="+", required=True)
    p.add_argument("--labels", nargs="+")
    p.add_argument("--ylabel", default="loss (fairseq, base 2)")
    p.add_argument("--title", default="")
    p.add_argument("--note", default="", help="how the runs were made, kept in the figure's .json record")
    p.add_argument("--out", required=True)
    p.set_defaults(func=curves_main)

    p = sub.add_parser("results", help="write docs/results.md from the run records")
    p.add_argument("--runs", default="docs/runs")
    p.add_argument("--figures", default=None, help="folder of figures and their .json (default: beside --out)")
    p.add_argument("--out", default="docs/results.md")
    p.add_argument("--readme", default=None, help="also rewrite the generated regions of this README.md")
    p.add_argument("--smoke", action="store_true", help="write nothing; fail when --out or --readme is out of date")
    p.set_defaults(func=results_main)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as e:
        print(f"python -m hyperfairseq.analysis: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
