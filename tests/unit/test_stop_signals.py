"""stop_signals: a second SIGINT/SIGTERM exits at once and cannot be swallowed, except that a checkpoint
file being written is completed first (issue 12 §2; the CI failure of 2026-12-02, where a SIGTERM that
landed in torch.save became a RuntimeError, fairseq retried the save and training went on).

Each case runs in its own process: the exit is `os._exit`."""

import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from hyperfairseq.stop_signals import StopRequest

PRELUDE = """
import os, signal, sys, time
import torch
import hyperfairseq  # installs the fairseq patches
from fairseq import checkpoint_utils
from hyperfairseq.fairseq_patches import STOP
STOP.install()
def send(sig):
    os.kill(os.getpid(), sig)
    time.sleep(0.2)  # the handler runs in this interval at the latest
"""


def run(body: str) -> subprocess.CompletedProcess:
    code = PRELUDE + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_a_second_signal_inside_torch_save_exits_once_the_file_is_complete(tmp_path):
    path = tmp_path / "checkpoint_1_3.pt"
    result = run(f"""
        import collections
        STOP.armed = True
        send(signal.SIGINT)
        class SignalledWhilePickled:  # the second signal lands inside torch.save, deterministically
            def __reduce__(self):
                os.kill(os.getpid(), signal.SIGTERM)
                return (collections.OrderedDict, ((("step", 3),),))  # a global weights_only loads
        checkpoint_utils.torch_persistent_save({{"w": torch.arange(1000.0), "x": SignalledWhilePickled()}},
                                               {str(path)!r})
        print("went on after the save")
    """)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert "went on" not in result.stdout
    assert "SIGTERM again: exiting at once, as soon as checkpoint_1_3.pt is written" in result.stderr
    assert "checkpoint_1_3.pt is written; exiting" in result.stderr
    saved = torch.load(path, weights_only=True)
    assert torch.equal(saved["w"], torch.arange(1000.0)) and saved["x"] == {"step": 3}
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no .tmp left


def test_a_second_signal_during_a_checkpoint_copy_leaves_the_old_file_or_the_new(tmp_path):
    src, dst = tmp_path / "checkpoint_1_3.pt", tmp_path / "checkpoint_last.pt"
    src.write_bytes(b"new" * 100000)
    dst.write_bytes(b"old")
    result = run(f"""
        import shutil
        from hyperfairseq import fairseq_patches
        STOP.armed = True
        send(signal.SIGINT)
        def signalled_copy(src, tmp):  # the second signal lands mid-copy: part of the file is written
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                fout.write(fin.read(1000))
                os.kill(os.getpid(), signal.SIGTERM)
                shutil.copyfileobj(fin, fout)
        fairseq_patches._copy_file = signalled_copy
        checkpoint_utils.PathManager.copy({str(src)!r}, {str(dst)!r}, overwrite=True)
        print("went on after the copy")
    """)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert "went on" not in result.stdout and "checkpoint_last.pt is written; exiting" in result.stderr
    assert dst.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([dst.name, src.name])


def test_a_second_signal_outside_a_write_cannot_be_swallowed():
    result = run("""
        STOP.armed = True
        send(signal.SIGINT)
        print("first signal: stop requested", STOP.signum, flush=True)
        try:
            send(signal.SIGTERM)
        except BaseException:
            print("swallowed")
        print("went on")
    """)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert result.stdout.split("\n")[0] == f"first signal: stop requested {int(signal.SIGINT)}"
    assert "swallowed" not in result.stdout and "went on" not in result.stdout
    assert "SIGINT: finishing this update, then saving checkpoint_last.pt" in result.stderr
    assert "SIGTERM again: exiting at once; the updates since the last checkpoint are lost" in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_before_training_the_first_signal_exits_at_once(sig):
    result = run(f"""
        send(signal.{sig.name})
        print("went on")
    """)
    assert result.returncode == 128 + sig and "went on" not in result.stdout, result.stderr
    assert f"stopped by {sig.name} before training started; nothing was lost" in result.stderr


def test_leaving_the_context_restores_the_previous_handlers():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with StopRequest(unit="step") as stop:
        assert all(signal.getsignal(s) == stop._handle for s in before)
    assert {s: signal.getsignal(s) for s in before} == before


def test_the_same_signal_delivered_twice_at_once_is_one_request_and_a_later_one_exits():
    """GNU `timeout -s INT` sends its signal to the command and again to its process group: both deliveries
    arrive together and must stop gracefully, as one; the same signal sent again after DUPLICATE_SECONDS
    (1 s; the test waits 1.1) is a person's second request and exits at once."""
    result = run("""
        STOP.armed = True
        os.kill(os.getpid(), signal.SIGINT)
        send(signal.SIGINT)
        print("went on", STOP.signum, flush=True)
        time.sleep(1.1)
        send(signal.SIGINT)
        print("went on again")
    """)
    assert result.returncode == 128 + signal.SIGINT, result.stderr
    assert result.stdout.splitlines() == [f"went on {int(signal.SIGINT)}"]
    assert result.stderr.count("SIGINT: finishing this update") == 1
    assert "SIGINT again: exiting at once" in result.stderr
