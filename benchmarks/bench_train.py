"""fairseq-train speed of hyperfairseq's language models against fairseq's own `lstm_lm`, in one run.

Every configuration trains with fairseq's stock `language_modeling` task (B rows of `--tokens-per-sample`
symbols per update, `--sample-break-mode none`), twice: for `U1` and for `U2` updates. The difference
removes start-up and the first updates, so words/s = (U2 - U1) · B · L / (t2 - t1) with t the child's
CPU time (`--clock process`, robust on a shared CPU with one thread) or its wall time (`--clock wall`,
the only meaningful clock on a GPU); `--updates U` (one count) runs each configuration once and counts its
start-up in (the dry run of gpu_check.sh: the command lines, no speed claim). Configurations run
interleaved, `--repeats` times; the medians and their ratios against fairseq's `lstm_lm`
(`--decoder-embed-dim 64 --decoder-hidden-size 1000`) are reported and written with `--json`.

    python benchmarks/bench_train.py --data data-bin/ptb_char --device cpu --json docs/runs/bench_train_cpu.json
    python benchmarks/bench_train.py --data data-bin/ptb_char --device cuda --batch-size 128 --clock wall \\
        --precisions fp32,amp,bf16 --updates 20,120 --json out.json
"""

import argparse
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
           "--disable-validation", "--log-format", "json", "--log-interval", "1", "--seed", "1",
           "--required-batch-size-multiple", "1", *arch_flags, *PRECISION_FLAGS[precision]]
    if args.tiny:  # the dry run of gpu_check.sh: every configuration shrunk to a few units
        cmd += ["--decoder-hidden-size", "32"] + (["--decoder-embed-dim", "16"] if arch_flags is FAIRSEQ_LSTM
                                                  else ["--hyper-hidden-size", "8"])
    return cmd + (["--cpu"] if args.device == "cpu" else [])


def timed_run(cmd, clock: str, env) -> float:
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[2:6])}... failed:\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return cpu if clock == "process" else wall


def measure(args, env):
    updates = [int(u) for u in args.updates.split(",")]
    u1, u2 = (0, *updates) if len(updates) == 1 else updates  # one count: a single run, start-up included
    tokens = (u2 - u1) * args.batch_size * args.tokens_per_sample
    names = [n for n in CONFIGS if n in args.configs.split(",")]
    rows = {
        f"{n} [{p}]": {"config": n, "precision": p, "seconds": []} for p in args.precisions.split(",") for n in names
    }
    for _ in range(args.repeats):
        for row in rows.values():
            flags = CONFIGS[row["config"]]
            t1 = timed_run(train_command(args, flags, row["precision"], u1), args.clock, env) if u1 else 0.0
            t2 = timed_run(train_command(args, flags, row["precision"], u2), args.clock, env)
            row["seconds"].append(t2 - t1)
            print(f"{row['config']:22s} {row['precision']:5s} {tokens / (t2 - t1):9.0f} words/s", flush=True)
    for key, row in rows.items():
        row["words_per_s"] = tokens / statistics.median(row["seconds"])
        base = rows.get(f"fairseq lstm_lm [{row['precision']}]") or rows[next(iter(rows))]
        row["vs_fairseq_lstm_lm"] = row["words_per_s"] / base["words_per_s"]
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a binarised character corpus (scripts/prepare_ptb_char.sh)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--tokens-per-sample", type=int, default=100)
    p.add_argument("--updates", default="4,16",
                   help="U1,U2: the two run lengths whose difference is timed; one count U: a single run per "
                        "configuration, its start-up included (the dry run of gpu_check.sh: command lines, no speed)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--precisions", default="fp32")
    p.add_argument("--clock", default="process", choices=["process", "wall"])
    p.add_argument("--tiny", action="store_true", help="32-unit models (a dry run of the code path, no speed claim)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), PYTHONWARNINGS="ignore")
    rows = measure(args, env)
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_hyperlstm import hardware  # noqa: E402  (on CUDA: the GPU's name)

    from hyperfairseq import run_record

    # the timed runs are child processes: on CPU their thread count is OMP_NUM_THREADS, not this process's
    machine = (f"{run_record.cpu_model()}, {env['OMP_NUM_THREADS']} thread(s)" if args.device == "cpu"
               else hardware(args.device))
    command = " ".join(["python benchmarks/bench_train.py", *(argv if argv is not None else sys.argv[1:])])
    record = run_record.stamp(command, hardware=machine, omp_num_threads=env["OMP_NUM_THREADS"], clock=args.clock,
                              batch_size=args.batch_size, tokens_per_sample=args.tokens_per_sample,
                              updates=args.updates, results=rows)
    for key, row in rows.items():
        print(f"{key:32s} {row['words_per_s']:9.0f} words/s  x{row['vs_fairseq_lstm_lm']:.2f} vs fairseq lstm_lm")
    if args.json:
        run_record.write(args.json, record)
    return record


if __name__ == "__main__":
    main()
