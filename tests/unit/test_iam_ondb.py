"""IAM-OnDB reader on schema-exact fixtures (tests/data/iam/raw, see tests/data/README.md) and the stroke helpers."""

import json
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from hyperfairseq.data import iam_ondb
from hyperfairseq.data import strokes as S
from hyperfairseq.data.iam_ondb import IamOnDbError, LineFileError, parse_line_strokes

RAW = Path(__file__).resolve().parents[1] / "data" / "iam" / "raw"
LINES = RAW / "lineStrokes"


def read(rel: str) -> bytes:
    return (LINES / rel).read_bytes()


def copy_raw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(RAW, raw)
    return raw


def test_fixture_keeps_the_crlf_quirk():
    data = read("a01/a01-000/a01-000u-01.xml")
    assert b'time="769.05"/>\r\n' in data and b"<StrokeSet>\n" in data


def test_parse_good_line_keeps_single_point_strokes_and_turns_y_up():
    strokes = parse_line_strokes(read("a01/a01-000/a01-000u-01.xml"), "x.xml")
    assert [len(s) for s in strokes] == [6, 1, 5]
    assert strokes[0][0].tolist() == [1073, -1051]  # first Point x="1073" y="1051", y negated
    assert strokes[1].tolist() == [[1200, -1000]]


@pytest.mark.parametrize(
    "rel, reason",
    [
        ("a01/a01-000/a01-000u-02.xml", "malformed XML"),  # truncated mid-file
        ("a01/a01-000/a01-000u-03.xml", "empty StrokeSet"),
        ("a01/a01-001/a01-001-02.xml", "absurd coordinates"),
        ("a01/a01-001/a01-001-03.xml", "malformed XML"),  # binary, not XML
    ],
)
def test_bad_line_files_raise_a_categorised_error_naming_the_file(rel, reason):
    with pytest.raises(LineFileError) as err:
        parse_line_strokes(read(rel), rel)
    assert err.value.reason == reason and rel in str(err.value)


def test_other_xml_and_bad_attributes_are_rejected():
    with pytest.raises(LineFileError, match="not a lineStrokes file"):
        parse_line_strokes(b"<svg></svg>", "f.xml")
    bad = read("a01/a01-053/a01-053-01.xml").replace(b'x="500"', b'x="5.5e2"')
    with pytest.raises(LineFileError, match="bad coordinates"):
        parse_line_strokes(bad, "f.xml")


def test_points_offsets_points_round_trip_is_exact():
    rng = np.random.default_rng(0)
    strokes = [rng.integers(-60, 7300, size=(n, 2)) for n in (1, 5, 1, 1, 40, 2)]
    rows = S.points_to_offsets(strokes)
    assert rows[:, 2].sum() == len(strokes)
    back = S.offsets_to_points(rows)
    assert len(back) == len(strokes)
    for a, b in zip(strokes, back):
        np.testing.assert_array_equal(a, b)
    # through the float32 dataset storage and with an origin, still exact for IAM's integer coordinates
    origin = strokes[0][0]
    rows32 = S.points_to_offsets(strokes, origin=origin).astype(np.float32)
    for a, b in zip(strokes, S.offsets_to_points(rows32, origin=origin)):
        np.testing.assert_array_equal(a, b)


def test_reader_applies_graves_split_and_counts_every_skip():
    summary = iam_ondb.Summary()
    splits = iam_ondb.read_iam_ondb(str(RAW), summary)
    # train: a01-000u-01, a01-001-01 (trainset), a01-053x-01 (testset_t), a01-053-01 (testset_f)
    assert sorted(len(x) for x in splits["train"]) == [3, 11, 19, 20]
    assert sorted(len(x) for x in splits["valid"]) == [2, 7]  # testset_v a02-000: 3 and 8 points
    assert summary.as_dict() == {
        "malformed XML": 2, "empty StrokeSet": 1, "absurd coordinates": 1, "split-list form without line files": 1,
    }


