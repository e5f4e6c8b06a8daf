"""Preparing the English-Spanish Bible pairs from the real SWORD modules (data/sword.py; issue 12 §1, §3).

Every case copies the two real zText modules (Debian sword-text-kjv, sword-text-sparv) and damages the copy:
a damaged module is named with the file at fault, nothing is written, and an earlier run's files are kept
unless --replace is given.
"""

from pathlib import Path

import pytest

from . import inputs as I
from .harness import Case, expected_outcome, run_case

SPLITS = [f"{split}.{lang}" for split in ("train", "valid", "test") for lang in ("en", "es")]


def modules(env) -> Path:
    return env.work / "modules"


def sword_args(env, *extra):
    return ["--modules", modules(env), "--out", env.work / "out", "--max-train", 50, *extra]


def damaged(name, damage):
    """Copy the real modules, then `damage(path)` one file of the Spanish New Testament (`nt.NAME`)."""
    def setup(env):
        I.copied(env.bible_modules, modules(env))
        if damage:
            damage(modules(env) / "spaRV1909eb" / name)
    return setup


def earlier_run(env):
    damaged("nt.bzz", None)(env)
    (env.work / "out").mkdir()
    (env.work / "out" / "train.en").write_text("an earlier run's training text, edited by hand\n")


def aligned_pairs(env, result):
    out = env.work / "out"
    counts = {name: len((out / name).read_text(encoding="utf-8").splitlines()) for name in SPLITS}
    if counts["train.en"] != 50 or any(counts[f"{s}.en"] != counts[f"{s}.es"] for s in ("train", "valid", "test")):
        return f"line counts {counts}"
    if counts["test.en"] != 503:  # Galatians-Colossians (docs/translation.md)
        return f"{counts['test.en']} test pairs, expected the 503 verses of Galatians-Colossians"
    return None


def sword_case(id, message, what, setup, expect="error", check=None, extra=(), protect=None):
    return Case(id=f"sword-{id}", entry="sword", input=what, message=message, expect=expect, check=check,
                setup=setup, args=lambda env: sword_args(env, *extra),
                absent=lambda env: [] if expect == "ok" or protect else [env.work / "out"],
                protect=protect or (lambda env: [env.bible_modules]))


def flip_middle(path: Path):
    I.flipped(path, path.stat().st_size // 2, 64)


CASES = [
    sword_case("intact", "", "the real KJV and Reina-Valera 1909 modules (control)", damaged("nt.bzz", None),
               expect="ok", check=aligned_pairs),
    sword_case("bzz-flipped", "does not decompress", "64 bytes inverted in the middle of nt.bzz",
               damaged("nt.bzz", flip_middle)),
    sword_case("bzz-truncated", "the module is damaged", "nt.bzz cut to half",
               damaged("nt.bzz", lambda p: I.truncated(p, p))),
    sword_case("bzs-truncated", "no record for block", "nt.bzs (the block index) cut to half",
               damaged("nt.bzs", lambda p: I.truncated(p, p))),
    sword_case("bzv-cut", "is not a multiple of 10", "nt.bzv (the verse index) cut by 3 bytes",
               damaged("nt.bzv", lambda p: p.write_bytes(p.read_bytes()[:-3]))),
    sword_case("file-missing", "nt.bzz", "nt.bzz deleted", damaged("nt.bzz", lambda p: p.unlink())),
    sword_case("out-is-file", "is a file; expected a folder", "--out an existing file",
               lambda env: (damaged("nt.bzz", None)(env), (env.work / "out").write_text("keep\n")),
               protect=lambda env: [env.work / "out"]),
    sword_case("out-has-earlier-run", "already holds train.en", "--out holding an earlier run's train.en",
               earlier_run, protect=lambda env: [env.work / "out"]),
    sword_case("replace", "", "--replace over an earlier run's train.en", earlier_run, expect="ok",
               check=aligned_pairs, extra=("--replace",)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bible_pairs_input(case, env):
    outcome, detail, _ = run_case(case, env)
    assert outcome == expected_outcome(case), detail
