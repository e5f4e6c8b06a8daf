"""The prepared GPU check (benchmarks/gpu_check.sh) runs end to end on CPU before a GPU minute is spent.

DRY_RUN=1 runs every stage of the script with the same tools, on this CPU: the Triton kernels under
TRITON_INTERPRET=1, tiny sizes, a real char-PTB slice for the fairseq-train / fairseq-eval-lm stages.
Timings of a dry run mean nothing; what must hold is that every stage exits 0 and the summary the GPU
run will return (at most 8 files from the device machine) is complete.
"""

import json
import os
import re
import subprocess
import tarfile

from conftest import CLI_ENV, REPO

# the device tool returns at most 8 files from $OUT, each named in letters, digits, '.', '_' and '-'
MAX_FILES = 8


def test_gpu_check_dry_run_passes_every_stage_and_returns_a_complete_summary(ptb_slice_bin, tmp_path):
    out = tmp_path / "out"
    env = {**CLI_ENV, "DRY_RUN": "1", "OUT": str(out), "DATA": str(ptb_slice_bin), "PYTHON": os.sys.executable}
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh"], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "gpu_check.json").read_text())
    failed = {name: s["log_tail"] for name, s in summary["stages"].items() if not s["ok"]}
    assert not failed, json.dumps(failed, indent=1)
    print("stage wall seconds:", {name: s["wall_s"] for name, s in summary["stages"].items()})
    assert summary["kernels"]["cases"] > 0 and summary["kernels"]["failed"] == 0
    assert summary["char_ptb_ln_hyperlstm"]["test_bpc"] > 0
    assert {g["case"] for g in summary["layer_gates"] if g["ratio"] is not None} == set()  # tiny sizes: no gate keys
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= MAX_FILES and all(re.fullmatch(r"[A-Za-z0-9._-]+", f) for f in files), files
    assert {"gpu_check.json", "logs.tar.gz", "bench_layer_tf32.json", "bench_train.json"} <= set(files)
    speed = json.loads((out / "bench_train.json").read_text())["results"]  # one run per command line (UPDATES=2)
    assert {r["config"] for r in speed.values()} == {"fairseq lstm_lm", "ln_hyperlstm_lm_ptb"}
    assert all(r["words_per_s"] > 0 for r in speed.values())
    layer = json.loads((out / "bench_layer_bf16.json").read_text())
    assert layer["throughput"]["tiny/B4"]["LN-HyperLSTM"]["tokens_per_s"] > 0
    with tarfile.open(out / "logs.tar.gz") as logs:  # read by member name, never extracted
        kernels, micro = (json.load(logs.extractfile(f"./{name}")) for name in ("kernels.json", "micro_triton.json"))
    # the dry run checks each code path once (--each-once): every layer, every storage dtype, dropout with padding
    cases = kernels["results"]
    assert {c["layer"] for c in cases} == {"hyper", "ln-hyper", "lstm", "ln-lstm"}
    assert {c["dtype"] for c in cases} == {"float64", "float32", "bfloat16"} and any(c["padded"] for c in cases)
    # and every microbenchmark case in both storage dtypes (the tile table's tiles; test_triton_tools runs all)
    parts = micro["result"]["parts"]
    assert len({(p["case"], p["dtype"]) for p in parts}) == 8 and all(p["finite"] for p in parts)
