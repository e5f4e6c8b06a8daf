"""CUDA check for the device script (benchmarks/gpu_check.sh), not a pytest test: CI has no GPU.

The fast path equals the reference on CUDA in float64 (outputs, states, every gradient), with and without
layer norm, with recurrent dropout (same masks) and `lengths` padding. Exits non-zero on a mismatch.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests/unit"))
from test_hyperlstm_fused import T, assert_same, run_both  # noqa: E402

if not torch.cuda.is_available():
    sys.exit("check_cuda_equivalence.py: no CUDA device")
for layer_norm in (False, True):
    assert_same(*run_both(layer_norm, dropout=0.3, hyper_dropout=0.2, lengths=[T, 2, 0, 5], device="cuda"))
    print(f"cuda float64 fast == reference (layer_norm={layer_norm}): ok")
