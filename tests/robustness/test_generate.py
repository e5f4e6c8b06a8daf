"""fairseq-generate of a hyperlstm_mt checkpoint on bad input (issue 12 §3): the checkpoint, the binarised
parallel data and the language pair.

Every case damages a copy of the real binarised Bible slice (`env.mt_data`, English -> Spanish) or hands
fairseq-generate a bad checkpoint. fairseq's translation task reads these files with asserts, np.memmap and
bare FileNotFoundErrors; the plugin names them (fairseq_patches §8).
"""

from pathlib import Path

import pytest

from . import inputs as I
from .harness import Case, expected_outcome, run_case
from .inputs import USER_DIR


def data(env) -> Path:
    return env.work / "data"


def generate_args(env, checkpoint, *extra, data_dir=None):
    return [data_dir or data(env), "--user-dir", USER_DIR, "--task", "translation", "--path", checkpoint, "--cpu",
            "--beam", 2, "--max-tokens", 2000, "--gen-subset", "test", "--num-workers", 0, *extra]


def generate_case(id, message, what, damage=None, checkpoint=lambda env: env.mt, extra=(), expect="error",
                  check=None, data_dir=None):
    def setup(env):
        I.copied(env.mt_data, data(env))
        if damage:
            damage(env)
    return Case(id=f"generate-{id}", entry="generate", input=what, message=message, expect=expect, check=check,
                setup=setup, markers=lambda env: [env.pwned_marker],
                args=lambda env: generate_args(env, checkpoint(env), *extra,
                                               data_dir=data_dir(env) if data_dir else None),
                protect=lambda env: [env.mt, env.mt_data])


def every_sentence_translated(env, result):
    hypotheses = [line for line in result.stdout.splitlines() if line.startswith("H-")]
    return None if len(hypotheses) == 20 else f"{len(hypotheses)} hypotheses for the 20 test sentences"


def append_first_line(name):
    def damage(env):
        path = data(env) / name
        lines = path.read_text(encoding="utf-8").splitlines()
        path.write_text("\n".join(lines + [lines[0]]) + "\n", encoding="utf-8")
    return damage


CASES = [
    generate_case("intact", "", "the real binarised Bible slice and its checkpoint (control)", expect="ok",
                  check=every_sentence_translated),
    generate_case("checkpoint-missing", "not found", "--path of a file that does not exist",
                  checkpoint=lambda env: env.work / "none.pt"),
    generate_case("checkpoint-truncated", "truncated or damaged", "the first half of the real checkpoint",
                  checkpoint=lambda env: I.truncated(env.mt, env.work / "ckpt.pt")),
    generate_case("crafted-pickle", "refused", "a pickle whose loading runs `touch MARKER`",
                  checkpoint=lambda env: env.crafted),
    generate_case("lm-checkpoint", "is a language model; --task translation needs a translation model",
                  "a character LM checkpoint for translation", checkpoint=lambda env: env.lm),
    generate_case("direction-reversed", "in the other language direction (-s/-t)",
                  "-s es -t en with an English -> Spanish model",
                  extra=("-s", "es", "-t", "en")),
    generate_case("data-folder-missing", "no such data folder", "a data folder that does not exist",
                  data_dir=lambda env: env.work / "no_such_bin"),
    generate_case("gen-subset-unknown", "no split 'nosuch' for en-es", "--gen-subset nosuch",
                  extra=("--gen-subset", "nosuch")),
    generate_case("idx-truncated", "test.en-es.en.idx:", "the source index of the test split cut to half",
                  damage=lambda env: I.truncated(data(env) / "test.en-es.en.idx", data(env) / "test.en-es.en.idx")),
    generate_case("bin-truncated", "test.en-es.es.bin:", "the target tokens of the test split cut to half",
                  damage=lambda env: I.truncated(data(env) / "test.en-es.es.bin", data(env) / "test.en-es.es.bin")),
    generate_case("dict-duplicate", "appears twice", "dict.es.txt with a symbol listed twice",
                  damage=append_first_line("dict.es.txt")),
    generate_case("dict-missing", "dict.en.txt: missing", "dict.en.txt deleted",
                  damage=lambda env: (data(env) / "dict.en.txt").unlink()),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_generate_input(case, env):
    outcome, detail, _ = run_case(case, env)
    assert outcome == expected_outcome(case), detail
