#!/usr/bin/env bash
# The prepared GPU check of the HyperLSTM (issue 13 §4, gpu-design §5): one run on the H200, from the
# repository root, called with the device tool's timeout_s=590. Every stage has its own time limit and leaves
# its files even when it fails; after every stage its logs and JSON are packed into $OUT/logs.tar.gz (a run
# killed outright, without its trap, still returns them: `gpu_summary.py --work` on the unpacked folder
# summarises them here), and on exit (an EXIT trap: also after a failure or a signal) gpu_summary.py
# summarises every stage in $OUT/gpu_check.json, so $OUT holds 7 files (8 at most come back from the device
# machine). The work folder and the checkpoints are outside $OUT.
#
#   1 env       GPU, clocks, driver, versions, C compiler; one trivial Triton launch; fairseq's C extensions
#   2 kernels   the fused layer on the GPU against float64 there (fp64/fp32/bf16, boundary shapes, graph
#               replay bit-identical, one-step decoding): each code path once at every shape, every
#               combination at h1000-b13; 6 processes compile the kernel variants side by side
#   3 memcheck  the two smallest shapes, each code path once, under compute-sanitizer memcheck (eager:
#               HYPERFAIRSEQ_CUDA_GRAPHS=0, PyTorch's caching allocator off so every tensor is its own
#               allocation; capturing a graph with the allocator off is illegal)
#      meanwhile triton_warm.py compiles, on 8 other cores, every kernel variant the later stages launch;
#      the script waits for it before the first timed stage
#   4 micro     per-step GEMMs and the launch floor inside CUDA graphs; then the Triton row kernels inside
#               CUDA graphs, the table's tiles first, the alternatives while time lasts
#   5 layer     fwd+bwd tokens/s and peak memory (eager) against cuDNN nn.LSTM: TF32 allowed, bf16, TF32
#               forbidden; PTB and enwik8 sizes
#   6 speed     fairseq-train words/s (fairseq's own wps after the first log interval) of ln_hyperlstm_lm_ptb
#               against fairseq's lstm_lm: fp32, --bf16, --amp, while time lasts
#   7 train     ln_hyperlstm_lm_ptb on char-PTB with the paper's settings for $TRAIN_MIN minutes
#   8 eval      fairseq-eval-lm of that checkpoint on the test split (bits per character)
#
# Time budget on the GPU (seconds; the tool kills the run at 590):
#   stage limits   env 30 + kernels 70 + memcheck 45 + micro 45 + layer 80 + speed 70
#                  + train 90 (TRAIN_MIN=1: 60 s of training + 30 s start-up, validation, save) + eval 30 = 460
#   kill grace     8 stages x 5 s (timeout -k 5)                                                   =  40
#   wheel install  (pip --no-deps of the 5 carried wheels, timeout 40; about 10 s)                   ~  15
#   warm-up wait   0 beyond the stage limits: its limit (120 s) ends within kernels + memcheck + grace (125)
#   summary + tar  gpu_summary.py under timeout 20, tar about 1 s                                    ~  22
#   total                                                                                            ~ 537 < 560
# and a hard deadline on top: no stage runs past START + 540 - 25 (the summary's 20 s and the 5 s grace
# kept), so the trap starts by START + 520 and ends by about START + 543 whatever the stages do; a stage
# with less than 10 s left is skipped (status "skipped").
#
# On the device machine: carry .whl (fairseq and its missing dependencies, fairseq-notes §9) and
# data-bin/ptb_char; OUT is set by the device tool. DRY_RUN=1 runs every stage on this CPU with
# TRITON_INTERPRET=1 and tiny sizes (DATA=<a binarised char corpus>), without the deadline and with every
# limit x4; tests/integration/test_gpu_check.py does (and, with DEADLINE_S=0, the run that skips every stage).
set -u
cd "$(dirname "$0")/.."
START=$(date +%s)
OUT=${OUT:-/tmp/gpu_out}
DRY_RUN=${DRY_RUN:-0}
TRAIN_MIN=${TRAIN_MIN:-1}
DATA=${DATA:-data-bin/ptb_char}
PY=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check_work.XXXXXX")  # outside $OUT: only 8 files come back
CKPT=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check_ckpt.XXXXXX")
mkdir -p "$OUT"
# our warnings stay visible (a CUDA-graph capture that fell back to eager launches says so); the others not
export PYTHONUNBUFFERED=1 PYTHONWARNINGS="ignore,default:hyperfairseq"
GRACE=5 SUMMARY_S=20 MIN_STAGE=10

