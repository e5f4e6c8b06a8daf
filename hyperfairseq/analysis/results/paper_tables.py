"""The paper's tables (paper-spec §4) with its numbers, which of our records fills which row, and the
page's and README's tables that put ours beside the paper's.

A record fills the row of its architecture (smoke runs are listed but never fill a row), and every number
of ours names its data set, since most of our runs are on substitutes (Fashion-MNIST for MNIST and
CIFAR-10, KanjiVG strokes for IAM-OnDB, Bible En→Es for WMT'14) or reduced sizes. Under each table every
record assigned to it is listed with its command, commit, hardware and wall time.
"""

import re
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from hyperfairseq.analysis.results.records import (
    Record,
    cell,
    code,
    command_of,
    commit_of,
    data_label,
    first,
    fmt,
    hardware_of,
    millions,
    short_hardware,
    updates_of,
    wall_of,
)
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
    reduced = first(data, "result.reduced", "results.reduced")
    return Record(name, data, table, arch, smoke, f"reduced: {reduced}" if reduced else "")


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


README_METRICS = {"2": "CIFAR-10, test error", "3": "char-PTB, test BPC", "4": "enwik8, test BPC",
                  "5": "IAM-OnDB, log-loss (nats)", "6": "WMT'14 En→Fr, BLEU", "7": "MNIST, test error"}


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
