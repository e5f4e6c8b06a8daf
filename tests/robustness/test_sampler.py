"""The sampler's numbers: temperature, length, dictionary folder (issue 12 §3)."""

import pytest

from . import inputs as I
from .harness import Case, expected_outcome, run_case

PREFIX = "the company"


def sample_case(id, message, what, *extra, expect="error", check=None):
    return Case(id=f"sample-{id}", entry="sample", input=what, message=message, expect=expect, check=check,
                args=lambda env: I.sample_args(env, env.lm, "--prefix", PREFIX, *extra))


def greedy(env, result):
    """A temperature of 1e-45 is the greedy limit: the most likely symbol each step, whatever the seed."""
    import torch

    from hyperfairseq.sample import CharLM

    lm = CharLM.from_checkpoint(str(env.lm), str(env.lm_data))
    logits, state = lm.run([lm.dictionary.eos()] + lm.encode(PREFIX, line_ends=False))
    argmaxes = []
    for _ in range(5):  # the argmax over the symbols that may be sampled, written out apart from the sampler
        last = logits[-1].clone()
        last[lm.never_sampled] = -torch.inf
        argmaxes.append(int(last.argmax()))
        logits, state = lm.run(argmaxes[-1:], state)
    expected = PREFIX + lm.decode(argmaxes)
    text = result.stdout.rstrip("\n")
    return None if text == expected else f"{text!r}, not the argmax continuation {expected!r}"


def prefix_only(env, result):
    return None if result.stdout.rstrip("\n") == PREFIX else f"{result.stdout!r}"


CASES = [
    sample_case("temperature-nan", "--temperature must be a positive finite number", "--temperature nan",
                "--temperature", "nan"),
    sample_case("temperature-inf", "--temperature must be a positive finite number", "--temperature inf",
                "--temperature", "inf"),
    sample_case("temperature-0", "--temperature must be a positive finite number", "--temperature 0",
                "--temperature", "0"),
    sample_case("temperature-negative", "--temperature must be a positive finite number", "--temperature -1",
                "--temperature", "-1"),
    sample_case("temperature-1e-45", "", "--temperature 1e-45 (underflows logits / T)", "--temperature", "1e-45",
                expect="ok", check=greedy),
    sample_case("length-negative", "--length must be >= 0", "--length -1", "--length", "-1"),
    sample_case("seed-beyond-64-bits", "--seed must lie in [-2**63, 2**64)", "--seed 2**64",
                "--seed", str(2**64)),
    sample_case("length-0", "", "--length 0", "--length", "0", expect="ok", check=prefix_only),
    sample_case("length-not-a-number", "invalid int value", "--length ten", "--length", "ten"),
    Case(id="sample-data-folder-missing", entry="sample", input="--data a folder that does not exist",
         message="dict.txt: missing", args=lambda env: ["--path", env.lm, "--data", env.work / "none", "--length", 5]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_sampler_input(case, env):
    outcome, detail, _ = run_case(case, env)
    assert outcome == expected_outcome(case), detail
