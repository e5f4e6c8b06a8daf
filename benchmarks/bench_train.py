"""fairseq-train speed of hyperfairseq's language models against fairseq's own `lstm_lm`, in one run.

Every configuration trains with fairseq's stock `language_modeling` task (B rows of `--tokens-per-sample`
symbols per update, `--sample-break-mode none`). Two timings (`--timing`):

* `difference` (the CPU records): each configuration trains twice, for `U1` and for `U2` updates. The
  difference removes start-up and the first updates, so words/s = (U2 - U1) · B · L / (t2 - t1) with t
  the child's CPU time (`--clock process`, robust on a shared CPU with one thread) or its wall time
  (`--clock wall`).
* `log` (the GPU check, where start-up, ~10 s a process, would cost more than the training timed): each
  configuration trains once for `--updates U`, and words/s is the median of fairseq's own `wps` over the
  log intervals (`--log-interval`) after the first, which holds start-up, kernel compiles and CUDA-graph
  capture (fairseq times each interval on the wall clock from the previous log, and syncs the GPU at
  every update's gradient-norm check).

Configurations run interleaved, `--repeats` times, in the order of `--precisions` then `CONFIGS`; the
medians and their ratios against fairseq's `lstm_lm` (`--decoder-embed-dim 64 --decoder-hidden-size
1000`) of the same precision (of another precision where that one has no figure; `baseline` names it) are
reported. A run that fails is recorded in its row (`error`, `log_tail`) and the others go on; `--json` is
rewritten after every run, so a stage cut short keeps what it did; `--budget-s` starts no run that would
end past that many seconds at the pace of the longest run so far (those rows say `skipped`).

    python benchmarks/bench_train.py --data data-bin/ptb_char --device cpu --json docs/runs/bench_train_cpu.json
    python benchmarks/bench_train.py --data data-bin/ptb_char --device cuda --batch-size 128 --timing log \\
        --updates 45 --log-interval 15 --precisions fp32,bf16,amp --json out.json
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FAIRSEQ_LSTM = ["--arch", "lstm_lm", "--decoder-embed-dim", "64", "--decoder-hidden-size", "1000"]
CONFIGS = {  # name: architecture flags (fairseq's baseline first: the ratios are taken against it)
    "fairseq lstm_lm": FAIRSEQ_LSTM,
    "lstm_lm_ptb_1000": ["--arch", "lstm_lm_ptb_1000"],
    "ln_lstm_lm_ptb": ["--arch", "ln_lstm_lm_ptb"],
    "hyperlstm_lm_ptb": ["--arch", "hyperlstm_lm_ptb"],
    "ln_hyperlstm_lm_ptb": ["--arch", "ln_hyperlstm_lm_ptb"],
}
PRECISION_FLAGS = {"fp32": [], "amp": ["--amp"], "bf16": ["--bf16"], "fp16": ["--fp16"]}


def train_command(args, arch_flags, precision, updates):
    cmd = [sys.executable, "-m", "fairseq_cli.train", args.data, "--user-dir", str(REPO / "hyperfairseq"),
           "--task", "language_modeling", "--sample-break-mode", "none", "--tokens-per-sample",
           str(args.tokens_per_sample), "--batch-size", str(args.batch_size), "--optimizer", "adam", "--lr", "1e-3",
           "--clip-norm", "1.0", "--max-update", str(updates), "--num-workers", "0", "--no-save",
           "--disable-validation", "--log-format", "json", "--log-interval", str(args.log_interval), "--seed", "1",
           "--required-batch-size-multiple", "1", *arch_flags, *PRECISION_FLAGS[precision]]
    if args.tiny:  # the dry run of gpu_check.sh: every configuration shrunk to a few units
        cmd += ["--decoder-hidden-size", "32"] + (["--decoder-embed-dim", "16"] if arch_flags is FAIRSEQ_LSTM
                                                  else ["--hyper-hidden-size", "8"])
    return cmd + (["--cpu"] if args.device == "cpu" else [])


class TrainFailed(RuntimeError):
    """A fairseq-train run that exited non-zero (or logged no rate); `tail` is the end of its output."""

    def __init__(self, message: str, tail: str):
        super().__init__(message)
        self.tail = tail


def run_train(cmd, env):
    """Run one fairseq-train command: (its stdout, wall seconds, CPU seconds of the child)."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise TrainFailed(f"{' '.join(cmd[2:6])}... exited {proc.returncode}",
                          (proc.stdout[-1500:] + "\n" + proc.stderr[-3000:]).strip())
    for line in proc.stderr.splitlines():  # our warnings (a layer whose CUDA graph failed ran eagerly: the
        if "hyperfairseq:" in line and "Warning" in line:  # rate is an eager one) go to this log, where
            print(f"{' '.join(cmd[2:6])}...: {line}", flush=True)  # gpu_summary.py counts them
    return proc.stdout, wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def child_env() -> dict:
    """The environment of the fairseq-train runs: one thread unless OMP_NUM_THREADS says otherwise; fairseq's
    warnings off, ours kept (`run_train` passes them on)."""
    return dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
                PYTHONWARNINGS="ignore,default:hyperfairseq")


