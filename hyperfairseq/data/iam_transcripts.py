"""IAM-OnDB transcripts: the CSR lines of `ascii-all.tar.gz`, paired with the line files, for synthesis.

The format as measured in docs/iam-ondb-format.md §1.4; stdlib + numpy only.

    python -m hyperfairseq.data.iam_transcripts prepare --raw RAW --out data-bin/iam_synthesis [--replace]

RAW holds what `hyperfairseq.data.iam_ondb prepare` reads (lineStrokes-all.tar.gz or lineStrokes/, the
four split lists) plus `ascii-all.tar.gz` (or its extracted `ascii/` tree, or `ascii-all/ascii/`):
`ascii/<writer>/<writer>-<nnn>/<form id>.txt`, one transcript per form. Graves' split as for Table 5.

Pairing: line file k of a form (`<form>-<kk>.xml`) goes with the k-th CSR line of its transcript.
Each transcript is read as: the block after the line `CSR:` (also `CSR: `), which begins with exactly one
empty line; CRLF or LF line ends; trailing blanks removed; empty lines at the end (an extra final
newline) dropped; a missing final newline accepted; a line holding `%%%…` (two CSR lines joined, as in
a08-551z) split there. Counted, skipped and named (a few examples per reason) in one log line:
* a transcript with no `CSR:` line, no empty line after it, an empty line inside the block, or bytes
  that are not 7-bit ASCII;
* a form whose CSR line count differs from its number of line files (z01-000z: "Please Enter
  Transcription here" for 8 files), or whose line files are not numbered 01 … N;
* line files without a transcript; and the line-file problems that iam_ondb.py counts.
"""

import collections
import logging
import os
import re
import sys
from typing import Dict, Iterator, List, NamedTuple, Tuple

from . import iam_ondb
from . import strokes as S
from .synthesis_data import TranscribedLines, write_synthesis_dataset

logger = logging.getLogger("hyperfairseq.data.iam_transcripts")

ARCHIVE = "ascii-all.tar.gz"
TREE = "ascii"
TRANSCRIPT_FILE = re.compile(r"(?:^|/)ascii/([a-z]\d\d)/([a-z]\d\d-\d\d\d)/([a-z]\d\d-\d\d\d[a-z]?)\.txt$")
CSR_MARK = "CSR:"
JOIN_MARK = re.compile(r"\s*%{3,}\s*")  # a08-551z: two CSR lines joined by %%%%%%%%%%%


class TranscriptError(ValueError):
    """One transcript is unusable; `reason` is the category counted in the summary."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class Transcript(NamedTuple):
    """The CSR lines of one form, and how many of them were split at a `%%%` join."""

    lines: List[str]
    joins: int


def parse_transcript(data: bytes, path: str) -> Transcript:
    """The CSR block of one ascii transcript (§1.4). Raises `TranscriptError`."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise TranscriptError(path, "transcript not 7-bit ASCII") from None
    lines = text.replace("\r\n", "\n").split("\n")
    marks = [i for i, line in enumerate(lines) if line.rstrip(" \t") == CSR_MARK]
    if not marks:
        raise TranscriptError(path, "transcript without a CSR: line")
    body = lines[marks[0] + 1 :]
    if not body or body[0].strip():
        raise TranscriptError(path, "transcript without the empty line after CSR:")
    csr = [line.rstrip(" \t") for line in body[1:]]
    while csr and not csr[-1]:
        csr.pop()  # the final newline, or an extra empty line at the end
    if not csr or any(not line for line in csr):
        raise TranscriptError(path, "transcript with an empty CSR block or an empty line inside it")
    out, joins = [], 0
    for line in csr:
        parts = [p for p in JOIN_MARK.split(line) if p]
        joins += len(parts) - 1
        out.extend(parts)
    return Transcript(out, joins)


def iter_transcript_files(raw: str) -> Iterator[Tuple[str, str, bytes]]:
    """(path, form id, bytes) for every transcript in `raw`'s extracted tree or archive."""
    trees = os.path.join(raw, TREE), os.path.join(raw, "ascii-all", TREE)
    archive = os.path.join(raw, ARCHIVE)
    if not (any(os.path.isdir(t) for t in trees) or os.path.isfile(archive)):
        raise iam_ondb.IamOnDbError(f"{raw}: no {ARCHIVE} and no extracted {TREE}/ folder "
                                    "(synthesis needs the transcripts)")
    for f in iam_ondb.iter_members(trees, archive, TRANSCRIPT_FILE):
        yield f.path, f.match.group(3), f.data


