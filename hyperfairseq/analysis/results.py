"""docs/results.md from the run records under docs/runs/ and the figure records under docs/figures/.

Every table of the paper (paper-spec §4) is printed with the paper's numbers and, beside them, ours:
a record fills the row of its architecture (smoke runs are listed but never fill a row), and every number
of ours names its data set, since most of our runs are on substitutes (Fashion-MNIST for MNIST and
CIFAR-10, KanjiVG strokes for IAM-OnDB, Bible En→Es for WMT'14) or reduced sizes. Under each table every
record assigned to it is listed with its command, commit, hardware and wall time. Records of unexpected
shape never stop the page: what cannot be read or placed is listed under "Other runs". The output holds
nothing that changes between runs (no dates), so regenerating without new records changes nothing.
"""

import glob
import json
import os
import re
import sys
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from hyperfairseq.models.architectures import ARCHITECTURES, Architecture


class PaperTable(NamedTuple):
    key: str
    title: str
    columns: Tuple[str, ...]  # the paper's columns after "Model"
    rows: Tuple[Tuple[str, Tuple[str, ...], Tuple[str, ...]], ...]  # (model, paper values, our archs)
    ours: Tuple[str, ...]  # our columns
    extract: Callable[[dict], Dict[str, Optional[str]]]


def architecture_rows(table: str) -> List[Tuple[str, Tuple[str, ...], Tuple[str, ...]]]:
    """The rows of the paper's `table` that our architectures fill, as `models/architectures.py` holds them
    (in its order): (model, the paper's values, our architectures; a reduced one shares its full row)."""
    by_row: Dict[str, List[Architecture]] = {}
    for arch in ARCHITECTURES.values():
        if arch.table.number == table:
            by_row.setdefault(arch.row.paper, []).append(arch)
    return [(archs[0].paper_cells[0], tuple(archs[0].paper_cells[1:]), tuple(a.row.name for a in archs))
            for archs in by_row.values()]


class Record(NamedTuple):
    name: str
    data: dict
    table: Optional[str]
    arch: Optional[str]
    smoke: bool
    note: str


def dig(data, path: str):
    """data["a"]["b"]... for "a.b", or None when any step is missing or not a dict."""
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def first(data, *paths):
    for path in paths:
        value = dig(data, path)
        if value is not None:
            return value
    return None


def fmt(value, spec: str = "{:.3f}") -> Optional[str]:
    try:
        return spec.format(float(value))
    except (TypeError, ValueError):
        return None


def millions(value) -> Optional[str]:
    try:
        return f"{float(value) / 1e6:.3f} M"
    except (TypeError, ValueError):
        return None


def _vision(rec: dict) -> Dict[str, Optional[str]]:
    error = first(rec, "results.test.error", "result.test.error")
    return {"test error": fmt(None if error is None else 100 * float(error), "{:.2f}%"),
            "params": millions(first(rec, "results.params", "result.params", "params"))}


def _char_lm(rec: dict) -> Dict[str, Optional[str]]:
    return {"test BPC": fmt(first(rec, "result.bpc", "results.bpc", "bpc", "test_bpc")),
            "valid BPC": fmt(first(rec, "result.valid_bpc", "results.valid_bpc", "valid_bpc")),
            "params": millions(first(rec, "result.params", "results.params", "params", "num_params"))}


def _handwriting(rec: dict) -> Dict[str, Optional[str]]:
    loss = first(rec, "valid_log_loss_nats_per_line", "result.valid_log_loss")
    return {"valid log-loss (nats/line)": fmt(loss, "{:.1f}"),
            "params": millions(first(rec, "num_params", "params", "result.params"))}


def _translation(rec: dict) -> Dict[str, Optional[str]]:
    bleu = first(rec, "test_bleu_sacrebleu_detok_beam4", "test_bleu_sacrebleu_detok", "result.bleu")
    return {"test BLEU": fmt(bleu, "{:.2f}"),
            "log perplexity (nats)": fmt(first(rec, "loss_nats_per_token.test", "test_log_perplexity_nats")),
            "params": millions(first(rec, "parameters", "params", "num_params"))}


