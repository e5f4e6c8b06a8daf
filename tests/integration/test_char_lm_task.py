"""`--task char_lm` on real char-PTB: carried state, resume, data parallel, sampling, bytes, bad input."""

import signal
import subprocess
import sys
import time
import uuid
import zipfile

import pytest
import torch
from conftest import CLI_ENV, REPO, SMALL_LM, USER_DIR, run_cli
from test_char_lm_cli import eval_lm_bits

from hyperfairseq import checkpoint_files
from hyperfairseq.data import byte_corpus
from hyperfairseq.sample import CharLM

STREAM_FLAGS = [
    "--task", "char_lm", "--optimizer", "adam", "--lr", 0.003, "--clip-norm", 1.0, "--tokens-per-sample", 50,
    "--cpu", "--seed", 1, "--no-epoch-checkpoints", "--num-workers", 0, "--disable-validation",
    "--log-format", "simple", "--log-interval", 1,
]
TINY_LM = ["--arch", "ln_hyperlstm_lm_ptb", "--decoder-hidden-size", 48, "--hyper-hidden-size", 16, *SMALL_LM[4:]]


def train_streams(data, save, *extra):
    return run_cli("fairseq_cli.train", data, "--user-dir", USER_DIR, *STREAM_FLAGS, *TINY_LM, "--save-dir", save,
                   *extra)


def model_params(checkpoint):
    # weights_only; fairseq's sgd stores a Namespace
    state = checkpoint_files.safe_load(str(checkpoint), str(checkpoint))
    return {k: v for k, v in state["model"].items() if not k.endswith("_extra_state")}


def test_carried_state_beats_resetting_every_segment_on_the_same_checkpoint(trained_lm, ptb_slice_bin):
    carry = eval_lm_bits(ptb_slice_bin, trained_lm, "--task", "char_lm", "--tokens-per-sample", 5)
    reset = eval_lm_bits(ptb_slice_bin, trained_lm, "--task", "char_lm", "--tokens-per-sample", 5,
                         "--reset-every-segment")
    assert carry < reset - 0.05, f"carried {carry:.3f} vs reset {reset:.3f} bits/char"


def test_split_stream_through_the_task_iterator_equals_the_whole_stream(trained_lm, ptb_slice_bin):
    from fairseq import checkpoint_utils

    from hyperfairseq.tasks.char_lm import CharLMConfig, CharLMTask

    models, _, _ = checkpoint_utils.load_model_ensemble_and_task(
        [str(trained_lm)], arg_overrides={"data": str(ptb_slice_bin)}
    )
    model = models[0].double().eval()
    totals = {}
    for segment in (7, 10_000):
        cfg = CharLMConfig(data=str(ptb_slice_bin), tokens_per_sample=segment, batch_size=4, max_tokens=None,
                           dataset_impl=None, seed=1)
        task = CharLMTask.setup_task(cfg)
        task.load_dataset("valid")
        total = 0.0
        with torch.no_grad():
            for sample in task.eval_lm_dataloader(task.dataset("valid"), batch_size=4):
                logits, _ = model(**sample["net_input"])
                total += torch.nn.functional.cross_entropy(
                    logits.flatten(0, 1), sample["target"].flatten(), reduction="sum").item()
        totals[segment] = total
    assert totals[7] == pytest.approx(totals[10_000], rel=1e-9)


def test_killed_and_resumed_run_matches_an_uninterrupted_one(ptb_slice_bin, tmp_path):
    flags = ["--batch-size", 8]
    train_streams(ptb_slice_bin, tmp_path / "whole", *flags, "--max-update", 8)
    train_streams(ptb_slice_bin, tmp_path / "split", *flags, "--max-update", 4)
    resumed = train_streams(ptb_slice_bin, tmp_path / "split", *flags, "--max-update", 8)
    assert "loaded checkpoint" in (resumed.stderr + resumed.stdout).lower()
    whole = model_params(tmp_path / "whole/checkpoint_last.pt")
    split = model_params(tmp_path / "split/checkpoint_last.pt")
    for name in whole:
        assert torch.equal(split[name], whole[name]), name  # same process, same sums: bit-identical


