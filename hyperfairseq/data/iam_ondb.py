"""IAM On-Line Handwriting Database reader: lineStrokes XML -> (Δx, Δy, end-of-stroke) rows, Graves' split.

Paper-spec §3.5 and H1–H3; the file format as measured in docs/iam-ondb-format.md. stdlib + numpy only.

    python -m hyperfairseq.data.iam_ondb prepare --raw RAW --out data-bin/iam_ondb [--min-length 300]

RAW holds (IAM-OnDB needs a free registration; users bring their own copy)::

    lineStrokes-all.tar.gz            or the extracted tree lineStrokes/<a01>/<a01-000>/<a01-000u-01.xml>
                                      (also accepted: lineStrokes-all/lineStrokes/...)
    trainset.txt testset_v.txt testset_t.txt testset_f.txt    the IAM-OnDB-t1 split lists

`ascii-all.tar.gz` (transcripts) is not read: generation here is unconditional.

Split (Graves 2013, paper-spec §3.5): valid = testset_v (1,438 lines); train = trainset + testset_t +
testset_f (10,741 lines). Training lines with fewer than --min-length rows (default 300) are dropped,
validation lines are all kept (H2). y grows downward in the XML (corner="top_left"); rows have y up.

Bad input: unreadable, malformed or truncated XML, a file whose root is not WhiteboardCaptureSession,
an empty StrokeSet, non-integer or absurd coordinates are skipped and counted per reason in one summary
log line; a split id with no line files is skipped and counted. A missing or misnamed archive or split
list, a split list with a malformed id, or an unreadable archive raise `IamOnDbError` naming the file.
Nothing is written unless everything succeeded (see strokes.write_dataset).
"""

import collections
import logging
import os
import re
import sys
import tarfile
import xml.etree.ElementTree as ET
import zlib
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from . import strokes as S

logger = logging.getLogger("hyperfairseq.data.iam_ondb")

ARCHIVE = "lineStrokes-all.tar.gz"
TREE = "lineStrokes"
SPLIT_FILES = {"trainset": S.TRAIN, "testset_t": S.TRAIN, "testset_f": S.TRAIN, "testset_v": S.VALID}
FORM_ID = re.compile(r"^[a-z]\d\d-\d\d\d[a-z]?$")
LINE_FILE = re.compile(r"(?:^|/)lineStrokes/([a-z]\d\d)/([a-z]\d\d-\d\d\d)/([a-z]\d\d-\d\d\d[a-z]?)-(\d\d)\.xml$")
MAX_ABS_COORD = 100_000  # measured range: x −51..7,224, y 93..9,181; anything this far out is corrupt
ROOT_TAG = "WhiteboardCaptureSession"


class IamOnDbError(Exception):
    """The raw folder cannot be used as a whole (missing/misnamed inputs, a bad split list or archive)."""


class LineFileError(ValueError):
    """One line file is unusable; `reason` is the category counted in the summary."""

    def __init__(self, path: str, reason: str, detail: str):
        super().__init__(f"{path}: {reason}: {detail}")
        self.path = path
        self.reason = reason


# -- one line file --------------------------------------------------------------------------------


def parse_line_strokes(data: bytes, path: str) -> List[np.ndarray]:
    """lineStrokes XML bytes -> strokes [(P_i, 2) int64 (x, y) with y up]. Raises `LineFileError`."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise LineFileError(path, "malformed XML", str(e)) from None
    if root.tag != ROOT_TAG:
        raise LineFileError(path, "not a lineStrokes file", f"root element <{root.tag}>, expected <{ROOT_TAG}>")
    stroke_set = root.find("StrokeSet")
    if stroke_set is None:
        raise LineFileError(path, "empty StrokeSet", "no <StrokeSet> element")
    strokes = []
    for stroke in stroke_set.findall("Stroke"):
        points = [_point(p, path) for p in stroke.findall("Point")]
        if points:
            strokes.append(np.array(points, dtype=np.int64))
    if not strokes:
        raise LineFileError(path, "empty StrokeSet", "no <Point> inside <StrokeSet>")
    return strokes


def _point(element: ET.Element, path: str) -> Tuple[int, int]:
    try:
        x, y = int(element.attrib["x"]), int(element.attrib["y"])
    except (KeyError, ValueError):
        raise LineFileError(path, "bad coordinates", f"<Point {element.attrib}> needs integer x and y") from None
    if abs(x) > MAX_ABS_COORD or abs(y) > MAX_ABS_COORD:
        raise LineFileError(path, "absurd coordinates", f"({x}, {y}) outside ±{MAX_ABS_COORD}")
    return x, -y  # y grows downward in the XML (corner="top_left"); rows have y up


# -- the raw folder ---------------------------------------------------------------------------------


def read_split_list(path: str) -> List[str]:
    """Form ids of one split list (one id a line, a leading space in the original files)."""
    if not os.path.exists(path):
        raise IamOnDbError(f"split list {path} not found (expected the IAM-OnDB-t1 file {os.path.basename(path)})")
    ids = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            line = raw.decode("ascii", errors="replace").strip()
            if not line:
                continue
            if not FORM_ID.match(line):
                raise IamOnDbError(f"{path}:{number}: {line!r} is not a form id like a01-000u")
            ids.append(line)
    return ids


def read_splits(raw: str) -> Dict[str, str]:
    """{form id: "train" | "valid"} from the four split lists in `raw`."""
    forms = {}
    for name, split in SPLIT_FILES.items():
        for form in read_split_list(os.path.join(raw, name + ".txt")):
            if form in forms:
                raise IamOnDbError(f"{os.path.join(raw, name + '.txt')}: form {form} also appears in another "
                                   "split list")
            forms[form] = split
    return forms


class Member(NamedTuple):
    """One file of an IAM archive or extracted tree: where it was read, its name's match, its bytes."""

    path: str  # a file path, or ARCHIVE:member
    match: "re.Match"
    data: bytes