TABLES = (
    PaperTable("7", "Table 7 — MNIST (test error)", ("Test Error", "Params of 2nd kernel"), (
        ("Normal Convnet", ("0.72%", "12,544"), ("convnet",)),
        ("Hyper Convnet", ("0.76%", "4,244"), ("hyper_convnet",)),
    ), ("test error", "params"), _vision),
    PaperTable("2", "Table 2 — CIFAR-10 (test error, parameter count)", ("Test Error", "Param Count"), (
        ("Network in Network (Lin et al., 2014)", ("8.81%", ""), ()),
        ("FitNet (Romero et al., 2014)", ("8.39%", ""), ()),
        ("Deeply Supervised Nets (Lee et al., 2015)", ("8.22%", ""), ()),
        ("Highway Networks (Srivastava et al., 2015)", ("7.72%", ""), ()),
        ("ELU (Clevert et al., 2015)", ("6.55%", ""), ()),
        ("Original Resnet-110 (He et al., 2016a)", ("6.43%", "1.7 M"), ()),
        ("Stochastic Depth Resnet-110 (Huang et al., 2016b)", ("5.23%", "1.7 M"), ()),
        ("Wide Residual Network 40-1 (Zagoruyko & Komodakis)", ("6.85%", "0.6 M"), ()),
        ("Wide Residual Network 40-2 (Zagoruyko & Komodakis)", ("5.33%", "2.2 M"), ()),
        ("Wide Residual Network 28-10 (Zagoruyko & Komodakis)", ("4.17%", "36.5 M"), ()),
        ("ResNet of ResNet 58-4 (Zhang et al., 2016)", ("3.77%", "13.3 M"), ()),
        ("DenseNet (Huang et al., 2016a)", ("3.74%", "27.2 M"), ()),
        ("Wide Residual Network 40-1 (their implementation)", ("6.73%", "0.563 M"), ("wrn_40_1",)),
        ("**Hyper Residual Network 40-1**", ("**8.02%**", "**0.097 M**"), ("hyper_wrn_40_1",)),
        ("Wide Residual Network 40-2 (their implementation)", ("5.66%", "2.236 M"), ("wrn_40_2",)),
        ("**Hyper Residual Network 40-2**", ("**7.23%**", "**0.148 M**"), ("hyper_wrn_40_2",)),
    ), ("test error", "params"), _vision),
    PaperTable("3", "Table 3 — Character-level Penn Treebank (BPC)", ("Test", "Validation", "Param Count"), (
        ("ME n-gram (Mikolov et al., 2012)", ("1.37", "", ""), ()),
        ("Batch Norm LSTM (Cooijmans et al., 2016)", ("1.32", "", ""), ()),
        ("Recurrent Dropout LSTM (Semeniuta et al., 2016)", ("1.301", "1.338", ""), ()),
        ("Zoneout RNN (Krueger et al., 2016)", ("1.27", "", ""), ()),
        ("HM-LSTM (Chung et al., 2016)", ("1.27", "", ""), ()),
        *architecture_rows("3"),
    ), ("test BPC", "valid BPC", "params"), _char_lm),
    PaperTable("4", "Table 4 — enwik8 (test BPC)", ("enwik8", "Param Count"), (
        ("Stacked LSTM (Graves, 2013)", ("1.67", "27.0 M"), ()),
        ("MRNN (Sutskever et al., 2011)", ("1.60", ""), ()),
        ("GF-RNN (Chung et al., 2015)", ("1.58", "20.0 M"), ()),
        ("Grid-LSTM (Kalchbrenner et al., 2016)", ("1.47", "16.8 M"), ()),
        ("LSTM (Rocki, 2016b)", ("1.45", ""), ()),
        ("MI-LSTM (Wu et al., 2016)", ("1.44", ""), ()),
        ("Recurrent Highway Networks (Zilly et al., 2016)", ("1.42", "8.0 M"), ()),
        ("Recurrent Memory Array Structures (Rocki, 2016a)", ("1.40", ""), ()),
        ("HM-LSTM (Chung et al., 2016)", ("1.40", ""), ()),
        ("Surprisal Feedback LSTM (Rocki, 2016b; not comparable)", ("1.37", ""), ()),
        *architecture_rows("4"),
    ), ("test BPC", "params"), _char_lm),
    PaperTable("5", "Table 5 — IAM On-Line handwriting (validation log-loss, nats; lower is better)",
               ("Log-Loss", "Param Count"), (
        ("LSTM, 900 units (Graves, 2013)", ("-1,026", ""), ()),
        ("3-Layer LSTM, 400 units (Graves, 2013)", ("-1,041", ""), ()),
        ("3-Layer LSTM, 400 units, adaptive weight noise (Graves, 2013)", ("-1,058", ""), ()),
        ("LSTM, 900 units, no dropout, no data augmentation (their impl.)", ("-1,026", "3.36 M"), ()),
        ("3-Layer LSTM, 400 units, no dropout, no data augmentation (their impl.)", ("-1,039", "3.26 M"), ()),
        *architecture_rows("5"),
    ), ("valid log-loss (nats/line)", "params"), _handwriting),
    PaperTable("6", "Table 6 — WMT'14 En→Fr, newstest2014, single models", ("Test BLEU", "Log Perplexity"), (
        ("Deep-Att + PosUnk (Zhou et al., 2016)", ("39.2", ""), ()),
        ("GNMT WPM-32K, ensemble of 8 LSTMs (Wu et al., 2016)", ("40.35", ""), ()),
        *architecture_rows("6"),
    ), ("test BLEU", "log perplexity (nats)", "params"), _translation),
)
TABLE_BY_KEY = {t.key: t for t in TABLES}
ALL_ARCHS = sorted({a for t in TABLES for _, _, archs in t.rows for a in archs}, key=len, reverse=True)

