"""Readers for the image data of the static-hypernetwork experiments (paper §4.1, §4.2).

* MNIST-format IDX files (MNIST, Fashion-MNIST): ``{train,t10k}-{images-idx3,labels-idx1}-ubyte``,
  optionally ``.gz``, as in the original distributions (and Debian ``dataset-fashion-mnist``).
* CIFAR-10 python batches as torchvision lays them out: ``<root>/cifar-10-batches-py/`` with
  ``data_batch_1`` ... ``data_batch_5`` and ``test_batch``.  Batches are pickles; they are read with a
  restricted unpickler that only admits the numpy array reconstruction they need.

Every layout problem raises a ``DatasetError`` subclass whose message names the file and what was
expected.  Images come back as uint8 tensors ``(N, C, H, W)``, labels as int64 ``(N,)``.
"""
import gzip
import math
import os
import pickle
from typing import NamedTuple, Tuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DatasetError", "MissingDatasetError", "CorruptDatasetError", "ImageSet", "read_idx",
    "load_mnist_format", "load_cifar10", "split_train_val", "DATASETS",
]

DATASETS = ("cifar10", "mnist", "fashion_mnist")
IDX_MAGIC = {1: 0x0801, 3: 0x0803}  # unsigned-byte IDX, 1-d labels / 3-d images
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


class DatasetError(Exception):
    """A data file is missing or does not have the expected layout."""


class MissingDatasetError(DatasetError):
    pass


class CorruptDatasetError(DatasetError):
    pass


class ImageSet(NamedTuple):
    images: Tensor  # (N, C, H, W) uint8
    labels: Tensor  # (N,) int64


def _find(root: str, name: str) -> str:
    for candidate in (os.path.join(root, name), os.path.join(root, name + ".gz")):
        if os.path.isfile(candidate):
            return candidate
    raise MissingDatasetError(
        f"{os.path.join(root, name)}[.gz] not found; expected MNIST-format IDX files in --data {root} "
        "(for Fashion-MNIST run scripts/get_vision_data.sh)")


def read_idx(path: str, ndim: int) -> np.ndarray:
    """Read one unsigned-byte IDX file of ``ndim`` dimensions (1 labels, 3 images)."""
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as err:
        raise CorruptDatasetError(f"{path}: cannot be read ({err}); expected an IDX file") from None
    if len(raw) < 4 + 4 * ndim:
        raise CorruptDatasetError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if magic != IDX_MAGIC[ndim]:
        raise CorruptDatasetError(
            f"{path}: IDX magic 0x{magic:08x}; expected 0x{IDX_MAGIC[ndim]:08x} (unsigned bytes, {ndim}-d)")
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = 4 + 4 * ndim + math.prod(shape)  # Python ints: a crafted header cannot overflow int64
    if len(raw) != expected:
        raise CorruptDatasetError(
            f"{path}: {len(raw)} bytes; expected {expected} for shape {tuple(shape)} (truncated?)")
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist_format(root: str, split: str) -> ImageSet:
    """``split`` is ``"train"`` or ``"test"`` (IDX prefix ``t10k``)."""
    prefix = "train" if split == "train" else "t10k"
    img_path = _find(root, f"{prefix}-images-idx3-ubyte")
    lab_path = _find(root, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(img_path, 3), read_idx(lab_path, 1)
    if images.shape[0] != labels.shape[0]:
        raise CorruptDatasetError(
            f"{img_path} has {images.shape[0]} images but {lab_path} has {labels.shape[0]} labels")
    if labels.size and labels.max() > 9:
        raise CorruptDatasetError(f"{lab_path}: label {labels.max()} out of range 0..9")
    return ImageSet(torch.from_numpy(images.copy()).unsqueeze(1),
                    torch.from_numpy(labels.astype(np.int64)))


class _BatchUnpickler(pickle.Unpickler):
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),  # Python 3 protocol-2 pickles spell bytes this way
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")
        return super().find_class(module, name)


def _read_cifar_batch(path: str) -> ImageSet:
    if not os.path.isfile(path):
        raise MissingDatasetError(
            f"{path} not found; expected torchvision's CIFAR-10 layout <--data>/cifar-10-batches-py/ with "
            f"{', '.join(CIFAR_TRAIN)} and test_batch (fetch with --download when online)")
    try:
        with open(path, "rb") as fh:
            batch = _BatchUnpickler(fh, encoding="bytes").load()
    except Exception as err:  # any unpickling failure means the file is not a CIFAR batch
        raise CorruptDatasetError(f"{path}: not a CIFAR-10 python batch ({type(err).__name__}: {err})") from None
    if not isinstance(batch, dict):
        raise CorruptDatasetError(f"{path}: expected a dict with 'data' and 'labels', got {type(batch).__name__}")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise CorruptDatasetError(f"{path}: keys {sorted(batch)}; expected 'data' and 'labels'")
    data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise CorruptDatasetError(
            f"{path}: data {data.dtype} {data.shape} with {labels.shape[0]} labels; expected uint8 (N, 3072)")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise CorruptDatasetError(f"{path}: labels outside 0..9")
    return ImageSet(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels))


def load_cifar10(root: str, split: str) -> ImageSet:
    folder = os.path.join(root, "cifar-10-batches-py")
    names = CIFAR_TRAIN if split == "train" else ("test_batch",)
    parts = [_read_cifar_batch(os.path.join(folder, n)) for n in names]
    return ImageSet(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]))


def load_split(dataset: str, root: str, split: str) -> ImageSet:
    if dataset == "cifar10":
        return load_cifar10(root, split)
    if dataset in ("mnist", "fashion_mnist"):
        return load_mnist_format(root, split)
    raise DatasetError(f"--dataset {dataset!r}; expected one of {', '.join(DATASETS)}")


def split_train_val(data: ImageSet, val_fraction: float, seed: int) -> Tuple[ImageSet, ImageSet]:
    """Random held-out validation split (paper: 45k/5k CIFAR-10, 55k/5k MNIST), fixed by ``seed``."""
    n = data.labels.shape[0]
    n_val = int(round(n * val_fraction))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val, train = perm[:n_val], perm[n_val:]
    return (ImageSet(data.images[train], data.labels[train]),
            ImageSet(data.images[val], data.labels[val]))