def timed_run(cmd, clock: str, env) -> float:
    _, wall, cpu = run_train(cmd, env)
    return cpu if clock == "process" else wall


def logged_rates(stdout: str) -> list:
    """fairseq's `wps` of every `train_inner` log line after the first (json log format), in order."""
    rates = []
    for line in stdout.splitlines():
        _, tag, stats = line.partition("| train_inner | ")
        if tag:
            rates.append(float(json.loads(stats)["wps"]))
    return rates[1:]


def log_rate(cmd, env) -> list:
    """The words/s fairseq logged for each interval after the first of one run."""
    stdout, _, _ = run_train(cmd, env)
    rates = logged_rates(stdout)
    if not rates:
        raise TrainFailed("no train_inner line after the first log interval (too few updates?)", stdout[-2000:])
    return rates


def plan_rows(args) -> dict:
    """Every (configuration, precision) row, precision by precision, fairseq's baseline first in each."""
    names = [n for n in CONFIGS if n in args.configs.split(",")]
    return {f"{n} [{p}]": {"config": n, "precision": p, "seconds": [], "logged_words_per_s": []}
            for p in args.precisions.split(",") for n in names}


def measure_row(args, row, env) -> None:
    """One timing of `row` (one repeat), appended to its seconds (difference) or logged rates (log)."""
    flags = CONFIGS[row["config"]]
    updates = [int(u) for u in args.updates.split(",")]
    if args.timing == "log":
        row["logged_words_per_s"].append(log_rate(train_command(args, flags, row["precision"], updates[-1]), env))
        return
    u1, u2 = (0, *updates) if len(updates) == 1 else updates  # one count: a single run, start-up included
    t1 = timed_run(train_command(args, flags, row["precision"], u1), args.clock, env) if u1 else 0.0
    t2 = timed_run(train_command(args, flags, row["precision"], u2), args.clock, env)
    row["seconds"].append(t2 - t1)


def words_per_s(args, row):
    """The row's median words/s so far, or None before its first successful timing."""
    if args.timing == "log":
        rates = [statistics.median(r) for r in row["logged_words_per_s"]]
        return statistics.median(rates) if rates else None
    updates = [int(u) for u in args.updates.split(",")]
    tokens = (updates[-1] - (updates[0] if len(updates) > 1 else 0)) * args.batch_size * args.tokens_per_sample
    return tokens / statistics.median(row["seconds"]) if row["seconds"] else None


def summarise(args, rows: dict) -> None:
    """words/s of every row and its ratio against fairseq's lstm_lm of its precision (else of the first
    precision that has one; `baseline` names the row)."""
    for row in rows.values():
        row["words_per_s"] = words_per_s(args, row)
    bases = [key for key, row in rows.items() if row["config"] == "fairseq lstm_lm" and row["words_per_s"]]
    for row in rows.values():
        same = f"fairseq lstm_lm [{row['precision']}]"
        base = same if same in bases else (bases[0] if bases else None)
        row["baseline"] = base
        row["vs_fairseq_lstm_lm"] = (row["words_per_s"] / rows[base]["words_per_s"]
                                     if base and row["words_per_s"] else None)


