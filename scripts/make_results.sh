#!/usr/bin/env bash
# docs/results.md and the generated regions of README.md (<!-- NAME:begin ... --> ... <!-- NAME:end -->:
# the demo, the results table, the speed table) from docs/runs/*.json and docs/figures/fig*.json (idempotent).
#   bash scripts/make_results.sh            # regenerate docs/results.md and README.md's regions
#   bash scripts/make_results.sh --smoke    # CI: write nothing; fail when either is out of date
set -euo pipefail
# the README's virtualenv (.venv), unless one is active: `python` and `fairseq-*` below are its
venv="$(dirname "$0")/../.venv"; [ -z "${VIRTUAL_ENV:-}" ] && [ -f "$venv/bin/activate" ] && source "$venv/bin/activate"
cd "$(dirname "$0")/.."
python -m hyperfairseq.analysis results --runs docs/runs --figures docs/figures --out docs/results.md --readme README.md "$@"
