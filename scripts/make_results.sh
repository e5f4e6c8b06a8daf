#!/usr/bin/env bash
# docs/results.md from docs/runs/*.json and docs/figures/fig*.json (idempotent).
#   bash scripts/make_results.sh            # regenerate docs/results.md
#   bash scripts/make_results.sh --smoke    # CI: generate to a temporary file and check it only
set -euo pipefail
cd "$(dirname "$0")/.."
python -m hyperfairseq.analysis results --runs docs/runs --figures docs/figures --out docs/results.md "$@"
