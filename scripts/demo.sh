#!/usr/bin/env bash
# A real demo on CPU: prepare char-level PTB, train a small LN-HyperLSTM for a few minutes with the
# paper's protocol (--task char_lm: contiguous streams, carried state), evaluate bits per character on
# the full test split, sample from it, and write a run record.
#
#   bash scripts/demo.sh [MINUTES] [--fresh] [--record] [--data DIR] [--save-dir DIR]
#
# MINUTES of training in all (default 5). It resumes the save folder (checkpoints/demo) by default: an
# interrupted demo continues, a finished one is evaluated again, and a larger MINUTES trains on to that
# total; --fresh starts over. The run record goes beside the checkpoint (SAVE_DIR/demo_ptb_cpu.json,
# outside the tracked files); --record writes the project's docs/runs/demo_ptb_cpu.json instead. --data
# names a binarised char-PTB (default data-bin/ptb_char, prepared when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
args=$*
# fairseq warns about torch.jit.script while it is imported, before it loads the plugin's filters
# (hyperfairseq/warning_filters.py, where the other warnings nobody can act on are hidden): the same filter
export PYTHONWARNINGS='ignore:`torch.jit.script` is deprecated:FutureWarning'
[ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ] && source .venv/bin/activate  # the README's virtualenv, unless one is active

usage() { echo "usage: bash scripts/demo.sh [MINUTES] [--fresh] [--record] [--data DIR] [--save-dir DIR]" >&2; exit 2; }
minutes=5 fresh=0 record= data=data-bin/ptb_char save=checkpoints/demo
while [ $# -gt 0 ]; do
  case $1 in
    --fresh) fresh=1 ;;
    --record) record=docs/runs/demo_ptb_cpu.json ;;
    --data) data=${2:?--data needs a folder}; shift ;;
    --save-dir) save=${2:?--save-dir needs a folder}; shift ;;
    -h|--help) usage ;;
    *) [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]] && [[ ! $1 =~ ^0+([.]0+)?$ ]] \
         || { echo "error: MINUTES must be a positive number; got '$1'" >&2; usage; }
       minutes=$1 ;;
  esac
  shift
done
record=${record:-$save/demo_ptb_cpu.json}
last=$save/checkpoint_last.pt
[ -d "$data" ] || bash scripts/prepare_ptb_char.sh "$data"
if [ "$fresh" = 1 ]; then   # the demo's own files only: --save-dir may name a folder that holds more
  echo "--fresh: removing the demo's checkpoints, logs and record in $save"
  rm -f "$save"/checkpoint_last.pt "$save"/checkpoint_best.pt "$save"/{train,eval}.log "$save"/sample.txt \
    "$save"/demo_ptb_cpu.json
fi
mkdir -p "$save"

left=$(python -m hyperfairseq.train_progress left --minutes "$minutes" --checkpoint "$last")
start=$(date +%s)
if [ "$left" -gt 0 ]; then
  if [ -f "$last" ]; then
    echo "resuming $last: $((left / 60)) min $((left % 60)) s of its $minutes min left (--fresh starts over)"
  fi
  echo "training a 256-unit LN-HyperLSTM on char-PTB for $minutes min in all (loss in bits per character):"
  train_cmd=(fairseq-train "$data" --user-dir hyperfairseq --task char_lm --arch ln_hyperlstm_lm_ptb
    --decoder-hidden-size 256 --hyper-hidden-size 64 --n-z 4 --batch-size 32 --tokens-per-sample 100
    --optimizer adam --lr 0.002 --clip-norm 1.0 --cpu --stop-time-hours "$(awk "BEGIN { print $minutes / 60 }")"
    --save-dir "$save" --no-epoch-checkpoints --disable-validation --log-format json --log-interval 20
    --log-file "$save/train.log")
  "${train_cmd[@]}" | python -m hyperfairseq.train_progress follow --seconds "$left"
else
  echo "$last has trained its $minutes min already: evaluating it (a larger MINUTES trains on; --fresh starts over)"
fi

label="the full char-PTB test split" record_data="char-PTB test (full)"
[ "$data" = data-bin/ptb_char ] || label="the test split of $data" record_data="$data test"
echo "evaluating on $label ..."
eval_cmd=(fairseq-eval-lm "$data" --user-dir hyperfairseq --task char_lm --path "$last"
  --batch-size 32 --tokens-per-sample 100 --gen-subset test --cpu)
"${eval_cmd[@]}" >"$save/eval.log" 2>&1 || { tail -5 "$save/eval.log" >&2; exit 1; }
end=$(date +%s)
python -m hyperfairseq.sample --path "$last" --prefix "the company" --length 200 --temperature 0.8 --seed 1 \
  >"$save/sample.txt"
python -m hyperfairseq.run_record --out "$record" --name demo_ptb_cpu \
  --command "bash scripts/demo.sh $args" --data "$record_data" --wall-seconds $((end - start)) \
  --eval-lm-log "$save/eval.log" --train-log "$save/train.log" --result "train_minutes=$minutes" \
  "sample=$(head -c 300 "$save/sample.txt" | tr '\n' ' ')" >/dev/null

bits=$(grep -o "Loss (base 2): [0-9.]*" "$save/eval.log" | tail -1 | cut -d' ' -f4)
echo
echo "test: $bits bits per character on $label"
echo "sample (temperature 0.8) after \"the company\":"
sed 's/^/  /' "$save/sample.txt"
echo "checkpoint: $last    run record: $record"
