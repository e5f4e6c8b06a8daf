"""scripts/synthesis_hershey.sh, the reproduction of the README's synthesis records, in its --smoke form:
real Hershey-rendered KJV lines, tiny models, two stages (the second resumes the first), every record.

The full run (--updates 500,1000,1500) is what made docs/runs/synthesis_*.json; this checks the same code
path end to end at 2 and 3 updates. Missing data fails under CI and skips elsewhere (conftest.require_data).
"""

import hashlib
import json
import os
import subprocess
import sys

from conftest import REPO, require_data

from hyperfairseq.data import hershey

SCRIPT = REPO / "scripts" / "synthesis_hershey.sh"
ROWS = ("hyper", "lstm", "uncond")


def run_script(tmp_path, *args):
    env = {**os.environ, "PYTHON": sys.executable, "SMOKE_DIR": str(tmp_path / "work")}
    return subprocess.run(["bash", str(SCRIPT), "--smoke", "--runs-dir", str(tmp_path / "runs"), *args],
                          capture_output=True, text=True, env=env, timeout=900)


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_stages_resume_and_record_every_row(tmp_path):
    require_data("_pkgs/" + hershey.WHEEL_GLOB, "bash scripts/get_handwriting_data.sh data/_pkgs")
    require_data("_pkgs/sword/usr/share/sword/modules/texts/ztext/engKJV2006eb/nt.bzz",
                 "bash scripts/get_bible_data.sh")
    figure = REPO / "docs" / "figures" / "synthesis_sample.png"
    before = digest(figure)
    proc = run_script(tmp_path, "--updates", "2,3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = tmp_path / "runs"
    for row in ROWS:
        first = json.loads((runs / f"synthesis_hershey_{row}_smoke.json").read_text())
        second = json.loads((runs / f"synthesis_hershey_{row}_3_smoke.json").read_text())
        assert (first["result"]["updates"], second["result"]["updates"]) == (2, 3)
        assert second["result"]["train"]["train_num_updates"] == "3"
        assert second["command"].startswith(f"cp -r {tmp_path}/work/checkpoints/synthesis_smoke/{row} ")
        assert "resumes the 2-update run" in second["command"]
        assert "--max-update 3 " in second["command"] and "--max-update 2 " in first["command"]
        # the second stage continued the first one's checkpoint instead of starting again
        out = (tmp_path / "work" / "_3" / f"{row}.out").read_text()
        assert "Loaded checkpoint" in out and "(epoch 1 @ 2 updates)" in out, out[-2000:]
    for row in ("hyper", "lstm"):
        for suffix in ("_smoke", "_3_smoke"):
            alignment = json.loads((runs / f"synthesis_alignment_{row}{suffix}.json").read_text())
            legibility = json.loads((runs / f"synthesis_legibility_{row}{suffix}.json").read_text())
            assert alignment["result"]["lines"] == 40 and legibility["result"]["texts"] == 10
    assert digest(figure) == before, "--smoke must not rewrite the README figure"


def test_stages_must_ascend(tmp_path):
    proc = run_script(tmp_path, "--updates", "3,2")
    assert proc.returncode == 1
    assert "--updates 3,2: expected ascending positive numbers of updates" in proc.stderr
    assert not (tmp_path / "runs").exists() or not os.listdir(tmp_path / "runs")
