"""The handwriting path through the real CLIs on real strokes (KanjiVG): prepare -> fairseq-train -> sample.

Small but real: a few KanjiVG lines, a HyperLSTM of 32 units, 30 updates on 1 thread. Missing data fails
under CI (CI=true) and skips elsewhere, naming scripts/get_handwriting_data.sh.
"""

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hyperfairseq.criterions.mdn import line_nll
from hyperfairseq.data import kanjivg
from hyperfairseq.data.strokes import read_split
from hyperfairseq.sample_handwriting import generate, load_model
from hyperfairseq.sample_handwriting import main as sample_main

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
TINY = ["--decoder-hidden-size", "32", "--hyper-hidden-size", "16", "--num-mixtures", "5"]


def run(module, *args):
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          env=ENV, cwd=REPO, timeout=600)
    assert proc.returncode == 0, f"{module} failed:\n{proc.stderr[-3000:]}"
    return proc


def kanjivg_wheel() -> str:
    root = Path(os.environ.get("HYPERFAIRSEQ_DATA", REPO / "data")) / "_pkgs"
    found = sorted(glob.glob(str(root / "kanjivg-*.whl")))
    if found:
        return found[-1]
    message = f"{root}/kanjivg-*.whl is missing; fetch it with: bash scripts/get_handwriting_data.sh {root}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    wheel = kanjivg_wheel()
    tmp = tmp_path_factory.mktemp("handwriting")
    data, ckpt = tmp / "kanjivg", tmp / "ckpt"
    assert kanjivg.main(["prepare", "--out", str(data), "--pkgs", os.path.dirname(wheel), "--max-chars", "160",
                         "--chars-per-line", "2", "--points-per-curve", "3", "--min-length", "40",
                         "--valid-every", "8"]) == 0
    run("fairseq_cli.train", data, "--user-dir", REPO / "hyperfairseq", "--task", "handwriting",
        "--arch", "hyperlstm_handwriting", *TINY, "--criterion", "mdn", "--optimizer", "adam", "--lr", "3e-3",
        "--clip-norm", "5.0", "--batch-size", "16", "--max-update", "30", "--cpu", "--num-workers", "0",
        "--seed", "1", "--save-dir", ckpt, "--no-epoch-checkpoints", "--no-progress-bar",
        "--validate-interval", "1000", "--save-interval", "1000")  # validate and save once, at the end
    return data, ckpt / "checkpoint_last.pt"


def valid_log_loss(model, task) -> float:
    """The paper's metric on the whole validation split: −log p summed per line, averaged over lines."""
    task.load_dataset("valid")
    ds = task.dataset("valid")
    batch = ds.collater([ds[i] for i in range(len(ds))])
    model.eval()
    with torch.no_grad():
        out = model(**batch["net_input"])
        return line_nll(out.mixture, batch["target"], batch["net_input"]["lengths"]).mean().item()


def test_training_on_real_strokes_beats_an_untrained_model(trained):
    data, ckpt = trained
    model, task = load_model(str(ckpt))
    torch.manual_seed(1)
    untrained = task.build_model(task_model_cfg(ckpt))
    after, before = valid_log_loss(model, task), valid_log_loss(untrained, task)
    assert np.isfinite(after) and after < before - 0.2 * abs(before), (before, after)


def task_model_cfg(ckpt):
    from fairseq import checkpoint_utils

    return checkpoint_utils.load_checkpoint_to_cpu(str(ckpt))["cfg"]["model"]


def test_normalisation_constants_survive_a_checkpoint_round_trip_without_the_data(trained, tmp_path):
    data, ckpt = trained
    meta = json.loads((data / "meta.json").read_text())
    state = torch.load(ckpt, map_location="cpu", weights_only=True)  # plain containers only
    torch.testing.assert_close(state["model"]["decoder.norm_mean"], torch.tensor(meta["mean"], dtype=torch.float32))
    moved = data.with_name("moved-away")
    data.rename(moved)
    try:
        model, _ = load_model(str(ckpt))
        torch.testing.assert_close(model.decoder.norm_std, torch.tensor(meta["std"], dtype=torch.float32))
        torch.testing.assert_close(model.decoder.norm_mean, torch.tensor(meta["mean"], dtype=torch.float32))
    finally:
        moved.rename(data)


