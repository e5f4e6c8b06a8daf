"""Shared helpers for the static-hypernetwork vision tests (issue: hyper WRN / MNIST convnet).

Real data is looked up under ``$HYPERFAIRSEQ_DATA`` (default ``<repo>/data``), as written by
``scripts/get_vision_data.sh``.  Missing data fails the test under CI (env ``CI`` set) and skips it
elsewhere, with a message saying how to fetch it.
"""
import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "hyper_resnet"
TRAIN_PY = EXAMPLE / "train.py"
#: data.md §4.3: labels of the 20 foolbox CIFAR-10 images (the first 20 of the official test set)
FOOLBOX_LABELS = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]


def data_root() -> Path:
    return Path(os.environ.get("HYPERFAIRSEQ_DATA", REPO / "data"))


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        msg = (f"{what} not found at {path}; run scripts/get_vision_data.sh "
               f"{data_root()} (or set HYPERFAIRSEQ_DATA)")
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def fashion_mnist_dir() -> Path:
    root = data_root() / "fashion-mnist"
    _require(root / "train-images-idx3-ubyte.gz", "Fashion-MNIST")
    return root


def cifar_fixture_dir() -> Path:
    root = data_root() / "cifar10-foolbox"
    _require(root / "cifar-10-batches-py" / "test_batch", "CIFAR-10 foolbox fixture")
    return root


def load_train_module():
    """examples/hyper_resnet/train.py as a module (it is a script, not part of the package)."""
    if "hyper_resnet_train" in sys.modules:
        return sys.modules["hyper_resnet_train"]
    for p in (str(REPO), str(EXAMPLE)):
        if p not in sys.path:
            sys.path.insert(0, p)
    spec = importlib.util.spec_from_file_location("hyper_resnet_train", TRAIN_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules["hyper_resnet_train"] = module
    spec.loader.exec_module(module)
    return module
