"""bench_cpu_gemm.py: each kind of the layer's CPU GEMMs timed through MKL and through oneDNN."""

import os
import sys
from pathlib import Path

from hyperfairseq.modules import kernels

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_cpu_gemm  # noqa: E402

ARGS = ["--sizes", "tiny", "--batches", "3", "--steps", "8", "--rounds", "1", "--min-seconds", "0.001"]
KINDS = {"per-step forward", "per-step backward", "weight gradient", "input data gradient", "z -> d blocks",
         "d -> z blocks"}


def test_every_kind_runs_through_both_libraries_and_records_the_auto_choice(tmp_path, monkeypatch):
    for threshold in ("PACK_MIN_NUMEL", "PACK_MIN_STEPS", "WIDE_MIN_K", "WIDE_MIN_MACS"):
        monkeypatch.setattr(kernels, threshold, 1)  # oneDNN at the tiny size
    monkeypatch.setenv(kernels.GEMM_ENV, "mkl")  # the script's own choices must not leak out
    record = bench_cpu_gemm.main([*ARGS, "--json", str(tmp_path / "gemm.json")])
    assert os.environ[kernels.GEMM_ENV] == "mkl"
    monkeypatch.delenv(kernels.GEMM_ENV)
    assert record["auto"] == kernels.cpu_gemm_libraries()
    assert {key.split("/", 2)[2] for key in record["gemms"]} == KINDS
    for key, row in record["gemms"].items():
        assert row["mkl_gflops"] > 0 and row["onednn_gflops"] > 0 and row["onednn_ran"], (key, row)
        assert row["auto"] == record["auto"]["per_step" if "per-step" in key else "wide"]
    assert (tmp_path / "gemm.json").exists() and record["cpu_capability"] and "1 thread(s)" in record["hardware"]


def test_below_the_size_thresholds_the_record_says_mkl_ran_both():
    record = bench_cpu_gemm.main(ARGS)
    assert not any(row["onednn_ran"] for row in record["gemms"].values())
