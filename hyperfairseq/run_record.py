"""Write a run record (command, commit, hardware, versions, results) as JSON under docs/runs/.

    python -m hyperfairseq.run_record --out docs/runs/demo_ptb.json --name demo_ptb \
        --command "bash scripts/demo.sh" --wall-seconds 312 --eval-lm-log eval.log --result updates=400

Every number the README and docs/results.md report comes from such a record. `--eval-lm-log` reads
fairseq-eval-lm's "Loss (base 2)" (bits per character for a character model) into `result.bpc`;
`--train-log` reads the last fairseq json log line into `result.train`.
"""

import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

from hyperfairseq import cli

REPO = Path(__file__).resolve().parents[1]
RECORDS = "docs/runs"
FIGURES = "docs/figures"  # a figure's record is beside it (analysis/common.py)


def git_commit(repo: Path) -> str:
    """HEAD of `repo` (+dirty with uncommitted changes outside docs/runs/ and docs/figures/: a record or figure
    written by the previous command of a series changes nothing that runs); where there is no git checkout
    (the device machine gets a copy of the files without .git), $HYPERFAIRSEQ_COMMIT as the caller stated it,
    else "unknown"."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
        status = ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", f":(exclude){RECORDS}",
                  f":(exclude){FIGURES}"]
        dirty = subprocess.run(status, cwd=repo, capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("HYPERFAIRSEQ_COMMIT") or "unknown"


def cpu_model() -> str:
    """The CPU's model name, with family/model and vector width where /proc/cpuinfo has them: the same
    name ("AMD EPYC") covers machines whose GEMMs run at very different speeds (gpu-design §6)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown"
    flags = fields.get("flags", "").split()
    isa = "avx512f" if "avx512f" in flags else ("avx2" if "avx2" in flags else "")
    detail = ", ".join(x for x in (f"family {fields['cpu family']} model {fields['model']}"
                                    if "cpu family" in fields else "", isa) if x)
    return f"{name} ({detail})" if detail else name


def hardware() -> dict:
    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "machine": platform.machine(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "load_average_1min": os.getloadavg()[0]}
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("torch", "fairseq", "numpy"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    return out


def within_checkout(command: str) -> str:
    """`command` with paths inside this checkout written relative to it, as they read from its root
    (scripts pass absolute paths so that they run from any folder; a record names no machine's folders)."""
    return command.replace(f"{REPO}{os.sep}", "")


def stamp(command: str, **fields) -> dict:
    """The fields every record under docs/runs/ carries (command, commit, date, hardware, versions), then
    `fields`, which may replace any of them (a benchmark names its hardware with the thread count)."""
    return {"command": within_checkout(command), "commit": git_commit(REPO),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "hardware": hardware(), "versions": versions(),
            **fields}


def write(path, record: dict) -> Path:
    """Write `record` as JSON at `path`, whole or not at all (a temporary file renamed over it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def eval_lm_bits(log: Path) -> float:
    matches = re.findall(r"Loss \(base 2\): ([0-9.]+)", log.read_text())
    if not matches:
        raise ValueError(f"{log}: no 'Loss (base 2)' line (is it a fairseq-eval-lm log?)")
    return float(matches[-1])


def last_train_stats(log: Path) -> dict:
    stats = None
    for line in log.read_text().splitlines():
        if "{" in line and ('"loss"' in line or '"train_loss"' in line):
            try:
                stats = json.loads(line[line.index("{"):])
            except json.JSONDecodeError:
                continue
    if stats is None:
        raise ValueError(f"{log}: no json log line with a loss (train with --log-format json --log-file)")
    return stats


def parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main(argv=None) -> int:
    parser = cli.parser("run_record", __doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--command", required=True, help="the command that produced the result")
    parser.add_argument("--data", default=None, help="data set the numbers are on (e.g. 'char-PTB test')")
    parser.add_argument("--wall-seconds", type=float, default=None)
    parser.add_argument("--eval-lm-log", type=Path, help="fairseq-eval-lm output: its bits go to result.bpc")
    parser.add_argument("--train-log", type=Path, help="fairseq json log: its last stats go to result.train")
    parser.add_argument("--result", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if args.out.is_dir():
        parser.error(f"--out {args.out} is a folder; expected the path of the JSON record to write")
    result = {}
    try:
        if args.eval_lm_log:
            result["bpc"] = eval_lm_bits(args.eval_lm_log)
        if args.train_log:
            result["train"] = last_train_stats(args.train_log)
    except (OSError, ValueError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    for item in args.result:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--result takes KEY=VALUE; got {item!r}")
        result[key] = parse_value(value)
    record = {"name": args.name, **stamp(args.command, data=args.data, wall_seconds=args.wall_seconds, result=result)}
    write(args.out, record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
