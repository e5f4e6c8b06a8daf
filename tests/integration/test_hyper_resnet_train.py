"""examples/hyper_resnet/train.py on real Fashion-MNIST: exact resume, signals, DDP, accuracy, errors."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vision_fixtures as vf  # noqa: E402

T = vf.load_train_module()


def small_run(tmp, arch="hyper_convnet", extra=()):
    """A short Fashion-MNIST run: 240 training images, batch 40 -> 6 steps per epoch."""
    return ["--dataset", "fashion_mnist", "--data", str(vf.fashion_mnist_dir()), "--arch", arch,
            "--train-size", "240", "--batch-size", "40", "--test-size", "200", "--val-fraction", "0.01",
            "--threads", "1", "--no-progress", "--save-dir", str(tmp), "--save-interval", "0", *extra]


def state(path):
    ckpt = torch.load(os.path.join(path, "checkpoint.pt"), weights_only=True)
    return ckpt


def assert_same_state(a, b):
    assert a["step"] == b["step"]
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys() and a["optimizer"]["state"]
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert sa.keys() == sb.keys(), (sa.keys(), sb.keys())
        for k in sa:
            assert torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])), k


@pytest.mark.parametrize("arch,optim", [("hyper_convnet", "adam"), ("convnet", "sgd")])
def test_resumed_run_equals_uninterrupted_run(tmp_path, arch, optim):
    lr = "1000:0.005" if optim == "adam" else "10:0.05,1000:0.01"  # SGD schedule changes mid-run
    opts = ["--optimizer", optim, "--lr-schedule", lr]
    assert T.main(small_run(tmp_path / "full", arch, opts + ["--max-steps", "14"])) == 0
    # stop inside the second epoch (6 steps each), so the resumed run must rebuild epoch 1's order
    assert T.main(small_run(tmp_path / "part", arch, opts + ["--max-steps", "8"])) == 0
    ckpt = str(tmp_path / "part" / "checkpoint.pt")
    # the resumed run takes its settings from the checkpoint; only the length is given again
    resume = ["--resume", ckpt, "--max-steps", "14", "--data", str(vf.fashion_mnist_dir()), "--train-size", "240",
              "--test-size", "200", "--threads", "1", "--no-progress", "--save-dir", str(tmp_path / "part"),
              "--save-interval", "0"]
    assert T.main(resume) == 0
    assert_same_state(state(tmp_path / "full"), state(tmp_path / "part"))


def test_sigterm_saves_a_checkpoint_that_resumes_exactly(tmp_path, monkeypatch, capsys):
    """SIGTERM during update 7, sent from inside the loop so that the step is known: the run finishes that
    update and saves it, though the periodic save (every 4) would not; exit 143; the resumed run then equals
    an uninterrupted one."""
    real_step = T.train_step

    def step_then_signal(run, loss_fn, step, device):
        out = real_step(run, loss_fn, step, device)
        if step == 6:  # update 7
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(T, "train_step", step_then_signal)
    rc = T.main(small_run(tmp_path / "cut", extra=["--max-steps", "100000", "--save-interval", "4"]))
    monkeypatch.undo()
    assert rc == 128 + signal.SIGTERM
    stopped = state(tmp_path / "cut")["step"]
    assert stopped == 7 and f"stopped by signal {int(signal.SIGTERM)} at step 7" in capsys.readouterr().out
    target = str(stopped + 4)
    resume = ["--resume", str(tmp_path / "cut" / "checkpoint.pt"), "--max-steps", target,
              "--data", str(vf.fashion_mnist_dir()), "--test-size", "200", "--threads", "1", "--no-progress",
              "--save-dir", str(tmp_path / "cut"), "--save-interval", "0"]
    assert T.main(resume) == 0
    assert T.main(small_run(tmp_path / "full", extra=["--max-steps", target])) == 0
    assert_same_state(state(tmp_path / "full"), state(tmp_path / "cut"))


def test_a_second_signal_exits_at_once_and_leaves_an_intact_checkpoint(tmp_path):
    """SIGINT and at once SIGTERM (stopped in between, so they arrive together, maybe mid-save): exit 143
    with the "again" message, no step saved after it, and no half-written file (stop_signals)."""
    save = tmp_path / "cut"
    cmd = [sys.executable, str(vf.TRAIN_PY), *small_run(save, extra=["--max-steps", "100000", "--save-interval", "1"])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(vf.REPO),
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.time() + 240
    while not (save / "checkpoint.pt").exists():  # the loop (and its handlers) is running
        assert proc.poll() is None and time.time() < deadline, "train.py ended before its first checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGSTOP)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "SIGINT: finishing this step" in err and "SIGTERM again: exiting at once" in err, err[-2000:]
    assert "stopped by signal" not in out  # the first signal's stop did not run
    assert 0 < state(save)["step"] < 100000
    assert sorted(p.name for p in save.iterdir()) == ["checkpoint.pt"]


def test_two_gloo_processes_equal_one_process_with_the_same_total_batch(tmp_path):
    """Exact by construction: float64 (``--double``) and SGD with momentum.

    The runs differ only in the order of floating-point sums (one mean over 40 images vs the mean of two
    means over 20, and the convolutions' own reductions), i.e. by a few units of roundoff of each gradient.
    In float32 (u = 6e-8) that gave up to 1.31e-5 after 8 steps on an AMD EPYC (issue 12 §0): an
    amplification of ~2.2e2 u through the steps. The same amplification in float64 (u = 1.1e-16) is
    ~2.4e-14; atol 1e-10 leaves a margin of 4e3 over it. A wrong reduction moves weights by ~lr = 0.05 times
    a gradient (missing all-reduce: another gradient; summing instead of averaging: twice the step), 1e6 and
    more above the tolerance. SGD, not Adam, because Adam divides a gradient's scale out and so would not
    see a sum taken for a mean.
    """
    sgd = ["--max-steps", "8", "--double", "--optimizer", "sgd", "--lr-schedule", "1000:0.05"]
    args = small_run(tmp_path / "two", extra=sgd)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(vf.TRAIN_PY), *args, "--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240, cwd=str(vf.REPO))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert T.main(small_run(tmp_path / "one", extra=sgd)) == 0
    two, one = state(tmp_path / "two"), state(tmp_path / "one")
    assert one["model"]["conv1.weight"].dtype == torch.float64
    for k in one["model"]:
        torch.testing.assert_close(two["model"][k], one["model"][k], rtol=0, atol=1e-10)
    # and training did move the weights (so the comparison is not trivially between initial values)
    torch.manual_seed(1)
    init = T.make_model("hyper_convnet", "fashion_mnist", "he", double=True).state_dict()
    moved = max((init[k] - one["model"][k]).abs().max().item() for k in init)
    assert moved > 1e-3


def test_convnet_and_hyper_convnet_learn_fashion_mnist(tmp_path, capsys):
    """Trained briefly (100 steps of batch 100), both score far above chance (10%) on held-out images."""
    accuracy = {}
    for arch in ("convnet", "hyper_convnet"):
        record = tmp_path / f"{arch}.json"
        args = ["--dataset", "fashion_mnist", "--data", str(vf.fashion_mnist_dir()), "--arch", arch,
                "--batch-size", "100", "--max-steps", "100", "--lr-schedule", "1000:0.005", "--test-size", "2000",
                "--val-fraction", "0.02",
                "--threads", "1", "--no-progress", "--save-dir", str(tmp_path / arch), "--save-interval", "0",
                "--results-json", str(record), "--export", str(tmp_path / f"{arch}_plain.pt")]
        assert T.main(args) == 0
        result = json.loads(record.read_text())
        assert {"command", "git_commit", "hardware", "versions", "wall_time_s"} <= result.keys()
        accuracy[arch] = result["results"]["test"]["accuracy"]
        assert result["results"]["test"]["images"] == 2000
    assert accuracy["convnet"] > 0.70 and accuracy["hyper_convnet"] > 0.70, accuracy
    # evaluating the saved checkpoint reproduces the number the run reported
    capsys.readouterr()
    assert T.main(["--eval", "--resume", str(tmp_path / "hyper_convnet" / "checkpoint.pt"), "--data",
                   str(vf.fashion_mnist_dir()), "--test-size", "2000", "--threads", "1"]) == 0
    assert f"test accuracy {accuracy['hyper_convnet']:.4f}" in capsys.readouterr().out
    # so does the exported plain convnet with the materialised generated kernel
    assert T.main(["--eval", "--resume", str(tmp_path / "hyper_convnet_plain.pt"), "--data",
                   str(vf.fashion_mnist_dir()), "--test-size", "2000", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("convnet on fashion_mnist") and f"test accuracy {accuracy['hyper_convnet']:.4f}" in out


def test_bf16_autocast_trains_on_cpu(tmp_path):
    assert T.main(small_run(tmp_path, extra=["--max-steps", "3", "--bf16"])) == 0
    assert state(tmp_path)["settings"]["bf16"] is True


def test_the_validation_line_counts_its_images_and_an_empty_split_says_so(tmp_path, capsys):
    """--val-fraction 0 printed "valid accuracy 0.0000 | valid loss 0.0000", read as a measurement of 0 images."""
    run = small_run(tmp_path, extra=["--max-steps", "2", "--eval-interval", "2"])
    progress = [a for a in run if a != "--no-progress"]
    assert T.main(progress) == 0
    line = re.search(r"step 2 \| valid accuracy [\d.]+ \| valid loss [\d.]+ \| (\d+) images", capsys.readouterr().out)
    assert line and int(line.group(1)) > 0
    assert T.main(progress[:progress.index("--val-fraction")] + progress[progress.index("--val-fraction") + 2:]
                  + ["--val-fraction", "0", "--save-dir", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    assert "step 2 | no validation images (--val-fraction leaves none)" in out and "valid accuracy" not in out


def test_bad_inputs_give_one_line_errors(tmp_path, capsys):
    data = str(vf.fashion_mnist_dir())

    def error_of(argv):
        capsys.readouterr()
        assert T.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("train.py: error:") and "Traceback" not in err
        return err

    assert "expected one of" in error_of(["--arch", "wrn_40_3", "--dataset", "mnist", "--data", data])
    assert "train-images-idx3-ubyte" in error_of(
        small_run(tmp_path / "x")[:2] + ["--data", str(tmp_path), "--arch", "convnet"]
    )
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in os.listdir(data):
        (bad / name).write_bytes(b"\x1f\x8b garbage")
    assert "cannot be read" in error_of(["--dataset", "fashion_mnist", "--data", str(bad), "--arch", "convnet"])
    assert T.main(small_run(tmp_path / "c", "convnet", ["--max-steps", "1"])) == 0
    ckpt = str(tmp_path / "c" / "checkpoint.pt")
    msg = error_of(["--eval", "--resume", ckpt, "--arch", "hyper_convnet", "--data", data])
    assert "holds a 'convnet' model" in msg
    assert "checkpoint not found" in error_of(["--eval", "--resume", str(tmp_path / "none.pt"), "--data", data])
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert "neither a zip archive nor a pickle" in error_of(["--resume", str(tmp_path / "junk.pt"), "--data", data])
    assert "--seed 9 differs" in error_of(["--resume", ckpt, "--seed", "9", "--data", data])


def test_unknown_architecture_on_the_command_line_prints_no_traceback():
    proc = subprocess.run([sys.executable, str(vf.TRAIN_PY), "--count-params", "--arch", "resnet_9000"],
                          capture_output=True, text=True, timeout=120, cwd=str(vf.REPO))
    assert proc.returncode == 2
    assert "unknown --arch 'resnet_9000'" in proc.stderr and "Traceback" not in proc.stderr


def test_count_params_prints_ours_beside_the_paper(capsys):
    assert T.main(["--count-params"]) == 0
    out = capsys.readouterr().out
    for arch, ours, paper in [("wrn_40_1", "563,930", "0.563 M"), ("hyper_wrn_40_1", "97,770", "0.097 M"),
                              ("wrn_40_2", "2,243,546", "2.236 M"), ("hyper_wrn_40_2", "155,626", "0.148 M"),
                              ("hyper_convnet", "4,240", "4,244")]:
        line = next(row for row in out.splitlines() if row.startswith(arch + " "))
        assert ours in line and paper in line
    assert "75,920" in out and "C2" in out
