"""train_progress: fairseq's json log as progress lines, and the seconds a checkpoint has left of a budget.

The log lines are fairseq-train's own format (from a run of scripts/demo.sh, fields shortened); the clock is a fake one.
"""

import io

import pytest
import torch

from hyperfairseq import train_progress

LOG = """\
2026-12-01 19:57:24 | INFO | fairseq_cli.train | {'_name': None, 'common': {'log_format': 'json'}}
2026-12-01 19:57:24 | INFO | fairseq.trainer | Loaded checkpoint demo/checkpoint_last.pt (epoch 1 @ 41 updates)
2026-12-01 19:57:31 | INFO | train_inner | {"epoch": 1, "loss": "4.792", "ups": "0.74", "num_updates": "60"}
2026-12-01 19:57:40 | WARNING | fairseq.trainer | NaN or Inf found in input tensor.
2026-12-01 19:57:59 | INFO | train_inner | {"epoch": 1, "loss": "4.157", "ups": "0.72", "num_updates": "80"}
2026-12-01 19:58:01 | INFO | train | {"epoch": 1, "train_loss": "4.227", "train_num_updates": "81"}
2026-12-01 19:58:01 | INFO | fairseq_cli.train | done training in 58.6 seconds
"""


class FakeClock:
    """Each call returns the next time: the start, the 'loaded checkpoint' line, then one per record."""

    def __init__(self, *times):
        self.times = list(times)

    def __call__(self):
        return self.times.pop(0)


def test_follow_prints_updates_loss_rate_and_time_left_counted_from_the_resume():
    out = io.StringIO()
    train_progress.follow(io.StringIO(LOG), out, seconds=60, now=FakeClock(0.0, 10.0, 40.0, 75.0, 76.0))
    assert out.getvalue().splitlines() == [
        "Loaded checkpoint demo/checkpoint_last.pt (epoch 1 @ 41 updates)",
        "update     60 · 4.792 bits/char · 0.74 updates/s · 0:30 left",  # 60 s left at 10 s, now 40 s
        "NaN or Inf found in input tensor.",
        "update     80 · 4.157 bits/char · 0.72 updates/s · 0:00 left",  # past the budget: never negative
        "epoch 1 so far: 4.227 bits/char on average",
        "done training in 58.6 seconds",
    ]


def test_left_counts_the_checkpoints_training_time_against_the_budget(tmp_path, capsys):
    checkpoint = tmp_path / "checkpoint_last.pt"
    assert train_progress.main(["left", "--minutes", "5", "--checkpoint", str(checkpoint)]) == 0
    assert capsys.readouterr().out == "300\n"  # no checkpoint yet: the whole budget
    torch.save({"extra_state": {"previous_training_time": 212.6}}, checkpoint)
    train_progress.main(["left", "--minutes", "5", "--checkpoint", str(checkpoint)])
    assert capsys.readouterr().out == "87\n"
    train_progress.main(["left", "--minutes", "2", "--checkpoint", str(checkpoint)])
    assert capsys.readouterr().out == "0\n"


def test_left_names_an_unreadable_checkpoint_and_a_bad_budget(tmp_path, capsys):
    broken = tmp_path / "checkpoint_last.pt"
    broken.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SystemExit, match=r"checkpoint_last.pt cannot be read \(truncated or damaged .*remove it "
                                         "to start over"):
        train_progress.main(["left", "--minutes", "5", "--checkpoint", str(broken)])
    torch.save(torch.zeros(2), tmp_path / "tensor.pt")
    with pytest.raises(SystemExit, match=r"tensor.pt is not a fairseq checkpoint; remove it to start over"):
        train_progress.main(["left", "--minutes", "5", "--checkpoint", str(tmp_path / "tensor.pt")])
    with pytest.raises(SystemExit):
        train_progress.main(["left", "--minutes", "0", "--checkpoint", str(broken)])
    assert "--minutes must be positive; got 0.0" in capsys.readouterr().err
