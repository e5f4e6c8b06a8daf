#!/usr/bin/env bash
# Same checkpoint, same streams: evaluate with the state carried across segments (the paper's protocol)
# and with it reset at every segment (fairseq's stock behaviour); record both in docs/runs/.
#   bash scripts/carry_vs_reset.sh CHECKPOINT DATA [SPLIT] [STREAMS] [SEGMENT] [NAME]
set -euo pipefail
# the README's virtualenv (.venv), unless one is active: `python` and `fairseq-*` below are its
venv="$(dirname "$0")/../.venv"; [ -z "${VIRTUAL_ENV:-}" ] && [ -f "$venv/bin/activate" ] && source "$venv/bin/activate"
cd "$(dirname "$0")/.."
export PYTHONWARNINGS=ignore
[ $# -ge 2 ] || { echo "usage: $0 CHECKPOINT DATA [SPLIT=test] [STREAMS=32] [SEGMENT=100] [NAME=carry_vs_reset]" >&2; exit 2; }
ckpt=$1; data=$2; split=${3:-test}; streams=${4:-32}; segment=${5:-100}; name=${6:-carry_vs_reset}
dev=(); python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || dev=(--cpu)
logs=$(mktemp -d)
eval_cmd=(fairseq-eval-lm "$data" --user-dir hyperfairseq --task char_lm --path "$ckpt" "${dev[@]}"
  --batch-size "$streams" --tokens-per-sample "$segment" --gen-subset "$split")
start=$(date +%s)
"${eval_cmd[@]}" >"$logs/carry.log" 2>&1
"${eval_cmd[@]}" --reset-every-segment >"$logs/reset.log" 2>&1
bits() { grep -o 'Loss (base 2): [0-9.]*' "$1" | tail -1 | cut -d' ' -f4; }
echo "carried: $(bits "$logs/carry.log") bpc   reset every segment: $(bits "$logs/reset.log") bpc"
python -m hyperfairseq.run_record --out "docs/runs/$name.json" --name "$name" \
  --command "bash scripts/carry_vs_reset.sh $*" --data "char-PTB $split (full split), $streams streams of $segment" \
  --wall-seconds $(($(date +%s) - start)) --eval-lm-log "$logs/carry.log" \
  --result "bpc_reset_every_segment=$(bits "$logs/reset.log")" "checkpoint=$ckpt"
rm -rf "$logs"
