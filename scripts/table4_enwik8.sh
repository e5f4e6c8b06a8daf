#!/usr/bin/env bash
# Table 4 (enwik8): train and evaluate every row with the paper's settings (paper-spec §3.4): first 100M
# bytes split 90/5/5, Adam 1e-3, clipping 1.0, 128 streams, segments of 250 (300 for the 2048-unit
# model), state carried (--task char_lm), early stopping on validation (R13). Results: bits per byte on
# the test split in docs/runs/table4_<arch>.json.
#   bash scripts/table4_enwik8.sh /path/to/enwik8.zip [--smoke] [--rows "..."] [--max-epoch N] [--cpu] [--restart]
# Interrupted? Run the same command again: each row resumes from its checkpoints/table4*/<arch>/ and a
# finished row (its run record written) is skipped. --restart deletes the rows' checkpoints and starts over.
# --smoke: the same pipeline on the first 200 kB of SRC with 4 streams of 25 bytes and 1 update per row.
set -euo pipefail
# the README's virtualenv (.venv), unless one is active: `python` and `fairseq-*` below are its
venv="$(dirname "$0")/../.venv"; [ -z "${VIRTUAL_ENV:-}" ] && [ -f "$venv/bin/activate" ] && source "$venv/bin/activate"
cd "$(dirname "$0")/.."
export PYTHONWARNINGS=ignore
[ $# -ge 1 ] || { echo "usage: $0 SRC [--smoke] [--rows \"...\"] [--max-epoch N] [--cpu] [--restart]" >&2; exit 2; }
src=$1; shift
rows="lstm_lm_enwik8_1800 lstm_lm_enwik8_2000 ln_lstm_lm_enwik8 hyperlstm_lm_enwik8 ln_hyperlstm_lm_enwik8 ln_hyperlstm_lm_enwik8_2048"
smoke=0; restart=0; max_epoch=${MAX_EPOCH:-50}; device=()
while [ $# -gt 0 ]; do
  case $1 in
    --smoke) smoke=1; shift ;;
    --rows) rows=$2; shift 2 ;;
    --max-epoch) max_epoch=$2; shift 2 ;;
    --cpu) device=(--cpu); shift ;;
    --restart) restart=1; shift ;;
    *) echo "usage: $0 SRC [--smoke] [--rows \"...\"] [--max-epoch N] [--cpu] [--restart]" >&2; exit 2 ;;
  esac
done
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || device=(--cpu)

data=data-bin/enwik8; limit=100000000; streams=128; budget=(--max-epoch "$max_epoch" --patience 5); tag=table4
if [ $smoke = 1 ]; then data=data-bin/enwik8_smoke; limit=200000; streams=4; budget=(--max-update 1); tag=table4_smoke; fi
[ -d "$data" ] || python -m hyperfairseq.data.byte_corpus prepare --src "$src" --out "$data" --limit $limit

for arch in $rows; do
  segment=250; [ "$arch" = ln_hyperlstm_lm_enwik8_2048 ] && segment=300
  [ $smoke = 1 ] && segment=25
  save=checkpoints/$tag/$arch
  done_marker=$save/row_done
  [ $restart = 1 ] && rm -rf "$save"
  if [ -f "$done_marker" ]; then echo "$arch: done already ($done_marker); --restart to train it again"; continue; fi
  mkdir -p "$save"
  train=(fairseq-train "$data" --user-dir hyperfairseq --task char_lm --arch "$arch" "${device[@]}"
    --batch-size "$streams" --tokens-per-sample "$segment" --optimizer adam --lr 1e-3 --clip-norm 1.0
    "${budget[@]}" --save-dir "$save" --no-epoch-checkpoints --best-checkpoint-metric loss
    --log-format json --log-interval 50 --log-file "$save/train.log")
  start=$(date +%s)
  "${train[@]}" >/dev/null
  fairseq-eval-lm "$data" --user-dir hyperfairseq --task char_lm --path "$save/checkpoint_best.pt" \
    "${device[@]}" --batch-size "$streams" --tokens-per-sample "$segment" --gen-subset test >"$save/eval_test.log" 2>&1
  end=$(date +%s)
  python -m hyperfairseq.run_record --out "docs/runs/${tag}_$arch.json" --name "${tag}_$arch" \
    --command "${train[*]}" --data "$([ $smoke = 1 ] && echo "smoke: first 200 kB of $(basename "$src")" || echo "enwik8 test")" \
    --wall-seconds $((end - start)) --eval-lm-log "$save/eval_test.log" --train-log "$save/train.log" \
    "--result" "params=$(python -m hyperfairseq.params --arch "$arch" --vocab 205 | tail -1 | cut -d' ' -f2)"
  touch "$done_marker"
done
