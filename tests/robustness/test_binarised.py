"""Damaged binarised data and impossible stream layouts for `--task char_lm` (issue 12 §3).

Every case damages a copy of the real binarised char-PTB slice (`env.data` = env.work / "data") and
runs fairseq-eval-lm --task char_lm (or fairseq-train up to the point where it would start training)
on it. fairseq reads these files with asserts and np.memmap; the task checks them first.
"""

import shutil
import struct
from pathlib import Path

import pytest

from . import inputs as I
from .conftest import lm_train_args
from .harness import Case, expected_outcome, fairseq_cli, run_case


def data(env) -> Path:
    return env.work / "data"


def with_data(damage):
    """setup: copy the real binarised slice to env.work/data, then apply `damage(env)`."""
    def setup(env):
        I.copied(env.lm_data, data(env))
        damage(env)
    return setup


def eval_case(id, damage, message, what, *extra, expect="error", check=None):
    return Case(id=f"eval_lm-{id}", entry="eval_lm", input=what, message=message, expect=expect, check=check,
                setup=with_data(damage), args=lambda env: I.eval_lm_args(data(env), env.lm, *extra),
                protect=lambda env: [env.lm])


def train_case(id, damage, message, what, *extra):
    return Case(id=f"train-{id}", entry="train_setup", input=what, message=message, setup=with_data(damage),
                args=lambda env: lm_train_args(data(env), env.work / "save", "--max-update", 3, *extra))


def write(name, text):
    return lambda env: (data(env) / name).write_text(text)


def edit_dict(change):
    def damage(env):
        path = data(env) / "dict.txt"
        path.write_text(change(path.read_text().splitlines()))
    return damage


def set_idx_version(env):
    path = data(env) / "valid.idx"
    raw = bytearray(path.read_bytes())
    raw[9:17] = struct.pack("<Q", 2)
    path.write_bytes(bytes(raw))


def empty_valid_split(env):
    """fairseq-preprocess of an empty valid.txt with the real dictionary: a split of 0 lines."""
    empty = env.work / "empty.txt"
    empty.write_text("")
    for suffix in (".bin", ".idx"):
        (data(env) / f"valid{suffix}").unlink()
    fairseq_cli("preprocess", "fairseq-preprocess")(
        ["--only-source", "--srcdict", str(data(env) / "dict.txt"), "--validpref", str(empty),
         "--destdir", str(data(env)), "--workers", "1"], {})


def smaller_dictionary(env):
    lines = (data(env) / "dict.txt").read_text().splitlines()
    (data(env) / "dict.txt").write_text("\n".join(lines[:10]) + "\n")


def swapped_dictionary(env):
    lines = (data(env) / "dict.txt").read_text().splitlines()
    lines[0], lines[1] = lines[1], lines[0]
    (data(env) / "dict.txt").write_text("\n".join(lines) + "\n")


def reports_bits(env, result):
    return None if "Loss (base 2)" in result.stderr + result.stdout else "no 'Loss (base 2)' line"


def nothing(env):
    pass