def read_transcripts(raw: str, summary: iam_ondb.Summary) -> Dict[str, Transcript]:
    transcripts = {}
    for path, form, data in iter_transcript_files(raw):
        try:
            transcripts[form] = parse_transcript(data, path)
        except TranscriptError as e:
            summary.skip(e.reason, e.path)
            transcripts[form] = None  # present but unusable: its lines are not counted again
    return transcripts


def read_line_files(raw: str, summary: iam_ondb.Summary):
    """({split: {(form, k): rows}}, {form: numbers of all its line files, usable or not})."""
    forms = iam_ondb.read_splits(raw)
    lines: Dict[str, Dict[Tuple[str, int], object]] = {S.TRAIN: {}, S.VALID: {}}
    numbers = collections.defaultdict(set)
    for path, form, number, data in iam_ondb.iter_line_files(raw):
        split = forms.get(form)
        if split is None:
            continue  # a form in no split list: not part of Graves' split
        numbers[form].add(number)
        try:
            lines[split][(form, number)] = S.line_rows(iam_ondb.parse_line_strokes(data, path))
        except iam_ondb.LineFileError as e:
            summary.skip(e.reason, e.path)
    for form in forms:
        if form not in numbers:
            summary.skip("split-list form without line files", form)
    return lines, numbers


def pair(lines, numbers, transcripts, summary: iam_ondb.Summary) -> Dict[str, TranscribedLines]:
    """Line k of each form with CSR line k; forms that cannot be paired are skipped and counted."""
    usable = {}
    for form, found in numbers.items():
        transcript = transcripts.get(form, False)
        if transcript is False:
            summary.skip("line files without a transcript", form)
        elif transcript is not None and found != set(range(1, len(transcript.lines) + 1)):
            summary.skip("CSR line count differs from the line files",
                         f"{form} ({len(transcript.lines)} CSR lines, {len(found)} line files)")
        elif transcript is not None:
            usable[form] = transcript
    joins = sum(t.joins for t in usable.values())
    if joins:
        logger.info("split %d CSR lines at a %%%%%% join (as in a08-551z)", joins)
    out = {}
    for split, by_key in lines.items():
        keys = sorted(k for k in by_key if k[0] in usable)
        out[split] = TranscribedLines([by_key[k] for k in keys], [usable[k[0]].lines[k[1] - 1] for k in keys])
    return out


def prepare(raw: str, out: str, min_length: int = 300, replace: bool = False) -> dict:
    summary = iam_ondb.Summary()
    lines, numbers = read_line_files(raw, summary)
    splits = pair(lines, numbers, read_transcripts(raw, summary), summary)
    summary.log()
    if not splits[S.VALID].rows:
        raise iam_ondb.IamOnDbError(f"{raw}: no paired (line file, transcript) for the forms of testset_v.txt")
    if not splits[S.TRAIN].rows:
        raise iam_ondb.IamOnDbError(f"{raw}: no paired (line file, transcript) for the training forms")
    meta = {"source": "iam_ondb", "label": "IAM-OnDB with transcripts (Graves split)",
            "comparable_with_table5": True, "skipped": summary.as_dict()}
    return write_synthesis_dataset(out, splits, meta, min_length=min_length, replace=replace)


def main(argv=None) -> int:
    parser, p = S.prepare_parser("iam_transcripts", __doc__, "pair IAM-OnDB line files with their transcripts and "
                                 "write a synthesis dataset", out_example="data-bin/iam_synthesis")
    p.add_argument("--raw", required=True, help=f"folder with the iam_ondb inputs and {ARCHIVE} (or {TREE}/)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.raw):
        parser.error(f"--raw {args.raw} is not a folder")
    return S.run_prepare(parser, args, lambda: prepare(args.raw, args.out, args.min_length, args.replace),
                         (iam_ondb.IamOnDbError, OSError, ValueError))

if __name__ == "__main__":
    sys.exit(main())
