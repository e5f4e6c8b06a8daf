"""Bad checkpoints given to every entry point that reads one (issue 12 §3, §4).

Each kind of bad file goes to fairseq-eval-lm --task char_lm, python -m hyperfairseq.sample,
sample_handwriting, the analysis CLI, fairseq-validate --task handwriting, fairseq-train
--restore-file and the vision script, plus the real checkpoints of the other kinds of model.
A crafted pickle must be refused without running anything: its marker file must not appear.
"""

import pytest

from . import inputs as I
from .conftest import lm_train_args
from .harness import Case, expected_outcome, run_case

CKPT = "ckpt.pt"
BAD_FILES = {  # kind: (make it in the case folder -> path, what the message says, what the input is)
    "missing": (lambda env: env.work / "none.pt", "not found", "a path that does not exist"),
    "zero_bytes": (lambda env: I.empty(env.work / CKPT), "empty file (0 bytes)", "a 0-byte file"),
    "truncated": (lambda env: I.truncated(env.lm, env.work / CKPT), "truncated or damaged",
                  "the first half of a real checkpoint (a kill mid-write)"),
    "junk": (lambda env: I.junk(env.work / CKPT), "neither a zip archive nor a pickle", "a text file named .pt"),
    "folder": (lambda env: I.folder(env.work / CKPT), "is a folder", "a folder"),
    "crafted_pickle": (lambda env: env.crafted, "refused", "a pickle whose loading runs `touch MARKER`"),
    "vision_checkpoint": (lambda env: env.vision, "vision checkpoint",
                          "a checkpoint of examples/hyper_resnet/train.py"),
    "bare_tensor": (lambda env: env.bare_tensor, "bare tensor", "torch.save(torch.zeros(3, 4))"),
}

ENTRIES = {  # entry: (runner, argv for a checkpoint path, folders that must not appear)
    "eval_lm": ("eval_lm", lambda env, p: I.eval_lm_args(env.lm_data, p), lambda env: []),
    "sample": ("sample", lambda env, p: I.sample_args(env, p), lambda env: []),
    "sample_handwriting": ("sample_handwriting", lambda env, p: I.sample_handwriting_args(env, p),
                           lambda env: [env.work / "samples"]),
    "analysis": ("analysis", lambda env, p: I.analysis_args(env, p), lambda env: [env.work / "fig.png"]),
    "validate": ("validate", lambda env, p: I.validate_args(env, p), lambda env: []),
    "train_restore": ("train_setup", lambda env, p: lm_train_args(env.lm_data, env.work / "save", "--restore-file", p,
                                                                   "--max-update", 3), lambda env: []),
}


def bad_file_case(entry: str, kind: str) -> Case:
    make, message, what = BAD_FILES[kind]
    runner, argv, outputs = ENTRIES[entry]
    if entry == "train_restore" and kind == "missing":
        message = "--restore-file"
    return Case(
        id=f"{entry}-{kind}", entry=runner, input=what, message=message,
        args=lambda env: argv(env, make(env)),
        absent=outputs, markers=lambda env: [env.pwned_marker],
        protect=lambda env: [env.lm, env.lm_data, env.hw],
    )


OTHER_MODELS = [  # (entry, checkpoint attribute, message, input)
    ("eval_lm", "transformer_lm", "needs a model that carries state", "a fairseq transformer_lm checkpoint"),
    ("eval_lm", "hw", "needs a model that carries state", "a handwriting checkpoint"),
    ("eval_lm", "mt", "needs a model that carries state", "a translation checkpoint (hyperlstm_mt_small)"),
    ("sample", "transformer_lm", "not a hyperfairseq language model", "a fairseq transformer_lm checkpoint"),
    ("sample", "hw", "not a hyperfairseq language model", "a handwriting checkpoint"),
    ("sample_handwriting", "lm", "not a handwriting checkpoint", "a character LM checkpoint"),
    ("sample_handwriting", "transformer_lm", "not a handwriting checkpoint", "a fairseq transformer_lm checkpoint"),
    ("analysis", "transformer_lm", "not a hyperfairseq HyperLSTM checkpoint", "a fairseq transformer_lm checkpoint"),
    ("analysis", "hw", "need a language model checkpoint", "a handwriting checkpoint with --text"),
    ("validate", "lm", "dict.txt: missing", "a character LM checkpoint on handwriting data"),
    ("train_restore", "transformer_lm", "checkpoint does not fit", "a transformer_lm checkpoint as --restore-file"),
    ("train_restore", "hw", "checkpoint does not fit", "a handwriting checkpoint as --restore-file"),
]


def other_model_case(entry: str, attribute: str, message: str, what: str) -> Case:
    runner, argv, outputs = ENTRIES[entry]
    return Case(id=f"{entry}-other-model-{attribute}", entry=runner, input=what, message=message,
                args=lambda env: argv(env, getattr(env, attribute)), absent=outputs,
                protect=lambda env: [getattr(env, attribute)])


VISION = [  # the vision script reads its own format (through checkpoint_files), and refuses the rest
    ("missing", lambda env: env.work / "none.pt", "checkpoint not found"),
    ("zero_bytes", lambda env: I.empty(env.work / CKPT), "empty file (0 bytes)"),
    ("truncated", lambda env: I.truncated(env.vision, env.work / CKPT), "truncated or damaged"),
    ("folder", lambda env: I.folder(env.work / CKPT), "is a folder"),
    ("crafted_pickle", lambda env: env.crafted, "refused: it asks to call"),
    ("lm_checkpoint", lambda env: env.lm, "not a hyperfairseq-vision-v1 checkpoint"),
    ("bare_tensor", lambda env: env.bare_tensor, "not a hyperfairseq-vision-v1 checkpoint"),
]


def vision_case(kind, make, message) -> Case:
    return Case(id=f"vision_eval-{kind}", entry="vision", input=f"--eval --resume {kind}", message=message,
                exit_code=2,
                args=lambda env: ["--eval", "--resume", make(env), "--data", env.fmnist, "--test-size", 20],
                markers=lambda env: [env.pwned_marker])


TEXT_ON_UNCONDITIONAL = Case(
    id="sample_handwriting-text-unconditional-model", entry="sample_handwriting", input="--text on an unconditional "
    "handwriting checkpoint", message="--text needs a synthesis checkpoint", exit_code=2,
    args=lambda env: I.sample_handwriting_args(env, env.hw, "--text", "hello"),
    absent=lambda env: [env.work / "samples"],
    protect=lambda env: [env.hw])

CASES = ([bad_file_case(e, k) for e in ENTRIES for k in BAD_FILES]
         + [other_model_case(*o) for o in OTHER_MODELS] + [vision_case(*v) for v in VISION] + [TEXT_ON_UNCONDITIONAL])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_checkpoint(case, env):
    outcome, detail, _ = run_case(case, env)
    assert outcome == expected_outcome(case), detail
