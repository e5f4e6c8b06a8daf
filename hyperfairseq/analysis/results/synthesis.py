"""Handwriting synthesis (issue 15; no paper table): docs/runs/synthesis_{hershey,alignment,legibility}_*.json,
grouped by model and checkpoint, on the results page and in the README."""

import re
from typing import Dict, List, NamedTuple, Optional, Tuple

from hyperfairseq.analysis.results.records import (
    Record,
    cell,
    code,
    command_of,
    commit_of,
    dig,
    fmt,
    hardware_of,
    wall_of,
)

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
