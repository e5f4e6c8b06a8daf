"""bench_hyperlstm.py: --profile (the self time of a train step, split into our cell kernels, GEMMs and the rest)
and the one-step latency stage."""

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_hyperlstm  # noqa: E402


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    out = tmp_path_factory.mktemp("profile") / "bench.json"
    return bench_hyperlstm.main(["--sizes", "tiny", "--batches", "3", "--steps", "4", "--repeats", "1",
                                 "--no-one-step", "--profile", "--threads", "1", "--json", str(out)])


def test_every_fused_variant_spends_time_in_our_kernels_and_nn_lstm_none(record):
    rows = record["profile"]["tiny/B3"]
    assert set(rows) == {"nn.LSTM", "HyperLSTM", "LN-HyperLSTM", "LSTM (ours)", "LN-LSTM (ours)"}
    assert rows["nn.LSTM"]["ms_per_train_step"]["cell kernels"] == 0
    for name in ("HyperLSTM", "LN-HyperLSTM", "LSTM (ours)", "LN-LSTM (ours)"):
        groups = rows[name]["ms_per_train_step"]
        assert groups["cell kernels"] > 0 and groups["gemm"] > 0 and groups["other"] >= 0, (name, groups)
        top = list(rows[name]["top_ops_ms"].values())
        assert top == sorted(top, reverse=True) and len(top) <= 8


def test_the_profile_is_off_unless_asked(tmp_path):
    plain = bench_hyperlstm.main(["--sizes", "tiny", "--batches", "2", "--steps", "2", "--repeats", "1",
                                  "--no-one-step", "--threads", "1", "--json", str(tmp_path / "b.json")])
    assert plain["profile"] is None and plain["throughput"]["tiny/B2"]


def test_the_profile_refuses_cuda_in_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        bench_hyperlstm.main(["--device", "cuda", "--profile", "--sizes", "tiny"])
    assert stop.value.code == 2 and "--profile groups CPU operators" in capsys.readouterr().err


def test_the_one_step_stage_times_both_batches_against_lstmcell(tmp_path):
    """`--sizes ""`: only the one-step stage, at the PTB size, B 1 and 32; LSTMCell is its own baseline (1.0)."""
    steps = bench_hyperlstm.main(["--sizes", "", "--step-repeats", "2", "--threads", "1",
                                  "--json", str(tmp_path / "b.json")])["one_step"]
    assert set(steps) == {"ptb/B1", "ptb/B32"} and steps == json.loads((tmp_path / "b.json").read_text())["one_step"]
    for rows in steps.values():
        assert set(rows) == {"LSTMCell", "HyperLSTM", "LN-HyperLSTM"} and rows["LSTMCell"]["vs_lstmcell"] == 1.0
        assert all(row["ms"] > 0 for row in rows.values())


def test_the_memory_figures_are_of_an_eager_call_even_where_graph_plans_serve_the_timed_calls(monkeypatch):
    """Under CUDA-graph plans (their CPU `replay` mode here) a plan keeps its buffers outside autograd, so the
    bytes saved for backward (and on CUDA the peak) of a planned call would leave the activations out: the
    benchmark measures memory with the layers eager, and gets the eager figures."""
    from hyperfairseq.modules import cuda_graphs

    monkeypatch.setenv(cuda_graphs.GRAPHS_ENV, "0")
    eager = bench_hyperlstm.bench_throughput("tiny", 3, 4, 2, "cpu", bench_hyperlstm.torch.float32, False)
    monkeypatch.setenv(cuda_graphs.GRAPHS_ENV, "replay")
    planned = bench_hyperlstm.bench_throughput("tiny", 3, 4, 2, "cpu", bench_hyperlstm.torch.float32, False)
    for name in ("HyperLSTM", "LN-HyperLSTM", "LSTM (ours)", "LN-LSTM (ours)"):
        assert planned[name]["saved_bytes"] == eager[name]["saved_bytes"] > 0, name


def test_a_run_cut_short_keeps_the_sizes_it_measured(tmp_path, monkeypatch):
    """The GPU check's layer stage runs under a time limit: the record is rewritten after every size, marked
    complete only at the end, so a run killed during its second size keeps its first."""
    out, measured = tmp_path / "b.json", []
    real = bench_hyperlstm.bench_throughput

    def second_size_killed(size, batch, *args):
        if measured:
            raise KeyboardInterrupt  # as a kill arrives: nothing after this point runs
        measured.append(size)
        return real(size, batch, *args)

    monkeypatch.setattr(bench_hyperlstm, "bench_throughput", second_size_killed)
    with pytest.raises(KeyboardInterrupt):
        bench_hyperlstm.main(["--sizes", "tiny", "--batches", "2,3", "--steps", "2", "--repeats", "1",
                              "--no-one-step", "--threads", "1", "--json", str(out)])
    record = json.loads(out.read_text())
    assert list(record["throughput"]) == ["tiny/B2"] and record["complete"] is False
    monkeypatch.setattr(bench_hyperlstm, "bench_throughput", real)
    whole = bench_hyperlstm.main(["--sizes", "tiny", "--batches", "2", "--steps", "2", "--repeats", "1",
                                  "--no-one-step", "--threads", "1", "--json", str(out)])
    assert whole["complete"] is True and json.loads(out.read_text())["complete"] is True
