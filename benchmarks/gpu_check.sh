#!/usr/bin/env bash
# One prepared GPU check for the fast HyperLSTM (run from the repo root on the GPU machine):
#   1. the CUDA equivalence tests (fast path vs reference, float64 on the GPU);
#   2. the benchmark, TF32 and bf16 (tokens/s against cuDNN nn.LSTM, saved bytes, peak memory);
#   3. fairseq-train words/s: ln_hyperlstm_lm_ptb against fairseq's lstm_lm (64 / 1000) on char-PTB;
#   4. ln_hyperlstm_lm_ptb with the paper's settings (Adam 1e-3, clip 1, batch 128 x 100) for
#      $TRAIN_MIN minutes on char-PTB, then fairseq-eval-lm on the test split (bits per character).
# Needs .whl/ (fairseq and its missing deps, fairseq-notes §9) and data-bin/ptb_char carried along.
# Every stage has its own time limit and writes its log under $OUT even when it fails.
set -u
OUT=${OUT:-/tmp/gpu_out}
TRAIN_MIN=${TRAIN_MIN:-1.5}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  > "$OUT/gpu_setup.log" 2>&1 || { echo "wheel install failed"; cat "$OUT/gpu_setup.log"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; python3 -c "import torch, fairseq; print(torch.__version__, fairseq.__version__)"; } >> "$OUT/gpu_setup.log" 2>&1
stage() { echo "== $1 $(date +%T)"; }

stage tests
timeout 90 python3 benchmarks/check_cuda_equivalence.py > "$OUT/gpu_tests.log" 2>&1; tail -3 "$OUT/gpu_tests.log"

stage bench-tf32
timeout 100 python3 benchmarks/bench_hyperlstm.py --device cuda --repeats 5 --with-reference \
  --json "$OUT/bench_hyperlstm_cuda_tf32.json" > "$OUT/gpu_bench.log" 2>&1; grep -v Warn "$OUT/gpu_bench.log" | tail -30
stage bench-bf16
timeout 70 python3 benchmarks/bench_hyperlstm.py --device cuda --dtype bfloat16 --repeats 5 \
  --json "$OUT/bench_hyperlstm_cuda_bf16.json" >> "$OUT/gpu_bench.log" 2>&1; tail -24 "$OUT/gpu_bench.log" | grep tok/s

COMMON="data-bin/ptb_char --user-dir hyperfairseq --optimizer adam --lr 0.001 --clip-norm 1.0 --batch-size 128 \
  --tokens-per-sample 100 --num-workers 0 --log-format simple --no-save --disable-validation --seed 1"
stage speed-lstm_lm
timeout 60 fairseq-train $COMMON --task language_modeling --sample-break-mode none --arch lstm_lm \
  --decoder-embed-dim 64 --decoder-hidden-size 1000 --max-update 120 --log-interval 40 \
  > "$OUT/gpu_train_speed.log" 2>&1; grep -o "wps=[0-9.]*\|ups=[0-9.]*" "$OUT/gpu_train_speed.log" | tail -4
stage speed-ln_hyperlstm_lm_ptb
timeout 60 fairseq-train $COMMON --task language_modeling --sample-break-mode none --arch ln_hyperlstm_lm_ptb \
  --max-update 120 --log-interval 40 >> "$OUT/gpu_train_speed.log" 2>&1
grep -o "wps=[0-9.]*\|ups=[0-9.]*" "$OUT/gpu_train_speed.log" | tail -4

stage train-char_lm
timeout $(python3 -c "print(int($TRAIN_MIN * 60 + 45))") fairseq-train data-bin/ptb_char --user-dir hyperfairseq \
  --task char_lm --arch ln_hyperlstm_lm_ptb --optimizer adam --lr 0.001 --clip-norm 1.0 --batch-size 128 \
  --tokens-per-sample 100 --num-workers 0 --log-format simple --log-interval 100 --seed 1 \
  --stop-time-hours $(python3 -c "print($TRAIN_MIN / 60)") --save-dir /tmp/ckpt --no-epoch-checkpoints \
  > "$OUT/gpu_train.log" 2>&1; grep -v Warn "$OUT/gpu_train.log" | grep "valid\|train \|epoch 0" | tail -6
stage eval
timeout 60 fairseq-eval-lm data-bin/ptb_char --user-dir hyperfairseq --task char_lm --path /tmp/ckpt/checkpoint_last.pt \
  --batch-size 128 --tokens-per-sample 100 --gen-subset test --num-workers 0 > "$OUT/gpu_eval.log" 2>&1
tail -3 "$OUT/gpu_eval.log"
stage done