def test_validating_on_the_training_split_leaves_training_unchanged(ptb_slice_bin, tmp_path):
    """Bug: the carried state was keyed by split name only, so `--valid-subset train` ran validation on the
    training stream's state: training changed (and another --batch-size-valid failed). Now it is a separate
    stream; the weights after validating on train or on valid are bit-identical (same process, same sums)."""
    flags = ["--batch-size", 8, "--max-update", 6, "--validate-interval-updates", 3, "--batch-size-valid", 4]
    runs = {}
    for subset in ("valid", "train"):
        args = [a for a in STREAM_FLAGS if a != "--disable-validation"]
        proc = run_cli("fairseq_cli.train", ptb_slice_bin, "--user-dir", USER_DIR, *args, *TINY_LM, *flags,
                       "--valid-subset", subset, "--save-dir", tmp_path / subset)
        assert f"valid on '{subset}' subset" in proc.stdout + proc.stderr
        runs[subset] = model_params(tmp_path / subset / "checkpoint_last.pt")
    for name, value in runs["valid"].items():
        assert torch.equal(runs["train"][name], value), name


def test_sigterm_saves_a_checkpoint_that_resumes_exactly(ptb_slice_bin, tmp_path):
    """With the plugin, SIGTERM finishes the update, saves checkpoint_last.pt and exits 143 (issue 12 §2);
    the same command then continues to bit-identical weights of a run that was never interrupted."""
    flags = ["--batch-size", 8, "--save-interval-updates", 1]
    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fairseq_cli.train", str(ptb_slice_bin), "--user-dir", USER_DIR, *map(str, STREAM_FLAGS),
         *map(str, TINY_LM), "--save-dir", str(cut), *map(str, flags), "--max-update", "100000"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=CLI_ENV, cwd=REPO)
    deadline = time.time() + 600
    while not (cut / "checkpoint_last.pt").exists():  # the first save: the training loop is running
        assert proc.poll() is None and time.time() < deadline, "fairseq-train ended before its first checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=600)[0]
    last = checkpoint_files.safe_load(str(cut / "checkpoint_last.pt"), "last")
    stopped = last["optimizer_history"][-1]["num_updates"]
    assert proc.returncode == 128 + signal.SIGTERM and f"stopped by SIGTERM after update {stopped}; saved" in out
    train_streams(ptb_slice_bin, cut, *flags, "--max-update", stopped + 3)
    train_streams(ptb_slice_bin, tmp_path / "whole", *flags, "--max-update", stopped + 3)
    whole, resumed = model_params(tmp_path / "whole/checkpoint_last.pt"), model_params(cut / "checkpoint_last.pt")
    for name in whole:
        assert torch.equal(resumed[name], whole[name]), name


def test_two_process_data_parallel_equals_one_process_with_the_same_total_batch(ptb_slice_bin, tmp_path):
    """Exact by construction: float64 (`--double`) and plain SGD (fairseq's sgd is torch.optim.SGD).

    One process sums each gradient over 8 rows, two processes over 4 + 4 (then all-reduce): only the
    order of floating-point sums differs. A gradient element here is a sum of at most 8 rows x 50 steps =
    400 products, so the two orders differ by at most 400 u = 4.4e-14 of the sum of the products' magnitudes
    (u = 1.1e-16), which the per-token mean keeps <= 1; SGD moves weights by lr = 0.5 times the (clipped)
    gradient, so three steps differ by ~7e-14 (plus second-order effects of that), and atol 1e-9 is a wide
    margin. A wrong reduction (no all-reduce, a sum for a mean, another shard) changes a step by lr times a
    gradient element, >= 1e-4 here (checked below). Float32 with Adam could not be bounded like this: Adam
    maps a gradient near 0 to +-lr, so rounding noise of 1e-7 can move a weight by up to lr.
    """
    opt = ["--optimizer", "sgd", "--lr", 0.5, "--double"]  # fairseq sgd: torch.optim.SGD
    train_streams(ptb_slice_bin, tmp_path / "single", "--batch-size", 8, *opt, "--max-update", 3,
                  "--save-interval-updates", 1)
    outputs = train_two_ranks(ptb_slice_bin, tmp_path / "ddp", *opt, "--max-update", 3)
    assert "bsz=8" in outputs[0] or "bsz 8" in outputs[0]
    single = model_params(tmp_path / "single/checkpoint_last.pt")
    ddp = model_params(tmp_path / "ddp/checkpoint_last.pt")
    for name in single:
        assert single[name].dtype == torch.float64, name
        torch.testing.assert_close(ddp[name], single[name], rtol=0, atol=1e-9, msg=name)
    # the last two steps moved the weights far more than the tolerance (the comparison is not trivial)
    first = model_params(tmp_path / "single/checkpoint_1_1.pt")
    assert max((single[k] - first[k]).abs().max().item() for k in single) > 1e-4
    # Bugs: a data-parallel resume failed (rank 1 read rank 0's broadcast with a bare torch.load), and with
    # that worked around, every rank resumed from rank 0's carried rows. Resumed after update 2, the run
    # makes the same sums in the same order as the uninterrupted one: equal to float64 rounding (1e-12).
    train_two_ranks(ptb_slice_bin, tmp_path / "cut", *opt, "--max-update", 2)
    train_two_ranks(ptb_slice_bin, tmp_path / "cut", *opt, "--max-update", 3)
    resumed = model_params(tmp_path / "cut/checkpoint_last.pt")
    for name in ddp:
        torch.testing.assert_close(resumed[name], ddp[name], rtol=0, atol=1e-12, msg=name)