def iter_members(trees: Sequence[str], archive: str, pattern: "re.Pattern") -> Iterator[Member]:
    """Every file whose path matches `pattern`: from the first of `trees` that exists, else from `archive`
    (read in place: nothing is extracted, no member path is trusted)."""
    for tree in trees:
        if os.path.isdir(tree):
            yield from _iter_tree(tree, pattern)
            return
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                m = pattern.search(member.name)
                if m and member.isfile():
                    yield Member(f"{archive}:{member.name}", m, tar.extractfile(member).read())
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise IamOnDbError(f"{archive}: not a readable tar.gz archive ({e})") from None


def _iter_tree(tree: str, pattern: "re.Pattern") -> Iterator[Member]:
    base = os.path.dirname(tree)
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            m = pattern.search(os.path.relpath(path, base).replace(os.sep, "/"))
            if m:
                with open(path, "rb") as f:
                    yield Member(path, m, f.read())


def iter_line_files(raw: str) -> Iterator[Tuple[str, str, int, bytes]]:
    """(path, form id, line number, bytes) for every line file in the archive or extracted tree."""
    trees, archive = (os.path.join(raw, TREE), os.path.join(raw, "lineStrokes-all", TREE)), os.path.join(raw, ARCHIVE)
    if any(os.path.isdir(t) for t in trees) or os.path.isfile(archive):
        for f in iter_members(trees, archive, LINE_FILE):
            yield f.path, f.match.group(3), int(f.match.group(4)), f.data
        return
    present = sorted(os.listdir(raw)) if os.path.isdir(raw) else []
    hint = [n for n in present if "linestrokes" in n.lower() or n.endswith((".tar.gz", ".tgz", ".tar", ".zip"))]
    raise IamOnDbError(
        f"{raw}: no {ARCHIVE} and no extracted {TREE}/ folder"
        + (f"; found {', '.join(hint)} (rename the IAM-OnDB archive to {ARCHIVE})" if hint else "")
    )


class Summary:
    """Counts of skipped inputs per reason, with a few example paths each, for one log line."""

    def __init__(self):
        self.counts = collections.Counter()
        self.examples = collections.defaultdict(list)

    def skip(self, reason: str, example: str) -> None:
        self.counts[reason] += 1
        if len(self.examples[reason]) < 3:
            self.examples[reason].append(example)

    def as_dict(self) -> Dict[str, int]:
        return dict(self.counts)

    def log(self) -> None:
        if not self.counts:
            logger.info("skipped nothing")
            return
        parts = [f"{n} {reason} (e.g. {', '.join(self.examples[reason])})" for reason, n in sorted(self.counts.items())]
        logger.warning("skipped: %s", "; ".join(parts))


def read_iam_ondb(raw: str, summary: Optional[Summary] = None) -> Dict[str, List[np.ndarray]]:
    """{"train": [rows...], "valid": [rows...]}: raw (Δx, Δy, eos) rows of every usable line, in split order."""
    summary = summary if summary is not None else Summary()
    forms = read_splits(raw)
    lines: Dict[str, Dict[Tuple[str, int], np.ndarray]] = {S.TRAIN: {}, S.VALID: {}}
    found = set()
    for path, form, number, data in iter_line_files(raw):
        split = forms.get(form)
        if split is None:
            continue  # a form in no split list (IAM-OnDB has a few): not part of Graves' split
        found.add(form)
        try:
            lines[split][(form, number)] = S.line_rows(parse_line_strokes(data, path))
        except LineFileError as e:
            summary.skip(e.reason, e.path)
    for form in forms:
        if form not in found:
            summary.skip("split-list form without line files", form)
    return {split: [rows for _, rows in sorted(by_key.items())] for split, by_key in lines.items()}


def prepare(raw: str, out: str, min_length: int = 300, replace: bool = False) -> dict:
    S.check_output(out, replace)
    summary = Summary()
    splits = read_iam_ondb(raw, summary)
    summary.log()
    if not splits[S.VALID]:
        raise IamOnDbError(f"{raw}: no usable line file for the forms of testset_v.txt")
    meta = {
        "source": "iam_ondb",
        "label": "IAM-OnDB (Graves split; comparable with Table 5)",
        "comparable_with_table5": True,
        "skipped": summary.as_dict(),
    }
    try:
        return S.write_dataset(out, splits, meta, min_length=min_length, replace=replace)
    except S.OutputExistsError:
        raise
    except ValueError as e:
        raise IamOnDbError(f"{raw}: {e}") from None


def main(argv=None) -> int:
    parser, p = S.prepare_parser("iam_ondb", __doc__, "read the raw IAM-OnDB files and write a prepared stroke dataset")
    p.add_argument("--raw", required=True, help=f"folder with {ARCHIVE} (or {TREE}/) and the four split lists")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.raw):
        parser.error(f"--raw {args.raw} is not a folder")
    return S.run_prepare(parser, args, lambda: prepare(args.raw, args.out, args.min_length, args.replace),
                         (IamOnDbError, S.OutputExistsError))

if __name__ == "__main__":
    sys.exit(main())
