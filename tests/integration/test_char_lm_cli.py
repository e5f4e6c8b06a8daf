"""End to end on real char-PTB through fairseq's CLIs, checkpoint safety, and bad input."""

import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import CLI_ENV, REPO, SMALL_LM, TRAIN_FLAGS, USER_DIR, run_cli

from hyperfairseq import params


def unigram_entropy_bits(text_file: Path) -> float:
    """Entropy (bits) of the symbol distribution of a char-format file, line ends counted as a symbol."""
    counts = Counter()
    for line in text_file.read_text().splitlines():
        counts.update(line.split())
        counts["</s>"] += 1
    total = sum(counts.values())
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def eval_lm_bits(data, checkpoint, *extra) -> float:
    proc = run_cli(
        "fairseq_cli.eval_lm", data, "--user-dir", USER_DIR, "--path", checkpoint, "--cpu",
        "--tokens-per-sample", 100, "--batch-size", 16, "--gen-subset", "valid", *extra,
    )
    line = [row for row in proc.stderr.splitlines() + proc.stdout.splitlines() if "Loss (base 2)" in row][-1]
    return float(line.split("Loss (base 2):")[1].split(",")[0])


def test_train_then_eval_lm_beats_the_unigram_entropy_of_real_ptb(trained_lm, ptb_slice_bin, ptb_slice_text):
    bits = eval_lm_bits(ptb_slice_bin, trained_lm)
    unigram = unigram_entropy_bits(ptb_slice_text / "valid.txt")
    assert 4.0 < unigram < 4.6, unigram  # sanity: char-PTB's unigram entropy
    assert bits < unigram - 0.3, f"eval-lm {bits:.3f} bits/char vs unigram entropy {unigram:.3f}"


def test_checkpoint_loads_with_weights_only(trained_lm):
    state = torch.load(trained_lm, map_location="cpu", weights_only=True)
    assert state["cfg"]["model"]["_name"] == "ln_hyperlstm_lm_ptb" and state["cfg"]["model"]["layer_norm"] is True
    assert any(".hyper." in k for k in state["model"])


