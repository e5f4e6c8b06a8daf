"""The analysis CLI (Figures 4-7) and the results page, on a small LN-HyperLSTM trained on real char-PTB
(the shared `trained_lm` fixture): heat-map values against a direct computation from the module's
internals, normalised histograms, written plots, bad log lines, and records of unexpected shape."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hyperfairseq.analysis import common, curves, saturation, weight_change
from hyperfairseq.analysis.__main__ import main
from hyperfairseq.analysis.results import page, paper_tables, speed, synthesis

REPO = Path(__file__).resolve().parents[2]
TEXT = "the company said it expects to report higher earnings\nin the third quarter"


@pytest.fixture(scope="module")
def loaded(trained_lm, ptb_slice_bin):
    return common.load(str(trained_lm), str(ptb_slice_bin))


def test_weight_change_equals_direct_frobenius_norm(loaded):
    trace = common.trace_text(loaded, TEXT)
    delta = weight_change.trace_weight_change(trace, loaded.rnn)
    lm = loaded.lm
    ids = lm.encode(TEXT, line_ends=False)
    assert delta.shape == (len(ids), 4) and len(trace.symbols) == len(ids)
    assert "".join(trace.symbols) == TEXT.replace("\n", "⏎")

    # Independently: one more pass with the internals switch, and Δ_t^y = ||diag(d_h^y(t) - d_h^y(t-1)) W_h^y||_F.
    with torch.no_grad():
        x = lm.decoder.embed(torch.tensor([[lm.dictionary.eos()] + ids]))
        _, _, internals = loaded.rnn(x, return_internals=True)
    d_h = internals.d_h[0, :, 0]  # (T + 1, 4, N_h); step 0 read the end-of-line symbol
    w_h = loaded.rnn.layers[0].weight_hh.detach()
    n_h = w_h.shape[1]
    expected = torch.empty(len(ids), 4)
    for t in range(1, len(ids) + 1):
        for y in range(4):
            change = torch.diag(d_h[t, y] - d_h[t - 1, y]) @ w_h[y * n_h : (y + 1) * n_h]
            expected[t - 1, y] = torch.linalg.matrix_norm(change, "fro")
    torch.testing.assert_close(delta, expected, rtol=1e-5, atol=1e-6)
    assert float(delta.min()) > 0  # a trained hypernetwork changes its scalings at every step


def test_weight_change_first_step_without_history_is_zero():
    d_h = torch.randn(5, 4, 3)
    w_h = torch.randn(12, 3)
    delta = weight_change.weight_change(d_h, w_h)
    assert torch.all(delta[0] == 0)
    direct = torch.linalg.matrix_norm(torch.diag(d_h[3, 2] - d_h[2, 2]) @ w_h[6:9], "fro")
    torch.testing.assert_close(delta[3, 2], direct)


def test_saturation_values_and_histogram_integrates_to_one(loaded):
    trace = common.sample_trace(loaded, length=60, seed=3, temperature=1.0)
    values = saturation.cell_outputs(trace, loaded.rnn)
    cell = loaded.rnn.layers[0]
    c = trace.internals.c[0]
    expected = torch.tanh(F.layer_norm(c, (c.shape[-1],), cell.ln_cell.weight, cell.ln_cell.bias, cell.ln_cell.eps))
    np.testing.assert_allclose(values, expected.flatten().detach().numpy(), rtol=1e-5, atol=1e-6)
    density, edges = saturation.histogram(values)
    assert math.isclose(float(np.sum(density * np.diff(edges))), 1.0, rel_tol=1e-6)
    assert edges[0] == -1.0 and edges[-1] == 1.0 and np.all(np.abs(values) <= 1.0)


def _fairseq_log(path: Path) -> Path:
    lines = [
        "{'_name': None, 'common': {'log_format': 'json'}}",
        "Start iterating over samples",
        *(json.dumps({"epoch": 1, "loss": f"{4.5 - 0.1 * i:.3f}", "num_updates": str(10 * i)}) for i in range(1, 6)),
        json.dumps({"epoch": 1, "loss": "nan", "num_updates": "60"}),
        json.dumps({"epoch": 1, "valid_loss": "3.9", "valid_num_updates": "60"}),
        '2026-11-28 12:00:00 | INFO | train_inner | {"epoch": 1, "loss": "3.8", "num_updates": "70"}',
        '{"epoch": 1, "loss": "3.7", "num_upd',
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_curves_report_nan_and_truncated_lines(tmp_path, capsys):
    log = _fairseq_log(tmp_path / "train.log")
    run = curves.read_log(str(log))
    assert [u for u, _ in run.train] == [10, 20, 30, 40, 50, 70]
    assert run.valid == [(60.0, 3.9)]
    assert len(run.problems) == 2
    assert any("nan" in p for p in run.problems) and any("truncated" in p for p in run.problems)
    empty = tmp_path / "empty.log"
    empty.write_text("nothing here\n")
    out = tmp_path / "curves.png"
    assert main(["curves", "--log", str(log), str(empty), "--labels", "a", "b", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "nan" in err and "truncated" in err and "no train or valid loss points" in err
    assert out.stat().st_size > 1000
    assert main(["curves", "--log", str(empty), "--out", str(tmp_path / "none.png")]) == 2


def test_cli_writes_figures(trained_lm, ptb_slice_bin, tmp_path):
    stem = tmp_path / "fig4"
    args = ["--data", str(ptb_slice_bin), "--length", "40", "--seed", "1"]
    assert main(["weight-change", "--path", str(trained_lm), *args, "--out", str(stem)]) == 0
    assert main(["weight-change", "--path", str(trained_lm), "--data", str(ptb_slice_bin), "--text", TEXT,
                 "--out", str(tmp_path / "fig4_text.png")]) == 0
    fig5 = tmp_path / "fig5.png"
    assert main(["saturation", *args, "--path", str(trained_lm), str(trained_lm), "--labels", "LN-HyperLSTM", "again",
                 "--out", str(fig5)]) == 0
    labels = [c["label"] for c in json.loads(fig5.with_suffix(".json").read_text())["checkpoints"]]
    assert labels == ["LN-HyperLSTM", "again"]
    for path in (stem.with_suffix(".png"), tmp_path / "fig4_text.png", fig5):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
        assert path.with_suffix(".svg").read_text().lstrip().startswith("<?xml")
        sidecar = json.loads(path.with_suffix(".json").read_text())
        assert sidecar["command"].startswith("python -m hyperfairseq.analysis") and sidecar["commit"]
    assert json.loads((tmp_path / "fig4_text.json").read_text())["text"] == TEXT


def _odd_runs(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    shutil.copytree(REPO / "docs" / "runs", runs)
    (runs / "a_list.json").write_text("[1, 2, 3]\n")
    (runs / "broken.json").write_text('{"name": "broken", "res')
    (runs / "table3_odd.json").write_text(json.dumps(
        {"table": "Table 3", "arch": "ln_lstm_lm_ptb", "result": {"bpc": "n/a"}}))
    (runs / "table3_ours.json").write_text(json.dumps(
        {"name": "table3_ours", "arch": "hyperlstm_lm_ptb", "data": "char-PTB test", "result": {"bpc": 1.5},
         "commit": "abc"}))
    (runs / "table3_smoke_hyperlstm_lm_ptb.json").write_text(json.dumps({"result": {"bpc": 4.9}, "smoke": True}))
    (runs / "table3_reduced_ln_lstm_lm_ptb.json").write_text(json.dumps(
        {"name": "table3_reduced_ln_lstm_lm_ptb", "data": "char-PTB test",
         "result": {"bpc": 1.6, "reduced": "256 units, 5000 updates"}}))
    return runs


def test_results_page_from_odd_records_is_idempotent(tmp_path, capsys):
    runs = _odd_runs(tmp_path)
    out = tmp_path / "results.md"
    assert page.main(str(runs), str(out), str(REPO / "docs" / "figures")) == 0
    first = out.read_text()
    assert page.main(str(runs), str(out), str(REPO / "docs" / "figures")) == 0
    assert out.read_text() == first
    for table in paper_tables.TABLES:
        assert f"## {table.title}" in first
    for paper_number in ("0.72%", "8.02%", "1.250", "1.340", "-1,162", "40.03"):
        assert paper_number in first
    row = next(line for line in first.splitlines() if line.startswith("| **HyperLSTM, 1000 units**"))
    assert "1.500" in row and "char-PTB test (table3_ours)" in row and "4.900" not in row
    row = next(line for line in first.splitlines() if line.startswith("| Layer Norm LSTM, 1000 units"))
    assert "1.600" in row and "reduced: 256 units, 5000 updates (table3_reduced_ln_lstm_lm_ptb)" in row
    assert "broken | unreadable" in first and "[a_list]" in first
    assert "figures/fig4_weight_change_ptb.png" in first or "Not generated yet" in first


def test_results_smoke_leaves_a_stale_page_alone_and_fails(tmp_path, capsys):
    runs = _odd_runs(tmp_path)
    out = tmp_path / "results.md"
    out.write_text("old\n")
    assert main(["results", "--runs", str(runs), "--out", str(out), "--smoke"]) == 1
    assert out.read_text() == "old\n"
    assert f"{out} out of date" in capsys.readouterr().err


def test_make_results_smoke_on_the_real_records():
    """CI's smoke mode of scripts/make_results.sh: every record of docs/runs lands on the page."""
    import subprocess

    proc = subprocess.run(["bash", "scripts/make_results.sh", "--smoke"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("smoke:")


def test_results_speed_section_from_a_benchmark_record(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    row = {"nn.LSTM": {"tokens_per_s": 4000.0, "speed_vs_nn_lstm": 1.0, "saved_bytes_vs_nn_lstm": 1.0},
           "HyperLSTM": {"speed_vs_nn_lstm": 0.8123, "saved_bytes_vs_nn_lstm": 1.04},
           "LN-HyperLSTM": {"speed_vs_nn_lstm": 0.7456, "saved_bytes_vs_nn_lstm": 1.31},
           "LSTM (ours)": {"speed_vs_nn_lstm": 0.93}, "LN-LSTM (ours)": {"speed_vs_nn_lstm": 0.951},
           "LSTMCell loop": {"speed_vs_nn_lstm": 0.5}}
    step = {"LSTMCell": {"ms": 1.25}, "HyperLSTM": {"vs_lstmcell": 1.39}, "LN-HyperLSTM": {"vs_lstmcell": 1.44}}
    (runs / "bench_x.json").write_text(json.dumps({"throughput": {"ptb/B32": row, "enwik8/B128": row},
                                                  "one_step": {"ptb/B1": step}, "threads": 1}))
    text = page.generate(str(runs), str(tmp_path / "figures"), str(tmp_path / "results.md"))
    lines = text.splitlines()
    assert "| ptb/B32 | 4000 | 0.81× | 0.75× | 0.93× | 0.95× | 0.50× | 1.04× / 1.31× | ≥ 0.70× |" in lines
    assert "| enwik8/B128 | 4000 | 0.81× | 0.75× | 0.93× | 0.95× | 0.50× | 1.04× / 1.31× | ≥ 0.60× |" in lines
    assert "| ptb/B1 | 1.250 | 1.39× | 1.44× | ≤ 1.50× |" in lines


def test_cpu_gemm_rows_give_both_libraries_and_name_mkl_below_the_thresholds(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    gemms = {"ptb/B32/weight gradient": {"mkl_gflops": 88.6, "onednn_gflops": 39.8, "onednn_vs_mkl": 0.4492,
                                         "auto": "mkl", "onednn_ran": True},
             "tiny/B3/per-step forward": {"mkl_gflops": 2.0, "onednn_gflops": 2.1, "onednn_vs_mkl": 1.05,
                                          "auto": "onednn", "onednn_ran": False}}
    (runs / "bench_cpu_gemm_x.json").write_text(json.dumps({"gemms": gemms, "cpu_capability": "AVX2",
                                                           "auto_took_the_faster": "1 of 1"}))
    lines = page.generate(str(runs), str(tmp_path / "figures"), str(tmp_path / "results.md")).splitlines()
    assert "| ptb/B32/weight gradient | 88.6 | 39.8 | 0.45× | mkl |" in lines
    assert "| tiny/B3/per-step forward | 2.0 | MKL (below the thresholds) | — | onednn |" in lines
    assert any("ATen CPU capability AVX2" in line and "1 of 1" in line for line in lines)


def _readme_copy(tmp_path: Path):
    """A copy of the real records, results page and README, as make_results.sh sees them."""
    runs, readme, out = tmp_path / "docs" / "runs", tmp_path / "README.md", tmp_path / "docs" / "results.md"
    shutil.copytree(REPO / "docs" / "runs", runs)
    shutil.copy(REPO / "README.md", readme)
    assert page.main(str(runs), str(out), str(REPO / "docs" / "figures")) == 0
    return runs, readme, out


def test_readme_tables_follow_the_records_and_a_stale_readme_fails(tmp_path, capsys):
    runs, readme, out = _readme_copy(tmp_path)
    args = ["results", "--runs", str(runs), "--out", str(out), "--figures", str(REPO / "docs" / "figures"),
            "--readme", str(readme)]
    assert main(args + ["--smoke"]) == 0, capsys.readouterr().err  # the committed README is up to date
    demo = json.loads((runs / "demo_ptb_cpu.json").read_text())
    demo["result"]["bpc"] = 1.2345
    (runs / "demo_ptb_cpu.json").write_text(json.dumps(demo))
    before = readme.read_text()
    assert main(args + ["--smoke"]) == 1 and readme.read_text() == before
    assert f"{readme} out of date" in capsys.readouterr().err
    assert main(args) == 0
    after = readme.read_text()
    assert main(args) == 0 and readme.read_text() == after  # idempotent
    row = next(line for line in after.splitlines() if "[demo_ptb_cpu]" in line and line.startswith("| 3:"))
    assert "| **1.250** | 1.234 |" in row and "char-PTB test (full) | CPU, 2 cores |" in row
    assert "**1.23 bits per character**" in after and "2.36 bits" not in after
    outside = [line for line in before.splitlines() if not line.startswith(("|", "Recorded ("))]
    assert outside == [line for line in after.splitlines() if not line.startswith(("|", "Recorded ("))]


@pytest.mark.parametrize("train", [{"num_updates": "280", "loss": "2.67"},  # the log's last line: an inner one
                                   {"train_num_updates": "1617", "train_loss": "2.214"}])  # an epoch's summary
def test_readme_demo_line_names_the_updates_of_either_last_log_line(tmp_path, train):
    (tmp_path / "demo_ptb_cpu.json").write_text(json.dumps(
        {"name": "demo_ptb_cpu", "command": "bash scripts/demo.sh 5", "result": {"bpc": 1.84, "train": train}}))
    line = page.readme_demo(page.load_records(str(tmp_path))[0], "runs")[0]
    updates = train.get("num_updates") or train["train_num_updates"]
    assert "**1.84 bits per character**" in line and f"after {updates} updates of" in line, line


def test_readme_speed_rows_from_train_and_gpu_records(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    records = page.load_records(str(runs))[0]
    assert speed.readme_speed(records, "runs")[-1] == "| GPU | not measured yet | | | | | |"
    rows = {"fairseq lstm_lm [fp32]": {"config": "fairseq lstm_lm", "precision": "fp32", "words_per_s": 3000.0},
            "hyperlstm_lm_ptb [fp32]": {"config": "hyperlstm_lm_ptb", "precision": "fp32", "words_per_s": 1368.0,
                                        "vs_fairseq_lstm_lm": 0.456},
            "ln_hyperlstm_lm_ptb [fp32]": {"config": "ln_hyperlstm_lm_ptb", "precision": "fp32",
                                           "words_per_s": 9000.0, "vs_fairseq_lstm_lm": 3.0}}
    (runs / "bench_train_cpu.json").write_text(json.dumps({"command": "python benchmarks/bench_train.py --device cpu",
                                                          "hardware": "AMD EPYC, 1 thread(s)", "batch_size": 32,
                                                          "results": rows, "commit": "abcdef"}))
    gpu_row = dict(rows["fairseq lstm_lm [fp32]"], precision="bf16")
    (runs / "bench_train_gpu.json").write_text(json.dumps({"command": "python benchmarks/bench_train.py --device cuda",
                                                          "hardware": "NVIDIA H200", "batch_size": 128,
                                                          "results": {"fairseq lstm_lm [bf16]": gpu_row}}))
    (runs / "bench_hyperlstm_odd.json").write_text(json.dumps({"throughput": [1], "one_step": "none"}))
    lines = speed.readme_speed(page.load_records(str(runs))[0], "runs")
    measure = "`fairseq-train` words/s vs fairseq `lstm_lm`"
    assert (f"| CPU: AMD EPYC, 1 thread(s) | {measure} (fp32) | ptb/B32 | 0.46× | 3.00× "
            "| 3000 words/s | [bench_train_cpu](runs/bench_train_cpu.json), commit `abcdef` |") in lines
    assert lines[-1].startswith(f"| NVIDIA H200 | {measure} (bf16) | ptb/B128 | — | — |")
    assert not any("not measured" in line for line in lines)
    text = speed.render_train_speed(page.load_records(str(runs))[0])  # the results page: every config, gated
    assert "| ln_hyperlstm_lm_ptb | fp32 | 9000 | 3.00× | ≥ 0.80× |" in text
    assert "| fairseq lstm_lm | bf16 | 3000 | — |  |" in text


def test_readme_without_its_markers_is_a_one_line_error(tmp_path, capsys):
    runs, readme, out = _readme_copy(tmp_path)
    readme.write_text(readme.read_text().replace("<!-- speed:end -->", ""))
    assert main(["results", "--runs", str(runs), "--out", str(out), "--readme", str(readme)]) == 2
    err = capsys.readouterr().err
    assert "speed:begin" in err and len(err.strip().splitlines()) == 1


def test_synthesis_rows_pair_each_checkpoint_with_its_control(tmp_path):
    """Records of two update counts: each model's NLL is set against the control at the same updates, and
    the alignment / legibility records of the same checkpoint land in the same row."""
    runs = tmp_path / "runs"
    runs.mkdir()

    def write(name, result):
        (runs / f"{name}.json").write_text(json.dumps({"command": f"cmd {name}", "result": result}))

    for suffix, updates, shift in (("", 500, 0.0), ("_1500", 1500, -50.0)):
        write(f"synthesis_hershey_hyper{suffix}", {"arch": "hyperlstm_synthesis", "params": 1000, "updates": updates,
                                                   "valid_log_loss": -300.0 + shift})
        write(f"synthesis_hershey_uncond{suffix}", {"arch": "hyperlstm_handwriting", "params": 990,
                                                    "updates": updates, "valid_log_loss": -250.0 + 2 * shift})
        write(f"synthesis_alignment_hyper{suffix}", {"lines": 40, "aligned_lines": 39, "kappa_never_decreases": True})
        write(f"synthesis_legibility_hyper{suffix}", {"texts": 100, "legible": 61 + updates // 500, "chance": 1 / 6})
    records = page.load_records(str(runs))[0]
    lines = synthesis.readme_synthesis(records, "runs")
    assert len(lines) == 4  # header, rule, the two rows at the largest update count (1500)
    assert lines[2].startswith("| synthesis HyperLSTM (`hyperlstm_synthesis`) | 1,000 | 1500 | -350.00 | +0.00 "
                               "| 39 / 40 | yes | 64 / 100 (chance 16.7%) |")
    assert "[train](runs/synthesis_hershey_hyper_1500.json)" in lines[2]
    assert "| 1500 | -350.00 | control | — |" in lines[3]
    text = page.generate(str(runs), str(tmp_path / "figures"), str(tmp_path / "results.md"))
    assert "| 500 | -300.00 | -50.00 | 39 / 40 | yes | 62 / 100" in text
    other = text[text.index("## Other runs"):]
    assert "synthesis_" not in other
    assert not [p for p in page.check(text, str(runs)) if "record" in p]


def test_profile_rows_give_each_variants_kernel_share_and_skip_odd_entries():
    profile = {"ptb/B128": {"HyperLSTM": {"ms_per_train_step": {"cell kernels": 30.0, "gemm": 250.0, "other": 20.0}},
                            "nn.LSTM": {"ms_per_train_step": {"cell kernels": 0, "gemm": 0, "other": 0}},
                            "odd": "not a row"}}
    lines = speed.render_profile(profile)
    assert "| ptb/B128 | HyperLSTM | 30 | 250 | 20 | 10.0 % |" in lines
    assert "| ptb/B128 | nn.LSTM | 0 | 0 | 0 | ? |" in lines and not any("odd" in line for line in lines)
    assert speed.render_profile(None) == [] and speed.render_profile({"ptb/B32": []}) == []


def test_readme_speed_shows_the_newest_record_of_each_setting(tmp_path):
    """Two records of the same CPU: the README shows the newer one's rows only (one without a date counts
    oldest) and names the older one; GPU layer records in TF32 and bf16 are different settings: both stay,
    each measure labelled with its precision."""
    runs = tmp_path / "runs"
    runs.mkdir()

    def bench(name, hardware, speed, **fields):
        row = {"nn.LSTM": {"tokens_per_s": 1000.0}, "HyperLSTM": {"speed_vs_nn_lstm": speed}}
        (runs / f"{name}.json").write_text(json.dumps(dict({"command": "python benchmarks/bench_hyperlstm.py",
                                                            "hardware": hardware, "throughput": {"ptb/B32": row},
                                                            "one_step": {}}, **fields)))

    cpu = "AMD EPYC (family 25 model 1, avx2), 1 thread(s)"
    bench("bench_hyperlstm_cpu_old", cpu, 0.51, date="2026-12-02T10:00:00Z", device="cpu")
    bench("bench_hyperlstm_cpu_new", cpu, 0.77, date="2026-12-03T10:00:00Z", device="cpu")
    bench("bench_hyperlstm_cpu_undated", cpu, 0.33, device="cpu")
    bench("bench_hyperlstm_gpu_tf32", "NVIDIA H200", 1.21, device="cuda", dtype="float32", tf32=True)
    bench("bench_hyperlstm_gpu_bf16", "NVIDIA H200", 1.05, device="cuda", dtype="bfloat16", tf32=True)
    lines = speed.readme_speed(page.load_records(str(runs))[0], "docs/runs")
    rows = [line for line in lines if line.startswith("| CPU") or line.startswith("| NVIDIA")]
    assert len(rows) == 3 and "0.77×" in rows[0] and "bench_hyperlstm_cpu_new" in rows[0], rows
    assert not any("0.51×" in r or "0.33×" in r for r in rows)
    gpu = {r.split(" | ")[1]: r for r in rows[1:]}
    measure = "fwd+bwd tokens/s vs `nn.LSTM`"
    assert "1.21×" in gpu[f"{measure} (TF32)"] and "1.05×" in gpu[f"{measure} (bf16)"], gpu
    assert lines[-1] == ("Each row is from the newest record of its benchmark, hardware and precision; the 2 older or "
                         "experimental one(s) (bench_hyperlstm_cpu_old, bench_hyperlstm_cpu_undated) are on "
                         "[the results page](docs/results.md).")
