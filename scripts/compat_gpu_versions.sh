#!/usr/bin/env bash
# The test suite under the GPU machine's torch and triton, on this CPU: the Triton kernels interpreted by
# triton 3.6.0, the host code (launches, custom ops, CUDA-graph plan logic, torch.compile) on torch 2.11.0,
# before a GPU minute is spent on a version mismatch (gpu-design §5: the H200 image has Python 3.12,
# torch 2.11.0, triton 3.6.0; ours is 3.11 / 2.14.1 / 3.8.0). Python stays this machine's 3.11.
#
#   bash scripts/compat_gpu_versions.sh [RECORD]     (default docs/runs/compat_torch211_triton36.json)
#
# Makes (or reuses) a virtualenv at $VENV (default /tmp/venv-gpu-versions, ~5 GB: torch's CUDA wheel and
# its libraries) with those versions pinned and the package installed editable, runs the README's test
# command in it, and writes a run record with the counts and every failed test. Deselected: the AOT gate's
# triton 3.8.0 case (that venv holds only 3.6.0; the 3.6.0 case runs). Needs the data of
# scripts/get_data.sh and .venv-triton36 (.ci/run makes both). Exit status: pytest's.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORD=${1:-docs/runs/compat_torch211_triton36.json}
VENV=${VENV:-/tmp/venv-gpu-versions}
PINS=(torch==2.11.0 torchvision==0.26.0 triton==3.6.0 "numpy<2.4")
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONWARNINGS=ignore

have() {
  "$VENV/bin/python" -c "import torch, triton, fairseq, hyperfairseq; assert torch.__version__.startswith('2.11.0') \
and triton.__version__ == '3.6.0'" 2>/dev/null
}
if ! have; then
  rm -rf "$VENV" && python3 -m venv "$VENV"
  constraints=$(mktemp); printf '%s\n' "${PINS[@]}" > "$constraints"
  log=$(mktemp)
  "$VENV/bin/pip" install -q -c "$constraints" "${PINS[@]}" -e ".[dev]" tensorboardX > "$log" 2>&1 ||
    { grep -v "^WARNING: Location" "$log" >&2; echo "error: pip install into $VENV failed" >&2; exit 1; }
  have || { echo "error: $VENV does not hold torch 2.11.0 and triton 3.6.0 after the install" >&2; exit 1; }
fi

junit=$(mktemp --suffix .xml)
began=$(date +%s)
set +e
# its own extension folder: the C++ kernels built against torch 2.11 must not replace those of .venv's torch;
# VIRTUAL_ENV set, so the scripts under test keep this environment (unset, they activate .venv: torch 2.14)
VIRTUAL_ENV="$VENV" TORCH_EXTENSIONS_DIR="$VENV/torch_extensions" PATH="$VENV/bin:$PATH" \
  "$VENV/bin/python" -m pytest -q -n auto --dist loadfile --no-loadscope-reorder -p no:cacheprovider --junitxml "$junit" \
  --deselect "tests/integration/test_triton_tools.py::test_aot_gate_compiles_the_corner_configurations_for_sm_90_without_spills[3.8.0]"
rc=$?
set -e
seconds=$(($(date +%s) - began))

"$VENV/bin/python" - "$junit" "$RECORD" "$seconds" "$rc" <<'PYEOF'
import sys
import xml.etree.ElementTree as ET

import torch
import triton

from hyperfairseq import run_record

junit, path, seconds, rc = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
cases = list(ET.parse(junit).getroot().iter("testcase"))
failed = [f"{c.get('classname')}::{c.get('name')}" for c in cases if c.find("failure") is not None
          or c.find("error") is not None]
skipped = sum(c.find("skipped") is not None for c in cases)
passed = len(cases) - len(failed) - skipped
record = run_record.stamp(
    "bash scripts/compat_gpu_versions.sh " + path, name="compat_torch211_triton36",
    what=f"the suite under the GPU machine's torch {torch.__version__} / triton {triton.__version__} (Python stays "
         f"3.11), on this CPU: {passed} passed, {len(failed)} failed, {skipped} skipped",
    wall_seconds=seconds,
    result={"pytest_exit_status": rc, "passed": passed, "failed": len(failed), "skipped": skipped, "failed_tests": failed,
            "deselected": ["test_aot_gate_compiles_the_corner_configurations_for_sm_90_without_spills[3.8.0]"]})
record["versions"]["triton"] = triton.__version__
run_record.write(path, record)
print(f"wrote {path}: {passed} passed, {len(failed)} failed, {skipped} skipped, exit {rc}")
PYEOF
exit "$rc"
