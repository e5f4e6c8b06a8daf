"""Checks of fairseq's binarised data before fairseq reads it (issue 12 §3).

fairseq reads `dict.txt` and the `.idx` / `.bin` pair of a split with asserts, `np.memmap` and
`np.frombuffer`: a duplicated dictionary line, a truncated index or an empty split end in a
traceback, and a `.bin` cut short can be read past its end. These functions look at the files first
and raise `InputError` naming the file, the line and what was expected.

Layouts (fairseq 0.12, `fairseq/data/dictionary.py` and `indexed_dataset.py`):
`dict.txt` has one `<symbol> <count>[ #fairseq:overwrite]` per line, each symbol once (the four special
symbols are implicit). An mmap index is the magic `MMIDIDX\\x00\\x00`, version 1 (<Q), a dtype code (<B),
the item count n (<Q), then n int32 sizes and n int64 byte offsets into `.bin`, which holds the items
back to back.
"""

import os
import struct
from typing import Dict

import numpy as np
import torch

from hyperfairseq.errors import InputError

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
MMAP_MAGIC = b"MMIDIDX\x00\x00"
LEGACY_MAGIC = b"TNTIDX\x00\x00"  # fairseq's older "cached"/"lazy" index: read by fairseq itself
HEADER = len(MMAP_MAGIC) + 8 + 1 + 8
ITEM_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 8, 7: 8, 8: 2, 9: 4, 10: 8}  # dtype code -> bytes


def check_dictionary(path: str) -> int:
    """Number of symbols in a fairseq `dict.txt`; InputError naming the line for a malformed one."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: missing (prepare the data with scripts/prepare_ptb_char.sh or fairseq-preprocess)")
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err})") from None
    first_seen: Dict[str, int] = {s: 0 for s in SPECIALS}
    for number, line in enumerate(lines, 1):
        parts = line.rstrip().rsplit(" ", 1)
        overwrite = len(parts) == 2 and parts[1] == "#fairseq:overwrite"
        if overwrite:
            parts = parts[0].rsplit(" ", 1)
        if len(parts) != 2 or not parts[0] or not parts[1].lstrip("-").isdigit():
            raise InputError(f"{path}:{number}: expected '<symbol> <count>', got {line!r}")
        if parts[0] in first_seen and not overwrite:
            where = "a special symbol" if first_seen[parts[0]] == 0 else f"also on line {first_seen[parts[0]]}"
            raise InputError(f"{path}:{number}: symbol {parts[0]!r} appears twice ({where})")
        first_seen[parts[0]] = number
    if not lines:
        raise InputError(f"{path}: no symbols (an empty dictionary)")
    return len(lines)


def check_split(prefix: str) -> int:
    """Number of items of the mmap split `prefix` (.idx + .bin); InputError if either is damaged."""
    idx, binary = prefix + ".idx", prefix + ".bin"
    for path in (idx, binary):
        if not os.path.isfile(path):
            raise InputError(f"{path}: missing (the split was not binarised, or under another name)")
    with open(idx, "rb") as f:
        head = f.read(HEADER)
    if head[:len(LEGACY_MAGIC)] == LEGACY_MAGIC:
        return -1  # the legacy format: fairseq checks it itself
    if len(head) < HEADER or head[:len(MMAP_MAGIC)] != MMAP_MAGIC:
        raise InputError(f"{idx}: not a fairseq mmap index ({len(head)}-byte header, expected magic {MMAP_MAGIC!r})")
    version, code, n = struct.unpack("<QBQ", head[len(MMAP_MAGIC):])
    if version != 1 or code not in ITEM_SIZES:
        raise InputError(f"{idx}: index version {version}, dtype code {code}; expected version 1 and a code in 1..10")
    expected = HEADER + 12 * n
    if os.path.getsize(idx) != expected:
        raise InputError(f"{idx}: {os.path.getsize(idx)} bytes, expected {expected} for {n} items (truncated?)")
    _check_data(idx, binary, n, ITEM_SIZES[code])
    return n


CHUNK_ITEMS = 1 << 20  # index entries checked at a time: 12 MiB of the index in memory, whatever the split's size


def _check_data(idx: str, binary: str, n: int, item: int) -> None:
    """Each item's byte offset is the sum of the sizes before it, and the last item ends where `.bin` ends.

    The index is mapped, not read, and walked `CHUNK_ITEMS` entries at a time: WMT'14 En-Fr's 36 M pairs have
    a 430 MB index per language, read by every worker of a distributed run."""
    end = 0
    if n:
        table = np.memmap(idx, dtype=np.uint8, mode="r", offset=HEADER, shape=(12 * n,))
        sizes, pointers = table[:4 * n].view(np.int32), table[4 * n:].view(np.int64)
        for start in range(0, n, CHUNK_ITEMS):
            chunk = sizes[start:start + CHUNK_ITEMS].astype(np.int64) * item
            offsets = end + np.cumsum(chunk) - chunk  # where each item of the chunk begins
            if (chunk < 0).any() or not np.array_equal(pointers[start:start + CHUNK_ITEMS], offsets):
                raise InputError(f"{idx}: item sizes and offsets do not fit together (a damaged index)")
            end = int(offsets[-1] + chunk[-1])
    if os.path.getsize(binary) != end:
        raise InputError(f"{binary}: {os.path.getsize(binary)} bytes, but {idx} describes {end} "
                         "(truncated, or from another binarisation)")


def check_ids(tokens: torch.Tensor, num_symbols: int, where: str) -> None:
    """Every id of a split lies in the dictionary (ids >= num_symbols: binarised with another one)."""
    if not tokens.numel():
        return
    low, high = int(tokens.min()), int(tokens.max())
    if low < 0 or high >= num_symbols:
        raise InputError(f"{where}: token id {low if low < 0 else high} outside the {num_symbols}-symbol "
                         "dictionary (binarised with another dict.txt?)")
