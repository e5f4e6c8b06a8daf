"""Speed records: the layer benchmarks (benchmarks/bench_hyperlstm.py, bench_cpu_gemm.py), `fairseq-train`
words/s (bench_train.py) and the GPU check's summary (benchmarks/gpu_check.sh), each against its baseline
of the same run and its issue's gate, on the results page and (the newest of each setting) in the README."""

import os
from typing import Dict, List

from hyperfairseq.analysis.results.records import (
    Record,
    cell,
    code,
    command_of,
    commit_of,
    fmt,
    hardware_of,
    is_gpu_record,
    record_heading,
    wall_of,
)

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
            f"failed, {kernels.get('skipped', 0)} left out for time; under compute-sanitizer memcheck: "
            f"{memcheck.get('cases')} cases, {memcheck.get('failed')} failed, "
            f"{memcheck.get('sanitizer_errors', '?')} sanitizer errors ({memcheck.get('kernel_memory_errors', '?')} "
            f"kernel memory errors, {memcheck.get('api_error_reports', '?')} CUDA API calls that returned an error). "
            "CUDA-graph captures that failed (their "
            f"layers ran eagerly): {data.get('graph_capture_failures', '?')}.", ""]
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


def _layer_precision(data: dict) -> str:
    """'bf16', 'TF32' or 'fp32' for a layer benchmark on CUDA or in another dtype than float32; '' on CPU fp32."""
    dtype = str(data.get("dtype") or "float32")
    if dtype != "float32":
        return {"bfloat16": "bf16", "float16": "fp16"}.get(dtype, dtype)
    if data.get("tf32") is True:
        return "TF32"
    return "fp32" if data.get("device") == "cuda" else ""


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