def test_length_filter_applies_to_training_only_and_normalises_with_train_stats(tmp_path):
    meta = iam_ondb.prepare(str(RAW), str(tmp_path / "out"), min_length=5)
    assert meta["dropped_short_train_lines"] == 1
    rows, index = S.read_split(str(tmp_path / "out"), "train")
    assert (np.diff(index) >= 5).all() and len(index) - 1 == 3
    _, vindex = S.read_split(str(tmp_path / "out"), "valid")
    assert sorted(np.diff(vindex).tolist()) == [2, 7]  # short validation lines are kept
    np.testing.assert_allclose(rows[:, :2].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(rows[:, :2].std(0), 1, atol=1e-5)
    on_disk = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert on_disk["comparable_with_table5"] is True and on_disk["skipped"]["malformed XML"] == 2


def _tar(raw: Path, name: str, prefix: str = "") -> Path:
    path = raw / name
    with tarfile.open(path, "w:gz") as tar:
        tar.add(raw / "lineStrokes", arcname=prefix + "lineStrokes")
    shutil.rmtree(raw / "lineStrokes")
    return path


@pytest.mark.parametrize("prefix", ["", "./", "lineStrokes-all/"])
def test_archive_reads_the_same_as_the_tree_without_extracting(tmp_path, prefix):
    raw = copy_raw(tmp_path)
    _tar(raw, "lineStrokes-all.tar.gz", prefix)
    summary = iam_ondb.Summary()
    splits = iam_ondb.read_iam_ondb(str(raw), summary)
    tree = iam_ondb.read_iam_ondb(str(RAW))
    for split in ("train", "valid"):
        assert len(splits[split]) == len(tree[split])
        for a, b in zip(splits[split], tree[split]):
            np.testing.assert_array_equal(a, b)
    assert summary.counts["malformed XML"] == 2
    assert sorted(os.listdir(raw)) == sorted(
        ["lineStrokes-all.tar.gz", "trainset.txt", "testset_v.txt", "testset_t.txt", "testset_f.txt"]
    )


def test_misnamed_archive_is_rejected_with_the_expected_name(tmp_path):
    raw = copy_raw(tmp_path)
    _tar(raw, "lineStrokes.tar.gz")
    with pytest.raises(IamOnDbError, match=r"no lineStrokes-all\.tar\.gz.*found lineStrokes\.tar\.gz"):
        iam_ondb.read_iam_ondb(str(raw))


def test_corrupt_archive_is_rejected_naming_the_file(tmp_path):
    raw = copy_raw(tmp_path)
    shutil.rmtree(raw / "lineStrokes")
    (raw / "lineStrokes-all.tar.gz").write_bytes(b"<html>login required</html>")
    with pytest.raises(IamOnDbError, match=r"lineStrokes-all\.tar\.gz: not a readable tar\.gz"):
        iam_ondb.read_iam_ondb(str(raw))


def test_missing_or_malformed_split_list_is_rejected_naming_the_file(tmp_path):
    raw = copy_raw(tmp_path)
    (raw / "testset_v.txt").unlink()
    with pytest.raises(IamOnDbError, match=r"testset_v\.txt not found"):
        iam_ondb.read_iam_ondb(str(raw))
    (raw / "testset_v.txt").write_bytes(b" a02-000\n a02-000-01.xml\n")
    with pytest.raises(IamOnDbError, match=r"testset_v\.txt:2: 'a02-000-01\.xml' is not a form id"):
        iam_ondb.read_iam_ondb(str(raw))


def test_cli_reports_errors_without_traceback_or_output(tmp_path, capsys):
    raw = copy_raw(tmp_path)
    (raw / "trainset.txt").unlink()
    out = tmp_path / "out"
    assert iam_ondb.main(["prepare", "--raw", str(raw), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "trainset.txt not found" in err and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["raw"]  # nothing half-written


def test_cli_prepares_and_rejects_all_short_training(tmp_path, capsys):
    out = tmp_path / "out"
    assert iam_ondb.main(["prepare", "--raw", str(RAW), "--out", str(out), "--min-length", "5"]) == 0
    assert "train: 3 lines" in capsys.readouterr().out
    assert iam_ondb.main(["prepare", "--raw", str(RAW), "--out", str(tmp_path / "o2"), "--min-length", "300"]) == 2
    assert "shorter than --min-length 300" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_a_crash_while_writing_leaves_no_half_written_dataset(tmp_path, monkeypatch):
    out = tmp_path / "out"
    iam_ondb.prepare(str(RAW), str(out), min_length=0)
    before = {p: (out / p).read_bytes() for p in os.listdir(out)}
    calls = []

    def failing(directory, name, lines):
        calls.append(name)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(directory, name, lines)

    original = S._write_split
    monkeypatch.setattr(S, "_write_split", failing)
    with pytest.raises(OSError, match="disk full"):
        iam_ondb.prepare(str(RAW), str(out), min_length=5, replace=True)
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no temporary directory left behind
    assert {p: (out / p).read_bytes() for p in os.listdir(out)} == before  # the old dataset is intact


def test_scale_augmentation_is_per_axis_bounded_and_training_only(tmp_path):
    from hyperfairseq.data.stroke_dataset import StrokeDataset

    iam_ondb.prepare(str(RAW), str(tmp_path / "out"), min_length=0)
    plain = StrokeDataset.load(str(tmp_path / "out"), "train")
    aug = StrokeDataset.load(str(tmp_path / "out"), "train", scale_augment=0.1, seed=3)
    i = int(np.argmax(plain.sizes))
    a, p = aug[i]["strokes"].numpy(), plain[i]["strokes"].numpy()
    ratio = a[:, :2] / np.where(p[:, :2] == 0, np.nan, p[:, :2])
    fx, fy = np.nanmean(ratio[:, 0]), np.nanmean(ratio[:, 1])
    assert 0.9 <= fx <= 1.1 and 0.9 <= fy <= 1.1
    assert np.nanstd(ratio[:, 0]) < 1e-5 and np.nanstd(ratio[:, 1]) < 1e-5  # one factor per axis per line
    assert abs(fx - fy) > 1e-3  # independent factors for x and y (H3)
    np.testing.assert_array_equal(a[:, 2], p[:, 2])
    np.testing.assert_array_equal(aug[i]["strokes"].numpy(), a)  # same epoch, same factors
    aug.set_epoch(2)
    assert not np.array_equal(aug[i]["strokes"].numpy(), a)
    batch = plain.collater([plain[0], plain[i]])
    assert batch["net_input"]["strokes"][:, 0].tolist() == [[0.0, 0.0, 1.0]] * 2  # start row
    assert batch["ntokens"] == int(plain.sizes[0] + plain.sizes[i])




def test_truncated_archive_stops_with_a_message_and_writes_nothing(tmp_path, capsys):
    raw = copy_raw(tmp_path)
    archive = _tar(raw, "lineStrokes-all.tar.gz")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    assert iam_ondb.main(["prepare", "--raw", str(raw), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "lineStrokes-all.tar.gz: not a readable tar.gz archive" in err and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["raw"]
