"""The prepared GPU check (benchmarks/gpu_check.sh) runs end to end on CPU before a GPU minute is spent.

DRY_RUN=1 runs every stage of the script with the same tools, on this CPU: the Triton kernels under
TRITON_INTERPRET=1, tiny sizes, a real char-PTB slice for the fairseq-train / fairseq-eval-lm stages.
Timings of a dry run mean nothing; what must hold is that every stage exits 0 and the summary the GPU
run will return (at most 8 files from the device machine) is complete.
"""

import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import CLI_ENV, REPO

# the device tool returns at most 8 files from $OUT, each named in letters, digits, '.', '_' and '-'
MAX_FILES = 8
RECORDS = ("bench_hyperlstm_gpu_tf32.json", "bench_hyperlstm_gpu_fp32.json", "bench_hyperlstm_gpu_bf16.json",
           "table3_gpu_ln_hyperlstm_lm_ptb.json")


@pytest.fixture(scope="module")
def dry_run(ptb_slice_bin, tmp_path_factory) -> Path:
    """$OUT of one `DRY_RUN=1 bash benchmarks/gpu_check.sh`, as the device tool would return it."""
    out = tmp_path_factory.mktemp("gpu_check") / "out"
    env = {**CLI_ENV, "DRY_RUN": "1", "OUT": str(out), "DATA": str(ptb_slice_bin), "PYTHON": os.sys.executable}
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh"], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_gpu_check_dry_run_passes_every_stage_and_returns_a_complete_summary(dry_run):
    out = dry_run
    summary = json.loads((out / "gpu_check.json").read_text())
    failed = {name: s["log_tail"] for name, s in summary["stages"].items() if not s["ok"]}
    assert not failed, json.dumps(failed, indent=1)
    print("stage wall seconds:", {name: s["wall_s"] for name, s in summary["stages"].items()})
    assert summary["kernels"]["cases"] > 0 and summary["kernels"]["failed"] == 0
    assert summary["char_ptb_ln_hyperlstm"]["test_bpc"] > 0
    assert {g["case"] for g in summary["layer_gates"] if g["ratio"] is not None} == set()  # tiny sizes: no gate keys
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= MAX_FILES and all(re.fullmatch(r"[A-Za-z0-9._-]+", f) for f in files), files
    assert set(files) == {"gpu_check.json", "logs.tar.gz", "bench_train_gpu.json", *RECORDS}
    speed = json.loads((out / "bench_train_gpu.json").read_text())["results"]  # one run per command line (UPDATES=2)
    assert {r["config"] for r in speed.values()} == {"fairseq lstm_lm", "ln_hyperlstm_lm_ptb"}
    assert all(r["words_per_s"] > 0 for r in speed.values())
    layer = json.loads((out / "bench_hyperlstm_gpu_bf16.json").read_text())
    assert layer["throughput"]["tiny/B4"]["LN-HyperLSTM"]["tokens_per_s"] > 0
    with tarfile.open(out / "logs.tar.gz") as logs:  # read by member name, never extracted
        kernels, micro = (json.load(logs.extractfile(f"./{name}")) for name in ("kernels.json", "micro_triton.json"))
    # the dry run checks each code path once (--each-once): every layer, every storage dtype, dropout with padding,
    # one-step decoding of every layer
    cases = kernels["results"]
    layers = {"hyper", "ln-hyper", "lstm", "ln-lstm"}
    assert {c["layer"] for c in cases} == layers and {c["layer"] for c in cases if c.get("one_step")} == layers
    assert {c["dtype"] for c in cases} == {"float64", "float32", "bfloat16"} and any(c.get("padded") for c in cases)
    # and every microbenchmark case in both storage dtypes (the tile table's tiles; test_triton_tools runs all)
    parts = micro["result"]["parts"]
    assert len({(p["case"], p["dtype"]) for p in parts}) == 8 and all(p["finite"] for p in parts)


def test_its_records_go_into_docs_runs_as_they_are_and_the_results_page_renders_them(dry_run, tmp_path):
    """What a session lent a GPU does next: copy the returned records into docs/runs/ and run make_results.sh.
    Here into a copy of docs/runs/ and of the README: every record lands on the page (no "not on the page"),
    the GPU check has its section, Table 3 its char-PTB run, the speed tables the layer and training records."""
    from hyperfairseq.analysis import results

    runs = tmp_path / "docs" / "runs"
    shutil.copytree(REPO / "docs" / "runs", runs)
    for name in os.listdir(dry_run):
        shutil.copy(dry_run / name, runs / name)
    readme = tmp_path / "README.md"
    shutil.copy(REPO / "README.md", readme)
    page = tmp_path / "docs" / "results.md"
    assert results.main(str(runs), str(page), figures_dir=str(REPO / "docs" / "figures"), readme=str(readme)) == 0
    text = page.read_text()
    gpu = text[text.index("## The GPU check"):]
    assert "[gpu_check](runs/gpu_check.json)" in gpu and "| kernels | 0 |" in gpu and "| eval | 0 |" in gpu
    assert "ptb/B128 HyperLSTM vs nn.LSTM" in gpu  # the gates, not measured at the dry run's tiny sizes
    table3 = text[text.index("## Table 3"):text.index("## Table 4")]
    record = json.loads((dry_run / "table3_gpu_ln_hyperlstm_lm_ptb.json").read_text())
    assert record["smoke"] and record["result"]["bpc"] > 0 and record["commit"] != "unknown"
    assert "[table3_gpu_ln_hyperlstm_lm_ptb](runs/table3_gpu_ln_hyperlstm_lm_ptb.json)" in table3
    assert all(f"[{name[:-5]}]" in text for name in RECORDS + ("bench_train_gpu.json",))
