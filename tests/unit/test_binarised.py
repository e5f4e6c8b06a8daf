"""The mmap split check (data/binarised.py) walks the index in chunks: every chunk boundary is checked."""

from pathlib import Path

import numpy as np
import pytest
import torch
from fairseq.data import indexed_dataset

from hyperfairseq.data import binarised
from hyperfairseq.errors import InputError

SIZES = [3, 0, 5, 1, 4, 2, 7, 1, 6, 2]  # an empty item too


def split(tmp_path):
    prefix = str(tmp_path / "train")
    builder = indexed_dataset.MMapIndexedDatasetBuilder(prefix + ".bin", dtype=np.int32)
    for i, size in enumerate(SIZES):
        builder.add_item(torch.full((size,), i, dtype=torch.int32))
    builder.finalize(prefix + ".idx")
    return prefix


def pointer_of(prefix, item):
    """Byte position of item `item`'s offset in the index."""
    return binarised.HEADER + 4 * len(SIZES) + 8 * item


@pytest.fixture(params=[1, 3, 4, 1 << 20], ids=lambda c: f"chunk{c}")
def chunked(request, monkeypatch):
    monkeypatch.setattr(binarised, "CHUNK_ITEMS", request.param)


def test_an_intact_split_passes_at_every_chunk_size(tmp_path, chunked):
    assert binarised.check_split(split(tmp_path)) == len(SIZES)


@pytest.mark.parametrize("item", [1, 4, 9])  # in the first chunk, on a boundary of chunks of 4, in the last
def test_an_offset_off_by_one_item_is_caught_in_any_chunk(tmp_path, chunked, item):
    prefix = split(tmp_path)
    with open(prefix + ".idx", "r+b") as f:
        f.seek(pointer_of(prefix, item))
        offset = int.from_bytes(f.read(8), "little")
        f.seek(pointer_of(prefix, item))
        f.write((offset + 4).to_bytes(8, "little"))
    with pytest.raises(InputError, match="sizes and offsets do not fit"):
        binarised.check_split(prefix)


def test_a_bin_one_item_short_is_caught(tmp_path, chunked):
    prefix = split(tmp_path)
    path = Path(prefix + ".bin")
    path.write_bytes(path.read_bytes()[:-4])  # 31 int32 tokens: 124 bytes, less the last token
    with pytest.raises(InputError, match=r"train.bin: 120 bytes, but .* describes 124"):
        binarised.check_split(prefix)


def test_a_negative_size_is_caught_even_when_the_offsets_agree(tmp_path, chunked):
    """sizes (3, -1) with offsets (0, 12) and an 8-byte .bin add up; only the sign check sees the damage."""
    prefix = str(tmp_path / "train")
    header = binarised.MMAP_MAGIC + (1).to_bytes(8, "little") + bytes([4]) + (2).to_bytes(8, "little")  # int32
    sizes = (3).to_bytes(4, "little") + (-1).to_bytes(4, "little", signed=True)
    offsets = (0).to_bytes(8, "little") + (12).to_bytes(8, "little")
    Path(prefix + ".idx").write_bytes(header + sizes + offsets)
    Path(prefix + ".bin").write_bytes(bytes(8))
    with pytest.raises(InputError, match="sizes and offsets do not fit"):
        binarised.check_split(prefix)
