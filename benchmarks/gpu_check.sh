#!/usr/bin/env bash
# The prepared GPU check of the HyperLSTM (issue 13 §4, gpu-design §5): one run of at most ~9 minutes on
# the H200, from the repository root. Every stage has its own time limit and leaves its files under
# $OUT even when it fails; the last stage packs every log into $OUT/logs.tar.gz and summarises all
# stages in $OUT/gpu_check.json (8 files at most come back from the device machine).
#
#   1 env      GPU, clocks, driver, versions
#   2 kernels  the fused layer on the GPU against float64 there (fp64/fp32/bf16, boundary shapes,
#              graph replay bit-identical, one-step decoding), then the quick shapes (each code path
#              once) under compute-sanitizer memcheck
#   3 micro    the Triton row kernels inside CUDA graphs (tile choices), per-step GEMMs, launch gap
#   4 layer    fwd+bwd tokens/s and peak memory against cuDNN nn.LSTM: TF32 allowed, forbidden, bf16;
#              PTB and enwik8 sizes
#   5 speed    fairseq-train words/s of our LMs against fairseq's own lstm_lm: fp32, --amp, --bf16
#   6 train    ln_hyperlstm_lm_ptb on char-PTB with the paper's settings for $TRAIN_MIN minutes
#   7 eval     fairseq-eval-lm of that checkpoint on the test split (bits per character)
#
# On the device machine: carry .whl (fairseq and its missing dependencies, fairseq-notes §9) and
# data-bin/ptb_char; OUT is set by the device tool. DRY_RUN=1 runs every stage on this CPU with
# TRITON_INTERPRET=1 and tiny sizes (DATA=<a binarised char corpus>); tests/integration/test_gpu_check.py does.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_out}
DRY_RUN=${DRY_RUN:-0}
TRAIN_MIN=${TRAIN_MIN:-1.5}
DATA=${DATA:-data-bin/ptb_char}
PY=${PYTHON:-python3}
WORK="$OUT/work"
mkdir -p "$WORK"
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
START=$(date +%s)

if [ "$DRY_RUN" = 1 ]; then
  DEVICE=cpu CUDA_FLAG=--cpu CLOCK=process
  # the Triton kernels (interpreted) in the stages that exist for them; the fairseq-train stages prove their
  # command lines and parsing with the C++ kernels (the interpreter would take minutes per run there)
  export TRITON_INTERPRET=1 OMP_NUM_THREADS=1 KERNELS=triton
  SIZES=tiny BATCHES=4 STEPS=2 REPEATS=1 UPDATES=2 SPEED_BATCH=4 TRAIN_UPDATES=2 SANITIZE="" BATCH=4 TPS=20
  SHAPES=tiny SLOW=4  # the interpreter: every limit x4
  # what the dry run proves is the script, once per code path; the unit tests hold the interpreted kernels to the
  # reference (tests/unit/test_hyperlstm_fused.py, test_triton_cell.py) and run every microbenchmark tile
  # (tests/integration/test_triton_tools.py), so here: each layer, dtype and the dropout case once; the tile
  # table's tiles only; the --no-tf32 layer run (TF32 is a CUDA setting: on CPU that run repeats the TF32 one)
  # on the C++ kernels; layer timings over 2 steps (a carried state, the fewest that shows one); one fairseq-train run
  # per configuration (UPDATES=2), not two lengths whose difference is timed
  KERNEL_CASES=--each-once MICRO_TILES=--table-tiles FP32_KERNELS=cpp
  SPEED_CONFIGS="fairseq lstm_lm,ln_hyperlstm_lm_ptb"  # the two command lines that differ (ours and fairseq's)
  SMALL="--decoder-hidden-size 32 --hyper-hidden-size 8"
