#!/usr/bin/env bash
# A real demo on CPU: prepare char-level PTB, train a small LN-HyperLSTM for a few minutes with the
# paper's protocol (--task char_lm: contiguous streams, carried state), evaluate bits per character on
# the test split, and record the run under docs/runs/.
#   bash scripts/demo.sh [MINUTES]          (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONWARNINGS=ignore
[ -f .venv/bin/activate ] && source .venv/bin/activate   # the README's virtualenv, if not active already
minutes=${1:-5}
data=data-bin/ptb_char
save=checkpoints/demo
[ -d "$data" ] || bash scripts/prepare_ptb_char.sh "$data"
rm -rf "$save"; mkdir -p "$save"
train_cmd=(fairseq-train "$data" --user-dir hyperfairseq --task char_lm --arch ln_hyperlstm_lm_ptb
  --decoder-hidden-size 256 --hyper-hidden-size 64 --n-z 4 --batch-size 32 --tokens-per-sample 100
  --optimizer adam --lr 0.002 --clip-norm 1.0 --cpu --stop-time-hours "$(python -c "print($minutes/60)")"
  --save-dir "$save" --no-epoch-checkpoints --disable-validation --log-format json --log-interval 20
  --log-file "$save/train.log")
start=$(date +%s)
"${train_cmd[@]}" >/dev/null
eval_cmd=(fairseq-eval-lm "$data" --user-dir hyperfairseq --task char_lm --path "$save/checkpoint_last.pt"
  --batch-size 32 --tokens-per-sample 100 --gen-subset test --cpu)
"${eval_cmd[@]}" 2>&1 | tee "$save/eval.log" | grep "Loss (base 2)"
end=$(date +%s)
python -m hyperfairseq.sample --path "$save/checkpoint_last.pt" --prefix "the company" --length 200 \
  --temperature 0.8 --seed 1 | tee "$save/sample.txt"
python -m hyperfairseq.run_record --out docs/runs/demo_ptb_cpu.json --name demo_ptb_cpu \
  --command "bash scripts/demo.sh $minutes" --data "char-PTB test (full)" --wall-seconds $((end - start)) \
  --eval-lm-log "$save/eval.log" --train-log "$save/train.log" --result "train_minutes=$minutes" \
  "sample=$(head -c 300 "$save/sample.txt" | tr '\n' ' ')"
