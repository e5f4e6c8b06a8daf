#!/usr/bin/env bash
# Table 3 (character-level Penn Treebank): train and evaluate every row with the paper's settings
# (paper-spec §3.3): Adam 1e-3, global-norm clipping 1.0, 128 parallel streams, segments of 100,
# state carried (--task char_lm), early stopping on validation bpc (R13). Each row's test and validation
# bpc go to docs/runs/table3_<arch>.json.
#   bash scripts/table3_ptb.sh [--smoke | --reduced] [--rows "arch1 arch2 ..."] [--max-epoch N | --max-update N]
#                              [--cpu] [--restart]
# Interrupted? Run the same command again: each row resumes from its checkpoints/table3*/<arch>/ and a
# finished row (its run record written) is skipped. --restart deletes the rows' checkpoints and starts over.
# --smoke: the same pipeline on a slice of char-PTB (2,000 training lines), 8 streams of 50 symbols and
#          2 updates per row, to check that every row builds, trains, evaluates and records.
# --reduced: the single-layer rows (LSTM, LN-LSTM, HyperLSTM, LN-HyperLSTM) at the demo's size, 256 units and
#          N_ĥ 64, on 32 streams of 100, each for the same --max-update (default 5000) on the full data: a
#          CPU-sized check of the direction of the paper's effects at equal updates, not of its numbers.
#          Records: docs/runs/table3_reduced_<arch>.json.
set -euo pipefail
# the README's virtualenv (.venv), unless one is active: `python` and `fairseq-*` below are its
venv="$(dirname "$0")/../.venv"; [ -z "${VIRTUAL_ENV:-}" ] && [ -f "$venv/bin/activate" ] && source "$venv/bin/activate"
cd "$(dirname "$0")/.."
export PYTHONWARNINGS=ignore
rows="lstm_lm_ptb_1000 lstm_lm_ptb_1250 lstm_lm_ptb_2layer ln_lstm_lm_ptb hyperlstm_lm_ptb ln_hyperlstm_lm_ptb ln_hyperlstm_lm_ptb_large_emb ln_hyperlstm_lm_ptb_2layer"
smoke=0; reduced=0; restart=0; max_epoch=${MAX_EPOCH:-100}; max_update=; device=(); rows_given=0
while [ $# -gt 0 ]; do
  case $1 in
    --smoke) smoke=1; shift ;;
    --reduced) reduced=1; shift ;;
    --rows) rows=$2; rows_given=1; shift 2 ;;
    --max-epoch) max_epoch=$2; shift 2 ;;
    --max-update) max_update=$2; shift 2 ;;
    --cpu) device=(--cpu); shift ;;
    --restart) restart=1; shift ;;
    *) echo "usage: $0 [--smoke | --reduced] [--rows \"...\"] [--max-epoch N | --max-update N] [--cpu] [--restart]" >&2
       exit 2 ;;
  esac
done
[ $smoke = 1 ] && [ $reduced = 1 ] && { echo "$0: --smoke and --reduced exclude each other" >&2; exit 2; }
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || device=(--cpu)

data=data-bin/ptb_char
[ -d "$data" ] || bash scripts/prepare_ptb_char.sh "$data"
streams=128; segment=100; budget=(--max-epoch "$max_epoch" --patience 5); tag=table3; size=(); size_keys=()
[ -n "$max_update" ] && budget=(--max-update "$max_update")
if [ $reduced = 1 ]; then
  [ $rows_given = 1 ] || rows="lstm_lm_ptb_1000 ln_lstm_lm_ptb hyperlstm_lm_ptb ln_hyperlstm_lm_ptb"
  max_update=${max_update:-5000}; budget=(--max-update "$max_update"); streams=32; tag=table3_reduced
  size=(--decoder-hidden-size 256 --hyper-hidden-size 64); size_keys=(decoder_hidden_size=256 hyper_hidden_size=64)
  reduced_note="256 units, N_ĥ 64, 32 streams of 100, $max_update updates (scripts/table3_ptb.sh --reduced)"
fi
if [ $smoke = 1 ]; then
  slice=data-bin/ptb_char_smoke
  if [ ! -d "$slice" ]; then
    mkdir -p "$slice.text"
    head -n 2000 "$data/text/train.txt" >"$slice.text/train.txt"
    head -n 100 "$data/text/valid.txt" >"$slice.text/valid.txt"
    head -n 100 "$data/text/test.txt" >"$slice.text/test.txt"
    fairseq-preprocess --only-source --srcdict "$data/dict.txt" --trainpref "$slice.text/train.txt" \
      --validpref "$slice.text/valid.txt" --testpref "$slice.text/test.txt" --destdir "$slice" --workers 1 >/dev/null
    rm -rf "$slice.text"
  fi
  data=$slice; streams=8; segment=50; budget=(--max-update 2); tag=table3_smoke
fi

for arch in $rows; do
  save=checkpoints/$tag/$arch
  done_marker=$save/row_done
  [ $restart = 1 ] && rm -rf "$save"
  if [ -f "$done_marker" ]; then echo "$arch: done already ($done_marker); --restart to train it again"; continue; fi
  mkdir -p "$save"
  train=(fairseq-train "$data" --user-dir hyperfairseq --task char_lm --arch "$arch" "${size[@]}" "${device[@]}"
    --batch-size "$streams" --tokens-per-sample "$segment" --optimizer adam --lr 1e-3 --clip-norm 1.0
    "${budget[@]}" --save-dir "$save" --no-epoch-checkpoints --best-checkpoint-metric loss
    --log-format json --log-interval 50 --log-file "$save/train.log")
  start=$(date +%s)
  "${train[@]}" >/dev/null
  for split in valid test; do
    fairseq-eval-lm "$data" --user-dir hyperfairseq --task char_lm --path "$save/checkpoint_best.pt" \
      "${device[@]}" --batch-size "$streams" --tokens-per-sample "$segment" --gen-subset $split \
      >"$save/eval_$split.log" 2>&1
  done
  end=$(date +%s)
  python -m hyperfairseq.run_record --out "docs/runs/${tag}_$arch.json" --name "${tag}_$arch" \
    --command "${train[*]}" --data "char-PTB test$([ $smoke = 1 ] && echo ' (smoke slice)')" \
    --wall-seconds $((end - start)) --eval-lm-log "$save/eval_test.log" --train-log "$save/train.log" \
    --result "valid_bpc=$(grep -o 'Loss (base 2): [0-9.]*' "$save/eval_valid.log" | tail -1 | cut -d' ' -f4)" \
    "params=$(python -m hyperfairseq.params --arch "$arch" --vocab 50 --set "${size_keys[@]}" | tail -1 | cut -d' ' -f2)" \
    ${reduced_note:+"reduced=$reduced_note"}
  touch "$done_marker"
done