def test_sampling_cli_is_reproducible_under_a_seed_and_renders(trained, tmp_path, capsys):
    data, ckpt = trained
    args = ["--path", str(ckpt), "-n", "2", "--steps", "40", "--bias", "0.5"]
    assert sample_main(args + ["--out", str(tmp_path / "a"), "--seed", "3"]) == 0
    assert sample_main(args + ["--out", str(tmp_path / "b"), "--seed", "3"]) == 0
    assert sample_main(args + ["--out", str(tmp_path / "c"), "--seed", "4"]) == 0
    a, b, c = (np.load(tmp_path / d / "samples.npz")["rows"] for d in "abc")
    assert a.shape == (2, 40, 3) and np.array_equal(a, b) and not np.array_equal(a, c)
    svg = (tmp_path / "a" / "sample_00.svg").read_text()
    assert svg.startswith("<?xml") and ("<polyline" in svg or "<circle" in svg)
    assert (tmp_path / "a" / "sample_01.png").read_bytes()[:4] == b"\x89PNG"
    primed = ["--prime-data", str(data), "--prime-line", "1", "--out", str(tmp_path / "p")]
    assert sample_main(args + primed) == 0
    p = np.load(tmp_path / "p" / "samples.npz")
    assert p["rows"].shape[1] == 40 + int(p["prime_length"]) > 40
    # both arrays hold the same rows, prime first: pen units = normalised * std + mean on (dx, dy) (H1)
    model, _ = load_model(str(ckpt))
    mean, std = model.decoder.norm_mean.numpy(), model.decoder.norm_std.numpy()
    assert p["rows_normalised"].shape == p["rows"].shape
    np.testing.assert_allclose(p["rows_normalised"][..., :2] * std + mean, p["rows"][..., :2], rtol=1e-5, atol=1e-4)
    rows, index = read_split(str(data), "valid")
    np.testing.assert_array_equal(p["rows_normalised"][0, : int(p["prime_length"])], rows[index[1] : index[2]])
    assert sample_main(["--path", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "x")]) == 2
    assert "nope.pt: checkpoint not found" in capsys.readouterr().err


def test_generation_exposes_hyperlstm_internals_for_figure_7(trained):
    _, ckpt = trained
    model, _ = load_model(str(ckpt))
    gen = generate(model, 1, 5, torch.Generator().manual_seed(0), record_internals=True)
    assert gen.rows.shape == (1, 5, 3) and len(gen.internals) == 5
    assert gen.internals[0].d_h.shape == (1, 1, 1, 4, 32)  # (L, T, B, gates, N_h)


def test_only_the_split_being_trained_on_is_scale_augmented(trained):
    """fairseq's trainer loads its training split with combine=True; fairseq-validate (and validation during
    training) with combine=False: `--valid-subset train` scored scale-augmented lines, neither the data nor
    comparable with the validation split. H3's augmentation is kept where the model learns from it."""
    from hyperfairseq.data.stroke_dataset import StrokeDataset

    data, ckpt = trained
    _, task = load_model(str(ckpt))
    plain = StrokeDataset.load(str(data), "train", scale_augment=0.0, seed=1)
    for combine, augmented in ((False, False), (True, True)):
        task.load_dataset("train", combine=combine)
        lines = [task.dataset("train")[i]["strokes"] for i in range(5)]
        same = [torch.equal(line, plain[i]["strokes"]) for i, line in enumerate(lines)]
        assert same == [not augmented] * 5, (combine, same)


def test_validating_on_data_normalised_otherwise_warns_naming_both_constants(trained, tmp_path):
    """A checkpoint's buffers replace the data's normalisation constants on load (H1). On a data-bin prepared
    otherwise (here: 80 characters instead of 160, so another training split and other mean/std), the model
    reads rows in units it was not trained on and fairseq-validate's loss is silently not comparable: the load
    says so. On its own data the constants are equal (the same meta.json values in float32): no warning."""
    data, ckpt = trained
    other = tmp_path / "kanjivg80"
    assert kanjivg.main(["prepare", "--out", str(other), "--pkgs", os.path.dirname(kanjivg_wheel()),
                         "--max-chars", "80", "--chars-per-line", "2", "--points-per-curve", "3",
                         "--min-length", "40", "--valid-every", "8"]) == 0
    meta = json.loads((other / "meta.json").read_text())
    validate = ("fairseq_cli.validate", "--user-dir", REPO / "hyperfairseq", "--task", "handwriting", "--path", ckpt,
                "--batch-size", "16", "--cpu", "--valid-subset", "valid")
    own = run(*validate[:1], data, *validate[1:])
    assert "differs from the checkpoint's" not in own.stdout + own.stderr
    elsewhere = run(*validate[:1], other, *validate[1:])
    log = elsewhere.stdout + elsewhere.stderr
    assert "the data's normalisation of (dx, dy)" in log and "differs from the checkpoint's" in log, log[-2000:]
    assert f"{meta['mean'][0]:.6g}" in log  # the data's constants are named, beside the checkpoint's