# Records whose name or fields do not say their table and architecture.
KNOWN = {
    "demo_ptb_cpu": ("3", "ln_hyperlstm_lm_ptb", "reduced: 256 units, 5 min of CPU training (scripts/demo.sh)"),
    "carry_vs_reset_demo_ptb": ("3", None, "state carried vs reset, same checkpoint as demo_ptb_cpu"),
    "table3_gpu_ln_hyperlstm_lm_ptb": ("3", "ln_hyperlstm_lm_ptb", "minutes of training on one GPU "
                                       "(benchmarks/gpu_check.sh), not the paper's budget"),
}
DATASETS = {"fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "mnist": "MNIST", "kanjivg": "KanjiVG strokes"}


def classify(name: str, data) -> Record:
    """Table, architecture and smoke flag of one record, from its fields, its name, or `KNOWN`."""
    if not isinstance(data, dict):
        return Record(name, {"value": data}, None, None, False, "not a json object")
    if name in KNOWN:
        table, arch, note = KNOWN[name]
        return Record(name, data, table, arch, bool(data.get("smoke")), note)
    match = re.match(r"table\s*(\d+)", str(data.get("table") or name), re.I) or re.match(r"table(\d+)", name)
    table = match.group(1) if match and match.group(1) in TABLE_BY_KEY else None
    arch = first(data, "arch", "results.arch", "result.arch", "row")
    arch = str(arch).split()[0] if arch else next((a for a in ALL_ARCHS if a in name), None)
    smoke = bool(data.get("smoke")) or "smoke" in name
    return Record(name, data, table, arch, smoke, "")


def data_label(rec: Record) -> str:
    data = rec.data
    label = first(data, "dataset_label")
    if label is None:
        dataset = first(data, "results.dataset", "result.dataset", "dataset")
        label = DATASETS.get(str(dataset), dataset) if dataset else None
    if label is None and isinstance(data.get("data"), str):
        label = data["data"]
    if label is None and isinstance(data.get("what"), str):
        label = data["what"].split(";")[0]
    return str(label or "?")


def commit_of(data: dict) -> str:
    commit = first(data, "commit", "git_commit")
    if commit is None:
        return "?"
    commit = str(commit)
    dirty = data.get("git_dirty") is True or commit.endswith("+dirty")
    return commit.replace("+dirty", "")[:10] + ("+dirty" if dirty else "")


def hardware_of(data: dict) -> str:
    hw = data.get("hardware")
    if isinstance(hw, dict):
        gpu = hw.get("cuda") or hw.get("gpu")
        cores = hw.get("cores") or hw.get("cpus")
        parts = [str(gpu)] if gpu else []
        cpu = hw.get("cpu") or hw.get("machine")
        parts.append(f"{cpu or 'CPU'}, {cores} cores" if cores else str(cpu or "?"))
        return "; ".join(parts)
    device = data.get("device")
    return str(hw or (device.split(";")[0] if isinstance(device, str) else device) or "?")


def command_of(data: dict) -> str:
    command = first(data, "command", "commands", "train_flags")
    if isinstance(command, list):
        command = " && ".join(str(c) for c in command)
    return str(command) if command else "?"


def wall_of(data: dict) -> str:
    wall = first(data, "wall_seconds", "wall_time_s", "train_seconds_wall")
    device = data.get("device")
    return fmt(wall, "{:.0f} s") or (device.split(";")[-1].strip() if isinstance(device, str) else "?")


def updates_of(data: dict) -> str:
    value = first(data, "num_updates", "max_update", "results.steps", "result.train.train_num_updates",
                  "result.train.num_updates", "result.updates")  # train: fairseq's epoch or its inner log line
    return "?" if value is None else str(value)


def cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def record_heading(rec: Record) -> str:
    """A benchmark record's name, linked to its file, and the hardware it ran on."""
    return f"**[{rec.name}](runs/{rec.name}.json)**: {cell(hardware_of(rec.data))}"


def code(text: str, limit: int = 0) -> str:
    text = cell(text).replace("`", "'")
    if limit and len(text) > limit:
        text = text[:limit] + " …"
    return "`" + text + "`"


def ours_text(table: PaperTable, rec: Record) -> Dict[str, Optional[str]]:
    try:
        return table.extract(rec.data)
    except Exception:  # a record of unexpected shape: show it without numbers
        return {}


def render_table(table: PaperTable, records: List[Record]) -> List[str]:
    out = [f"## {table.title}", ""]
    header = ["Model", *(f"paper: {c}" for c in table.columns), *(f"ours: {c}" for c in table.ours),
              "ours: data (record)"]
    out += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for model, values, archs in table.rows:
        matches = [r for r in records if r.arch in archs and not r.smoke]
        numbers = [ours_text(table, rec) for rec in matches]
        ours = ["<br>".join(n.get(column) or "—" for n in numbers) for column in table.ours]
        where = "<br>".join(f"{cell(data_label(r))}{'; ' + cell(r.note) if r.note else ''} ({r.name})" for r in matches)
        out.append("| " + " | ".join([model, *values, *ours, where]) + " |")
    out.append("")
    out += render_runs(table, records) if records else ["No run of ours yet.", ""]
    return out


def render_runs(table: PaperTable, records: List[Record]) -> List[str]:
    out = ["Runs (every record of this table; smoke runs check the pipeline and fill no row):", "",
           "| record | arch | kind | data | ours | updates | hardware | commit | wall | command |",
           "|" + " --- |" * 10]
    for rec in records:
        numbers = ", ".join(f"{k} {v}" for k, v in ours_text(table, rec).items() if v is not None) or "—"
        kind = "smoke" if rec.smoke else "run"
        if rec.note:
            kind += f" ({rec.note})"
        out.append("| " + " | ".join([
            f"[{rec.name}](runs/{rec.name}.json)", cell(rec.arch or "—"), cell(kind), cell(data_label(rec)),
            cell(numbers),
            cell(updates_of(rec.data)), cell(hardware_of(rec.data)), code(commit_of(rec.data)),
            cell(wall_of(rec.data)), code(command_of(rec.data), 300)]) + " |")
    return out + [""]


def render_other(records: List[Record], unreadable: List[Tuple[str, str]]) -> List[str]:
    out = ["## Other runs", "",
           "Records that belong to no table of the paper (benchmarks, checks) or could not be placed.", ""]
    if not records and not unreadable:
        return out + ["None.", ""]
    out += ["| record | what | hardware | commit | command |", "|" + " --- |" * 5]
    for rec in records:
        what = rec.note or first(rec.data, "what") or ", ".join(sorted(rec.data)[:8])
        out.append("| " + " | ".join([f"[{rec.name}](runs/{rec.name}.json)", cell(what), cell(hardware_of(rec.data)),
                                      code(commit_of(rec.data)), code(command_of(rec.data), 300)]) + " |")
    for name, error in unreadable:
        out.append(f"| {name} | unreadable: {cell(error)} | | | |")
    return out + [""]


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


# ---- handwriting synthesis (issue 15; no paper table): docs/runs/synthesis_{hershey,alignment,legibility}_* ----

SYNTHESIS_NAME = re.compile(r"synthesis_(hershey|alignment|legibility)_([a-z]+)(?:_(\d+))?$")
SYNTHESIS_MODELS = {"hyper": "synthesis HyperLSTM", "lstm": "synthesis LSTM",
                    "uncond": "unconditional HyperLSTM (control)"}
SYNTHESIS_KINDS = {"hershey": "train", "alignment": "alignment", "legibility": "legibility"}
SYNTHESIS_TITLE = "Handwriting synthesis on Hershey lines (issue 15; no paper table)"


class SynthesisRow(NamedTuple):
    """One model at one update count: its training record (fairseq-train / fairseq-validate on the
    validation split) and the alignment and legibility records of the same checkpoint (same name suffix)."""
    model: str
    suffix: str
    kinds: Dict[str, Record]

    def get(self, kind: str, path: str):
        rec = self.kinds.get(kind)
        return None if rec is None else dig(rec.data, path)

    @property
    def updates(self) -> int:
        value = self.get("hershey", "result.updates")
        return int(value) if isinstance(value, (int, float)) else int(self.suffix or 0)


def synthesis_rows(records: List[Record]) -> List[SynthesisRow]:
    """The synthesis records grouped by model and checkpoint, ordered by updates, then model."""
    groups: Dict[Tuple[str, str], Dict[str, Record]] = {}
    for rec in records:
        match = SYNTHESIS_NAME.match(rec.name)
        if match:
            groups.setdefault((match.group(2), match.group(3) or ""), {})[match.group(1)] = rec
    rows = [SynthesisRow(model, suffix, kinds) for (model, suffix), kinds in groups.items()]
    order = list(SYNTHESIS_MODELS)
    return sorted(rows, key=lambda r: (r.updates, order.index(r.model) if r.model in order else len(order), r.model))


def _synthesis_cells(row: SynthesisRow, control: Optional[SynthesisRow]) -> List[str]:
    nll = row.get("hershey", "result.valid_log_loss")
    base = None if control is None or row is control else control.get("hershey", "result.valid_log_loss")
    delta = fmt(None if nll is None or base is None else float(nll) - float(base), "{:+.2f}")
    lines, aligned = row.get("alignment", "result.lines"), row.get("alignment", "result.aligned_lines")
    monotone = row.get("alignment", "result.kappa_never_decreases")
    texts, legible = row.get("legibility", "result.texts"), row.get("legibility", "result.legible")
    chance = fmt(row.get("legibility", "result.chance"), "{:.1%}")
    return [
        f"{SYNTHESIS_MODELS.get(row.model, row.model)} (`{row.get('hershey', 'result.arch') or '?'}`)",
        fmt(row.get("hershey", "result.params"), "{:,.0f}") or "?",
        str(row.updates), fmt(nll, "{:.2f}") or "—", "control" if row is control else (delta or "—"),
        "—" if aligned is None else f"{aligned} / {lines}",
        "—" if monotone is None else ("yes" if monotone is True else "**no**"),
        "—" if legible is None else f"{legible} / {texts} (chance {chance})"]


def synthesis_table(rows: List[SynthesisRow], runs_rel: str) -> List[str]:
    """Valid NLL (nats/line) beside the unconditional control at the same updates, alignment, κ, legibility."""
    out = ["| model | params | updates | valid NLL (nats/line) | NLL − control | aligned valid lines "
           "| κ never decreases | legible test texts (DTW) | records |", "|" + " --- |" * 9]
    for row in rows:
        control = next((r for r in rows if r.model == "uncond" and r.updates == row.updates), None)
        links = ", ".join(f"[{label}]({runs_rel}/{row.kinds[kind].name}.json)"
                          for kind, label in SYNTHESIS_KINDS.items() if kind in row.kinds)
        out.append("| " + " | ".join(_synthesis_cells(row, control) + [links]) + " |")
    return out


def readme_synthesis(records: List[Record], runs_rel: str) -> List[str]:
    """The README's synthesis table: the rows at the largest update count recorded."""
    rows = synthesis_rows(records)
    if not rows:
        return ["No synthesis run recorded yet (`bash scripts/synthesis_hershey.sh`)."]
    last = max(r.updates for r in rows)
    return synthesis_table([r for r in rows if r.updates == last], runs_rel)


def render_synthesis(records: List[Record]) -> List[str]:
    """docs/results.md's synthesis section: every update count, then every record's command."""
    rows = synthesis_rows(records)
    out = [f"## {SYNTHESIS_TITLE}", "",
           "Made by `bash scripts/synthesis_hershey.sh` (see docs/handwriting.md). Validation NLL in nats per "
           "line on the validation split (held-out books), lower is better; *NLL − control*: against the "
           "unconditional HyperLSTM of about the same size at the same updates (negative: conditioning on the "
           "text helps). Aligned: validation lines whose window centre at the final step lies on the last "
           "character (argmax_u φ(T, u) = U). Legible: held-out test texts whose sample is closer (DTW of the "
           "normalised pen trajectory) to the Hershey rendering of its own text than to those of every other "
           "text of the same length (chance: one in distractors + 1).", ""]
    if not rows:
        return out + ["No synthesis run recorded yet.", ""]
    out += synthesis_table(rows, "runs") + [""]
    out += ["| record | smallest κ step | stopped by the window rule | median DTW margin | hardware | commit | wall "
            "| command |", "|" + " --- |" * 8]
    for row in rows:
        for kind, rec in sorted(row.kinds.items()):
            out.append("| " + " | ".join([
                f"[{rec.name}](runs/{rec.name}.json)", fmt(dig(rec.data, "result.min_kappa_step"), "{:.4f}") or "",
                cell(dig(rec.data, "result.stopped_by_window_rule") or ""),
                fmt(dig(rec.data, "result.median_margin"), "{:.2f}") or "", cell(hardware_of(rec.data)),
                code(commit_of(rec.data)), cell(wall_of(rec.data)), code(command_of(rec.data), 300)]) + " |")
    return out + [""]


SPEED_GATES = {"ptb": 0.70, "enwik8": 0.60}  # issue 4's CPU gates: tokens/s against nn.LSTM
SPEED_VARIANTS = ("HyperLSTM", "LN-HyperLSTM", "LSTM (ours)", "LN-LSTM (ours)", "LSTMCell loop")
# issue 13's CPU gates of fairseq-train words/s against fairseq's own lstm_lm of the same width
TRAIN_GATES = {"lstm_lm_ptb_1000": "≥ 1.00×", "ln_hyperlstm_lm_ptb": "≥ 0.80×"}


def _get(row, variant: str, field: str):
    """row[variant][field] (variant names hold dots: "nn.LSTM"), or None."""
    value = row.get(variant) if isinstance(row, dict) else None
    return value.get(field) if isinstance(value, dict) else None


def render_speed(records: List[Record]) -> List[str]:
    """The fast path's benchmark records (benchmarks/bench_hyperlstm.py --json): ratios against nn.LSTM."""
    benches = [r for r in records if isinstance(r.data.get("throughput"), dict) and "one_step" in r.data]
    out = ["## Speed of the HyperLSTM fast path", "",
           "Forward+backward tokens/s against `nn.LSTM` of the same size, measured side by side in one process "
           "(`benchmarks/bench_hyperlstm.py`); bytes saved for backward against nn.LSTM's; one-step (incremental) "
           "latency against an `nn.LSTMCell` step. CPU gates of issue 4: ≥ 0.70× (PTB size) and ≥ 0.60× (enwik8 "
           "size) at batch 32 and 128, saved bytes ≤ 1.5×, one step ≤ 1.5×.", ""]
    if not benches:
        out += ["No benchmark record yet.", ""]
    for rec in benches:
        data = rec.data
        out += [f"{record_heading(rec)}, torch {data.get('torch', '?')}, "
                f"{data.get('dtype', '?')}, {data.get('threads', '?')} thread(s), clock {data.get('clock', '?')}, "
                f"medians of {data.get('repeats', '?')}, commit {code(commit_of(data))}: {code(command_of(data), 300)}",
                ""]
        rows = data["throughput"]
        if rows:
            out += ["| size / batch | nn.LSTM tok/s | " + " | ".join(SPEED_VARIANTS)
                    + " | saved bytes (Hyper / LN) | gate |",
                    "|" + " --- |" * (len(SPEED_VARIANTS) + 4)]
            for key, row in rows.items():
                if not isinstance(row, dict):
                    continue
                ratios = [fmt(_get(row, v, "speed_vs_nn_lstm"), "{:.2f}×") or "" for v in SPEED_VARIANTS]
                saved = " / ".join(fmt(_get(row, v, "saved_bytes_vs_nn_lstm"), "{:.2f}×") or "?"
                                   for v in SPEED_VARIANTS[:2])
                gate = None if is_gpu_record(data) else SPEED_GATES.get(key.split("/")[0])
                out.append(f"| {key} | {fmt(_get(row, 'nn.LSTM', 'tokens_per_s'), '{:.0f}') or '?'} | "
                           + " | ".join(ratios) + f" | {saved} | {'' if gate is None else f'≥ {gate:.2f}×'} |")
            out.append("")
        steps = data.get("one_step") or {}
        if steps:
            out += ["| one step | LSTMCell ms | HyperLSTM | LN-HyperLSTM | gate |", "|" + " --- |" * 5]
            for key, row in steps.items():
                ratios = [fmt(_get(row, v, "vs_lstmcell"), "{:.2f}×") or "" for v in SPEED_VARIANTS[:2]]
                out.append(f"| {key} | {fmt(_get(row, 'LSTMCell', 'ms'), '{:.3f}') or '?'} | " + " | ".join(ratios)
                           + " | ≤ 1.50× |")
            out.append("")
        out += render_profile(data.get("profile"))
    return out + render_cpu_gemm(records) + render_train_speed(records)


def render_cpu_gemm(records: List[Record]) -> List[str]:
    """`benchmarks/bench_cpu_gemm.py --json` records: each kind of CPU GEMM through MKL and oneDNN, and the
    library `HYPERFAIRSEQ_CPU_GEMM=auto` gives it."""
    out = []
    for rec in (r for r in records if isinstance(r.data.get("gemms"), dict)):
        data = rec.data
        out += ["### The CPU GEMMs: MKL against oneDNN", "",
                f"{record_heading(rec)}, ATen CPU capability "
                f"{data.get('cpu_capability', '?')}, commit {code(commit_of(data))}: {code(command_of(data), 300)}; "
                f"`auto` took the faster library in {data.get('auto_took_the_faster', '?')} of the GEMMs oneDNN "
                "runs.", "",
                "| size / batch / GEMM | MKL GFLOP/s | oneDNN GFLOP/s | oneDNN / MKL | auto |", "|" + " --- |" * 5]
        for key, row in data["gemms"].items():
            if isinstance(row, dict):
                ran = row.get("onednn_ran", True)
                out.append(f"| {key} | {fmt(row.get('mkl_gflops'), '{:.1f}') or '?'} | "
                           f"{fmt(row.get('onednn_gflops'), '{:.1f}') if ran else 'MKL (below the thresholds)'} | "
                           f"{fmt(row.get('onednn_vs_mkl'), '{:.2f}×') if ran else '—'} | {row.get('auto', '?')} |")
        out.append("")
    return out


def render_profile(profile) -> List[str]:
    """`bench_hyperlstm.py --profile`: a train step's self time split into our cell kernels, GEMMs and the rest."""
    rows = [(key, name, row["ms_per_train_step"]) for key, variants in (profile or {}).items()
            if isinstance(variants, dict) for name, row in variants.items()
            if isinstance(row, dict) and isinstance(row.get("ms_per_train_step"), dict)]
    if not rows:
        return []
    out = ["Self time of one train step per operator group (`--profile`, torch.profiler, which slows every op): our "
           "C++/Triton cell kernels, the GEMMs, and the rest (for `nn.LSTM`, oneDNN's fused RNN op).", "",
           "| profile (ms per train step) | variant | cell kernels | GEMMs | rest | kernels' share |",
           "|" + " --- |" * 6]
    for key, name, groups in rows:
        parts = [groups.get(g) for g in ("cell kernels", "gemm", "other")]
        total = sum(p for p in parts if isinstance(p, (int, float)))
        share = fmt(100 * parts[0] / total, "{:.1f} %") if total and isinstance(parts[0], (int, float)) else None
        out.append(f"| {key} | {name} | " + " | ".join(fmt(p, "{:.0f}") or "?" for p in parts) + f" | {share or '?'} |")
    return out + [""]


def render_gpu_check(records: List[Record]) -> List[str]:
    """`benchmarks/gpu_check.sh`'s summary (docs/runs/gpu_check.json): every stage, then issue 13's GPU gates."""
    out = ["## The GPU check", "", "One run of `benchmarks/gpu_check.sh` on the GPU (issue 13 §4–§5); its layer and "
           "`fairseq-train` records are in the speed tables above, its char-PTB run in Table 3.", ""]
    run = next((r for r in records if r.name == "gpu_check"), None)
    if run is None:
        return out + ["Not run on a GPU yet (the [device log](runs/gpu_status.log) records the attempts).", ""]
    data = run.data
    out += [f"**[{run.name}](runs/{run.name}.json)**: {cell(hardware_of(data))}, commit {code(commit_of(data))}, "
            f"{wall_of(data)}: {code(command_of(data))}", "", "| stage | exit status | wall s |", "|" + " --- |" * 3]
    for name, stage in (data.get("stages") or {}).items():
        out.append(f"| {name} | {stage.get('exit_status')} | {stage.get('wall_s')} |")
    out += ["", "| gate | ratio | at least | met | peak memory (≤ 1.50×) |", "|" + " --- |" * 5]
    for gate in data.get("layer_gates") or []:
        peak = f"{fmt(gate['peak_memory_ratio'], '{:.2f}×') or '—'} {_met(gate['peak_met'])}"
        out.append(_gate_row(f"{gate['case']} {gate['variant']} vs {gate['vs']} ({gate['record']})", gate, peak))
    for gate in data.get("train_speed_gates") or []:
        out.append(_gate_row(f"fairseq-train ln_hyperlstm_lm_ptb vs lstm_lm ({gate['case']})", gate, "—"))
    kernels, memcheck = data.get("kernels") or {}, data.get("kernels_memcheck") or {}
    out += ["", f"Kernels against float64 on the device: {kernels.get('cases')} cases, {kernels.get('failed')} "
            f"failed; under compute-sanitizer memcheck: {memcheck.get('cases')} cases, {memcheck.get('failed')} "
            "failed.", ""]
    return out


def _gate_row(name: str, gate: dict, peak: str) -> str:
    ratio, minimum = fmt(gate.get("ratio"), "{:.2f}×") or "not measured", fmt(gate.get("at_least"), "{:.2f}×") or "—"
    return f"| {name} | {ratio} | {minimum} | {_met(gate.get('met'))} | {peak} |"


def _met(met) -> str:
    return {True: "yes", False: "**no**"}.get(met, "")


def render_train_speed(records: List[Record]) -> List[str]:
    """`benchmarks/bench_train.py --json` records: fairseq-train words/s of our rows against fairseq's lstm_lm."""
    benches = [r for r in records if isinstance(r.data.get("results"), dict)
               and any(isinstance(v, dict) and "words_per_s" in v for v in r.data["results"].values())]
    out = []
    for rec in benches:
        data = rec.data
        out += ["### `fairseq-train` words/s", "",
                f"{record_heading(rec)}, "
                f"batch {data.get('batch_size', '?')} × {data.get('tokens_per_sample', '?')}, "
                f"clock {data.get('clock', '?')}, commit "
                f"{code(commit_of(data))}: {code(command_of(data), 300)}", "",
                "| config | precision | words/s | vs fairseq `lstm_lm` | gate |", "|" + " --- |" * 5]
        for row in data["results"].values():
            if isinstance(row, dict) and "words_per_s" in row:
                config = str(row.get("config"))
                words = fmt(row.get("words_per_s"), "{:.0f}") or "?"
                ratio = fmt(row.get("vs_fairseq_lstm_lm"), "{:.2f}×") or "—"
                gate = TRAIN_GATES.get(config, "")
                out.append(f"| {config} | {row.get('precision', '?')} | {words} | {ratio} | {gate} |")
        out.append("")
    return out


# ---- the README's generated regions: `<!-- NAME:begin -->` ... `<!-- NAME:end -->` in README.md ----------

README_METRICS = {"2": "CIFAR-10, test error", "3": "char-PTB, test BPC", "4": "enwik8, test BPC",
                  "5": "IAM-OnDB, log-loss (nats)", "6": "WMT'14 En→Fr, BLEU", "7": "MNIST, test error"}


def short_hardware(data: dict) -> str:
    """'H200' or 'CPU, 2 cores' (the full hardware is on the results page and in the record)."""
    hw, device = data.get("hardware"), data.get("device")
    text = " ".join(str(x) for x in (hw if isinstance(hw, dict) else {"hw": hw}).values()) + " " + str(device or "")
    gpu = re.search(r"NVIDIA ([\w-]+)", text)
    if gpu:
        return gpu.group(1)
    cores = re.search(r"(\d+) cores", text)
    if isinstance(hw, dict) and (hw.get("cores") or hw.get("cpus")):
        cores = (None, hw.get("cores") or hw.get("cpus"))
    return f"CPU, {cores[1] if isinstance(cores, tuple) else cores.group(1)} cores" if cores else "CPU"


def readme_results(records: List[Record], runs_rel: str) -> List[str]:
    """One table: every row of the paper that our architectures implement, the paper's number beside ours
    (one line per full run; smoke runs fill no row), with our data set, hardware and record."""
    out = ["| paper table | model (paper row) | paper | ours | our model | data set | hardware | record |",
           "|" + " --- |" * 8]
    for table in sorted(TABLES, key=lambda t: int(t.key)):
        mine = [r for r in records if r.table == table.key]
        for model, values, archs in table.rows:
            if not archs:
                continue
            runs = [r for r in mine if r.arch in archs and not r.smoke]
            if not runs:
                smoke = any(r.arch in archs for r in mine)
                runs = [None]
            for i, rec in enumerate(runs):
                left = [f"{table.key}: {README_METRICS[table.key]}", model, values[0]] if i == 0 else ["", "", ""]
                if rec is None:
                    not_run = "not run" + (" (smoke only)" if smoke else "")
                    out.append("| " + " | ".join(left + ["—", cell(archs[0]), not_run, "", ""]) + " |")
                    continue
                ours = ours_text(table, rec).get(table.ours[0]) or "?"
                arch = str(first(rec.data, "arch", "results.arch", "result.arch") or rec.arch)
                arch += f" ({rec.note})" if rec.note else ""
                link = f"[{rec.name}]({runs_rel}/{rec.name}.json)"
                out.append("| " + " | ".join(
                    left + [ours, cell(arch), cell(data_label(rec)), cell(short_hardware(rec.data)), link]) + " |")
    return out


def _speed_rows(rec: Record, runs_rel: str) -> List[List[str]]:
    """README speed rows of one record: bench_hyperlstm (--json) or bench_train (--json)."""
    data, link = rec.data, f"[{rec.name}]({runs_rel}/{rec.name}.json), commit {code(commit_of(rec.data))}"
    rows = []
    throughput, one_step = (x if isinstance(x, dict) else {} for x in (data.get("throughput"), data.get("one_step")))
    precision = _layer_precision(data)
    measure = "fwd+bwd tokens/s vs `nn.LSTM`" + (f" ({precision})" if precision else "")
    for key, row in throughput.items():
        rows.append([measure, key, fmt(_get(row, "HyperLSTM", "speed_vs_nn_lstm"), "{:.2f}×"),
                     fmt(_get(row, "LN-HyperLSTM", "speed_vs_nn_lstm"), "{:.2f}×"),
                     f"{fmt(_get(row, 'nn.LSTM', 'tokens_per_s'), '{:.0f}')} tok/s", link])
    for key, row in one_step.items():
        rows.append(["one step vs `nn.LSTMCell`", key, fmt(_get(row, "HyperLSTM", "vs_lstmcell"), "{:.2f}×"),
                     fmt(_get(row, "LN-HyperLSTM", "vs_lstmcell"), "{:.2f}×"),
                     f"{fmt(_get(row, 'LSTMCell', 'ms'), '{:.3f}')} ms", link])
    results = data.get("results") if isinstance(data.get("results"), dict) else {}
    by_precision: Dict[str, Dict[str, dict]] = {}
    for row in results.values():
        if isinstance(row, dict) and "words_per_s" in row:
            by_precision.setdefault(str(row.get("precision", "?")), {})[str(row.get("config"))] = row
    for precision, configs in by_precision.items():
        base = configs.get("fairseq lstm_lm", {})
        rows.append([f"`fairseq-train` words/s vs fairseq `lstm_lm` ({precision})",
                     f"ptb/B{data.get('batch_size', '?')}",
                     fmt((configs.get("hyperlstm_lm_ptb") or {}).get("vs_fairseq_lstm_lm"), "{:.2f}×"),
                     fmt((configs.get("ln_hyperlstm_lm_ptb") or {}).get("vs_fairseq_lstm_lm"), "{:.2f}×"),
                     f"{fmt(base.get('words_per_s'), '{:.0f}')} words/s", link])
    return [[c if c is not None else "—" for c in r] for r in rows]


def is_gpu_record(data: dict) -> bool:
    return (data.get("device") == "cuda" or "--device cuda" in command_of(data)
            or bool(re.search(r"NVIDIA|\bGPU\b|cuda", str(data.get("hardware")))))


def _layer_precision(data: dict) -> str:
    """'bf16', 'TF32' or 'fp32' for a layer benchmark on CUDA or in another dtype than float32; '' on CPU fp32."""
    dtype = str(data.get("dtype") or "float32")
    if dtype != "float32":
        return {"bfloat16": "bf16", "float16": "fp16"}.get(dtype, dtype)
    if data.get("tf32") is True:
        return "TF32"
    return "fp32" if data.get("device") == "cuda" else ""


def newest_per_setting(benches: List[Record]) -> List[Record]:
    """Of the speed records that measured the same thing on the same hardware (the benchmark, the CPU or GPU
    model, the layer's dtype and TF32 setting), the newest by date (a record without one counts oldest), in the
    order of `benches`: older commits and experiments stay on the results page, not in the README."""
    newest: Dict[tuple, Record] = {}
    for rec in benches:
        kind = "bench_train" if rec.name.startswith("bench_train") else "bench_hyperlstm"
        key = (kind, hardware_of(rec.data), _layer_precision(rec.data))
        if key not in newest or str(rec.data.get("date") or "") > str(newest[key].data.get("date") or ""):
            newest[key] = rec
    kept = {r.name for r in newest.values()}
    return [r for r in benches if r.name in kept]


def readme_speed(records: List[Record], runs_rel: str) -> List[str]:
    """The speed records (docs/runs/bench_hyperlstm_*.json, bench_train*.json), the newest of each setting
    (`newest_per_setting`): CPU rows, then GPU rows or 'not measured yet'; then a line naming what was left out."""
    benches = [r for r in records if r.name.startswith(("bench_hyperlstm", "bench_train"))]
    shown = newest_per_setting(benches)
    out = ["| device | measure | size / batch | HyperLSTM | LN-HyperLSTM | baseline | record |", "|" + " --- |" * 7]
    for gpu in (False, True):
        chosen = [r for r in shown if is_gpu_record(r.data) == gpu]
        for rec in chosen:
            device = cell(hardware_of(rec.data)) if gpu else f"CPU: {cell(hardware_of(rec.data))}"
            out += ["| " + " | ".join([device, *row]) + " |" for row in _speed_rows(rec, runs_rel)]
        if gpu and not chosen:
            out.append("| GPU | not measured yet | | | | | |")
    shown_names = {r.name for r in shown}
    older = [r.name for r in benches if r.name not in shown_names]
    page = (os.path.dirname(runs_rel) or ".") + "/results.md"  # scripts/make_results.sh: docs/results.md beside runs
    if older:
        out += ["", f"Each row is from the newest record of its benchmark, hardware and precision; the {len(older)} "
                f"older or experimental one(s) ({', '.join(older)}) are on [the results page]({page})."]
    return out


def readme_demo(records: List[Record], runs_rel: str) -> List[str]:
    """The last recorded demo run (docs/runs/demo_ptb_cpu.json, written by `scripts/demo.sh --record`)."""
    demo = next((r for r in records if r.name == "demo_ptb_cpu"), None)
    if demo is None:
        return ["No demo run recorded yet (`bash scripts/demo.sh 5 --record` writes one)."]
    data = demo.data
    bpc = fmt(first(data, "result.bpc"), "{:.2f}") or "?"
    return [f"Recorded (`{command_of(data)}`, [{demo.name}]({runs_rel}/{demo.name}.json)): "
            f"**{bpc} bits per character** "
            f"on {data_label(demo)} after {updates_of(data)} updates of "
            f"{first(data, 'result.train_minutes') or '?'} min, "
            f"{wall_of(data)} wall in all, {cell(hardware_of(data))}, commit "
            f"{code(commit_of(data))}. Sample: *{cell(str(first(data, 'result.sample') or '').strip())}*"]


README_REGIONS = {"demo": readme_demo, "results": readme_results, "synthesis": readme_synthesis,
                  "speed": readme_speed}


def fill_readme(text: str, records: List[Record], runs_rel: str) -> str:
    """`text` with every README region rewritten from the records; a missing marker is an error."""
    for name, render in README_REGIONS.items():
        begin, end = f"<!-- {name}:begin (generated by scripts/make_results.sh) -->", f"<!-- {name}:end -->"
        start, stop = text.find(begin), text.find(end)
        if start < 0 or stop < start:
            raise ValueError(f"README has no region {begin} ... {end}")
        text = text[:start + len(begin)] + "\n" + "\n".join(render(records, runs_rel)) + "\n" + text[stop:]
    return text


def load_records(runs_dir: str) -> Tuple[List[Record], List[Tuple[str, str]]]:
    records, unreadable = [], []
    for path in sorted(glob.glob(os.path.join(runs_dir, "*.json"))):
        name = os.path.basename(path)[:-5]
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            unreadable.append((name, f"{type(e).__name__}: {e}"))
            continue
        records.append(classify(name, data))
    return records, unreadable


def generate(runs_dir: str, figures_dir: str, out_path: str) -> str:
    records, unreadable = load_records(runs_dir)
    rel = os.path.relpath(figures_dir, os.path.dirname(os.path.abspath(out_path)) or ".").replace(os.sep, "/")
    lines = [
        "# Results: the paper's tables beside ours",
        "",
        "<!-- generated by scripts/make_results.sh (python -m hyperfairseq.analysis results); do not edit -->",
        "",
        "Every number of ours comes from a run record under [docs/runs/](runs/) (command, commit, hardware, "
        "numbers); the paper's numbers are from paper-spec §4. Ours are labelled by the data set they were "
        "measured on: where it is not the paper's (Fashion-MNIST, KanjiVG, Bible En→Es, smoke slices) or the "
        "model is reduced, the numbers check the pipeline and the direction of effects, and are not comparable "
        "with the paper's. An empty cell: not run yet.",
        "",
    ]
    for table in TABLES:
        lines += render_table(table, [r for r in records if r.table == table.key])
    lines += render_figures(figures_dir, rel)
    lines += render_synthesis(records)
    lines += render_speed(records)
    lines += render_gpu_check(records)
    lines += render_other([r for r in records if r.table is None and not SYNTHESIS_NAME.match(r.name)], unreadable)
    return "\n".join(lines).rstrip() + "\n"


def check(text: str, runs_dir: str) -> List[str]:
    """Problems with a generated page: a missing table, or a record mentioned nowhere."""
    problems = [f"missing section {t.title!r}" for t in TABLES if f"## {t.title}" not in text]
    for path in glob.glob(os.path.join(runs_dir, "*.json")):
        name = os.path.basename(path)[:-5]
        if name not in text:
            problems.append(f"record {name} not on the page")
    return problems


def write_atomic(path: str, text: str) -> None:
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def main(runs_dir: str, out_path: str, figures_dir: Optional[str] = None, smoke: bool = False,
         readme: Optional[str] = None) -> int:
    """Write `out_path` (and the generated regions of `readme`) from the records; with `smoke`, write
    nothing and fail (1) when either is out of date. Also 1 when a record lands nowhere on the page."""
    if not os.path.isdir(runs_dir):
        raise FileNotFoundError(f"no run records folder {runs_dir}")
    figures_dir = figures_dir or os.path.join(os.path.dirname(out_path) or ".", "figures")
    text = generate(runs_dir, figures_dir, out_path)
    problems = check(text, runs_dir)
    outputs = {out_path: text}
    if readme is not None:
        if not os.path.isfile(readme):
            raise FileNotFoundError(f"no README {readme}")
        current = open(readme, encoding="utf-8").read()
        runs_rel = os.path.relpath(runs_dir, os.path.dirname(os.path.abspath(readme))).replace(os.sep, "/")
        outputs[readme] = fill_readme(current, load_records(runs_dir)[0], runs_rel)
    if smoke:
        for path, new in outputs.items():
            current = open(path, encoding="utf-8").read() if os.path.isfile(path) else None
            if current != new:
                problems.append(f"{path} out of date: run scripts/make_results.sh")
        print(f"smoke: {len(text.splitlines())} lines from {len(glob.glob(os.path.join(runs_dir, '*.json')))} records; "
              + ", ".join(outputs) + (" up to date" if not problems else " checked"))
    else:
        for path, new in outputs.items():
            write_atomic(path, new)
            print(f"wrote {path}")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0
