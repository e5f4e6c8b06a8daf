"""English-Spanish Bible verse pairs from SWORD zText modules (Debian sword-text-kjv + sword-text-sparv).

Stdlib only. Both modules (King James Version, `engKJV2006eb`; Reina-Valera 1909, `spaRV1909eb`) use the
KJV versification, so entry i of one is the translation of entry i of the other (data.md §2.1). A zText
module is, per testament (`ot`, `nt`): `.bzv` verse index (10-byte records: block u32, offset u32,
size u16), `.bzs` block index (12-byte records: file offset u32, compressed size u32, size u32) and
`.bzz` zlib-compressed blocks. Entries carry OSIS markup, stripped here; notes are dropped.

Command line (writes PREFIX.en / PREFIX.es for train, valid, test, split by book)::

    bash scripts/get_bible_data.sh data/_pkgs
    python -m hyperfairseq.data.sword --out data/bible_en_es
"""

import os
import re
import struct
import sys
import zlib
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from hyperfairseq import cli
from hyperfairseq.data.char_corpus import write_atomically
from hyperfairseq.errors import InputError

ENGLISH, SPANISH = "engKJV2006eb", "spaRV1909eb"
# Held-out books (New Testament letters; whole books, so no near-duplicate verse leaks across splits).
VALID_BOOKS = ("1Thess", "2Thess", "1Tim", "2Tim", "Titus", "Phlm")
TEST_BOOKS = ("Gal", "Eph", "Phil", "Col")

_VERSE_RECORD = struct.Struct("<IIH")
_BLOCK_RECORD = struct.Struct("<III")
_NOTE = re.compile(r"<note\b.*?</note>", re.S)
_TAG = re.compile(r"<[^>]*>")
_BOOK = re.compile(r'osisID="([^"]+)"[^>]*type="book"|type="book"[^>]*osisID="([^"]+)"')
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:?!])")


class Entry(NamedTuple):
    """One index slot of a module: `book` is the OSIS book id it lies in ('' before the first book)."""

    book: str
    raw: str


def read_module(moddir: str) -> List[Entry]:
    """All entries of a zText module, Old then New Testament, in versification order."""
    entries: List[Entry] = []
    book = ""
    for testament in ("ot", "nt"):
        for raw in _read_testament(moddir, testament):
            found = _BOOK.search(raw)
            if found:
                book = found.group(1) or found.group(2)
            entries.append(Entry(book, raw))
    return entries


def _read_testament(moddir: str, testament: str) -> Iterator[str]:
    paths = {ext: os.path.join(moddir, testament + ext) for ext in (".bzv", ".bzs", ".bzz")}
    for path in paths.values():
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: SWORD zText file missing (run scripts/get_bible_data.sh)")
    with open(paths[".bzv"], "rb") as f:
        bzv = f.read()
    with open(paths[".bzs"], "rb") as f:
        bzs = f.read()
    with open(paths[".bzz"], "rb") as f:
        bzz = f.read()
    if len(bzv) % _VERSE_RECORD.size:
        raise InputError(f"{paths['.bzv']}: size {len(bzv)} is not a multiple of {_VERSE_RECORD.size}")
    blocks: Dict[int, bytes] = {}
    for block, start, size in _VERSE_RECORD.iter_unpack(bzv):
        if size == 0:
            yield ""
            continue
        if block not in blocks:
            blocks[block] = _read_block(paths, bzs, bzz, block)
        yield blocks[block][start : start + size].decode("utf-8", "replace")


def _read_block(paths: Dict[str, str], bzs: bytes, bzz: bytes, block: int) -> bytes:
    """Block `block` of the .bzz file, located through the .bzs index; a damaged module is an InputError."""
    if (block + 1) * _BLOCK_RECORD.size > len(bzs):
        raise InputError(f"{paths['.bzs']}: no record for block {block} ({len(bzs)} bytes); the module is damaged")
    offset, csize, _ = _BLOCK_RECORD.unpack_from(bzs, block * _BLOCK_RECORD.size)
    try:
        return zlib.decompress(bzz[offset : offset + csize])
    except zlib.error as error:
        raise InputError(f"{paths['.bzz']}: block {block} does not decompress ({error}); the module is damaged")


