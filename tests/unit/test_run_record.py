"""Run records: their shared fields (`stamp`), whole files (`write`), and their commit: from git, or on a copy
without .git (the device machine's) as the caller says."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from hyperfairseq import run_record
from hyperfairseq.run_record import git_commit


def test_a_checkout_names_its_head(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "a.txt").write_text("one\n")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    (tmp_path / "docs" / "runs").mkdir(parents=True)
    (tmp_path / "docs" / "runs" / "r.json").write_text("{}\n")
    (tmp_path / "docs" / "figures").mkdir()
    (tmp_path / "docs" / "figures" / "f.json").write_text("{}\n")
    subprocess.run([*git, "add", "a.txt", "docs"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert git_commit(tmp_path) == head
    (tmp_path / "docs" / "runs" / "r.json").write_text('{"new": 1}\n')  # a record the last command wrote
    (tmp_path / "docs" / "figures" / "f.json").write_text('{"new": 1}\n')  # a figure's record
    assert git_commit(tmp_path) == head
    (tmp_path / "a.txt").write_text("two\n")
    assert git_commit(tmp_path) == head + "+dirty"


def test_a_copy_without_git_names_the_stated_commit_or_unknown(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repository above tmp_path either
    monkeypatch.delenv("HYPERFAIRSEQ_COMMIT", raising=False)
    assert git_commit(tmp_path) == "unknown"
    monkeypatch.setenv("HYPERFAIRSEQ_COMMIT", "0123abc")
    assert git_commit(tmp_path) == "0123abc"


def test_a_stamp_carries_the_shared_fields_and_a_caller_may_replace_one():
    record = run_record.stamp("python x.py", hardware="AMD EPYC, 1 thread(s)", result={"bpc": 1.2})
    assert {"command", "commit", "date", "hardware", "versions", "result"} <= record.keys()
    assert record["command"] == "python x.py" and record["hardware"] == "AMD EPYC, 1 thread(s)"
    assert record["versions"]["torch"] and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["date"])


def test_a_stamp_names_paths_inside_the_checkout_relative_to_it():
    command = f"python {run_record.REPO}/examples/x.py --out {run_record.REPO}/docs/runs/x.json --data /srv/data"
    assert run_record.stamp(command)["command"] == "python examples/x.py --out docs/runs/x.json --data /srv/data"


def test_a_record_is_written_whole_or_the_old_one_is_kept(tmp_path, monkeypatch):
    path = tmp_path / "runs" / "demo.json"
    run_record.write(path, {"result": 1})
    assert json.loads(path.read_text()) == {"result": 1}
    with pytest.raises(TypeError):  # not JSON: the write fails before the rename
        run_record.write(path, {"result": object()})
    assert json.loads(path.read_text()) == {"result": 1}


def test_the_cpu_model_names_family_and_vector_width_where_cpuinfo_has_them():
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = run_record.cpu_model()
    assert name and ("cpu family" not in text or "family " in name)
