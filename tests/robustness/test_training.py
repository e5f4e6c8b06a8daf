"""fairseq-train with the plugin: re-runs, resumes with another layout, damaged and interrupted
checkpoints, signals (issue 12 §2), and the one-line errors and refused pickles in real processes (§3, §4).

Cases that stop before training run fairseq-train in this process; the others are real processes,
killed or signalled at a point made deterministic: a signal only after the first checkpoint exists, a
SIGKILL only while a copy stalls (stalled_copy_train.py, a fairseq-train whose copies stall).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from . import inputs as I
from .conftest import lm_train_args
from .harness import REPO, Case, Result, expected_outcome, run_case

TIMEOUT = 240


def save(env) -> Path:
    return env.work / "save"


def copy_run(env):
    I.copied(env.lm_save, save(env))


def resume_args(env, *extra, max_update=4):
    return lm_train_args(env.lm_data, save(env), "--max-update", max_update, *extra)


def updates(path):
    """The update a checkpoint holds, or a word saying why it has none."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)["optimizer_history"][-1]["num_updates"]
    except Exception as err:  # what a damaged file raises varies
        return f"unreadable ({type(err).__name__})"


STALLED_COPY_TRAIN = Path(__file__).with_name("stalled_copy_train.py")


def start(env, *extra, max_update=4, stall_marker=None) -> subprocess.Popen:
    """fairseq-train in its own process; with `stall_marker`, one whose copies stall (stalled_copy_train.py)."""
    log = open(env.work / "train.log", "a")
    args = resume_args(env, *extra, max_update=max_update)
    program = ["-m", "fairseq_cli.train"] if stall_marker is None else [str(STALLED_COPY_TRAIN), str(stall_marker)]
    return subprocess.Popen([sys.executable, *program, *map(str, args)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"})


def wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.time() + TIMEOUT
    while not path.exists():
        if proc.poll() is not None or time.time() > deadline:
            raise AssertionError(f"{path} never appeared:\n{proc_log(path.parent.parent)}")
        time.sleep(0.05)


def proc_log(work: Path) -> str:
    return (work / "train.log").read_text() if (work / "train.log").exists() else ""


def finish(proc, env, note="") -> Result:
    try:
        rc = proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:  # it did not stop (fairseq without the plugin may ignore SIGINT)
        proc.kill()
        rc = proc.wait()
        note += f"; still running after {TIMEOUT} s, killed"
    log = proc_log(env.work)
    return Result(rc, note, log, "Traceback (most recent call last)" in log)


def signalled(signals):
    """Train far, send `signals` once the first checkpoint exists; note the update the checkpoint holds."""
    def run(env, argv):
        proc = start(env, max_update=100000)
        wait_for(save(env) / "checkpoint_last.pt", proc)
        if len(signals) > 1:  # "at once": stopped, they arrive together (the test process may be descheduled
            proc.send_signal(signal.SIGSTOP)  # between two sends long enough for an update and its save)
        for sig in signals:
            proc.send_signal(sig)
        if len(signals) > 1:
            proc.send_signal(signal.SIGCONT)
        result = finish(proc, env)
        result.stdout = f"checkpoint_last.pt at update {updates(save(env) / 'checkpoint_last.pt')}{result.stdout}"
        return result
    run.__name__ = "train_signal_" + "_".join(s.name for s in signals)
    return run


def saved_where_it_says(env, result):
    """The message names the update the saved checkpoint holds, and that checkpoint is intact."""
    held = result.stdout.split()[-1]
    if f"after update {held}; saved" not in result.stderr:
        return f"message does not match the checkpoint ({result.stdout}): {result.stderr.strip().splitlines()[-1:]}"
    return None


def killed_mid_copy(env, argv):
    """SIGKILL while checkpoint_last.pt is being replaced; then run the same command again."""
    marker = env.work / "copy_stalled"
    proc = start(env, "--save-interval-updates", 2, max_update=4, stall_marker=marker)
    wait_for(marker, proc)
    proc.kill()
    proc.wait(timeout=TIMEOUT)
    last = save(env) / "checkpoint_last.pt"
    note = f"after the kill: checkpoint_last.pt at update {updates(last)}"  # raises if it were truncated
    result = finish(start(env, "--save-interval-updates", 2, max_update=6), env, note)
    result.stdout = f"{note}; after the resume: update {updates(last)}"
    return result


def old_then_resumed(env, result):
    if result.stdout != "after the kill: checkpoint_last.pt at update 2; after the resume: update 6":
        return result.stdout
    return None if "checkpoint_1_4.pt" in result.stderr else "did not resume from checkpoint_1_4.pt"


def resumes_from_intact(env, argv):
    copy_run(env)
    I.truncated(save(env) / "checkpoint_last.pt", save(env) / "checkpoint_last.pt", 0.3)
    result = finish(start(env, max_update=3), env)
    result.stdout = f"update {updates(save(env) / 'checkpoint_last.pt')}"
    return result


def continued(env, result):
    if "resuming from" not in result.stderr or "checkpoint_1_2.pt" not in result.stderr:
        return "no 'resuming from ... checkpoint_1_2.pt' in the log"
    return None if result.stdout == "update 3" else f"ended at {result.stdout}, expected update 3"


def nothing_to_do(env, result):
    return None if "nothing to do" in result.stderr else "no 'nothing to do' message"


def damage_all(env):
    copy_run(env)
    for name in ("checkpoint_last.pt", "checkpoint_1_1.pt", "checkpoint_1_2.pt"):
        I.truncated(save(env) / name, save(env) / name, 0.5)


def resume_case(id, message, what, *extra, expect="error", check=None, setup=copy_run, max_update=4):
    return Case(id=f"train-{id}", entry="train_setup", input=what, message=message, expect=expect, check=check,
                setup=setup, args=lambda env: resume_args(env, *extra, max_update=max_update),
                protect=lambda env: [save(env)])


CASES = [
    resume_case("rerun-finished", "", "the same command again after --max-update was reached", expect="ok",
                check=nothing_to_do, max_update=2),
    resume_case("resume-other-tokens-per-sample", "--tokens-per-sample 10 differs from the checkpoint's 20",
                "resume with --tokens-per-sample 10 (trained with 20)", "--tokens-per-sample", 10),
    resume_case("resume-other-batch-size", "--batch-size 8 differs from the checkpoint's 4",
                "resume with --batch-size 8 (trained with 4)", "--batch-size", 8),
    resume_case("resume-reset-every-segment", "--reset-every-segment True differs",
                "resume with --reset-every-segment (trained carrying state)", "--reset-every-segment"),
    resume_case("resume-other-architecture", "checkpoint does not fit",
                "resume a HyperLSTM run with --no-hyper (an LSTM)", "--no-hyper"),
    resume_case("all-checkpoints-damaged", "no intact checkpoint to resume from",
                "every checkpoint in --save-dir truncated", setup=damage_all),
    Case(id="train-resume-truncated-last", entry=resumes_from_intact, input="checkpoint_last.pt truncated, "
         "checkpoint_1_2.pt intact", expect="ok", check=continued),
    Case(id="train-kill-mid-copy", entry=killed_mid_copy, input="SIGKILL while checkpoint_last.pt is replaced",
         expect="ok", check=old_then_resumed),
    Case(id="train-sigterm", entry=signalled([signal.SIGTERM]), input="SIGTERM during training",
         message="stopped by SIGTERM", exit_code=128 + signal.SIGTERM, check=saved_where_it_says),
    Case(id="train-sigint", entry=signalled([signal.SIGINT]), input="SIGINT (Ctrl-C) during training",
         message="stopped by SIGINT", exit_code=128 + signal.SIGINT, check=saved_where_it_says),
    Case(id="train-sigint-then-sigterm", entry=signalled([signal.SIGINT, signal.SIGTERM]),
         input="SIGINT and at once SIGTERM", message="SIGTERM again: exiting at once", exit_code=128 + signal.SIGTERM),
    Case(id="train_process-dict-duplicate", entry="train", input="a real fairseq-train on a dict.txt with a "
         "duplicated line", message="appears twice", exit_code=1,
         setup=lambda env: (I.copied(env.lm_data, env.work / "data"),
                            open(env.work / "data" / "dict.txt", "a").write("_ 3\n")),
         args=lambda env: lm_train_args(env.work / "data", save(env), "--max-update", 1)),
    # torch reads TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD at each torch.load, so setting it in this process is faithful
    Case(id="sample-crafted-pickle-forced-unsafe-default", entry="sample",
         input="a crafted pickle with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1", message="refused", exit_code=2,
         env_vars={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}, args=lambda env: ["--path", env.crafted],
         markers=lambda env: [env.pwned_marker]),
    Case(id="eval_lm_process-crafted-pickle-forced-unsafe-default", entry="eval_lm_process",
         input="fairseq-eval-lm on a crafted pickle with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1", message="refused",
         exit_code=1, env_vars={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"},
         args=lambda env: I.eval_lm_args(env.lm_data, env.crafted), markers=lambda env: [env.pwned_marker]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_training_robustness(case, env):
    outcome, detail, result = run_case(case, env)
    assert outcome == expected_outcome(case), f"{detail}\n{result.stderr[-2000:]}"
