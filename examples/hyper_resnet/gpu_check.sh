#!/usr/bin/env bash
# One prepared accelerator run (device machine: torch there, no fairseq): Table 7 protocol on
# Fashion-MNIST, the four Table 2 architectures trained briefly on Fashion-MNIST (CUDA + bf16),
# SIGTERM-checkpoint-then-eval for runs cut by the time limit, and the kernel figures.
#   bash examples/hyper_resnet/gpu_check.sh OUT_DIR [DATA_DIR]      (QUICK=1: a few steps, any device)
set -uo pipefail
OUT="${1:?usage: gpu_check.sh OUT_DIR [DATA_DIR]}"
DATA="${2:-data/fashion-mnist}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
QUICK="${QUICK:-0}"
WRN_LIMIT="${WRN_LIMIT:-330}"
mkdir -p "$OUT" runs docs/runs

# the device image has no fairseq: expose only the torch-only parts of the package
SHIM="$(mktemp -d)"
mkdir -p "$SHIM/hyperfairseq/modules"
touch "$SHIM/hyperfairseq/__init__.py" "$SHIM/hyperfairseq/modules/__init__.py"
ln -s "$REPO/hyperfairseq/modules/static_hypernet.py" "$SHIM/hyperfairseq/modules/static_hypernet.py"
ln -s "$REPO/hyperfairseq/vision" "$SHIM/hyperfairseq/vision"
export PYTHONPATH="$SHIM" PYTHON="$PY" PYTHONUNBUFFERED=1
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

T7=(-- --device "$DEVICE" --threads 4)
[[ $QUICK == 1 ]] && T7=(--smoke -- --device "$DEVICE" --threads 1)
( timeout -s TERM 400 bash "$REPO/scripts/table7_mnist.sh" "$DATA" --dataset fashion_mnist "${T7[@]}" > "$OUT/table7.log" 2>&1; echo "table7 rc $?" >> "$OUT/table7.log" ) &

STEPS=4000; SGD="2000:0.1,3000:0.02,4000:0.004"; ADAM="2000:0.002,3000:0.001,4000:0.0002"; EVAL=500
[[ $QUICK == 1 ]] && { STEPS=3; SGD="1000:0.1"; ADAM="1000:0.002"; EVAL=2; }
for ARCH in wrn_40_1 hyper_wrn_40_1 wrn_40_2 hyper_wrn_40_2; do
    SCHED="$ADAM"; [[ $ARCH == wrn_* ]] && SCHED="$SGD"
    (
        timeout -s TERM "$WRN_LIMIT" "$PY" "$REPO/examples/hyper_resnet/train.py" --dataset fashion_mnist --data "$DATA" \
            --arch "$ARCH" --batch-size 128 --max-steps "$STEPS" --lr-schedule "$SCHED" --eval-interval "$EVAL" \
            --save-interval 250 --bf16 --device "$DEVICE" --threads 2 --no-progress --save-dir "runs/fmnist_$ARCH" \
            --results-json "docs/runs/fmnist_wrn_$ARCH.json"
        rc=$?
        echo "$ARCH train rc $rc"
        if [[ $rc != 0 ]]; then  # cut by the limit: the SIGTERM checkpoint is evaluated instead
            "$PY" "$REPO/examples/hyper_resnet/train.py" --eval --resume "runs/fmnist_$ARCH/checkpoint.pt" \
                --data "$DATA" --device "$DEVICE" --bf16 --results-json "docs/runs/fmnist_wrn_${ARCH}.json"
            echo "$ARCH eval rc $?"
        fi
    ) > "$OUT/wrn_$ARCH.log" 2>&1 &
done
wait

"$PY" "$REPO/examples/hyper_resnet/kernel_figures.py" --checkpoint runs/table7_fashion_mnist_convnet*/checkpoint.pt \
    --checkpoint runs/table7_fashion_mnist_hyper_convnet*/checkpoint.pt --out "$OUT/fig2_fashion_mnist_kernels.png"
"$PY" "$REPO/examples/hyper_resnet/kernel_figures.py" --checkpoint runs/fmnist_wrn_40_1/checkpoint.pt \
    --checkpoint runs/fmnist_hyper_wrn_40_1/checkpoint.pt --out "$OUT/fig12_13_wrn_kernels.png"
tar czf "$OUT/gpu_runs.tar.gz" docs/runs/table7_fashion_mnist_*.json docs/runs/fmnist_wrn_*.json \
    runs/table7_fashion_mnist_*/checkpoint.pt runs/fmnist_hyper_wrn_40_1/checkpoint.pt runs/fmnist_wrn_40_1/checkpoint.pt
cat "$OUT"/*.log
