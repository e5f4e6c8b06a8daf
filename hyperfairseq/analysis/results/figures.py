"""The results page's figures: Figures 4-7 of the paper as `python -m hyperfairseq.analysis` made them, each
with the record beside it (docs/figures/NAME.json: command, checkpoint, commit, hardware)."""

import glob
import json
import os
from typing import List

from hyperfairseq.analysis.results.records import cell, code, commit_of, hardware_of

FIGURE_TITLES = {
    "weight-change": "||diag(d_h(t) − d_h(t−1)) W_h||_F per gate under every step (Figure 4 / 7)",
    "saturation": "histograms of tanh(c_t) over a sample (Figure 5)",
    "curves": "train / valid loss against updates (Figure 6)",
}
PLANNED = (
    ("fig4_", "Figure 4 — weight changes under sampled text",
     "Paper: an enwik8 sample of the 1800-unit HyperLSTM. Ours: char-PTB text sampled from the small demo "
     "LN-HyperLSTM (no trained enwik8 HyperLSTM here). Under each character: the change made while reading "
     "it; d_h(t−1) of the first one comes from the step that read the end-of-line symbol."),
    ("fig5_", "Figure 5 — saturation of tanh(c_t)",
     "Paper: LSTM, LN-LSTM, HyperLSTM and LN-HyperLSTM overlaid (1000 units, fully trained). Ours: the same "
     "four on char-PTB at 256 units after 292 updates each (minutes of CPU), 1000 sampled characters each. "
     "As in the paper, the HyperLSTM is far more saturated (near ±1) than the layer-normalised models; our "
     "barely trained plain LSTM is the most saturated of all."),
    ("fig6_", "Figure 6 — loss curves",
     "Paper: enwik8 (left) and IAM-OnDB handwriting (right), several models per panel. Ours: the same four "
     "char-PTB models as Figure 5 (train loss; validation was disabled), and the KanjiVG-strokes HyperLSTM "
     "of Figure 7 (train and valid). Loss in fairseq's units (bits per character; nats per pen point)."),
    ("fig7_", "Figure 7 — weight changes under sampled handwriting",
     "Paper: IAM-OnDB handwriting of the 900-unit HyperLSTM. Ours: KanjiVG strokes from a 128-unit HyperLSTM "
     "trained for 6 minutes on CPU (it scribbles rather than writes); Δ_0 = 0 (no step before the first)."),
)


def render_figures(figures_dir: str, rel: str) -> List[str]:
    out = ["## Figures", "",
           "Made with `python -m hyperfairseq.analysis` from real checkpoints; the record beside each figure "
           "(same name, `.json`) holds the full command, checkpoint, commit and hardware.", ""]
    sidecars = {}
    for path in sorted(glob.glob(os.path.join(figures_dir, "fig*.json"))):
        try:
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
            if isinstance(record, dict) and "analysis" in record:
                sidecars[os.path.basename(path)[:-5]] = record
        except (OSError, json.JSONDecodeError):
            continue
    for prefix, title, caption in PLANNED:
        out += [f"### {title}", "", caption, ""]
        names = [n for n in sidecars if n.startswith(prefix)]
        if not names:
            out += ["Not generated yet.", ""]
        for name in names:
            record = sidecars[name]
            out += [f"![{name}]({rel}/{name}.png)", "",
                    f"* {FIGURE_TITLES.get(record['analysis'], record['analysis'])}",
                    f"* command: {code(record.get('command', '?'))}",
                    f"* commit {code(commit_of(record))}, {cell(hardware_of(record))}"]
            if record.get("note"):
                out.append(f"* how the checkpoint / runs were made: {cell(record['note'])}")
            for key in ("checkpoint", "arch", "seed", "temperature", "max_delta_per_gate"):
                if key in record:
                    out.append(f"* {key}: {code(json.dumps(record[key], ensure_ascii=False))}")
            for item in record.get("checkpoints", []) + record.get("logs", []):
                out.append(f"* {code(json.dumps(item, ensure_ascii=False))}")
            out.append("")
    others = sorted(os.path.basename(p) for p in glob.glob(os.path.join(figures_dir, "*.png"))
                    if not os.path.basename(p).startswith(("fig4_", "fig5_", "fig6_", "fig7_")))
    if others:
        out += ["### Other figures", "", "Made by other issues' scripts (see the README and docs/*.md):", ""]
        out += [f"* [{name}]({rel}/{name})" for name in others] + [""]
    return out
