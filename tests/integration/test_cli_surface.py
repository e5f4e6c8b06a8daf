"""What a newcomer meets at the command line: tensorboard logs out of the box, no warnings nobody can act
on, and scripts/demo.sh's arguments."""

import json
import logging
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

from conftest import REPO, USER_DIR
from tensorboardX.proto.event_pb2 import Event

# the environment of a user's shell: Python's default warning filters, nothing set by the tests
USER_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"} | {"OMP_NUM_THREADS": "1"}
# what scripts/demo.sh sets: fairseq warns about torch.jit.script before it loads the plugin's filters
SCRIPT_ENV = USER_ENV | {"PYTHONWARNINGS": "ignore:`torch.jit.script` is deprecated:FutureWarning"}
WARNING = re.compile(r"\w*Warning\b")


def scalars(event_file: Path):
    """(tag, step, value) of every scalar in a tensorboard event file (TFRecord framing: a little-endian
    u64 length, a u32 crc of it, the Event proto, a u32 crc of that)."""
    data, at, out = event_file.read_bytes(), 0, []
    while at < len(data):
        (length,) = struct.unpack_from("<Q", data, at)
        event = Event.FromString(data[at + 12 : at + 12 + length])
        at += 12 + length + 4
        out += [(v.tag, event.step, v.simple_value) for v in event.summary.value if v.HasField("simple_value")]
    return out


def test_tensorboard_logdir_holds_the_training_loss_of_the_json_log(trained_lm):
    events = sorted((trained_lm.parent / "tb" / "train_inner").glob("events.out.tfevents.*"))
    assert len(events) == 1, events
    loss = {step: value for tag, step, value in scalars(events[0]) if tag == "loss"}
    records = [json.loads(line) for line in (trained_lm.parent / "train.log").read_text().splitlines()
               if line.startswith("{") and '"num_updates"' in line]
    logged = {int(r["num_updates"]): float(r["loss"]) for r in records}  # fairseq logs the last update twice
    assert sorted(loss) == sorted(logged) and len(loss) >= 10
    for step, value in logged.items():
        # the same meter value: the json log prints it rounded to 3 decimals, the event file holds it as a
        # float32, whose spacing near 8 is 9.5e-7, so they agree to 5e-4 + 1e-6
        assert abs(loss[step] - value) <= 5e-4 + 1e-6
    assert loss[max(loss)] < loss[10] - 0.5, "the loss falls"


def test_hyperfairseq_tools_print_no_warning(tmp_path):
    """A `python -m hyperfairseq.*` tool imports fairseq (and so torch.jit.script) after the plugin's filters."""
    proc = subprocess.run([sys.executable, "-m", "hyperfairseq.train_progress", "left", "--minutes", "1",
                           "--checkpoint", str(tmp_path / "none.pt")],
                          capture_output=True, text=True, env=USER_ENV, cwd=REPO, timeout=300)
    assert proc.returncode == 0 and proc.stdout == "60\n"
    assert proc.stderr == "", proc.stderr  # neither warnings nor "Please install tensorboardX"


def test_a_figure_tool_prints_no_debug_log(trained_lm, tmp_path):
    """fairseq's import sets the root logger to DEBUG (wav2vec2_classification.py): every figure then printed
    matplotlib's debug lines. The package undoes that (warning_filters.undo_fairseq_debug_level)."""
    out = tmp_path / "curve.png"
    proc = subprocess.run([sys.executable, "-m", "hyperfairseq.analysis", "curves", "--log",
                           str(trained_lm.parent / "train.log"), "--labels", "LN-HyperLSTM", "--out", str(out)],
                          capture_output=True, text=True, env=SCRIPT_ENV, cwd=REPO, timeout=300)
    assert proc.returncode == 0 and out.stat().st_size > 0, proc.stderr[-2000:]
    assert "DEBUG" not in proc.stderr, proc.stderr[-2000:]


def test_a_debug_level_the_user_set_stays():
    code = ("import logging; logging.basicConfig(level=logging.DEBUG); import hyperfairseq; "
            "print(logging.getLogger().level)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=SCRIPT_ENV, cwd=REPO,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout == f"{logging.DEBUG}\n", proc.stdout + proc.stderr[-2000:]


def test_fairseq_cli_with_the_plugin_prints_no_warning(trained_lm, ptb_slice_bin):
    proc = subprocess.run(
        [sys.executable, "-m", "fairseq_cli.eval_lm", str(ptb_slice_bin), "--user-dir", USER_DIR, "--task",
         "char_lm", "--path", str(trained_lm), "--cpu", "--batch-size", "16", "--tokens-per-sample", "100",
         "--gen-subset", "valid"],
        capture_output=True, text=True, env=SCRIPT_ENV, cwd=REPO, timeout=600,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Loss (base 2)" in output, output[-2000:]
    assert not WARNING.search(output), [line for line in output.splitlines() if WARNING.search(line)]


def test_demo_rejects_a_bad_budget_before_doing_anything():
    for bad in ("0", "five", "-3"):
        proc = subprocess.run(["bash", "scripts/demo.sh", bad], capture_output=True, text=True, cwd=REPO, timeout=60)
        assert proc.returncode == 2 and f"MINUTES must be a positive number; got '{bad}'" in proc.stderr


def test_demo_resumes_by_default_so_it_keeps_an_unreadable_checkpoint_and_names_it(ptb_slice_bin, tmp_path):
    save = tmp_path / "demo"
    save.mkdir()
    (save / "checkpoint_last.pt").write_bytes(b"PK\x03\x04 truncated")
    proc = subprocess.run(["bash", "scripts/demo.sh", "1", "--data", str(ptb_slice_bin), "--save-dir", str(save)],
                          capture_output=True, text=True, env=SCRIPT_ENV, cwd=REPO, timeout=300)
    assert proc.returncode != 0 and "checkpoint_last.pt cannot be read" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert (save / "checkpoint_last.pt").read_bytes() == b"PK\x03\x04 truncated", "nothing deleted without --fresh"
