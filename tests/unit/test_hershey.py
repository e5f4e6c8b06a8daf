"""Hershey renderer and synthesis dataset (data/hershey.py, data/synthesis_data.py) on the real font wheel."""

import json
import os

import numpy as np
import pytest
from conftest import require_data

from hyperfairseq.data import hershey
from hyperfairseq.data import strokes as S
from hyperfairseq.data.synthesis_data import PAD, UNK, encode, read_texts

FACES = ("scripts", "futural")


@pytest.fixture(scope="module")
def wheel():
    return str(require_data("_pkgs/" + hershey.WHEEL_GLOB, "bash scripts/get_handwriting_data.sh data/_pkgs"))


@pytest.fixture(scope="module")
def fonts(wheel):
    return hershey.load_faces(wheel, FACES)


def test_fonts_have_every_printable_ascii_glyph(fonts):
    for face, glyphs in fonts.items():
        assert set(glyphs) == {chr(c) for c in range(32, 128)}, face
        assert glyphs[" "].strokes == () and glyphs[" "].right > glyphs[" "].left  # a space only advances
        assert all(len(glyphs[c].strokes) >= 1 for c in "AaZz09.,"), face


def test_jhf_parser_reads_pen_lifts_and_extents():
    # left/right 'MW' = -5, 5; then OJ UR, a pen lift ' R', UJ OR: two strokes (each letter minus 'R')
    line = "  123  6MWOJUR RUJOR"
    glyph = hershey.parse_jhf(line, "test")[" "]
    assert (glyph.left, glyph.right) == (-5, 5)
    assert [s.tolist() for s in glyph.strokes] == [[[-3, -8], [3, 0]], [[3, -8], [-3, 0]]]
    with pytest.raises(hershey.HersheyError, match="not JHF"):
        hershey.parse_jhf("  123  9MWOJ", "broken")  # vertex count disagrees with the pairs


@pytest.mark.parametrize("augment", [False, True])
def test_rendered_line_round_trips_through_offsets_exactly(fonts, augment):
    rng = np.random.default_rng(3) if augment else None
    strokes = hershey.render_line("Jesus wept.", fonts["scripts"], 4.0, rng)
    assert all(s.dtype == np.int64 for s in strokes)  # S1: an integer pen grid
    rows = S.points_to_offsets(strokes)
    back = S.offsets_to_points(rows)
    assert len(back) == len(strokes) and all(np.array_equal(a, b) for a, b in zip(back, strokes))


def test_augmentation_changes_the_line_but_not_its_stroke_structure(fonts):
    plain = hershey.render_line("In the beginning", fonts["futural"], 4.0)
    a = hershey.render_line("In the beginning", fonts["futural"], 4.0, np.random.default_rng(1))
    b = hershey.render_line("In the beginning", fonts["futural"], 4.0, np.random.default_rng(1))
    c = hershey.render_line("In the beginning", fonts["futural"], 4.0, np.random.default_rng(2))
    assert [len(s) for s in plain] == [len(s) for s in a]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))  # seeded: reproducible
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_resampling_spaces_points_evenly_and_keeps_both_ends():
    stroke = np.array([[0, 0], [10, 0], [10, 10]])
    points = hershey.resample(stroke, 4.0)
    assert np.array_equal(points[0], [0, 0]) and np.array_equal(points[-1], [10, 10])
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    assert len(points) == 6 and np.allclose(steps[[0, 1, 3, 4]], 4.0)  # 20 units in 5 steps; corner cut once


def test_lines_are_wrapped_at_word_boundaries_and_unrenderable_ones_counted():
    skipped = {}
    lines = hershey.wrap_lines(["And God said, Let there be light: and there was light.", "caf\u00e9 society",
                                "a supercalifragilistic word", "the LORD\u2019s"], 14, {chr(c) for c in range(32, 127)},
                               skipped)
    assert lines == ["And God said,", "Let there be", "light: and", "there was", "light.", "a", "word", "the LORD's"]
    assert skipped == {"character without a glyph": 1, "word longer than --max-chars": 1}


def test_encoding_maps_unknown_characters_to_unk():
    assert encode("ab?", "ab").tolist() == [2, 3, UNK] and PAD == 0


def test_prepare_cli_writes_an_aligned_dataset_atomically_and_refuses_an_existing_one(wheel, tmp_path, capsys):
    out = tmp_path / "hershey"
    args = ["prepare", "--out", str(out), "--pkgs", os.path.dirname(wheel), "--train-lines", "30",
            "--valid-lines", "6", "--test-lines", "6", "--faces", ",".join(FACES)]
    assert hershey.main(args) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["comparable_with_table5"] is False and "not IAM-OnDB" in meta["label"]
    texts = read_texts(str(out), "valid")
    faces = (out / "valid.face").read_text().splitlines()
    rows, index = S.read_split(str(out), "valid")
    assert len(texts) == len(faces) == len(index) - 1 == 6
    assert set(meta["alphabet"]) == set("".join(read_texts(str(out), "train")))
    # the stored (normalised, float32) rows are the rendering of the stored text in the stored face
    rng = np.random.default_rng((1, 1, 2))  # RenderOptions seed 1, split code 1 (valid), line 2
    rng.integers(len(FACES))  # the face draw comes first
    want = S.line_rows(hershey.render_line(texts[2], hershey.load_faces(wheel, [faces[2]])[faces[2]], 4.0, rng))
    got = S.denormalise(np.asarray(rows[index[2]:index[3]]), meta["mean"], meta["std"])
    np.testing.assert_array_equal(np.rint(got), want)  # integer pen units survive float32 storage
    before = (out / "train.strokes.npy").read_bytes()
    assert hershey.main(args) == 2
    assert "already exists; choose another --out, or add --replace" in capsys.readouterr().err
    assert (out / "train.strokes.npy").read_bytes() == before
    assert hershey.main(args + ["--faces", "nosuchface", "--replace"]) == 2
    assert "no face nosuchface" in capsys.readouterr().err
    assert (out / "train.strokes.npy").read_bytes() == before  # a failed run leaves the old data in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hershey"]  # no temporary folder left behind
