"""examples/hyper_resnet/train.py: bad IDX files, numbers and output paths (issue 12 §3).

IDX files are written in the exact MNIST format (big-endian magic and sizes) from the real Fashion-MNIST
images where the case needs images; every bad input ends in one `train.py: error:` line, exit 2.
"""

import gzip
import os
import struct

import numpy as np
import pytest

from .harness import Case, expected_outcome, run_case

NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray, dims=None) -> bytes:
    dims = array.shape if dims is None else dims
    magic = 0x0800 | len(dims)
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + array.astype(np.uint8).tobytes()


def real_images(env, n=60):
    raw = gzip.open(env.fmnist / "train-images-idx3-ubyte.gz").read()
    labels = gzip.open(env.fmnist / "train-labels-idx1-ubyte.gz").read()
    return (np.frombuffer(raw, np.uint8, offset=16)[: n * 784].reshape(n, 28, 28),
            np.frombuffer(labels, np.uint8, offset=8)[:n])


def idx_folder(images=None, labels=None, raw_images=None):
    """setup: env.work/idx with the four files; `images`/`labels`/`raw_images` change them."""
    def setup(env):
        folder = env.work / "idx"
        folder.mkdir()
        imgs, labs = real_images(env)
        imgs = images(imgs) if images else imgs
        labs = labels(labs) if labels else labs
        for name in NAMES:
            is_images = "images" in name
            data = (raw_images or idx_bytes(imgs)) if is_images else idx_bytes(labs)
            (folder / name).write_bytes(data)
    return setup


def overflowing_header() -> bytes:
    """dims 2^31 x 2^31 x 4: their product is 2^64, which int64 arithmetic wraps to 0 (= the data size here)."""
    return struct.pack(">IIII", 0x0803, 1 << 31, 1 << 31, 4)


def upscale(images):
    return np.pad(images, ((0, 0), (2, 2), (2, 2)))  # 32 x 32


def small_run(env, data, *extra):
    return ["--dataset", "fashion_mnist", "--data", data, "--arch", "convnet", "--train-size", 40, "--batch-size", 20,
            "--max-steps", 1, "--test-size", 20, "--val-fraction", 0.02, "--threads", 1, "--no-progress",
            "--save-dir", env.work / "save", "--save-interval", 0, *extra]


def vision_case(id, message, what, extra=(), setup=None, data=None, expect="error", check=None, absent=None):
    return Case(id=f"vision-{id}", entry="vision", input=what, message=message, expect=expect, check=check,
                exit_code=None if expect == "ok" else 2, setup=setup,
                args=lambda env: small_run(env, data(env) if data else env.fmnist, *extra),
                absent=absent or (lambda env: [] if expect == "ok" else [env.work / "save" / "checkpoint.pt"]))


def exported(env, result):
    path = env.work / "new" / "folder" / "plain.pt"
    return None if path.is_file() and os.path.getsize(path) > 0 else f"{path} not written"


def IDX(env):
    return env.work / "idx"


CASES = [
    vision_case("images-32x32", "images of shape (1, 32, 32)", "32 x 32 images in MNIST-format files",
                setup=idx_folder(images=upscale), data=IDX),
    vision_case("idx-overflowing-dims", "bytes; expected", "an IDX header whose dimension product overflows int64",
                setup=idx_folder(raw_images=overflowing_header()), data=IDX),
    Case(id="vision-idx-truncated", entry="vision", input="an images file missing its last 100 bytes",
         message="(truncated?)", exit_code=2,
         setup=lambda env: (idx_folder()(env),
                            (IDX(env) / NAMES[0]).write_bytes((IDX(env) / NAMES[0]).read_bytes()[:-100])),
         args=lambda env: small_run(env, IDX(env))),
    vision_case("labels-out-of-range", "out of range 0..9", "a label 12 in the labels file",
                setup=idx_folder(labels=lambda labels: np.where(np.arange(len(labels)) == 3, 12, labels)), data=IDX),
    vision_case("labels-count-mismatch", "labels", "59 labels for 60 images",
                setup=idx_folder(labels=lambda labels: labels[:-1]), data=IDX),
    vision_case("export-missing-folder", "", "--export into a folder that does not exist yet", expect="ok",
                extra=("--export", "{work}/new/folder/plain.pt"), check=exported),
    vision_case("export-is-folder", "--export", "--export an existing folder", extra=("--export", "{work}")),
    vision_case("results-json-is-folder", "--results-json", "--results-json an existing folder",
                extra=("--results-json", "{work}")),
    vision_case("val-fraction-negative", "argument --val-fraction", "--val-fraction -0.1",
                extra=("--val-fraction", -0.1)),
    vision_case("val-fraction-above-1", "argument --val-fraction", "--val-fraction 1.5", extra=("--val-fraction", 1.5)),
    vision_case("batch-size-0", "argument --batch-size", "--batch-size 0", extra=("--batch-size", 0)),
    vision_case("train-size-0", "argument --train-size", "--train-size 0 (read as 'all images' before)",
                extra=("--train-size", 0)),
    vision_case("eval-batch-size-0", "argument --eval-batch-size", "--eval-batch-size 0",
                extra=("--eval-batch-size", 0)),
    vision_case("threads-0", "argument --threads", "--threads 0", extra=("--threads", 0)),
    vision_case("lr-schedule-junk", "--lr-schedule", "--lr-schedule fast", extra=("--lr-schedule", "fast")),
    vision_case("bf16-and-double", "exclude each other", "--bf16 --double", extra=("--bf16", "--double")),
    vision_case("data-missing", "not found", "--data a folder that does not exist", data=lambda env: env.work / "none"),
    vision_case("cifar-layout-missing", "cifar-10-batches-py", "--dataset cifar10 on an MNIST folder",
                extra=("--dataset", "cifar10")),
]


def _fill(case):
    """'{work}' in arguments is the case's folder."""
    args = case.args
    case.args = lambda env: [str(a).replace("{work}", str(env.work)) for a in args(env)]
    return case


CASES = [_fill(c) for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_vision_input(case, env):
    outcome, detail, _ = run_case(case, env)
    assert outcome == expected_outcome(case), detail
