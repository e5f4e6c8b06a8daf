"""Summarise a `gpu_check.sh` run: every stage's status and the numbers the GPU gates of issue 13 name.

Reads the stage logs and JSON files of the run's work folder and the benchmark records beside it, and
writes `gpu_check.json` (command, commit, hardware, versions, stages, gates, char-PTB bpc) and Table 3's record of
the char-PTB run (`table3_gpu_ln_hyperlstm_lm_ptb.json`). A stage that failed is reported as failed, with the end
of its log; the gates it feeds read as not measured. Every file it and gpu_check.sh leave in OUT but the logs is a
run record that goes to docs/runs/ as it is (scripts/make_results.sh then renders it).

    python benchmarks/gpu_summary.py --work WORK --out OUT --seconds 512

gpu_check.sh calls it on exit. A run killed outright returns only OUT's files: unpack its logs.tar.gz
(`mkdir w && tar -xzf OUT/logs.tar.gz -C w`, our own archive) and run it here with `--work w --out OUT`.
"""

import argparse
import json
import re
from pathlib import Path

from hyperfairseq import run_record

STAGES = ("env", "kernels", "memcheck", "micro", "layer", "speed", "train", "eval")
CASE_COUNTS = ("planned", "cases", "failed", "skipped", "not_run", "complete")  # check_kernels_on_device.py's
GRAPH_FALLBACK = "CUDA graph capture failed"  # cuda_graphs' warning: that layer then ran eagerly
# (record, size/batch key, variant, baseline, at least): fwd+bwd tokens/s ratios of gpu-design / issue 13 §5
LAYER_GATES = [
    ("bench_hyperlstm_gpu_tf32.json", "ptb/B128", "HyperLSTM", "nn.LSTM", 1.0),
    ("bench_hyperlstm_gpu_tf32.json", "ptb/B128", "LN-HyperLSTM", "nn.LSTM", 0.8),
    ("bench_hyperlstm_gpu_bf16.json", "ptb/B128", "HyperLSTM", "nn.LSTM", 1.0),
    ("bench_hyperlstm_gpu_tf32.json", "enwik8/B128", "HyperLSTM", "nn.LSTM", 0.8),
    ("bench_hyperlstm_gpu_fp32.json", "ptb/B128", "HyperLSTM", "nn.LSTM", None),  # TF32 forbidden: reported only
]


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _tail(path: Path, lines: int = 6) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _read(path: Path):
    """A stage's one-line file: an int (exit status, seconds), another word ("skipped"), or None if absent."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.lstrip("-").isdigit() else text


def stages(work: Path) -> dict:
    """Each stage's exit status ("skipped": no time was left before the run's deadline), wall seconds, the
    time limit it ran under (the deadline shortens the last ones) and the end of its log."""
    out = {}
    for name in STAGES:
        rc = _read(work / f"{name}.status")
        out[name] = {"exit_status": rc, "ok": rc == 0, "wall_s": _read(work / f"{name}.seconds"),
                     "limit_s": _read(work / f"{name}.limit"), "log_tail": _tail(work / f"{name}.log")}
    return out


def kernel_cases(path: Path, log: Path = None) -> dict:
    """The case counts of a check_kernels_on_device.py record; with `log` (a compute-sanitizer run), the
    errors its ERROR SUMMARY counted (None if it printed none: no sanitizer, or cut short)."""
    record = _json(path) or {}
    out = {k: record.get(k) for k in ("device", *CASE_COUNTS) if log is None or k != "device"}
    if log is not None:
        errors = re.findall(r"ERROR SUMMARY: (\d+) error", _tail(log, 400))
        out["sanitizer_errors"] = int(errors[-1]) if errors else None
        text = _tail(log, 100_000)  # what the summary counted: an error a CUDA API call returned (the runtimes
        # probe some on purpose) is reported as "Program hit ..."; a kernel's bad access as "Invalid ..." etc.
        out["api_error_reports"] = len(re.findall(r"^=+ Program hit \S+", text, re.M))
        out["kernel_memory_errors"] = len(re.findall(
            r"^=+ (?:Invalid|Misaligned|Out-of-range|Uninitialized|Hardware exception|Malloc/Free error)", text, re.M))
    return out


def side_notes(work: Path) -> dict:
    """What the stage statuses do not say: layers that fell back from CUDA graphs to eager launches (their
    timings are eager ones), the background compile's failures, and the microbenchmark's tile runs."""
    logs = "".join(p.read_text(errors="replace") for p in sorted(work.glob("*.log")))
    warm = _tail(work / "warm.log", 1000)
    tiles = ((_json(work / "micro_triton.json") or {}).get("result")) or {}
    return {"graph_capture_failures": logs.count(GRAPH_FALLBACK),
            "warm": {"warmed": len(re.findall(r"^warm .*: [0-9.]+ s$", warm, re.M)), "failed": warm.count(": FAILED"),
                     "exit": _tail(work / "warm.status", 1) or None},
            "micro_tiles": {k: len(tiles.get(k) or []) for k in ("parts", "errors", "skipped")}}


def layer_gates(out_dir: Path) -> list:
    gates = []
    for record, key, variant, base, minimum in LAYER_GATES:
        rows = ((_json(out_dir / record) or {}).get("throughput") or {}).get(key) or {}
        ratio = rows[variant]["tokens_per_s"] / rows[base]["tokens_per_s"] if variant in rows and base in rows else None
        peak = None
        if variant in rows and base in rows and rows[base].get("peak_bytes"):
            peak = rows[variant]["peak_bytes"] / rows[base]["peak_bytes"]
        gates.append({"record": record, "case": key, "variant": variant, "vs": base, "ratio": ratio,
                      "at_least": minimum, "met": None if ratio is None or minimum is None else ratio >= minimum,
                      "peak_memory_ratio": peak, "peak_met": None if peak is None else peak <= 1.5})
    return gates


def train_speed_gates(out_dir: Path) -> list:
    rows = ((_json(out_dir / "bench_train_gpu.json") or {}).get("results")) or {}
    gates = []
    for key, row in rows.items():
        if row["config"] == "ln_hyperlstm_lm_ptb":
            ratio = row.get("vs_fairseq_lstm_lm")
            gates.append({"case": key, "words_per_s": row.get("words_per_s"), "ratio": ratio,
                          "vs": row.get("baseline", f"fairseq lstm_lm [{row['precision']}]"), "at_least": 3.0,
                          "met": None if ratio is None else ratio >= 3.0, "error": row.get("error")})
    return gates


def char_ptb(work: Path) -> dict:
    train = (work / "train.log").read_text(errors="replace") if (work / "train.log").exists() else ""
    updates = [int(u) for u in re.findall(r'"num_updates": "?(\d+)', train)]
    losses = [float(x) for x in re.findall(r'"train_loss": "?([0-9.]+)', train)]
    evals = re.findall(r"Loss \(base 2\): ([0-9.]+)", _tail(work / "eval.log", 40))
    return {"updates": max(updates) if updates else None, "last_train_loss_bits": losses[-1] if losses else None,
            "test_bpc": float(evals[-1]) if evals else None}


def stamp(name: str, command: str, seconds, **fields) -> dict:
    """A run record (hyperfairseq.run_record.stamp) named `name`, that took `seconds`."""
    return {"name": name, **run_record.stamp(command, wall_seconds=seconds, **fields)}


def char_ptb_record(summary: dict, dry_run: bool) -> dict:
    """Table 3's row of this run (docs/runs/table3_gpu_ln_hyperlstm_lm_ptb.json): the paper's settings, a short
    time budget; `smoke` for the dry run's tiny model."""
    train = summary["stages"]["train"]
    run = summary["char_ptb_ln_hyperlstm"]
    minutes = round(train["wall_s"] / 60, 1) if train["wall_s"] is not None else None
    return stamp("table3_gpu_ln_hyperlstm_lm_ptb", "bash benchmarks/gpu_check.sh (stages train, eval)",
                 train["wall_s"], arch="ln_hyperlstm_lm_ptb", smoke=dry_run, data="char-PTB test (full)",
                 result={"bpc": run["test_bpc"], "updates": run["updates"], "train_minutes": minutes,
                         "last_train_loss_bits": run["last_train_loss_bits"], "train_ok": train["ok"],
                         "eval_ok": summary["stages"]["eval"]["ok"]})


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--dry-run", action="store_true", help="the CPU rehearsal: its char-PTB record is a smoke run")
    args = p.parse_args(argv)
    work, out_dir = Path(args.work), Path(args.out)
    summary = stamp("gpu_check", "bash benchmarks/gpu_check.sh", args.seconds, **{
        "environment": _tail(work / "env.log", 30), "stages": stages(work),
        "kernels": kernel_cases(work / "kernels.json"),
        "kernels_memcheck": kernel_cases(work / "kernels_memcheck.json", work / "memcheck.log"),
        "micro": (_json(work / "micro_steps.json") or {}).get("micro"), **side_notes(work),
        "layer_gates": layer_gates(out_dir), "train_speed_gates": train_speed_gates(out_dir),
        "char_ptb_ln_hyperlstm": char_ptb(work),
    })
    run_record.write(out_dir / "gpu_check.json", summary)
    record = char_ptb_record(summary, args.dry_run)
    run_record.write(out_dir / f"{record['name']}.json", record)
    for name, stage in summary["stages"].items():
        print(f"{name:8s} {'ok' if stage['ok'] else 'FAILED (' + str(stage['exit_status']) + ')'}")
    if summary["graph_capture_failures"]:
        print(f"{summary['graph_capture_failures']} CUDA graph capture failure(s): those layers ran eagerly")
    return summary


if __name__ == "__main__":
    main()