@pytest.mark.parametrize(
    "arch,vocab,expected",
    [  # paper-spec §2.6: exact totals of the rows the paper's counts confirm (✓)
        ("hyperlstm_lm_ptb", 50, 4_911_874),
        ("ln_hyperlstm_lm_ptb", 50, 4_922_642),
        ("ln_hyperlstm_lm_ptb_2layer", 50, 14_406_690),
        ("lstm_lm_ptb_1000", 50, 4_254_050),
        ("lstm_lm_ptb_1250", 50, 6_567_550),
        ("lstm_lm_ptb_2layer", 50, 12_258_050),
        ("ln_lstm_lm_ptb", 50, 4_260_050),
        ("hyperlstm_lm_enwik8", 205, 18_708_213),
        ("ln_hyperlstm_lm_enwik8_2048", 205, 26_539_725),
        ("lstm_lm_enwik8_1800", 205, 14_812_405),
        ("lstm_lm_enwik8_2000", 205, 18_058_205),
        ("ln_lstm_lm_enwik8", 205, 14_823_205),
    ],
)
def test_parameter_counts_equal_the_papers(arch, vocab, expected, capsys):
    assert params.main(["--arch", arch, "--vocab", str(vocab)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"total: {expected}"
    paper = float(next(line for line in lines if line.startswith("paper:")).split()[1])
    assert round(expected / 1e6, 2) == paper


def test_parameter_counts_of_the_two_unexplained_rows_are_reported_not_hidden(capsys):
    # R16: 5.06 M and 18.78 M are printed by the paper; the formula gives 5,085,170 and 18,727,749.
    for arch, vocab, ours in (
        ("ln_hyperlstm_lm_ptb_large_emb", 50, 5_085_170),
        ("ln_hyperlstm_lm_enwik8", 205, 18_727_749),
    ):
        params.main(["--arch", arch, "--vocab", str(vocab)])
        assert capsys.readouterr().out.splitlines()[-1] == f"total: {ours}"


def test_params_cli_runs_as_a_module_and_rejects_unknown_arch():
    proc = run_cli("hyperfairseq.params", "--arch", "hyperlstm_lm_ptb", "--vocab", 50)
    out = proc.stdout.splitlines()
    assert out[0].startswith("main: ") and out[-1] == "total: 4911874"
    bad = run_cli("hyperfairseq.params", "--arch", "hyperlstm_lm_nope", "--vocab", 50, check=False)
    assert bad.returncode != 0 and "unknown --arch 'hyperlstm_lm_nope'" in bad.stderr


# -- bad input -----------------------------------------------------------------------------------


def last_line(proc) -> str:
    return [line for line in proc.stderr.splitlines() if line.strip()][-1]


def test_unknown_architecture_and_bad_option_values_are_named(ptb_slice_bin, tmp_path):
    common = [ptb_slice_bin, "--user-dir", USER_DIR, "--task", "language_modeling", *TRAIN_FLAGS,
              "--max-update", 1, "--save-dir", tmp_path / "ck", "--disable-validation"]
    proc = run_cli("fairseq_cli.train", *common, "--arch", "hyperlstm_lm_bogus", check=False)
    assert proc.returncode != 0 and "invalid choice: 'hyperlstm_lm_bogus'" in proc.stderr
    proc = run_cli("fairseq_cli.train", *common, "--arch", "hyperlstm_lm_ptb", *SMALL_LM[:4], "--n-z", 0, check=False)
    assert proc.returncode != 0 and "--n-z must be a positive integer; got 0" in last_line(proc)
    proc = run_cli("fairseq_cli.train", *common, "--arch", "hyperlstm_lm_ptb", "--recurrent-dropout", 0.9 * 10,
                   check=False)
    assert proc.returncode != 0 and "--recurrent-dropout is a drop probability" in last_line(proc)
    assert not (tmp_path / "ck" / "checkpoint_last.pt").exists()


def test_checkpoint_of_another_architecture_is_rejected_naming_the_difference(trained_lm, ptb_slice_bin, tmp_path):
    save = tmp_path / "lstm"
    proc = run_cli(
        "fairseq_cli.train", ptb_slice_bin, "--user-dir", USER_DIR, "--task", "language_modeling",
        "--arch", "lstm_lm_ptb_1000", *SMALL_LM[:2], *TRAIN_FLAGS, "--max-update", 2, "--save-dir", save,
        "--restore-file", trained_lm, "--disable-validation", check=False,
    )
    assert proc.returncode != 0
    line = last_line(proc)  # one line, no traceback (issue 12): what differs, and the flag to check
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "checkpoint does not fit this HyperLSTMLanguageModel" in line and "--arch" in line, line
    assert "not in model: decoder.rnn.layers.0.hyper" in line, line
    assert not (save / "checkpoint_last.pt").exists(), "nothing may be written after a failed restore"


def prepare(*args):
    return subprocess.run(["bash", str(REPO / "scripts/prepare_ptb_char.sh"), *map(str, args)],
                          capture_output=True, text=True, env=CLI_ENV, cwd=REPO, timeout=300)


def test_prepare_rejects_missing_empty_and_corrupt_sources_without_leaving_output(tmp_path):
    src = tmp_path / "raw"
    src.mkdir()
    out = tmp_path / "out"
    proc = prepare(out, "--source", src)
    assert proc.returncode != 0 and "ptb.train.txt: missing" in proc.stderr
    for split in ("train", "valid", "test"):
        (src / f"ptb.{split}.txt").write_text("")
    proc = prepare(out, "--source", src)
    assert proc.returncode != 0 and "ptb.train.txt: md5" in proc.stderr
    (src / "ptb.train.txt").write_text(" a corrupted copy \n")
    proc = prepare(out, "--source", src)
    assert proc.returncode != 0 and "differs from the standard PTB file" in proc.stderr
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["raw"], "no half-written output"


def test_out_of_dictionary_characters_are_named_with_file_and_line(tmp_path, ptb_slice_bin):
    text = tmp_path / "mine.txt"
    text.write_text("the company said\nprices fell 5 %\nthe café closed\n")
    proc = run_cli("hyperfairseq.data.char_corpus", "text", "--src", text, "--out", tmp_path / "c.txt",
                   "--dict", ptb_slice_bin / "dict.txt", check=False)
    symbols = {line.rsplit(" ", 1)[0] for line in (ptb_slice_bin / "dict.txt").read_text().splitlines()}
    assert "%" not in symbols and "é" not in symbols  # the premise: both lines hold a symbol outside it
    assert proc.returncode == 2 and f"{text}:2: character '%'" in proc.stderr, proc.stderr  # the first, by line
    assert not (tmp_path / "c.txt").exists()
    text.write_text("the company said\nthe café closed\n")  # a non-ASCII symbol is named as well
    proc = run_cli("hyperfairseq.data.char_corpus", "text", "--src", text, "--out", tmp_path / "c.txt",
                   "--dict", ptb_slice_bin / "dict.txt", check=False)
    assert proc.returncode == 2 and f"{text}:2: character 'é' (U+00E9)" in proc.stderr, proc.stderr
    assert not (tmp_path / "c.txt").exists()
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    proc = run_cli("hyperfairseq.data.char_corpus", "text", "--src", empty, "--out", tmp_path / "e.txt", check=False)
    assert proc.returncode == 2 and "empty" in proc.stderr


def test_train_log_is_json_with_falling_loss(ptb_slice_bin, tmp_path):
    """The plain LSTM baseline runs through the same code path and learns too."""
    log = tmp_path / "log.json"
    run_cli(
        "fairseq_cli.train", ptb_slice_bin, "--user-dir", USER_DIR, "--task", "language_modeling",
        "--arch", "lstm_lm_ptb_1000", *SMALL_LM[:2], *TRAIN_FLAGS, "--max-update", 30, "--save-dir", tmp_path,
        "--disable-validation", "--log-file", log, "--no-save",
    )
    losses = [
        json.loads(line[line.index("{"):])["loss"]
        for line in log.read_text().splitlines()
        if '"loss"' in line and "{" in line
    ]
    assert len(losses) >= 3 and float(losses[-1]) < float(losses[0]) - 0.5


def test_stock_task_with_one_line_per_sample_trains_and_scores_every_line_whatever_the_batch(
        trained_lm, ptb_slice_bin, tmp_path):
    """fairseq's language_modeling task with --sample-break-mode eos (right-padded lines; it crashed in
    fairseq's TokenBlockDataset under numpy 2 before fairseq_patches §10): fairseq-train runs, and
    fairseq-eval-lm scores the same lines at batch 16 (padded) as at batch 1 (none). Loss printed to 4
    decimals; float32 sums of ~17k per-symbol losses in another order differ by ~1e-7, so the two agree to
    one unit of the last digit."""
    eos = ["--task", "language_modeling", "--sample-break-mode", "eos", "--tokens-per-sample", 400]
    run_cli("fairseq_cli.train", ptb_slice_bin, "--user-dir", USER_DIR, *eos, "--arch", "ln_hyperlstm_lm_ptb",
            *SMALL_LM, "--optimizer", "adam", "--lr", 0.003, "--clip-norm", 1.0, "--batch-size", 16, "--cpu",
            "--max-update", 3, "--num-workers", 0, "--disable-validation", "--no-save",
            "--save-dir", tmp_path / "ck")  # fairseq checks that the save dir is writable even with --no-save
    padded, single = (eval_lm_bits(ptb_slice_bin, trained_lm, *eos, "--batch-size", b) for b in (16, 1))
    assert abs(padded - single) <= 1.5e-4 and padded < 4.0, (padded, single)


def test_bf16_trains_on_cpu_without_asking_for_a_tpu_and_fp16_is_refused_by_name(ptb_slice_bin, tmp_path):
    """fairseq's parser turns --bf16 into --tpu too (then torch_xla is asked for a TPU and training fails);
    fairseq_patches §11 keeps tpu off unless asked for: bfloat16 weights on the CPU (and on CUDA). --fp16,
    which fairseq's optimizer runs on CUDA only, is refused in one line naming what works on a CPU; --amp,
    which trains in float32 there, says so."""
    run_cli("fairseq_cli.train", ptb_slice_bin, "--user-dir", USER_DIR, "--task", "char_lm", "--arch",
            "ln_hyperlstm_lm_ptb", *SMALL_LM, *TRAIN_FLAGS, "--bf16", "--max-update", 4, "--save-dir", tmp_path,
            "--disable-validation")
    common = torch.load(tmp_path / "checkpoint_last.pt", map_location="cpu", weights_only=True)["cfg"]["common"]
    assert common["bf16"] is True and common["tpu"] is False, common
    proc = run_cli("fairseq_cli.train", ptb_slice_bin, "--user-dir", USER_DIR, "--task", "char_lm", "--arch",
                   "ln_hyperlstm_lm_ptb", *SMALL_LM, *TRAIN_FLAGS, "--fp16", "--max-update", 4, "--save-dir",
                   tmp_path / "fp16", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert last_line(proc).endswith("--fp16 needs a CUDA GPU (fairseq's FP16 optimizer keeps its float32 weights "
                                    "there); on the CPU train with --bf16"), last_line(proc)
    proc = run_cli("fairseq_cli.train", ptb_slice_bin, "--user-dir", USER_DIR, "--task", "char_lm", "--arch",
                   "ln_hyperlstm_lm_ptb", *SMALL_LM, *TRAIN_FLAGS, "--amp", "--max-update", 1, "--save-dir",
                   tmp_path / "amp", "--disable-validation")  # trains, in float32: fairseq's autocast is CUDA's
    assert "--amp does nothing without a CUDA GPU" in proc.stdout + proc.stderr, proc.stderr[-2000:]


def test_fairseqs_python_api_and_interactive_score_and_continue_plain_text(trained_lm, ptb_slice_bin):
    """`--task char_lm` checkpoints through fairseq's own inference API (hub `from_pretrained`, and
    fairseq-interactive): plain text in and out (`--bpe char_corpus` chosen from the dictionary), the same
    per-symbol log-probabilities as `hyperfairseq.sample` (one float32 computation on one row, two
    log-softmax calls: agree to 1e-5), and greedy continuations that keep the prompt and agree with each other."""
    from hyperfairseq.models.hyperlstm_lm import HyperLSTMLanguageModel
    from hyperfairseq.sample import CharLM

    hub = HyperLSTMLanguageModel.from_pretrained(str(trained_lm.parent), trained_lm.name, str(ptb_slice_bin)).eval()
    text = "the company said it expects"
    scores = hub.score(text)["positional_scores"]
    ours = CharLM.from_checkpoint(str(trained_lm), str(ptb_slice_bin))
    ids = ours.encode(text, line_ends=False)
    logits, _ = ours.run([ours.dictionary.eos()] + ids[:-1])
    expected = torch.log_softmax(logits, -1)[torch.arange(len(ids)), torch.tensor(ids)]
    assert scores.shape == expected.shape and torch.allclose(scores, expected, atol=1e-5), (scores, expected)

    greedy = hub.sample("the company", beam=1, max_len_b=40)
    assert greedy.startswith("the company") and len(greedy) > len("the company") and "_" not in greedy, greedy
    proc = subprocess.run(
        [sys.executable, "-m", "fairseq_cli.interactive", str(ptb_slice_bin), "--user-dir", USER_DIR, "--task",
         "char_lm", "--path", str(trained_lm), "--cpu", "--beam", "1", "--max-len-b", "40",
         "--max-tokens", "4000"],  # lines may be batched by tokens (refused with a streams message before)
        input="the company\n", capture_output=True, text=True, env=CLI_ENV, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    detokenized = [line.split("\t")[2] for line in proc.stdout.splitlines() if line.startswith("D-0\t")]
    assert detokenized == [greedy], (detokenized, greedy)
