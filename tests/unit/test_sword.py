"""The SWORD zText reader and its CLI (data/sword.py) on schema-exact fixture modules.

A fixture module is written in the layout the module docstring states: per testament a `.bzv` verse
index (block u32, offset u32, size u16), a `.bzs` block index (offset u32, compressed size u32, size u32)
and zlib-compressed `.bzz` blocks. The real modules are read by tests/integration/test_translation_bible.py.
"""

import struct
import zlib

import pytest

from hyperfairseq.data import sword

BOOK = '<div osisID="{}" type="book">'


def write_module(moddir, testaments):
    """testaments: {"ot": [[entry, ...] per block], "nt": ...}; an entry of None is an empty slot."""
    moddir.mkdir(parents=True)
    for testament, blocks in testaments.items():
        bzv, bzs, bzz = b"", b"", b""
        for number, entries in enumerate(blocks):
            text = b""
            for entry in entries:
                if entry is None:
                    bzv += struct.pack("<IIH", 0, 0, 0)
                    continue
                data = entry.encode("utf-8")
                bzv += struct.pack("<IIH", number, len(text), len(data))
                text += data
            packed = zlib.compress(text)
            bzs += struct.pack("<III", len(bzz), len(packed), len(text))
            bzz += packed
        for ext, data in ((".bzv", bzv), (".bzs", bzs), (".bzz", bzz)):
            (moddir / (testament + ext)).write_bytes(data)


def bible(root, language):
    """Two books of two verses each (one in each testament), the book title slots, one empty slot."""
    write_module(root / {"en": sword.ENGLISH, "es": sword.SPANISH}[language], {
        "ot": [[BOOK.format("Gen") + '<title type="x-usfm-toc1">Genesis</title>', f"{language} gen 1",
                None, f"{language} gen 2 <note>a note</note>."]],
        "nt": [[BOOK.format("Gal") + '<title type="x-usfm-toc1">Galatians</title>'], [f"{language} gal 1",
                f"{language} gal 2 ,"]],
    })


def test_entries_carry_their_book_and_clean_text(tmp_path):
    bible(tmp_path, "en")
    entries = sword.read_module(str(tmp_path / sword.ENGLISH))
    assert [e.book for e in entries] == ["Gen", "Gen", "Gen", "Gen", "Gal", "Gal", "Gal"]
    assert [sword.clean(e.raw) for e in entries if not sword.is_book_intro(e.raw)] == \
        ["en gen 1", "", "en gen 2.", "en gal 1", "en gal 2,"]


def test_cli_writes_pairs_split_by_book(tmp_path, capsys):
    bible(tmp_path / "m", "en")
    bible(tmp_path / "m", "es")
    assert sword.main(["--modules", str(tmp_path / "m"), "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    assert (out / "train.en").read_text() == "en gen 1\nen gen 2.\n"
    assert (out / "train.es").read_text() == "es gen 1\nes gen 2.\n"
    assert (out / "test.en").read_text() == "en gal 1\nen gal 2,\n"  # Galatians is a test book
    assert (out / "valid.en").read_text() == ""
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{s}.{lang}" for s in ("train", "valid", "test")
                                                          for lang in ("en", "es"))
    assert "train=2 valid=0 test=2 pairs written to" in capsys.readouterr().out


def damage_bzz(root):
    path = root / sword.ENGLISH / "nt.bzz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    data[2:6] = b"\x00\x00\x00\x00"
    path.write_bytes(bytes(data))


def cut_bzs(root):
    path = root / sword.ENGLISH / "nt.bzs"
    path.write_bytes(path.read_bytes()[:12])


def cut_bzv(root):
    path = root / sword.ENGLISH / "ot.bzv"
    path.write_bytes(path.read_bytes()[:-3])


@pytest.mark.parametrize("damage, message", [
    (damage_bzz, "nt.bzz: block 0 does not decompress"),
    (cut_bzs, "nt.bzs: no record for block 1 (12 bytes); the module is damaged"),
    (cut_bzv, "ot.bzv: size 37 is not a multiple of 10"),
    (lambda root: (root / sword.ENGLISH / "nt.bzz").unlink(), "nt.bzz: SWORD zText file missing"),
], ids=["bzz-corrupt", "bzs-short", "bzv-cut", "bzz-missing"])
def test_a_damaged_module_is_one_named_error_and_nothing_is_written(tmp_path, capsys, damage, message):
    bible(tmp_path / "m", "en")
    bible(tmp_path / "m", "es")
    damage(tmp_path / "m")
    assert sword.main(["--modules", str(tmp_path / "m"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m hyperfairseq.data.sword: error: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_is_refused_and_kept(tmp_path, capsys):
    bible(tmp_path / "m", "en")
    bible(tmp_path / "m", "es")
    (tmp_path / "out").write_text("keep me\n")
    assert sword.main(["--modules", str(tmp_path / "m"), "--out", str(tmp_path / "out")]) == 2
    assert "--out " in capsys.readouterr().err and (tmp_path / "out").read_text() == "keep me\n"


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    """A --replace write that fails midway leaves the earlier file as it was, and no temporary file."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.en").write_text("earlier\n")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(sword.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        sword.write_splits({"train": [("a", "b")]}, str(out), replace=True)
    assert (out / "train.en").read_text() == "earlier\n"
    assert sorted(p.name for p in out.iterdir()) == ["train.en"]
