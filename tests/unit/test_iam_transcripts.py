"""IAM-OnDB transcripts (data/iam_transcripts.py) on the schema-exact fixtures of tests/data/iam_ascii/
(every case of docs/iam-ondb-format.md §1.4) with the line files of tests/data/iam/raw."""

import json
import logging
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from hyperfairseq.data import iam_ondb, iam_transcripts
from hyperfairseq.data import strokes as S
from hyperfairseq.data.iam_transcripts import TranscriptError, parse_transcript
from hyperfairseq.data.synthesis_data import read_texts

DATA = Path(__file__).resolve().parents[1] / "data"
ASCII = DATA / "iam_ascii" / "ascii"
LINES = DATA / "iam" / "raw"


def fixture(rel):
    return (ASCII / rel).read_bytes()


@pytest.mark.parametrize("rel, lines", [
    ("a01/a01-000/a01-000u.txt", ["A MOVE to stop Mr . Gaitskell", "from nominating any more Labour",
                                  "life Peers is to be made"]),  # CRLF, OCR block, trailing blanks
    ("a01/a01-001/a01-001.txt", ["by Sir Roy Welensky ,", "the Federal Premier .",
                                 "Mr . Macleod went on"]),  # LF, "CSR: ", no final newline
    ("a01/a01-053/a01-053.txt", ["Though they may gather"]),  # extra empty line at the end
    ("a02/a02-000/a02-000.txt", ["it is a step", "towards the end"]),  # %%% join split
    ("z01/z01-000/z01-000z.txt", ["Please Enter Transcription here"]),
])
def test_csr_block_is_read_in_every_measured_layout(rel, lines):
    assert parse_transcript(fixture(rel), rel).lines == lines


@pytest.mark.parametrize("rel, reason", [
    ("y01/y01-000/y01-000.txt", "without a CSR: line"),
    ("y01/y01-001/y01-001.txt", "without the empty line after CSR:"),
    ("y01/y01-002/y01-002.txt", "empty line inside"),
    ("y01/y01-003/y01-003.txt", "not 7-bit ASCII"),
])
def test_malformed_transcripts_raise_with_the_file_and_reason(rel, reason):
    with pytest.raises(TranscriptError, match=reason) as err:
        parse_transcript(fixture(rel), rel)
    assert rel in str(err.value)


def raw_folder(tmp_path, archive=False, prefix=""):
    """A user's RAW folder: the line-file fixtures and the transcripts, extracted or as ascii-all.tar.gz."""
    raw = tmp_path / "raw"
    shutil.copytree(LINES, raw)
    if not archive:
        shutil.copytree(ASCII, raw / "ascii")
        return raw
    with tarfile.open(raw / iam_transcripts.ARCHIVE, "w:gz") as tar:
        for path in sorted(ASCII.rglob("*.txt")):
            tar.add(path, arcname=prefix + "ascii/" + path.relative_to(ASCII).as_posix())
    return raw


def expected_pairs():
    """Line k of each usable form with CSR line k (the line files that parse, in iam_ondb's order)."""
    return {
        S.TRAIN: [("a01-000u", 1, "A MOVE to stop Mr . Gaitskell"), ("a01-001", 1, "by Sir Roy Welensky ,"),
                  ("a01-053", 1, "Though they may gather")],
        S.VALID: [("a02-000", 1, "it is a step"), ("a02-000", 2, "towards the end")],
    }


@pytest.mark.parametrize("archive, prefix", [(False, ""), (True, ""), (True, "./")])
def test_prepare_pairs_line_k_with_csr_line_k_and_counts_every_skip(tmp_path, caplog, archive, prefix):
    raw = raw_folder(tmp_path, archive, prefix)
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO):
        meta = iam_transcripts.prepare(str(raw), str(out), min_length=0)
    for split, pairs in expected_pairs().items():
        assert read_texts(str(out), split) == [text for _, _, text in pairs]
        rows, index = S.read_split(str(out), split)
        for i, (form, k, _) in enumerate(pairs):  # the strokes of line file k, in the same order
            path = next(LINES.rglob(f"{form}-{k:02d}.xml"))
            want = S.line_rows(iam_ondb.parse_line_strokes(path.read_bytes(), str(path)))
            got = S.denormalise(np.asarray(rows[index[i]:index[i + 1]]), meta["mean"], meta["std"])
            np.testing.assert_allclose(got, want, atol=1e-3)  # float32 storage of normalised rows
    skipped = meta["skipped"]
    assert skipped["CSR line count differs from the line files"] == 1  # a01-053x: 2 CSR lines, 1 file
    for reason in ("transcript without a CSR: line", "transcript without the empty line after CSR:",
                   "transcript with an empty CSR block or an empty line inside it", "transcript not 7-bit ASCII"):
        assert skipped[reason] == 1, reason
    log = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped:")]
    assert len(log) == 1 and "a01-053x (2 CSR lines, 1 line files)" in log[0] and "y01-000.txt" in log[0]
    assert json.loads((out / "meta.json").read_text())["alphabet"] == "".join(sorted(set(
        "".join(t for _, _, t in expected_pairs()[S.TRAIN]))))


def test_line_files_without_a_transcript_are_skipped_and_counted(tmp_path):
    raw = raw_folder(tmp_path)
    (raw / "ascii" / "a01" / "a01-001" / "a01-001.txt").unlink()
    meta = iam_transcripts.prepare(str(raw), str(tmp_path / "out"), min_length=0)
    assert meta["skipped"]["line files without a transcript"] == 1
    assert "by Sir Roy Welensky ," not in read_texts(str(tmp_path / "out"), S.TRAIN)


def test_cli_refuses_an_existing_output_and_missing_transcripts(tmp_path, capsys):
    raw = raw_folder(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    assert iam_transcripts.main(["prepare", "--raw", str(raw), "--out", str(out), "--min-length", "0"]) == 2
    assert "already exists; choose another --out, or add --replace" in capsys.readouterr().err
    args = ["prepare", "--raw", str(raw), "--out", str(out), "--min-length", "0"]
    assert iam_transcripts.main(args + ["--replace"]) == 0
    assert iam_transcripts.main(args + ["--force"]) == 0  # --force, the first spelling, stays an alias of --replace
    assert "wrote " in capsys.readouterr().out
    assert (out / "train.text").exists()
    shutil.rmtree(raw / "ascii")
    assert iam_transcripts.main(["prepare", "--raw", str(raw), "--out", str(tmp_path / "o2")]) == 2
    assert "no ascii-all.tar.gz" in capsys.readouterr().err
    (raw / iam_transcripts.ARCHIVE).write_bytes(b"<html>not an archive</html>")
    assert iam_transcripts.main(["prepare", "--raw", str(raw), "--out", str(tmp_path / "o2")]) == 2
    assert "not a readable tar.gz" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()