def clean(raw: str) -> str:
    """OSIS markup -> plain text: notes dropped, tags removed, pilcrows and spacing normalised."""
    text = _TAG.sub("", _NOTE.sub(" ", raw)).replace("\u00b6", " ")
    text = " ".join(text.split())
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text)


def is_book_intro(raw: str) -> bool:
    """The slot before a book's first chapter holds its title (x-usfm-toc1), not a verse."""
    return "x-usfm-toc1" in raw


def verse_pairs(src_dir: str, tgt_dir: str) -> List[Tuple[str, str, str]]:
    """(book, source verse, target verse) for every slot where both modules have text."""
    src, tgt = read_module(src_dir), read_module(tgt_dir)
    if len(src) != len(tgt):
        raise InputError(
            f"{src_dir} has {len(src)} entries and {tgt_dir} {len(tgt)}: different versifications cannot be "
            "aligned entry by entry"
        )
    pairs = []
    for a, b in zip(src, tgt):
        if is_book_intro(a.raw) or is_book_intro(b.raw):
            continue
        x, y = clean(a.raw), clean(b.raw)
        if x and y:
            pairs.append((a.book, x, y))
    return pairs


def split_by_book(
    pairs: Sequence[Tuple[str, str, str]],
    valid_books: Sequence[str] = VALID_BOOKS,
    test_books: Sequence[str] = TEST_BOOKS,
) -> Dict[str, List[Tuple[str, str]]]:
    """{'train', 'valid', 'test'} -> [(src, tgt)], whole books per split."""
    splits: Dict[str, List[Tuple[str, str]]] = {"train": [], "valid": [], "test": []}
    for book, x, y in pairs:
        name = "valid" if book in valid_books else "test" if book in test_books else "train"
        splits[name].append((x, y))
    return splits


def default_module_root() -> str:
    """Where get_bible_data.sh extracts the modules ($HYPERFAIRSEQ_DATA/_pkgs/...), else /usr/share/sword."""
    data = os.environ.get("HYPERFAIRSEQ_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "data"))
    extracted = os.path.join(data, "_pkgs", "sword", "usr", "share", "sword", "modules", "texts", "ztext")
    if os.path.isdir(extracted):
        return os.path.normpath(extracted)
    return "/usr/share/sword/modules/texts/ztext"


def write_splits(splits: Dict[str, List[Tuple[str, str]]], out: str, src: str = "en", tgt: str = "es",
                 replace: bool = False) -> None:
    """OUT/{split}.{src,tgt}, each file written whole or not at all (a temporary file, then a rename).

    Files of an earlier run in OUT are kept unless `replace` (the rule of every preparer, strokes.check_output)."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"--out {out}: is a file; expected a folder for train/valid/test.{src},{tgt}")
    names = [f"{name}.{lang}" for name in splits for lang in (src, tgt)]
    existing = [name for name in names if os.path.exists(os.path.join(out, name))]
    if existing and not replace:
        raise InputError(f"--out {out}: already holds {', '.join(existing)}; choose another --out, or add --replace "
                         "to overwrite them")
    os.makedirs(out, exist_ok=True)
    for name, rows in splits.items():
        for lang, column in ((src, 0), (tgt, 1)):
            write_atomically(Path(out) / f"{name}.{lang}", [row[column] for row in rows])


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = cli.parser("data.sword", __doc__)
    parser.add_argument("--out", required=True, help="folder for train/valid/test.{en,es}")
    parser.add_argument("--modules", default=None, help="folder holding engKJV2006eb/ and spaRV1909eb/")
    parser.add_argument("--max-train", type=int, default=0, help="keep only the first N training pairs (0: all)")
    parser.add_argument("--replace", action="store_true", help="overwrite the split files of an earlier run in --out")
    args = parser.parse_args(argv)
    if args.max_train < 0:
        parser.error(f"--max-train {args.max_train}: expected 0 (all) or a positive number of pairs")

    def work() -> None:
        root = args.modules or default_module_root()
        splits = split_by_book(verse_pairs(os.path.join(root, ENGLISH), os.path.join(root, SPANISH)))
        if args.max_train:
            splits["train"] = splits["train"][: args.max_train]
        write_splits(splits, args.out, replace=args.replace)
        print(" ".join(f"{k}={len(v)}" for k, v in splits.items()), f"pairs written to {args.out}")

    return cli.run_main(parser.prog, work)


if __name__ == "__main__":
    sys.exit(main())