if [ "$DRY_RUN" = 1 ]; then
  DEVICE=cpu CUDA_FLAG=--cpu CLOCK=process SLOW=4 DEADLINE=$((START + ${DEADLINE_S:-100000}))
  # the Triton kernels (interpreted) in the stages that exist for them; the fairseq-train stages prove their
  # command lines and parsing with the C++ kernels (the interpreter would take minutes per run there)
  export TRITON_INTERPRET=1 OMP_NUM_THREADS=1 KERNELS=triton
  # the CUDA-graph plan logic (made on a shape's second call, busy until its backward, one per validation
  # shape, evicted) through every stage, with an eager re-run standing in for each graph (cuda_graphs.py)
  export HYPERFAIRSEQ_CUDA_GRAPHS=replay
  SIZES=tiny BATCHES=4 STEPS=2 REPEATS=1 SPEED_BATCH=4 TRAIN_UPDATES=2 BATCH=4 TPS=20
  # what the dry run proves is the script, once per code path; the unit tests hold the interpreted kernels to the
  # reference (tests/unit/test_hyperlstm_fused.py, test_triton_cell.py) and run every microbenchmark tile
  # (tests/integration/test_triton_tools.py), so here: each layer, dtype and the dropout case once at one shape
  # (in 2 worker processes, as the GPU's 6), the memcheck stage's command without the sanitizer; the tile table's
  # tiles only; the --no-tf32 layer run (TF32 is a CUDA setting: on CPU that run repeats the TF32 one) on the C++
  # kernels; layer timings over 2 steps (a carried state, the fewest that shows one); fairseq-train: 2 updates
  # logged one by one, the second's wps timed; the warm-up's configurations at tiny sizes
  KERNEL_CASES="--shapes tiny --each-once" KERNEL_JOBS=2 MEMCHECK_CASES="--shapes tiny --each-once" SANITIZE=""
  MICRO_TILES=--table-tiles FP32_KERNELS=cpp WARM_ARGS="--jobs 2 --dry-run" WARM_S=600
  UPDATES=2 LOG_INTERVAL=1 PRECISIONS=fp32
  SPEED_CONFIGS="fairseq lstm_lm,ln_hyperlstm_lm_ptb"  # the two command lines that differ (ours and fairseq's)
  SMALL="--decoder-hidden-size 32 --hyper-hidden-size 8"
