"""Bad inputs made from real files: truncated, emptied, replaced, corrupted copies (never the originals)."""

import shutil
from pathlib import Path

from conftest import USER_DIR  # tests/conftest.py


def truncated(src: Path, dest: Path, keep: float = 0.5) -> Path:
    data = Path(src).read_bytes()
    dest.write_bytes(data[: int(len(data) * keep)])
    return dest


def empty(dest: Path) -> Path:
    dest.write_bytes(b"")
    return dest


def junk(dest: Path, text: bytes = b"this is not a checkpoint\n") -> Path:
    dest.write_bytes(text)
    return dest


def folder(dest: Path) -> Path:
    dest.mkdir()
    return dest


def copied(src: Path, dest: Path) -> Path:
    if Path(src).is_dir():
        shutil.copytree(src, dest)
    else:
        shutil.copyfile(src, dest)
    return dest


def flipped(path: Path, offset: int, count: int = 64) -> Path:
    """Invert `count` bytes of `path` in place from `offset` (negative: from the end)."""
    data = bytearray(Path(path).read_bytes())
    start = offset if offset >= 0 else len(data) + offset
    for i in range(start, min(start + count, len(data))):
        data[i] ^= 0xFF
    Path(path).write_bytes(bytes(data))
    return Path(path)


def eval_lm_args(data, checkpoint, *extra):
    return [data, "--user-dir", USER_DIR, "--task", "char_lm", "--path", checkpoint, "--cpu", "--batch-size", 2,
            "--tokens-per-sample", 10, "--gen-subset", "valid", "--num-workers", 0, *extra]


def sample_args(env, checkpoint, *extra):
    return ["--path", checkpoint, "--data", env.lm_data, "--length", 5, "--seed", 1, *extra]


def sample_handwriting_args(env, checkpoint, *extra):
    return ["--path", checkpoint, "--out", env.work / "samples", "-n", 1, "--steps", 3, "--cpu", *extra]


def analysis_args(env, checkpoint):
    return ["weight-change", "--path", checkpoint, "--data", env.lm_data, "--text", "the company",
            "--out", env.work / "fig.png"]


def validate_args(env, checkpoint):
    return [env.hw_data, "--user-dir", USER_DIR, "--task", "handwriting", "--path", checkpoint, "--valid-subset",
            "valid", "--batch-size", 4, "--cpu", "--num-workers", 0]
