"""The Triton cell's tools: the sm_90 AOT compile gate and the microbenchmark's dry run.

The gate runs here on the corners of its matrix (`--configs ci`: bf16 storage, LN, mask and the heaviest d
mode of every kernel and row width, with the table's tiles) with both Triton versions: the project's (3.8.0) and the GPU
machine's (3.6.0, in `.venv-triton36`, which `.ci/run` creates; without it the test fails). The full matrix is the
committed record docs/runs/triton_aot_gate.json, which must belong to the current kernels (their source hash) and
hold every configuration, passed, for both versions.
"""

import hashlib
import importlib.util
import json
import os
import subprocess
import sys

import pytest
from conftest import CLI_ENV, REPO

GATE = REPO / "benchmarks" / "triton_aot_gate.py"
RECORD = REPO / "docs" / "runs" / "triton_aot_gate.json"
TRITON36 = REPO / ".venv-triton36" / "bin" / "python"
REFRESH = f"{sys.executable} benchmarks/triton_aot_gate.py --json docs/runs/triton_aot_gate.json"


def gate_module():
    spec = importlib.util.spec_from_file_location("triton_aot_gate", GATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config_key(rec: dict) -> tuple:
    return tuple(rec[k] for k in ("kernel", "dtype", "block_h", "scale", "ln", "mask", "block_b", "num_warps"))


def interpreter(version: str) -> str:
    if version == "3.8.0":
        return sys.executable
    if not TRITON36.exists():
        message = (f"{TRITON36} is missing: python3 -m venv .venv-triton36 && .venv-triton36/bin/pip install "
                   "triton==3.6.0 'numpy<2.4' (.ci/run creates it)")
        if os.environ.get("CI"):  # as with missing data (conftest.require_data): fail in CI, skip elsewhere
            pytest.fail(message)
        pytest.skip(message)
    return str(TRITON36)


@pytest.mark.parametrize("version", ["3.8.0", "3.6.0"])
def test_aot_gate_compiles_the_corner_configurations_for_sm_90_without_spills(version, tmp_path):
    python = interpreter(version)
    out = tmp_path / "gate.json"
    proc = subprocess.run([sys.executable, str(GATE), "--configs", "ci", "--python", python, "--jobs", "2",
                           "--json", str(out)], capture_output=True, text=True, env=CLI_ENV, cwd=REPO, timeout=900)
    assert out.exists(), f"the gate wrote no record:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    record = json.loads(out.read_text())
    kernels = record["kernels"]
    failed = [k for k in kernels if not k["ok"]]
    assert not failed and proc.returncode == 0, f"gate failures: {json.dumps(failed, indent=1)[:3000]}"
    assert {k["triton"] for k in kernels} == {version}
    gate = gate_module()
    expected = {tuple(c) for c in gate.all_configs(gate.load_kernels(), "ci")}
    assert {config_key(k) for k in kernels} == expected
    assert all(k["stack"] == 0 and k["local"] == 0 and k["regs"] <= 255 for k in kernels)


def test_committed_gate_record_covers_every_configuration_of_the_current_kernels():
    assert RECORD.exists(), f"{RECORD} is missing; run: {REFRESH}"
    record = json.loads(RECORD.read_text())
    current = hashlib.sha256((REPO / "hyperfairseq" / "modules" / "triton_kernels.py").read_bytes()).hexdigest()
    assert record["kernel_source_sha256"] == current, f"the kernels changed since the gate ran; run: {REFRESH}"
    gate = gate_module()
    expected = {tuple(c) for c in gate.all_configs(gate.load_kernels(), "all")}
    for version in ("3.6.0", "3.8.0"):
        mine = [k for k in record["kernels"] if k.get("triton") == version]
        assert {config_key(k) for k in mine} == expected, f"triton {version}: the record misses configurations"
        bad = [k for k in mine if not (k["ok"] and k["stack"] == 0 and k["local"] == 0)]
        assert not bad, f"triton {version}: {json.dumps(bad, indent=1)[:2000]}"
        assert all(k["shared"] + k["static_shared"] <= gate.SHARED_LIMIT for k in mine)
    assert record["result"]["passed"] and "cpu" in record["hardware"]


def test_microbenchmark_dry_run_runs_every_part_on_cpu(tmp_path):
    """The GPU microbenchmark's code on CPU under the interpreter: every case, dtype and tile runs, the
    forward matches its float64 step (fp32: rounding of O(1) values, 1e-5; bf16 storage: 2^-8 relative per
    stored value through ~4 stored operands, 3e-2), every buffer finite."""
    out = tmp_path / "dry.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_triton_cell.py"), "--dry-run",
                           "--batch", "2", "--dry-n", "12", "--json", str(out)],
                          capture_output=True, text=True, env=CLI_ENV, cwd=REPO, timeout=900)
    assert proc.returncode == 0 and out.exists(), f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    record = json.loads(out.read_text())
    assert record["dry_run"] and not record["result"]["errors"]
    gate = gate_module()
    K = gate.load_kernels()
    pairs = lambda n: {(K.tile_row(n).forward, K.tile_row(n).backward),  # noqa: E731
                       *((t, t) for t in K.TILE_ALTERNATIVES.get(K.block_h_of(n), ()))}
    expected = sum(2 * len(pairs(c.n)) for c in gate.BENCH_CASES)  # two dtypes
    parts = record["result"]["parts"]
    assert len(parts) == expected
    for part in parts:
        assert part["finite"], part
        assert part["forward_max_err"] < (1e-5 if part["dtype"] == "fp32" else 3e-2), part


def test_microbenchmark_times_the_table_tiles_first_and_starts_nothing_past_its_budget(tmp_path):
    """The GPU check's micro stage runs while its budget lasts: the tile table's pair of every case and dtype
    comes first (what the layer launches), the alternatives after; with no budget left every run is recorded
    as skipped, and the record is still written and passed."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_triton_cell

    gate = gate_module()
    runs = bench_triton_cell.tile_runs()
    table = [(case.name, dtype, tiles) for case, dtype, tiles in runs[:2 * len(gate.BENCH_CASES)]]
    assert table == [(case.name, dtype, bench_triton_cell.tiles_for(case.n, True)[0])
                     for case in gate.BENCH_CASES for dtype in bench_triton_cell.DTYPES]
    out = tmp_path / "dry.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_triton_cell.py"), "--dry-run",
                           "--budget-s", "0", "--json", str(out)],
                          capture_output=True, text=True, env=CLI_ENV, cwd=REPO, timeout=300)
    result = json.loads(out.read_text())["result"]
    assert proc.returncode == 0 and result["passed"] and not result["complete"], proc.stderr[-2000:]
    assert result["parts"] == [] and len(result["skipped"]) == len(runs)