CASES = [
    eval_case("intact-data", nothing, "", "the real binarised slice, untouched (control)", expect="ok",
              check=reports_bits),
    eval_case("bin-zero-bytes", lambda env: I.empty(data(env) / "valid.bin"), "valid.bin: 0 bytes, but",
              "valid.bin emptied"),
    eval_case("bin-truncated", lambda env: I.truncated(data(env) / "valid.bin", data(env) / "valid.bin"),
              "bytes, but", "valid.bin cut to half"),
    eval_case("bin-extra-bytes", lambda env: open(data(env) / "valid.bin", "ab").write(b"\0" * 10),
              "bytes, but", "10 bytes appended to valid.bin"),
    eval_case("idx-zero-bytes", lambda env: I.empty(data(env) / "valid.idx"), "not a fairseq mmap index",
              "valid.idx emptied"),
    eval_case("idx-truncated", lambda env: I.truncated(data(env) / "valid.idx", data(env) / "valid.idx"),
              "(truncated?)", "valid.idx cut to half"),
    eval_case("idx-bad-magic", lambda env: I.flipped(data(env) / "valid.idx", 0, 4), "not a fairseq mmap index",
              "the first 4 bytes of valid.idx inverted"),
    eval_case("idx-bad-offsets", lambda env: I.flipped(data(env) / "valid.idx", -16, 8), "do not fit together",
              "8 bytes of valid.idx's offset table inverted"),
    eval_case("idx-version", set_idx_version, "index version 2", "valid.idx claiming version 2"),
    eval_case("bin-missing", lambda env: (data(env) / "valid.bin").unlink(), "valid.bin: missing",
              "valid.bin deleted"),
    eval_case("split-missing", lambda env: [(data(env) / f"valid{s}").unlink() for s in (".bin", ".idx")],
              "valid.idx: missing", "the valid split deleted"),
    eval_case("gen-subset-unknown", nothing, "nonexistent.idx: missing", "--gen-subset nonexistent",
              "--gen-subset", "nonexistent"),
    eval_case("split-empty", empty_valid_split, "the split 'valid' is empty", "a valid split of 0 lines"),
    eval_case("dict-duplicate", edit_dict(lambda lines: "\n".join(lines + [lines[3]]) + "\n"), "appears twice",
              "dict.txt with a symbol listed twice"),
    eval_case("dict-special-symbol", edit_dict(lambda lines: "\n".join(lines + ["<unk> 5"]) + "\n"), "a special symbol",
              "dict.txt listing <unk>"),
    eval_case("dict-no-count", edit_dict(lambda lines: "\n".join(lines + ["zz"]) + "\n"), "expected '<symbol> <count>'",
              "a dict.txt line without a count"),
    eval_case("dict-bad-count", edit_dict(lambda lines: "\n".join(lines + ["zz many"]) + "\n"),
              "expected '<symbol> <count>'", "a dict.txt line whose count is not a number"),
    eval_case("dict-empty", write("dict.txt", ""), "no symbols", "dict.txt emptied"),
    eval_case("dict-missing", lambda env: (data(env) / "dict.txt").unlink(), "dict.txt: missing", "dict.txt deleted"),
    eval_case("dict-not-utf8", lambda env: (data(env) / "dict.txt").write_bytes(b"\xff\xfe 3\n"), "not UTF-8",
              "dict.txt in another encoding"),
    eval_case("dict-swapped", swapped_dictionary, "trained with another dictionary",
              "dict.txt with two lines swapped (same size, other order)"),
    eval_case("dict-other-size", smaller_dictionary, "trained with another dictionary", "dict.txt cut to 10 symbols"),
    eval_case("data-folder-missing", lambda env: shutil.rmtree(data(env)), "dict.txt: missing",
              "a data folder that does not exist"),
    eval_case("batch-larger-than-stream", nothing, "fewer than the 100000 rows", "--batch-size 100000",
              "--batch-size", 100000),
    eval_case("tokens-per-sample-0", nothing, "--tokens-per-sample must be positive", "--tokens-per-sample 0",
              "--tokens-per-sample", 0),
    eval_case("context-window", nothing, "--context-window does not apply", "--context-window 5",
              "--context-window", 5),
    eval_case("context-window-whole-segment", nothing, "subtracts --context-window from it",
              "--context-window equal to --tokens-per-sample", "--context-window", 100, "--tokens-per-sample", 100),
    train_case("ids-outside-dictionary", smaller_dictionary, "outside the 14-symbol dictionary",
               "a training split binarised with a larger dictionary than dict.txt"),
    train_case("tokens-per-sample-negative", nothing, "--tokens-per-sample must be positive",
               "--tokens-per-sample -5", "--tokens-per-sample", -5),
    train_case("batch-size-0", nothing, "needs --batch-size", "--batch-size 0", "--batch-size", 0),
    # the model config rules (hyperfairseq/models/config.py), checked when fairseq-train builds the model
    train_case("model-n-z-0", nothing, "--n-z must be a positive integer; got 0", "--n-z 0", "--n-z", 0),
    train_case("model-dropout-out-1.5", nothing, "--dropout-out is a drop probability in [0, 1)",
               "--dropout-out 1.5 (a keep probability above 1)", "--dropout-out", 1.5),
    train_case("max-tokens", nothing, "does not take --max-tokens", "--max-tokens 800", "--max-tokens", 800),
    train_case("batch-larger-than-stream", nothing, "fewer than the 100000 rows", "--batch-size 100000",
               "--batch-size", 100000),
    train_case("bin-truncated", lambda env: I.truncated(data(env) / "train.bin", data(env) / "train.bin"),
               "bytes, but", "train.bin cut to half"),
    train_case("dict-duplicate", edit_dict(lambda lines: "\n".join(lines + [lines[0]]) + "\n"), "appears twice",
               "dict.txt with a symbol listed twice"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_binarised_data(case, env):
    outcome, detail, _ = run_case(case, env)
    assert outcome == expected_outcome(case), detail