def measure(args, env, on_change, start: float) -> dict:
    """Time every row `args.repeats` times, interleaved; `on_change(rows)` after every run. The budget counts
    from `start` (perf_counter seconds)."""
    rows, longest = plan_rows(args), 0.0
    for _ in range(args.repeats):
        for row in rows.values():
            if args.budget_s is not None and time.perf_counter() - start + longest > args.budget_s:
                row["skipped"] = row.get("skipped", 0) + 1  # runs left out for the time budget
                continue
            began = time.perf_counter()
            try:
                measure_row(args, row, env)
            except TrainFailed as err:  # recorded in the row; the other rows still run
                row.update(error=str(err), log_tail=err.tail)
                print(f"{row['config']:22s} {row['precision']:5s} FAILED: {err}\n{err.tail[-1500:]}", flush=True)
            longest = max(longest, time.perf_counter() - began)
            summarise(args, rows)
            if row["words_per_s"] and "error" not in row:
                print(f"{row['config']:22s} {row['precision']:5s} {row['words_per_s']:9.0f} words/s "
                      f"({time.perf_counter() - began:.0f} s)", flush=True)
            on_change(rows)
    summarise(args, rows)
    return rows


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a binarised character corpus (scripts/prepare_ptb_char.sh)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--tokens-per-sample", type=int, default=100)
    p.add_argument("--timing", default="difference", choices=["difference", "log"],
                   help="difference: two run lengths, their time difference; log: one run, fairseq's logged wps "
                        "after the first log interval (see the module docstring)")
    p.add_argument("--updates", default="4,16",
                   help="difference: U1,U2, the two run lengths whose difference is timed, or one count U: a single "
                        "run per configuration, its start-up included (no speed claim); log: U, the run's length")
    p.add_argument("--log-interval", type=int, default=1, help="updates per fairseq log line (log timing)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--precisions", default="fp32")
    p.add_argument("--clock", default="process", choices=["process", "wall"], help="difference timing's clock")
    p.add_argument("--budget-s", type=float, default=None,
                   help="start no run that would end past this many seconds (from this process's start) at the "
                        "longest run's pace")
    p.add_argument("--tiny", action="store_true", help="32-unit models (a dry run of the code path, no speed claim)")
    p.add_argument("--json", default=None, help="rewritten after every run")
    return p


def main(argv=None):
    start = time.perf_counter()  # --budget-s counts from here: the imports below take seconds
    args = _parser().parse_args(argv)
    env = child_env()
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_hyperlstm import hardware  # noqa: E402  (on CUDA: the GPU's name)

    from hyperfairseq import run_record

    # the timed runs are child processes: on CPU their thread count is OMP_NUM_THREADS, not this process's
    machine = (f"{run_record.cpu_model()}, {env['OMP_NUM_THREADS']} thread(s)" if args.device == "cpu"
               else hardware(args.device))
    command = " ".join(["python benchmarks/bench_train.py", *(argv if argv is not None else sys.argv[1:])])
    clock = "fairseq's logged wps (wall)" if args.timing == "log" else args.clock

    def record_of(rows: dict) -> dict:
        return run_record.stamp(command, hardware=machine, omp_num_threads=env["OMP_NUM_THREADS"], clock=clock,
                                timing=args.timing, batch_size=args.batch_size,
                                tokens_per_sample=args.tokens_per_sample, updates=args.updates,
                                log_interval=args.log_interval if args.timing == "log" else None, results=rows)

    rows = measure(args, env, lambda rows: args.json and run_record.write(args.json, record_of(rows)), start)
    for key, row in rows.items():
        speed = f"{row['words_per_s']:9.0f} words/s" if row["words_per_s"] else "  not measured"
        ratio = f"x{row['vs_fairseq_lstm_lm']:.2f} vs {row['baseline']}" if row["vs_fairseq_lstm_lm"] else ""
        note = "  FAILED" if "error" in row else ("  skipped (time budget)" if row.get("skipped") else "")
        print(f"{key:32s} {speed}  {ratio}{note}", flush=True)
    record = record_of(rows)
    if args.json:
        run_record.write(args.json, record)
    return record


if __name__ == "__main__":
    sys.exit(1 if any("error" in row for row in main()["results"].values()) else 0)