def train_two_ranks(data, save, *extra) -> list:
    """fairseq-train in two gloo processes (ranks 0 and 1) with 4 streams each; their outputs. The ranks meet
    through a file of their own (a free TCP port, found and released before rank 0 binds it, could be taken by
    another test worker in between)."""
    rendezvous = f"file://{save}.{uuid.uuid4().hex}.init"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "fairseq_cli.train", str(data), "--user-dir", USER_DIR,
             *map(str, STREAM_FLAGS), *map(str, TINY_LM), "--save-dir", str(save), "--batch-size", "4",
             *map(str, extra), "--distributed-backend", "gloo", "--distributed-no-spawn",
             "--distributed-world-size", "2", "--distributed-rank", str(rank),
             "--distributed-init-method", rendezvous, "--ddp-backend", "legacy_ddp"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=CLI_ENV, cwd=REPO,
        )
        for rank in range(2)
    ]
    outputs = [p.communicate(timeout=1200)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs[0][-3000:] + outputs[1][-3000:]
    return outputs


def test_sampling_is_reproducible_under_a_seed_and_scoring_matches_eval(trained_lm, ptb_slice_bin, ptb_slice_text):
    lm = CharLM.from_checkpoint(str(trained_lm), str(ptb_slice_bin))
    a = lm.sample("the company", length=80, temperature=0.8, seed=3)
    b = lm.sample("the company", length=80, temperature=0.8, seed=3)
    c = lm.sample("the company", length=80, temperature=0.8, seed=4)
    assert a == b and a != c and a.startswith("the company")
    assert len(a) == len("the company") + 80
    valid_lines = (ptb_slice_text / "valid.txt").read_text().splitlines()[:20]
    text = "\n".join(line.replace(" ", "").replace("_", " ") for line in valid_lines)
    assert 1.0 < lm.score(text) < 4.3
    proc = run_cli("hyperfairseq.sample", "--path", trained_lm, "--data", ptb_slice_bin, "--prefix", "the company",
                   "--length", 80, "--temperature", 0.8, "--seed", 3)
    assert proc.stdout.rstrip("\n") == a.rstrip("\n")


def test_byte_corpus_round_trip_and_a_smoke_step_of_the_enwik8_architecture(ptb_char_text, tmp_path):
    raw = (ptb_char_text / "test.txt").read_bytes()  # a real byte file (not enwik8, which is not obtainable here)
    src = tmp_path / "bytes.zip"
    with zipfile.ZipFile(src, "w") as z:
        z.writestr("enwik8", raw)
    out = tmp_path / "bin"
    run_cli("hyperfairseq.data.byte_corpus", "prepare", "--src", src, "--out", out, "--limit", 200_000)
    from fairseq.data import Dictionary, data_utils

    dictionary = Dictionary.load(str(out / "dict.txt"))
    splits = byte_corpus.split_bytes(raw[:200_000])
    for split, expected in splits.items():
        items = data_utils.load_indexed_dataset(str(out / split), dictionary)
        ids = torch.cat([items[i] for i in range(len(items))]).tolist()
        if split == "train":
            assert byte_corpus.ids_to_bytes(ids, dictionary) == expected
        assert len(ids) == len(expected)
    assert b" " in splits["train"] and dictionary.index("0x20") != dictionary.unk()
    save = tmp_path / "ck"
    run_cli("fairseq_cli.train", out, "--user-dir", USER_DIR, "--task", "char_lm", "--arch", "hyperlstm_lm_enwik8",
            "--batch-size", 2, "--tokens-per-sample", 10, "--optimizer", "adam", "--lr", 1e-3, "--max-update", 1,
            "--cpu", "--save-dir", save, "--disable-validation", "--no-save")


def test_bad_input_is_named(ptb_slice_bin, ptb_slice_text, trained_lm, tmp_path):
    base = [ptb_slice_bin, "--user-dir", USER_DIR, *STREAM_FLAGS, *TINY_LM, "--save-dir", tmp_path / "ck",
            "--max-update", 1]
    proc = run_cli("fairseq_cli.train", *base, "--max-tokens", 800, check=False)
    assert proc.returncode != 0 and "does not take --max-tokens (got 800)" in proc.stderr
    proc = run_cli("fairseq_cli.eval_lm", ptb_slice_bin, "--user-dir", USER_DIR, "--path", trained_lm, "--cpu",
                   "--task", "char_lm", "--batch-size", 2, "--tokens-per-sample", 10, "--max-tokens", 800,
                   check=False)  # eval-lm passes its own --max-tokens default on: the flag itself is refused
    assert proc.returncode != 0 and "does not take --max-tokens (got 800) to train or evaluate" in proc.stderr
    state = checkpoint_files.safe_load(str(trained_lm), str(trained_lm))
    state["cfg"]["task"]["data"] = "data-bin/moved_since_training"  # a relative path, given where training ran
    torch.save(state, tmp_path / "moved.pt")
    proc = run_cli("hyperfairseq.sample", "--path", tmp_path / "moved.pt", "--length", 5, check=False)
    assert proc.returncode == 2 and "names the data folder 'data-bin/moved_since_training' as it was given to " \
        "fairseq-train (relative to where training ran): point --data at" in proc.stderr, proc.stderr
    assert run_cli("hyperfairseq.sample", "--path", tmp_path / "moved.pt", "--length", 5, "--data", ptb_slice_bin)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    proc = run_cli("hyperfairseq.data.byte_corpus", "prepare", "--src", empty, "--out", tmp_path / "e", check=False)
    assert proc.returncode == 2 and "0 bytes; too few" in proc.stderr and not (tmp_path / "e").exists()
    other = tmp_path / "other"
    (tmp_path / "o.txt").write_bytes(b"some other text with another alphabet\n" * 200)
    run_cli("hyperfairseq.data.byte_corpus", "prepare", "--src", tmp_path / "o.txt", "--out", other)
    proc = run_cli("fairseq_cli.eval_lm", other, "--user-dir", USER_DIR, "--path", trained_lm, "--cpu",
                   "--task", "char_lm", "--batch-size", 2, "--tokens-per-sample", 10, "--gen-subset", "valid",
                   check=False)
    assert proc.returncode != 0  # the dictionary is named first, not the shapes it implies (one-hot inputs)
    assert "trained with another dictionary" in proc.stderr and "symbols): point --data" in proc.stderr
    # same size, other order: a dictionary mismatch that shapes cannot reveal
    lines = (ptb_slice_bin / "dict.txt").read_text().splitlines()
    lines[0], lines[1] = lines[1], lines[0]
    (tmp_path / "swapped.txt").write_text("\n".join(lines) + "\n")
    swapped = tmp_path / "swapped"
    run_cli("fairseq_cli.preprocess", "--only-source", "--srcdict", tmp_path / "swapped.txt", "--validpref",
            ptb_slice_text / "valid.txt", "--destdir", swapped, "--workers", 1)
    proc = run_cli("fairseq_cli.eval_lm", swapped, "--user-dir", USER_DIR, "--path", trained_lm, "--cpu",
                   "--task", "char_lm", "--batch-size", 2, "--tokens-per-sample", 10, "--gen-subset", "valid",
                   check=False)
    assert proc.returncode != 0 and "trained with another dictionary" in proc.stderr


def test_a_checkpoint_without_the_decoders_extra_state_loads_and_scores_the_same(trained_lm, ptb_slice_bin, tmp_path):
    """Bug: a checkpoint whose model lacks `decoder._extra_state` (the carried states and the dictionary's md5;
    e.g. averaged by a tool that keeps tensors only) failed with torch's raw "Missing key(s)". Nothing is then
    carried in from training, and eval-lm resets its streams at their start anyway: the same loss."""
    state = checkpoint_files.safe_load(str(trained_lm), str(trained_lm))
    del state["model"]["decoder._extra_state"]
    stripped = tmp_path / "stripped.pt"
    torch.save(state, stripped)
    flags = ("--task", "char_lm", "--tokens-per-sample", 10)
    assert eval_lm_bits(ptb_slice_bin, stripped, *flags) == eval_lm_bits(ptb_slice_bin, trained_lm, *flags)


def test_checkpoints_of_one_run_average_into_one_that_evaluates(ptb_slice_bin, tmp_path):
    """fairseq's average_checkpoints.py fails on the LM's extra state (not a tensor); ours averages the
    weights (float64 sums: the mean of two float32 values is exact to float32 rounding), keeps the dictionary
    check, drops the carried states, and refuses an input of another run by name."""
    train_streams(ptb_slice_bin, tmp_path / "run", "--batch-size", 8, "--max-update", 4, "--save-interval-updates", 2)
    a, b = tmp_path / "run/checkpoint_1_2.pt", tmp_path / "run/checkpoint_1_4.pt"
    out = tmp_path / "avg.pt"
    run_cli("hyperfairseq.average_checkpoints", "--inputs", a, b, "--output", out)
    pa, pb, mean = model_params(a), model_params(b), model_params(out)
    for name in pa:
        torch.testing.assert_close(mean[name], (pa[name].double() + pb[name].double()).div(2).to(pa[name].dtype),
                                   rtol=0, atol=0, msg=name)
    assert max((pa[k] - pb[k]).abs().max().item() for k in pa) > 1e-4  # the two inputs differ
    extra = checkpoint_files.safe_load(str(out), str(out))["model"]["decoder._extra_state"]
    assert extra["carried"] == {} and extra["dictionary_md5"]
    assert eval_lm_bits(ptb_slice_bin, out, "--task", "char_lm", "--tokens-per-sample", 10) < 8.0
    other = tmp_path / "other"
    run_cli("fairseq_cli.train", ptb_slice_bin, "--user-dir", USER_DIR, *STREAM_FLAGS, "--arch", "lstm_lm_ptb_1000",
            "--decoder-hidden-size", 48, "--save-dir", other, "--batch-size", 8, "--max-update", 1)
    proc = run_cli("hyperfairseq.average_checkpoints", "--inputs", a, other / "checkpoint_last.pt", "--output",
                   tmp_path / "bad.pt", check=False)
    assert proc.returncode == 2 and "hold different tensors" in proc.stderr and not (tmp_path / "bad.pt").exists()
    proc = run_cli("hyperfairseq.average_checkpoints", "--inputs", a, b, "--output", tmp_path / "no/avg.pt",
                   check=False)  # was torch's bare "Parent directory ... does not exist", after reading every input
    assert proc.returncode == 2 and f"the folder {tmp_path / 'no'} does not exist" in proc.stderr, proc.stderr


def test_hydra_config_trains_through_fairseq_hydra_train(ptb_slice_bin, tmp_path):
    config_dir = REPO / "examples/hydra/char_lm"
    proc = subprocess.run(
        [sys.executable, "-m", "fairseq_cli.hydra_train", "--config-dir", str(config_dir),
         "--config-name", "ln_hyperlstm_lm_ptb", f"task.data={ptb_slice_bin}", f"common.user_dir={USER_DIR}",
         "model.decoder_hidden_size=32", "model.hyper_hidden_size=8", "dataset.batch_size=4",
         "task.tokens_per_sample=20", "optimization.max_update=2", "common.cpu=true",
         f"checkpoint.save_dir={tmp_path}", "dataset.disable_validation=true", f"hydra.run.dir={tmp_path}/hydra"],
        capture_output=True, text=True, env=CLI_ENV, cwd=tmp_path, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = torch.load(tmp_path / "checkpoint_last.pt", map_location="cpu", weights_only=True)
    assert state["cfg"]["model"]["layer_norm"] is True and state["cfg"]["task"]["_name"] == "char_lm"
