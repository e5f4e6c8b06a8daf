"""Preparing data: byte corpora (enwik8 zips), stroke datasets (IAM-OnDB, KanjiVG, LASA) (issue 12 §1, §3).

An existing output folder is never overwritten unless --replace is given (the data-loss case of the
issue); a truncated or damaged archive is named; nothing half-written is left.
"""

import os
import sys
import zipfile
from pathlib import Path

import pytest

from . import inputs as I
from .harness import REPO, Case, expected_outcome, process, run_case

IAM_RAW = REPO / "tests" / "data" / "iam" / "raw"


def ptb_bytes(env) -> bytes:
    return (env.lm_text / "test.txt").read_bytes()  # real text (char-PTB); enwik8 is not obtainable here


def make_zip(name="enwik8.zip", members=("enwik8",), keep=1.0, flip_middle=False):
    def setup(env):
        path = env.work / name
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for member in members:
                z.writestr(member, ptb_bytes(env))
        if keep < 1.0:
            I.truncated(path, path, keep)
        if flip_middle:
            I.flipped(path, os.path.getsize(path) // 2, 16)
    return setup


def byte_case(id, setup, message, what, src="enwik8.zip", expect="error", check=None, extra=()):
    return Case(id=f"byte_corpus-{id}", entry="byte_corpus", input=what, message=message, expect=expect,
                check=check, setup=setup, absent=lambda env: [] if expect == "ok" else [env.work / "bin"],
                args=lambda env: ["prepare", "--src", env.work / src, "--out", env.work / "bin", *extra])


def binarised(env, result):
    files = sorted(os.listdir(env.work / "bin"))
    return None if {"dict.txt", "train.bin", "train.idx", "test.idx"} <= set(files) else f"wrote {files}"


def existing_folder(name):
    def setup(env):
        (env.work / name).mkdir()
        (env.work / name / "keep.txt").write_text("results of an earlier preparation\n")
    return setup


def replaced(env, result):
    out = env.work / "out"
    if (out / "keep.txt").exists() or not (out / "meta.json").exists():
        return f"--replace left {sorted(os.listdir(out))}"
    return None


def iam_case(id, message, what, args, setup=None, expect="error", check=None, protect=None, exit_code=None):
    return Case(id=f"iam_ondb-{id}", entry="iam_ondb", input=what, message=message, expect=expect, check=check,
                setup=setup, args=args, protect=protect or (lambda env: []), exit_code=exit_code)


def raw_copy(damage=None):
    def setup(env):
        I.copied(IAM_RAW, env.work / "raw")
        if damage:
            damage(env.work / "raw")
    return setup


def truncated_archive(raw: Path):
    import shutil
    import tarfile

    with tarfile.open(raw / "lineStrokes-all.tar.gz", "w:gz") as tar:
        tar.add(raw / "lineStrokes", arcname="lineStrokes")
    shutil.rmtree(raw / "lineStrokes")
    I.truncated(raw / "lineStrokes-all.tar.gz", raw / "lineStrokes-all.tar.gz", 0.5)


def hostile_archive(raw: Path):
    """The real line files as lineStrokes-all.tar.gz, plus a member whose path climbs out of the folder
    (`../../lineStrokes/...`, named like a line file) and a symlink member pointing outside."""
    import io
    import shutil
    import tarfile

    escaping = (raw / "lineStrokes" / "a01" / "a01-000" / "a01-000u-01.xml").read_bytes()
    with tarfile.open(raw / "lineStrokes-all.tar.gz", "w:gz") as tar:
        tar.add(raw / "lineStrokes", arcname="lineStrokes")
        member = tarfile.TarInfo("../../lineStrokes/z99/z99-000/z99-000u-01.xml")
        member.size = len(escaping)
        tar.addfile(member, io.BytesIO(escaping))
        link = tarfile.TarInfo("lineStrokes/z98")
        link.type, link.linkname = tarfile.SYMTYPE, "../../.."
        tar.addfile(link)
    shutil.rmtree(raw / "lineStrokes")


def prepare_enwik8_script(env, argv):
    make_zip(keep=0.6)(env)
    return process(["bash", REPO / "scripts/prepare_enwik8.sh", env.work / "enwik8.zip", env.work / "bin"],
                   {"PYTHON": sys.executable})


TABLE_SCRIPTS = {  # script: (its save folder under checkpoints/, the data folder it expects, leading arguments)
    "table3_ptb.sh": ("table3/ln_hyperlstm_lm_ptb", "data-bin/ptb_char", ()),
    "table4_enwik8.sh": ("table4/hyperlstm_lm_enwik8", "data-bin/enwik8", ("enwik8.zip",)),
}
STUB_TRAINER = '#!/bin/sh\necho "$@" > "$STUB_ARGS"\nexit 3\n'


def table_row(script: str, finished: bool):
    """The script in a copy of the repository layout, one row's save folder holding a real checkpoint
    (and its row_done marker when `finished`), and a stand-in fairseq-train on PATH that records its
    arguments and exits 3 (the row interrupted again): the case is the script's handling of the folder."""
    def setup(env):
        save, data, _ = TABLE_SCRIPTS[script]
        root = env.work / "repo"
        (root / "scripts").mkdir(parents=True)
        I.copied(REPO / "scripts" / script, root / "scripts" / script)
        (root / data).mkdir(parents=True)
        (root / "checkpoints" / save).mkdir(parents=True)
        I.copied(env.lm, root / "checkpoints" / save / "checkpoint_last.pt")
        if finished:
            (root / "checkpoints" / save / "row_done").touch()
        (env.work / "bin").mkdir()
        (env.work / "bin" / "fairseq-train").write_text(STUB_TRAINER)
        (env.work / "bin" / "fairseq-train").chmod(0o755)
    return setup


def run_table_script(script: str):
    def run(env, argv):
        save, _, lead = TABLE_SCRIPTS[script]
        path = os.pathsep.join([str(env.work / "bin"), str(Path(sys.executable).parent), os.environ["PATH"]])
        return process(["bash", env.work / "repo" / "scripts" / script, *lead, "--rows", save.split("/")[1], "--cpu"],
                       {"PATH": path, "STUB_ARGS": str(env.work / "trainer_args")}, cwd=env.work / "repo")
    run.__name__ = "run_" + script.replace(".", "_")
    return run


def trained_in_place(script: str):
    def check(env, result):
        args = (env.work / "trainer_args").read_text() if (env.work / "trainer_args").exists() else ""
        want = f"--save-dir checkpoints/{TABLE_SCRIPTS[script][0]} "
        return None if want in args else f"fairseq-train was not given {want.strip()!r}: {args.strip()!r}"
    return check


def table_cases(script: str):
    name, protect = script.replace(".", "_"), lambda env: [env.work / "repo" / "checkpoints"]
    return [
        Case(id=f"{name}-interrupted-row", entry=run_table_script(script), setup=table_row(script, False),
             input=f"scripts/{script} run again on an interrupted row (its checkpoint_last.pt kept and resumed; "
                   "the stand-in trainer exits 3)", message="", exit_code=3, protect=protect,
             check=trained_in_place(script)),
        Case(id=f"{name}-finished-row", entry=run_table_script(script), setup=table_row(script, True),
             input=f"scripts/{script} run again on a finished row (row_done)", expect="ok", protect=protect,
             check=lambda env, result: None if "done already" in result.stdout else "no 'done already' message"),
    ]


def KANJIVG(env, *extra):
    return ["prepare", "--pkgs", env.kanjivg_wheel.parent, "--max-chars", 8, "--chars-per-line", 2,
            "--min-length", 5, *extra]


CASES = [
    byte_case("intact-zip", make_zip(), "", "a complete zip of real text (control)", expect="ok", check=binarised),
    byte_case("truncated-zip", make_zip(keep=0.6), "truncated or damaged zip", "the first 60% of the zip"),
    byte_case("empty-zip-file", lambda env: I.empty(env.work / "enwik8.zip"), "truncated or damaged zip",
              "a 0-byte enwik8.zip"),
    byte_case("damaged-member", make_zip(flip_middle=True), "cannot be decompressed",
              "16 bytes inverted inside the compressed member"),
    byte_case("two-members", make_zip(members=("enwik8", "extra")), "expected one member", "a zip of two files"),
    Case(id="byte_corpus-out-exists", entry="byte_corpus", input="--out an existing folder", message="already exists",
         setup=lambda env: (make_zip()(env), existing_folder("bin")(env)), protect=lambda env: [env.work / "bin"],
         args=lambda env: ["prepare", "--src", env.work / "enwik8.zip", "--out", env.work / "bin"]),
    byte_case("src-empty", lambda env: I.empty(env.work / "raw.bin"), "0 bytes; too few", "a 0-byte source",
              src="raw.bin"),
    byte_case("src-missing", None, "missing", "a source that does not exist", src="none.bin"),
    byte_case("limit-negative", make_zip(), "--limit must be a positive", "--limit -5 (read as 'everything')",
              extra=("--limit", -5)),
    Case(id="run_record-out-is-folder", entry="run_record", input="--out an existing folder", message="is a folder",
         exit_code=2, args=lambda env: ["--out", env.work, "--name", "x", "--command", "x", "--result", "a=1"]),
    Case(id="prepare_enwik8_sh-truncated-zip", entry=prepare_enwik8_script, input="scripts/prepare_enwik8.sh on a "
         "truncated zip", message="truncated or damaged zip", exit_code=2, absent=lambda env: [env.work / "bin"]),
    iam_case("out-exists", "already exists", "prepare --out an existing folder",
             lambda env: ["prepare", "--raw", env.work / "raw", "--out", env.work / "out", "--min-length", 5],
             setup=lambda env: (raw_copy()(env), existing_folder("out")(env)), protect=lambda env: [env.work / "out"]),
    iam_case("out-exists-replace", "", "prepare --out an existing folder --replace",
             lambda env: ["prepare", "--raw", env.work / "raw", "--out", env.work / "out", "--min-length", 5,
                          "--replace"], setup=lambda env: (raw_copy()(env), existing_folder("out")(env)),
             expect="ok", check=replaced),
    iam_case("raw-missing", "is not a folder", "--raw a folder that does not exist",
             lambda env: ["prepare", "--raw", env.work / "none", "--out", env.work / "out"], exit_code=2),
    iam_case("split-list-missing", "not found", "--raw without testset_v.txt",
             lambda env: ["prepare", "--raw", env.work / "raw", "--out", env.work / "out"],
             setup=raw_copy(lambda raw: (raw / "testset_v.txt").unlink())),
    iam_case("truncated-archive", "not a readable tar.gz archive", "lineStrokes-all.tar.gz cut to half",
             lambda env: ["prepare", "--raw", env.work / "raw", "--out", env.work / "out", "--min-length", 5],
             setup=raw_copy(truncated_archive)),
    iam_case("archive-member-escapes", "", "lineStrokes-all.tar.gz with a `../../` member and a symlink out",
             lambda env: ["prepare", "--raw", env.work / "raw", "--out", env.work / "out", "--min-length", 5],
             setup=raw_copy(hostile_archive), expect="ok",
             check=lambda env, result: None if (env.work / "out").is_dir() and not (env.work / "lineStrokes").exists()
             and not any(p.is_symlink() for p in env.work.rglob("*")) else "a member was written outside --raw"),
    iam_case("min-length-negative", "--min-length must be >= 0", "--min-length -1",
             lambda env: ["prepare", "--raw", env.work / "raw", "--out", env.work / "out", "--min-length", -1],
             setup=raw_copy(), exit_code=2),
    Case(id="kanjivg-out-exists", entry="kanjivg", input="prepare --out an existing folder", message="already exists",
         setup=existing_folder("out"), args=lambda env: KANJIVG(env, "--out", env.work / "out"),
         protect=lambda env: [env.work / "out"]),
    Case(id="kanjivg-no-wheel", entry="kanjivg", input="--pkgs a folder without the wheel", message="no kanjivg-",
         args=lambda env: ["prepare", "--pkgs", env.work, "--out", env.work / "out"],
         absent=lambda env: [env.work / "out"]),
    Case(id="kanjivg-truncated-wheel", entry="kanjivg", input="a kanjivg wheel cut to half",
         message="not a readable kanjivg wheel",
         setup=lambda env: I.truncated(env.kanjivg_wheel, env.work / env.kanjivg_wheel.name),
         args=lambda env: ["prepare", "--pkgs", env.work, "--out", env.work / "out"],
         absent=lambda env: [env.work / "out"]),
    Case(id="kanjivg-max-chars-0", entry="kanjivg", input="--max-chars 0 (read every character)",
         message="--max-chars must be a positive integer", exit_code=2,
         args=lambda env: KANJIVG(env, "--out", env.work / "out", "--max-chars", 0)),
    Case(id="kanjivg-chars-per-line-0", entry="kanjivg", input="--chars-per-line 0",
         message="--chars-per-line must be a positive integer", exit_code=2,
         args=lambda env: KANJIVG(env, "--out", env.work / "out", "--chars-per-line", 0)),
    Case(id="lasa-out-exists", entry="lasa", input="prepare --out an existing folder", message="already exists",
         setup=existing_folder("out"), args=lambda env: ["prepare", "--pkgs", env.kanjivg_wheel.parent, "--out",
                                                         env.work / "out"], protect=lambda env: [env.work / "out"]),
    Case(id="hershey-out-exists", entry="hershey", input="prepare --out an existing folder",
         message="already exists; choose another --out, or add --replace", exit_code=2, setup=existing_folder("out"),
         protect=lambda env: [env.work / "out"],
         args=lambda env: ["prepare", "--pkgs", env.kanjivg_wheel.parent, "--out", env.work / "out"]),
    Case(id="iam_transcripts-raw-missing", entry="iam_transcripts", input="--raw a folder that does not exist",
         message="is not a folder", exit_code=2, absent=lambda env: [env.work / "out"],
         args=lambda env: ["prepare", "--raw", env.work / "none", "--out", env.work / "out"]),
    *table_cases("table3_ptb.sh"), *table_cases("table4_enwik8.sh"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_prepare_input(case, env):
    outcome, detail, _ = run_case(case, env)
    assert outcome == expected_outcome(case), detail
