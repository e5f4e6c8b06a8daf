"""Readable progress of a time-budgeted `fairseq-train` run (`--stop-time-hours`), e.g. for scripts/demo.sh.

    python -m hyperfairseq.train_progress left --minutes M --checkpoint checkpoints/demo/checkpoint_last.pt
    fairseq-train ... --log-format json | python -m hyperfairseq.train_progress follow --seconds S

`left` prints the whole seconds a checkpoint has left of an M-minute budget: M·60 without a checkpoint, 0
when it is spent (fairseq keeps its cumulative training time in the checkpoint and resumes the clock).
`follow` reads fairseq's log on stdin and prints one line per logged interval: the update, the training
loss in bits per symbol (fairseq's `cross_entropy` reports base-2 loss: bits per character on char-PTB),
updates per second and the time left of the S seconds that were left when training (re)started. Where
training starts or resumes, warnings, errors and fairseq's last line pass through; the rest (configuration,
model) is left to `--log-file`.
"""

import json
import re
import sys
import time
from pathlib import Path
from typing import Optional, TextIO

from hyperfairseq import cli

RECORD = re.compile(r"\| (train_inner|train) \| (\{.*\})\s*$")
STARTED = re.compile(r"\| (Loaded checkpoint|No existing checkpoint)")  # fairseq's trainer clock restarts here
PASS = re.compile(r"\| (WARNING|ERROR|CRITICAL) \||\| (Loaded checkpoint|No existing checkpoint|done training)")


def clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


def progress_line(stats: dict, left: float, unit: str) -> str:
    """One train_inner record: "update     40 · 3.120 bits/char · 0.98 updates/s · 3:20 left"."""
    return (
        f"update {int(stats['num_updates']):>6} · {float(stats['loss']):.3f} {unit} · "
        f"{float(stats.get('ups', 0)):.2f} updates/s · {clock(left)} left"
    )


def epoch_line(stats: dict, unit: str) -> str:
    return f"epoch {stats.get('epoch')} so far: {float(stats['train_loss']):.3f} {unit} on average"


def follow(lines: TextIO, out: TextIO, seconds: float, unit: str = "bits/char", now=time.monotonic) -> None:
    started = now()
    for line in lines:
        if STARTED.search(line):
            started = now()
        match = RECORD.search(line)
        if match:
            stats = json.loads(match.group(2))
            inner = match.group(1) == "train_inner"
            left = seconds - (now() - started)
            print(progress_line(stats, left, unit) if inner else epoch_line(stats, unit), file=out, flush=True)
        elif PASS.search(line):
            print(line.rstrip("\n").split(" | ")[-1], file=out, flush=True)


def trained_seconds(checkpoint: Path) -> Optional[float]:
    """fairseq's cumulative training time saved in a checkpoint, or None when there is no checkpoint."""
    if not checkpoint.is_file():
        return None
    from hyperfairseq.checkpoint_files import CheckpointError, safe_load

    try:
        state = safe_load(str(checkpoint), str(checkpoint))
    except CheckpointError as error:  # truncated, damaged, not a checkpoint
        reason = str(error).removeprefix(f"{checkpoint}: ")
        raise SystemExit(f"error: {checkpoint} cannot be read ({reason}); remove it to start over") from None
    if not isinstance(state, dict):
        raise SystemExit(f"error: {checkpoint} is not a fairseq checkpoint; remove it to start over")
    return float(state.get("extra_state", {}).get("previous_training_time", 0.0))


def main(argv=None) -> int:
    parser = cli.parser("train_progress", __doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    left = verbs.add_parser("left", help="seconds a checkpoint has left of a training budget")
    left.add_argument("--minutes", type=float, required=True, help="the budget (--stop-time-hours × 60)")
    left.add_argument("--checkpoint", type=Path, required=True, help="fairseq checkpoint (need not exist yet)")
    follow_ = verbs.add_parser("follow", help="progress lines from fairseq's json log on stdin")
    follow_.add_argument("--seconds", type=float, required=True, help="training seconds left at the start")
    follow_.add_argument("--unit", default="bits/char", help="what fairseq's base-2 loss counts (default bits/char)")
    args = parser.parse_args(argv)
    if args.verb == "left":
        if not args.minutes > 0:
            parser.error(f"--minutes must be positive; got {args.minutes}")
        print(int(max(0.0, 60.0 * args.minutes - (trained_seconds(args.checkpoint) or 0.0))))
    else:
        follow(sys.stdin, sys.stdout, args.seconds, args.unit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
