#!/usr/bin/env bash
# Make, on this machine, what benchmarks/gpu_check.sh needs on the H200, then print the device call.
#
#   bash benchmarks/gpu_prepare.sh
#
# The GPU image has Python 3.12, torch and triton but no fairseq, and reaches no package index
# (fairseq-notes §9): fairseq and the four packages it lacks travel as cp312 wheels in .whl/ (about
# 21 MB). char-PTB travels binarised in data-bin/ptb_char (made by scripts/prepare_ptb_char.sh when
# missing). Both paths are ignored by git, so they travel only when the call names them in `carry`.
# The script refuses to finish when what travels would exceed the device tool's 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv; [ -z "${VIRTUAL_ENV:-}" ] && [ -f "$venv/bin/activate" ] && source "$venv/bin/activate"
PY=${PYTHON:-python}
LIMIT_MIB=64
# cp312 builds; antlr4 4.9.3 has only a source archive: it is pure Python, so a wheel is built here
WHEELS=(ve-fairseq==0.12.3 hydra-core==1.3.2 omegaconf==2.3.0 bitarray==3.12.3)
PURE=(antlr4-python3-runtime==4.9.3)
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64
           manylinux1_x86_64)

# pip, its output shown only when it fails
pip_quiet() {
  local log; log=$(mktemp)
  "$PY" -m pip "$@" >"$log" 2>&1 || { grep -v "^WARNING: Location" "$log" >&2; rm -f "$log"; exit 1; }
  rm -f "$log"
}

rm -rf .whl.tmp && mkdir .whl.tmp
pip_quiet download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]/#/--platform=}" -d .whl.tmp "${WHEELS[@]}"
pip_quiet wheel --no-deps -w .whl.tmp "${PURE[@]}"
# one version of each package, or the install there stops (device README)
names=$(ls .whl.tmp | sed 's/-[0-9].*//' | sort)
dupes=$(uniq -d <<<"$names")
[ -z "$dupes" ] || { echo "error: two versions of $dupes in .whl.tmp" >&2; exit 1; }
[ "$(wc -l <<<"$names")" -eq $((${#WHEELS[@]} + ${#PURE[@]})) ] ||
  { echo "error: expected $((${#WHEELS[@]} + ${#PURE[@]})) wheels, got: $(ls .whl.tmp)" >&2; exit 1; }
rm -rf .whl && mv .whl.tmp .whl

[ -f data-bin/ptb_char/train.bin ] || bash scripts/prepare_ptb_char.sh data-bin/ptb_char

# what travels: tracked and untracked-not-ignored files, plus the carried paths
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r du -cb -- 2>/dev/null | tail -1 | cut -f1)
carried=$(du -cb .whl data-bin/ptb_char | tail -1 | cut -f1)
total_mib=$(( (tree + carried) / 1048576 ))
echo "travels: working tree $((tree / 1048576)) MiB + .whl $(du -sm .whl | cut -f1) MiB + data-bin/ptb_char" \
     "$(du -sm data-bin/ptb_char | cut -f1) MiB = about $total_mib MiB (limit $LIMIT_MIB)"
[ "$total_mib" -lt "$LIMIT_MIB" ] || { echo "error: over the device tool's $LIMIT_MIB MiB" >&2; exit 1; }
commit=$(git rev-parse HEAD)
git diff --quiet HEAD -- || { echo "warning: uncommitted changes: the records will name $commit+dirty;" \
  "commit first" >&2; commit=$commit+dirty; }
cat <<EOF
ready. The device call (one run; the script ends by about 545 s, its deadline being 540 s; the copy there has no .git,
so the command names the commit):
  run(command="HYPERFAIRSEQ_COMMIT=$commit bash benchmarks/gpu_check.sh", carry=[".whl", "data-bin/ptb_char"],
      timeout_s=590)
Copy every file it returns into docs/runs/ as it is (each .json is a run record; logs.tar.gz holds the stage
logs), then
  bash scripts/make_results.sh
renders them (README speed rows, the GPU check's stages and gates, Table 3's char-PTB row). Commit the records
and the pages, and give the machine back.
EOF
