"""The prepared GPU check (benchmarks/gpu_check.sh) runs end to end on CPU before a GPU minute is spent.

DRY_RUN=1 runs every stage of the script with the same tools, on this CPU: the Triton kernels under
TRITON_INTERPRET=1, tiny sizes, a real char-PTB slice for the fairseq-train / fairseq-eval-lm stages.
Timings of a dry run mean nothing; what must hold is that every stage exits 0 and the summary the GPU
run will return (at most 8 files from the device machine) is complete, also when its deadline leaves no
stage any time. The tools' partial records: a kernel check stopped mid-run keeps its finished cases, a
fairseq-train run that fails is recorded in its row while the others are timed.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from conftest import CLI_ENV, REPO

# the device tool returns at most 8 files from $OUT, each named in letters, digits, '.', '_' and '-'
MAX_FILES = 8
RECORDS = ("bench_hyperlstm_gpu_tf32.json", "bench_hyperlstm_gpu_fp32.json", "bench_hyperlstm_gpu_bf16.json",
           "table3_gpu_ln_hyperlstm_lm_ptb.json")
STAGES = ["env", "kernels", "memcheck", "micro", "layer", "speed", "train", "eval"]


def gpu_check(out: Path, data: Path, **env) -> Path:
    """$OUT of one `DRY_RUN=1 bash benchmarks/gpu_check.sh` (TMPDIR, where the checkpoints go, beside it)."""
    tmp = out.parent / "tmp"
    tmp.mkdir(parents=True)
    env = {**CLI_ENV, "DRY_RUN": "1", "OUT": str(out), "DATA": str(data), "PYTHON": sys.executable,
           "TMPDIR": str(tmp), **env}
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh"], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not list(tmp.glob("gpu_check_*")), "the checkpoints or the work folder were left behind"
    return out


def logs(out: Path) -> dict:
    """The work folder's files packed in logs.tar.gz, by name (read by member name, never extracted)."""
    with tarfile.open(out / "logs.tar.gz") as tar:
        return {m.name[2:]: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}


@pytest.fixture(scope="module")
def dry_run(ptb_slice_bin, tmp_path_factory) -> Path:
    """$OUT of one `DRY_RUN=1 bash benchmarks/gpu_check.sh`, as the device tool would return it."""
    return gpu_check(tmp_path_factory.mktemp("gpu_check") / "out", ptb_slice_bin)


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
    speed = json.loads((out / "bench_train_gpu.json").read_text())  # one run per command line, 2 updates logged
    assert speed["timing"] == "log" and {r["config"] for r in speed["results"].values()} == {
        "fairseq lstm_lm", "ln_hyperlstm_lm_ptb"}
    for row in speed["results"].values():  # fairseq's wps of the second update (the first holds the start-up)
        assert row["words_per_s"] > 0 and len(row["logged_words_per_s"][0]) == 1 and "error" not in row
    layer = json.loads((out / "bench_hyperlstm_gpu_bf16.json").read_text())
    assert layer["throughput"]["tiny/B4"]["LN-HyperLSTM"]["tokens_per_s"] > 0
    work = logs(out)
    kernels, micro = (json.loads(work[name]) for name in ("kernels.json", "micro_triton.json"))
    # the dry run checks each code path once (--each-once): every layer, every storage dtype, dropout with padding,
    # one-step decoding of every layer, in two worker processes (as the GPU's six), every planned case run
    cases = kernels["results"]
    layers = {"hyper", "ln-hyper", "lstm", "ln-lstm"}
    assert {c["layer"] for c in cases} == layers and {c["layer"] for c in cases if c.get("one_step")} == layers
    assert {c["dtype"] for c in cases} == {"float64", "float32", "bfloat16"} and any(c.get("padded") for c in cases)
    assert kernels["complete"] and [c["index"] for c in cases] == list(range(kernels["planned"]))
    assert summary["kernels"]["complete"] and summary["kernels_memcheck"]["cases"] == 8
    assert summary["kernels_memcheck"]["failed"] == 0 and "no sanitizer (the dry run)" in work["memcheck.log"]
    # and every microbenchmark case in both storage dtypes (the tile table's tiles; test_triton_tools runs all)
    parts = micro["result"]["parts"]
    assert len({(p["case"], p["dtype"]) for p in parts}) == 8 and all(p["finite"] for p in parts)
    assert micro["result"]["complete"] and summary["micro_tiles"] == {"parts": 8, "errors": 0, "skipped": 0}
    # the env stage's lines: what the first Triton launch and fairseq's data pipeline need
    for line in ("C compilers (Triton builds its launchers with one): /", "triton launch: ok",
                 "fairseq C extensions: ok fairseq.data.data_utils_fast, fairseq.data.token_block_utils_fast"):
        assert line in work["env.log"], work["env.log"]
    # the background compile ran every configuration; no layer fell back from its (replayed) graph plan
    assert summary["warm"]["failed"] == 0 and summary["warm"]["warmed"] > 30 and summary["warm"]["exit"] == "0"
    assert summary["graph_capture_failures"] == 0
    assert list(summary["stages"]) == STAGES and all(s["limit_s"] > 0 for s in summary["stages"].values())


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


