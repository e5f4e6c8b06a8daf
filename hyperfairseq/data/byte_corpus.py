"""Byte-level corpora (enwik8): one symbol per byte, binarised for `--task char_lm`.

    python -m hyperfairseq.data.byte_corpus prepare --src enwik8.zip --out data-bin/enwik8

SRC is the enwik8 zip (its single member is read), the raw file, or any byte file. The first
min(--limit, size) bytes (default 100M, the paper's, §3.4) are split by position 90/5/5 into
train/valid/test (Chung et al. 2015). Every byte is a symbol, spaces and newlines included: no
whitespace splitting and no end-of-line symbols, so fairseq's "Loss (base 2)" is bits per byte.
The dictionary (`0x41`-style symbols) is built from the training split; bytes of valid/test unseen in
training map to <unk> and are counted. Output is written to a temporary folder and renamed when complete.
"""

import json
import os
import re
import shutil
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from fairseq.data import Dictionary, indexed_dataset

from hyperfairseq import cli
from hyperfairseq.errors import InputError

SPLITS = (("train", 0.90), ("valid", 0.05), ("test", 0.05))
CHUNK = 1 << 16  # bytes per stored item; the task concatenates items back into one stream
SYMBOL = re.compile(r"0x[0-9a-f]{2}")
ZIP_MAGIC = b"PK\x03\x04"


def byte_symbol(b: int) -> str:
    return f"0x{b:02x}"


def is_byte_dictionary(dictionary: Dictionary) -> bool:
    symbols = dictionary.symbols[dictionary.nspecial:]
    return bool(symbols) and all(SYMBOL.fullmatch(s) for s in symbols)


def read_source(src: Path, limit: int) -> bytes:
    """The first `limit` bytes of SRC: its single member if it is a zip archive, else the file itself."""
    if not src.is_file():
        raise InputError(f"{src}: missing")
    with open(src, "rb") as f:
        zip_like = f.read(4) == ZIP_MAGIC or src.suffix.lower() == ".zip"
        f.seek(0)
        data = read_zip_member(src, limit) if zip_like else f.read(limit)
    if len(data) < 20:
        raise InputError(f"{src}: {len(data)} bytes; too few to split 90/5/5")
    return data


def read_zip_member(src: Path, limit: int) -> bytes:
    """A zip's single member; a truncated archive (an interrupted download) or a damaged member is named."""
    if not zipfile.is_zipfile(src):
        raise InputError(f"{src}: a truncated or damaged zip archive (an interrupted download?); fetch it again")
    try:
        with zipfile.ZipFile(src) as z:
            members = [i for i in z.infolist() if not i.is_dir()]
            if len(members) != 1:
                raise InputError(f"{src}: expected one member (enwik8), found {[m.filename for m in members]}")
            with z.open(members[0]) as f:
                return f.read(limit)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as err:
        raise InputError(f"{src}: its member cannot be decompressed ({type(err).__name__}: {err}); "
                         "fetch it again") from None


def split_bytes(data: bytes):
    n = len(data)
    train_end, valid_end = int(n * 0.90), int(n * 0.95)
    return {"train": data[:train_end], "valid": data[train_end:valid_end], "test": data[valid_end:]}


def build_dictionary(train: bytes) -> Dictionary:
    counts = np.bincount(np.frombuffer(train, dtype=np.uint8), minlength=256)
    d = Dictionary()
    for b in np.argsort(-counts, kind="stable"):
        if counts[b] > 0:
            d.add_symbol(byte_symbol(int(b)), n=int(counts[b]))
    return d


def lookup_table(dictionary: Dictionary) -> np.ndarray:
    table = np.full(256, dictionary.unk(), dtype=np.int64)
    for b in range(256):
        index = dictionary.indices.get(byte_symbol(b))
        if index is not None:
            table[b] = index
    return table


def bytes_to_ids(data: bytes, dictionary: Dictionary):
    return lookup_table(dictionary)[np.frombuffer(data, dtype=np.uint8)].tolist()


def ids_to_bytes(ids, dictionary: Dictionary) -> bytes:
    out = bytearray()
    for i in ids:
        symbol = dictionary[i]
        if SYMBOL.fullmatch(symbol):
            out.append(int(symbol[2:], 16))
    return bytes(out)


def binarize(data: bytes, dictionary: Dictionary, prefix: Path) -> int:
    """Write one split as an mmap indexed dataset of byte chunks; returns the number of <unk> bytes."""
    ids = lookup_table(dictionary)[np.frombuffer(data, dtype=np.uint8)]
    builder = indexed_dataset.make_builder(str(prefix) + ".bin", impl="mmap", vocab_size=len(dictionary))
    for start in range(0, len(ids), CHUNK):
        builder.add_item(torch.from_numpy(ids[start:start + CHUNK].astype(np.int64)))
    builder.finalize(str(prefix) + ".idx")
    return int((ids == dictionary.unk()).sum())


def prepare(src: Path, out: Path, limit: int) -> dict:
    if out.exists():
        raise InputError(f"{out}: already exists; remove it or choose another --out")
    splits = split_bytes(read_source(src, limit))
    dictionary = build_dictionary(splits["train"])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp.", dir=out.parent))
    try:
        dictionary.save(str(tmp / "dict.txt"))
        report = {"source": str(src), "symbols": len(dictionary) - dictionary.nspecial}
        for split, data in splits.items():
            report[split] = {"bytes": len(data), "unknown_bytes": binarize(data, dictionary, tmp / split)}
        (tmp / "byte_corpus.json").write_text(json.dumps(report, indent=1))
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def main(argv=None) -> int:
    parser = cli.parser("data.byte_corpus", __doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="byte file or enwik8 zip -> binarised train/valid/test")
    p.add_argument("--src", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--limit", type=int, default=100_000_000, help="bytes read from the start (paper: 100M)")
    args = parser.parse_args(argv)
    if args.limit < 1:
        parser.error(f"--limit must be a positive number of bytes; got {args.limit}")
    return cli.run_main(parser.prog, lambda: print(json.dumps(prepare(args.src, args.out, args.limit))))


if __name__ == "__main__":
    sys.exit(main())