else
  DEVICE=cuda CUDA_FLAG="" CLOCK=wall SLOW=1 DEADLINE=$((START + ${DEADLINE_S:-540}))
  SIZES=ptb,enwik8 BATCHES=128 STEPS=100 REPEATS=5 SPEED_BATCH=128 TRAIN_UPDATES=1000000 BATCH=128 TPS=100
  KERNEL_CASES="--each-once --full h1000-b13" KERNEL_JOBS=6 MEMCHECK_CASES="--shapes h50-b5-nz1,tiny --each-once"
  SANITIZE=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
  KERNELS="" MICRO_TILES="" FP32_KERNELS="" WARM_ARGS="--jobs 8" WARM_S=120
  UPDATES=45 LOG_INTERVAL=15 PRECISIONS=fp32,bf16,amp  # 3 intervals of 15 updates: the last two are timed
  SPEED_CONFIGS="fairseq lstm_lm,ln_hyperlstm_lm_ptb" SMALL=""
  if [ -d .whl ]; then
    timeout 40 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      .whl/*.whl > "$WORK/setup.log" 2>&1 || echo "wheel install failed (see setup.log)"
    export PYTHONPATH=/tmp/site:$PWD
  fi
fi
MARGIN=$((GRACE + SUMMARY_S))  # kept free before the deadline after every stage: its kill grace, the summary

export OUT DRY_RUN TRAIN_MIN DATA PY WORK CKPT DEVICE CUDA_FLAG CLOCK SIZES BATCHES STEPS REPEATS UPDATES
export SPEED_BATCH TRAIN_UPDATES SANITIZE BATCH TPS SMALL KERNELS SPEED_CONFIGS KERNEL_CASES KERNEL_JOBS
export MEMCHECK_CASES MICRO_TILES FP32_KERNELS LOG_INTERVAL PRECISIONS

# left [S]: seconds from now to the running stage's time limit (STAGE_END, epoch seconds), less S: a stage's
# budget for its tools
left() { echo $((STAGE_END - $(date +%s) - ${1:-0})); }

# stage NAME LIMIT_S FUNCTION: run one stage's function in its own shell under its time limit (x SLOW), cut to
# what the deadline leaves; its exit status goes to work/NAME.status ("skipped" with under MIN_STAGE s left), its
# wall seconds to work/NAME.seconds, the limit it ran under to work/NAME.limit, its output to work/NAME.log
stage() {
  local name=$1 limit=$(($2 * SLOW)) fn=$3 began rc
  began=$(date +%s)
  [ $((DEADLINE - MARGIN - began)) -lt "$limit" ] && limit=$((DEADLINE - MARGIN - began))
  echo "== $name ($((began - START)) s in, limit $limit s)"
  echo "$limit" > "$WORK/$name.limit"
  if [ "$limit" -lt "$MIN_STAGE" ]; then
    echo "skipped: $limit s left before the run's deadline" | tee "$WORK/$name.log"
    echo skipped > "$WORK/$name.status"
    echo 0 > "$WORK/$name.seconds"
    return
  fi
  STAGE_END=$((began + limit)) timeout -k "$GRACE" "$limit" \
    bash -c "set -o pipefail; $(declare -f left "$fn"); $fn" > "$WORK/$name.log" 2>&1
  rc=$?
  echo "$rc" > "$WORK/$name.status"
  echo "$(($(date +%s) - began))" > "$WORK/$name.seconds"
  tail -4 "$WORK/$name.log"
  pack_logs
}

# the work folder's files into $OUT/logs.tar.gz, replaced whole (a kill between stages keeps the last pack)
pack_logs() {
  tar -czf "$OUT/logs.tar.gz.part" -C "$WORK" . && mv -f "$OUT/logs.tar.gz.part" "$OUT/logs.tar.gz"
}

env_stage() {
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.sm --format=csv 2>&1
  local compilers; compilers=$(command -v cc gcc | tr '\n' ' ')
  echo "C compilers (Triton builds its launchers with one): ${compilers:-none found}"
  echo "compute-sanitizer: ${SANITIZE:-none}"
  "$PY" benchmarks/device_env.py --device "$DEVICE"
}

kernels_stage() {
  export HYPERFAIRSEQ_KERNELS=$KERNELS
  "$PY" benchmarks/check_kernels_on_device.py --device "$DEVICE" $KERNEL_CASES --jobs "$KERNEL_JOBS" \
    --stop-at $((STAGE_END - 20)) --json "$WORK/kernels.json"
}

memcheck_stage() {
  export HYPERFAIRSEQ_KERNELS=$KERNELS HYPERFAIRSEQ_CUDA_GRAPHS=0 PYTORCH_NO_CUDA_MEMORY_CACHING=1
  local wrap=""
  if [ "$DRY_RUN" != 1 ]; then
    [ -n "$SANITIZE" ] || { echo "no compute-sanitizer on this machine"; return 2; }
    wrap="$SANITIZE --tool memcheck --error-exitcode 3"
  fi
  echo "under: ${wrap:-no sanitizer (the dry run)}"
  $wrap "$PY" benchmarks/check_kernels_on_device.py --device "$DEVICE" $MEMCHECK_CASES \
    --stop-at $((STAGE_END - 10)) --json "$WORK/kernels_memcheck.json"
}

micro_stage() {
  export HYPERFAIRSEQ_KERNELS=$KERNELS
  local dry="" rc=0; [ "$DRY_RUN" = 1 ] && dry=--dry-run
  "$PY" benchmarks/bench_hyperlstm.py --device "$DEVICE" --micro-only --sizes "$SIZES" --batches "$BATCHES" \
    --json "$WORK/micro_steps.json" || rc=$?
  "$PY" benchmarks/bench_triton_cell.py $dry $MICRO_TILES --budget-s "$(left 12)" --json "$WORK/micro_triton.json" \
    || rc=$?
  return $rc
}

layer_stage() {
  export HYPERFAIRSEQ_KERNELS=$KERNELS
  local rc=0 common=(--device "$DEVICE" --sizes "$SIZES" --batches "$BATCHES" --steps "$STEPS" --repeats "$REPEATS"
                     --clock "$CLOCK" --no-one-step)
  # the gates' records first (TF32, bf16); TF32 forbidden is reported only
  "$PY" benchmarks/bench_hyperlstm.py "${common[@]}" --json "$OUT/bench_hyperlstm_gpu_tf32.json" || rc=$?
  "$PY" benchmarks/bench_hyperlstm.py "${common[@]}" --dtype bfloat16 --json "$OUT/bench_hyperlstm_gpu_bf16.json" \
    || rc=$?
  HYPERFAIRSEQ_KERNELS=${FP32_KERNELS:-$KERNELS} "$PY" benchmarks/bench_hyperlstm.py "${common[@]}" --no-tf32 \
    --json "$OUT/bench_hyperlstm_gpu_fp32.json" || rc=$?
  return $rc
}

speed_stage() {
  "$PY" benchmarks/bench_train.py --data "$DATA" --device "$DEVICE" --batch-size "$SPEED_BATCH" \
    --tokens-per-sample "$TPS" --timing log --updates "$UPDATES" --log-interval "$LOG_INTERVAL" --repeats 1 \
    --precisions "$PRECISIONS" --configs "$SPEED_CONFIGS" --budget-s "$(left 8)" --json "$OUT/bench_train_gpu.json" \
    ${SMALL:+--tiny}
}

train_stage() {
  # train for TRAIN_MIN minutes, or less where the deadline cut this stage: 30 s stay for start-up and the save
  local hours; hours=$(awk -v left="$(left 30)" -v m="$TRAIN_MIN" \
    'BEGIN { s = m * 60; if (left < s) s = left; if (s < 1) s = 1; print s / 3600 }')
  "$PY" -m fairseq_cli.train "$DATA" --user-dir hyperfairseq --task char_lm --arch ln_hyperlstm_lm_ptb \
    $SMALL --batch-size "$BATCH" --tokens-per-sample "$TPS" --optimizer adam --lr 0.001 \
    --clip-norm 1.0 --num-workers 0 --log-format json --log-interval 50 --seed 1 --max-update "$TRAIN_UPDATES" \
    --stop-time-hours "$hours" --save-dir "$CKPT" --no-epoch-checkpoints $CUDA_FLAG
}

eval_stage() {
  "$PY" -m fairseq_cli.eval_lm "$DATA" --user-dir hyperfairseq --task char_lm --path "$CKPT/checkpoint_last.pt" \
    --batch-size "$BATCH" --tokens-per-sample "$TPS" --gen-subset test --num-workers 0 $CUDA_FLAG
}

# the background compile (triton_warm.py) under its limit, cut to what the deadline leaves; WARM is its pid
start_warm() {
  local limit=$((DEADLINE - MARGIN - $(date +%s)))
  [ "$WARM_S" -lt "$limit" ] && limit=$WARM_S
  [ "$limit" -ge "$MIN_STAGE" ] || { echo "warm-up skipped: $limit s left" > "$WORK/warm.log"; return; }
  HYPERFAIRSEQ_KERNELS=$KERNELS timeout -k "$GRACE" "$limit" "$PY" benchmarks/triton_warm.py $WARM_ARGS \
    > "$WORK/warm.log" 2>&1 &
  WARM=$!
}

wait_warm() {
  [ -n "${WARM:-}" ] || return 0
  wait "$WARM"
  echo "$?" > "$WORK/warm.status"
  WARM=""
  echo "== warm-up done, exit $(cat "$WORK/warm.status") ($(($(date +%s) - START)) s in)"
}

# on exit, whatever happened: stop the warm-up, summarise, pack the logs, drop the checkpoints
finish() {
  trap - EXIT
  [ -n "${WARM:-}" ] && kill "$WARM" 2>/dev/null
  timeout -k 2 $((SUMMARY_S * SLOW)) "$PY" benchmarks/gpu_summary.py --work "$WORK" --out "$OUT" \
    --seconds "$(($(date +%s) - START))" $([ "$DRY_RUN" = 1 ] && echo --dry-run) \
    || echo "gpu_summary.py failed or ran out of time: no gpu_check.json; the stage logs are in logs.tar.gz"
  pack_logs && rm -rf "$WORK"
  rm -rf "$CKPT"
  echo "== done ($(($(date +%s) - START)) s)"
}
trap finish EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

stage env 30 env_stage
start_warm
stage kernels 70 kernels_stage
stage memcheck 45 memcheck_stage
wait_warm  # before the first timed stage: compiles on the spare cores would slow the timed processes
stage micro 45 micro_stage
stage layer 80 layer_stage
stage speed 70 speed_stage
stage train "$(awk -v m="$TRAIN_MIN" 'BEGIN { print int(m * 60 + 30) }')" train_stage
stage eval 30 eval_stage