def test_a_run_whose_deadline_has_passed_skips_every_stage_and_still_returns_its_summary(ptb_slice_bin, tmp_path):
    """The deadline (DEADLINE_S seconds after the start; 540 on the GPU) caps every stage; the summary and the
    logs come from the EXIT trap whatever the stages did."""
    out = gpu_check(tmp_path / "out", ptb_slice_bin, DEADLINE_S="0")
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "logs.tar.gz",
                                                     "table3_gpu_ln_hyperlstm_lm_ptb.json"]
    stages = json.loads((out / "gpu_check.json").read_text())["stages"]
    assert list(stages) == STAGES and all(s["exit_status"] == "skipped" and not s["ok"] for s in stages.values())
    work = logs(out)
    assert "skipped:" in work["eval.log"] and "warm-up skipped" in work["warm.log"]


def test_a_run_killed_outright_after_a_stage_returns_that_stages_logs(ptb_slice_bin, tmp_path):
    """The device tool kills a command past its limit with everything it started (no EXIT trap runs): the logs
    packed after every stage come back, holding each finished stage, beside nothing else half-written."""
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    env = {**CLI_ENV, "DRY_RUN": "1", "OUT": str(out), "DATA": str(ptb_slice_bin), "PYTHON": sys.executable,
           "TMPDIR": str(tmp)}
    proc = subprocess.Popen(["bash", "benchmarks/gpu_check.sh"], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while not (out / "logs.tar.gz").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
    assert sorted(p.name for p in out.iterdir()) == ["logs.tar.gz"]
    work = logs(out)
    assert work["env.status"].strip() == "0" and "Triton" in work["env.log"] and "kernels.status" not in work


def test_bench_train_passes_on_our_warnings_from_its_runs(capsys):
    """A layer whose CUDA-graph capture failed runs eagerly and warns; bench_train.py ran fairseq-train with every
    warning ignored, so its rates were eager ones without a word. It now keeps ours and prints them to its log."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_train

    warn = ("import warnings; warnings.warn('hyperfairseq: CUDA graph capture failed for a layer', RuntimeWarning); "
            "warnings.warn('fairseq: something else')")
    bench_train.run_train([sys.executable, "-c", warn], bench_train.child_env())
    printed = capsys.readouterr().out
    assert "RuntimeWarning: hyperfairseq: CUDA graph capture failed" in printed and "UserWarning" not in printed


def test_a_kernel_check_stopped_mid_run_keeps_every_finished_case(tmp_path):
    """check_kernels_on_device.py rewrites its JSON after every case: killed (a stage's time limit) after the
    first, the record holds it, says it is incomplete and is valid JSON."""
    record = tmp_path / "kernels.json"
    env = {**CLI_ENV, "TRITON_INTERPRET": "1", "HYPERFAIRSEQ_KERNELS": "triton"}
    proc = subprocess.Popen([sys.executable, "benchmarks/check_kernels_on_device.py", "--device", "cpu", "--shapes",
                             "tiny", "--json", str(record)], env=env, cwd=REPO, stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        while not record.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    kept = json.loads(record.read_text())
    assert kept["planned"] == 28 and 1 <= kept["cases"] < 28 and not kept["complete"]
    assert kept["not_run"] == 28 - kept["cases"] and all(r["ok"] for r in kept["results"])


def test_a_fairseq_train_run_that_fails_is_recorded_in_its_row_and_the_others_are_timed(ptb_slice_bin, tmp_path):
    """bench_train.py: --fp16 is refused on CPU at start-up; that row carries the error and its log's end, the
    fp32 row its words/s, and the exit status says a row failed."""
    record = tmp_path / "train.json"
    proc = subprocess.run([sys.executable, "benchmarks/bench_train.py", "--data", str(ptb_slice_bin), "--device", "cpu",
                           "--batch-size", "4", "--tokens-per-sample", "20", "--timing", "log", "--updates", "2",
                           "--repeats", "1", "--precisions", "fp16,fp32", "--configs", "ln_hyperlstm_lm_ptb", "--tiny",
                           "--json", str(record)], capture_output=True, text=True, env=CLI_ENV, cwd=REPO, timeout=600)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = json.loads(record.read_text())["results"]
    failed, timed = rows["ln_hyperlstm_lm_ptb [fp16]"], rows["ln_hyperlstm_lm_ptb [fp32]"]
    assert "exited" in failed["error"] and "--fp16" in failed["log_tail"] and failed["words_per_s"] is None
    assert timed["words_per_s"] > 0 and "error" not in timed


def test_the_sanitizer_summary_tells_kernel_memory_errors_from_api_errors(tmp_path):
    """compute-sanitizer's ERROR SUMMARY also counts errors that CUDA API calls returned (runtimes probe some on
    purpose): the summary reports the kernels' own memory errors apart (a parser test on memcheck's line forms)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu_summary

    log = tmp_path / "memcheck.log"
    log.write_text("\n".join([
        "========= COMPUTE-SANITIZER",
        "========= Program hit cudaErrorInvalidValue (error 1) due to \"invalid argument\" on CUDA API call to "
        "cudaFuncGetAttributes.",
        "=========     Saved host backtrace up to driver entry point at error",
        "========= Invalid __global__ read of size 4 bytes",
        "=========     at cell_forward+0x1a0",
        "========= Program hit cudaErrorNotReady (error 34) on CUDA API call to cudaEventQuery.",
        "========= ERROR SUMMARY: 3 errors", ""]))
    counts = gpu_summary.kernel_cases(tmp_path / "none.json", log)
    assert counts["sanitizer_errors"] == 3 and counts["api_error_reports"] == 2 and counts["kernel_memory_errors"] == 1