else
  DEVICE=cuda CUDA_FLAG="" CLOCK=wall
  SIZES=ptb,enwik8 BATCHES=128 STEPS=100 REPEATS=5 UPDATES=20,120 SPEED_BATCH=128 TRAIN_UPDATES=1000000
  SANITIZE=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
  BATCH=128 TPS=100 SMALL="" SHAPES="" SLOW=1 KERNELS="" KERNEL_CASES="" MICRO_TILES="" FP32_KERNELS=""
  SPEED_CONFIGS="fairseq lstm_lm,lstm_lm_ptb_1000,ln_hyperlstm_lm_ptb"
  if [ -d .whl ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      > "$WORK/setup.log" 2>&1 || echo "wheel install failed (see setup.log)"
    export PYTHONPATH=/tmp/site:$PWD
  fi
fi

export OUT DRY_RUN TRAIN_MIN DATA PY WORK DEVICE CUDA_FLAG CLOCK SIZES BATCHES STEPS REPEATS UPDATES SPEED_BATCH
export TRAIN_UPDATES SANITIZE BATCH TPS SMALL SHAPES KERNELS SPEED_CONFIGS KERNEL_CASES MICRO_TILES FP32_KERNELS

# stage NAME LIMIT_S FUNCTION: run one stage's function in its own shell under its own time limit;
# its exit status goes to work/NAME.status, its wall seconds to work/NAME.seconds, its output to work/NAME.log
stage() {
  local name=$1 limit=$2 fn=$3 began
  began=$(date +%s)
  echo "== $name ($((began - START)) s in)"
  timeout -k 10 "$((limit * SLOW))" bash -c "set -o pipefail; $(declare -f "$fn"); $fn" > "$WORK/$name.log" 2>&1
  local rc=$?
  echo "$rc" > "$WORK/$name.status"
  echo "$(($(date +%s) - began))" > "$WORK/$name.seconds"
  tail -4 "$WORK/$name.log"
}

env_stage() {
  { nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.sm --format=csv 2>&1 || true
    "$PY" -c "import torch, triton, numpy; print('torch', torch.__version__, 'triton', triton.__version__, 'numpy', numpy.__version__, 'cuda', torch.version.cuda)"
    "$PY" -c "import fairseq; print('fairseq', fairseq.__version__)"; } 2>&1
}

kernels_stage() {
  export HYPERFAIRSEQ_KERNELS=$KERNELS
  "$PY" benchmarks/check_kernels_on_device.py --device "$DEVICE" ${SHAPES:+--shapes $SHAPES} $KERNEL_CASES \
    --json "$WORK/kernels.json" || return $?
  if [ -n "$SANITIZE" ]; then
    "$SANITIZE" --tool memcheck --error-exitcode 3 "$PY" benchmarks/check_kernels_on_device.py --device "$DEVICE" \
      --quick --json "$WORK/kernels_memcheck.json"
  fi
}

micro_stage() {
  export HYPERFAIRSEQ_KERNELS=$KERNELS
  local dry=""; [ "$DRY_RUN" = 1 ] && dry=--dry-run
  "$PY" benchmarks/bench_triton_cell.py $dry $MICRO_TILES --json "$WORK/micro_triton.json"
  "$PY" benchmarks/bench_hyperlstm.py --device "$DEVICE" --micro-only --sizes "$SIZES" --batches "$BATCHES" \
    --json "$WORK/micro_steps.json"
}

layer_stage() {
  export HYPERFAIRSEQ_KERNELS=$KERNELS
  local common=(--device "$DEVICE" --sizes "$SIZES" --batches "$BATCHES" --steps "$STEPS" --repeats "$REPEATS"
                --clock "$CLOCK" --no-one-step)
  "$PY" benchmarks/bench_hyperlstm.py "${common[@]}" --json "$OUT/bench_hyperlstm_gpu_tf32.json"
  HYPERFAIRSEQ_KERNELS=${FP32_KERNELS:-$KERNELS} "$PY" benchmarks/bench_hyperlstm.py "${common[@]}" --no-tf32 \
    --json "$OUT/bench_hyperlstm_gpu_fp32.json"
  "$PY" benchmarks/bench_hyperlstm.py "${common[@]}" --dtype bfloat16 --json "$OUT/bench_hyperlstm_gpu_bf16.json"
}

speed_stage() {
  local precisions=fp32,amp,bf16; [ "$DRY_RUN" = 1 ] && precisions=fp32
  "$PY" benchmarks/bench_train.py --data "$DATA" --device "$DEVICE" --batch-size "$SPEED_BATCH" --clock "$CLOCK" \
    --tokens-per-sample "$TPS" --updates "$UPDATES" --repeats 1 --precisions "$precisions" \
    --configs "$SPEED_CONFIGS" --json "$OUT/bench_train_gpu.json" \
    ${SMALL:+--tiny}
}

train_stage() {
  rm -rf "$WORK/ckpt"
  "$PY" -m fairseq_cli.train "$DATA" --user-dir hyperfairseq --task char_lm --arch ln_hyperlstm_lm_ptb \
    $SMALL --batch-size "$BATCH" --tokens-per-sample "$TPS" --optimizer adam --lr 0.001 \
    --clip-norm 1.0 --num-workers 0 --log-format json --log-interval 50 --seed 1 --max-update "$TRAIN_UPDATES" \
    --stop-time-hours "$("$PY" -c "print($TRAIN_MIN / 60)")" --save-dir "$WORK/ckpt" --no-epoch-checkpoints $CUDA_FLAG
}

eval_stage() {
  "$PY" -m fairseq_cli.eval_lm "$DATA" --user-dir hyperfairseq --task char_lm --path "$WORK/ckpt/checkpoint_last.pt" \
    --batch-size "$BATCH" --tokens-per-sample "$TPS" --gen-subset test --num-workers 0 $CUDA_FLAG
}

stage env 30 env_stage
if [ "$DRY_RUN" != 1 ]; then  # compile the later stages' kernel variants on the spare cores meanwhile
  timeout 200 "$PY" benchmarks/triton_warm.py > "$WORK/warm.log" 2>&1 &
  WARM=$!
fi
stage kernels 100 kernels_stage
stage micro 40 micro_stage
[ -n "${WARM:-}" ] && { wait "$WARM"; echo "warm-up exit $? ($(($(date +%s) - START)) s in)"; }
stage layer 110 layer_stage
stage speed 90 speed_stage
stage train "$("$PY" -c "print(int($TRAIN_MIN * 60 + 40))")" train_stage
stage eval 40 eval_stage
"$PY" benchmarks/gpu_summary.py --work "$WORK" --out "$OUT" --seconds "$(($(date +%s) - START))" \
  $([ "$DRY_RUN" = 1 ] && echo --dry-run)
tar -czf "$OUT/logs.tar.gz" -C "$WORK" --exclude ckpt . && rm -rf "$WORK"
echo "== done ($(($(date +%s) - START)) s)"
