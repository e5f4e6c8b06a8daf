"""Figure 6: train and valid loss against updates for several runs, read from fairseq json logs
(`fairseq-train --log-format json --log-file FILE`).

Train points are the interval lines ({"loss", "num_updates"}); valid points are the end-of-validation
lines ({"valid_loss", "valid_num_updates"}); epoch averages ("train_loss") are skipped. Anything else in
the file (the printed config, the model, plain messages) is ignored. A json line that does not parse
(a truncated line from a killed run) or a loss that is not a finite number (NaN, inf) is reported in
`problems` and left out of the plot; it never stops the reading.
"""

import json
import math
from typing import List, NamedTuple, Optional, Sequence, Tuple

from .common import finish_figure, pyplot

Point = Tuple[float, float]


class LogCurves(NamedTuple):
    """Points (updates, loss) of one log, and one message per line that could not be used."""

    train: List[Point]
    valid: List[Point]
    problems: List[str]


def _number(value) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number


def _point(stats: dict, loss_key: str, updates_key: str, where: str, problems: List[str]) -> Optional[Point]:
    loss, updates = _number(stats.get(loss_key)), _number(stats.get(updates_key))
    if updates is None:
        problems.append(f"{where}: {loss_key} without {updates_key}")
        return None
    if loss is None or not math.isfinite(loss):
        problems.append(f"{where}: {loss_key} is {stats.get(loss_key)!r} (not a finite number)")
        return None
    return updates, loss


def read_log(path: str) -> LogCurves:
    """Parse one fairseq json log; never raises on a bad line (see `problems`)."""
    train, valid, problems = [], [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    for number, line in enumerate(lines, 1):
        start = line.find('{"')
        if start < 0:
            continue
        where = f"{path}:{number}"
        try:
            stats = json.loads(line[start:])
        except json.JSONDecodeError:
            problems.append(f"{where}: unreadable json line (truncated?): {line[start:start + 60]!r}")
            continue
        if not isinstance(stats, dict):
            continue
        if "loss" in stats:
            point = _point(stats, "loss", "num_updates", where, problems)
            train += [point] if point else []
        elif "valid_loss" in stats:
            point = _point(stats, "valid_loss", "valid_num_updates", where, problems)
            valid += [point] if point else []
    if not train and not valid:
        problems.append(f"{path}: no train or valid loss points")
    return LogCurves(train, valid, problems)


def plot(curves: Sequence[LogCurves], labels: List[str], out: str, title: str = "", ylabel: str = "loss") -> None:
    """One plot: every run a colour, train solid, valid dashed with markers."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for index, (run, label) in enumerate(zip(curves, labels)):
        colour = f"C{index % 10}"
        if run.train:
            ax.plot(*zip(*run.train), "-", color=colour, label=f"{label} train")
        if run.valid:
            ax.plot(*zip(*run.valid), "--o", color=colour, markersize=3, label=f"{label} valid")
    ax.set_xlabel("updates")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    finish_figure(fig, ax, out, title)
