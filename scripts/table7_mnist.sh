#!/usr/bin/env bash
# Table 7 (paper §4.1): normal vs hyper convnet on MNIST-format data.
#   scripts/table7_mnist.sh DATA_DIR [--dataset mnist|fashion_mnist] [--smoke] [-- extra train.py flags]
# DATA_DIR holds {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]. The paper used MNIST; the data
# reachable here is Fashion-MNIST (scripts/get_vision_data.sh -> data/fashion-mnist), so pass
# --dataset fashion_mnist for it. Full runs use the paper's protocol (Adam 1e-3, batch 1000, pad-1
# crop; 50 epochs, validation every epoch, test error at the best validation error).
# Writes docs/runs/table7_<dataset>_<arch>[_smoke].json and checkpoints under runs/.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$([[ -x "$REPO/.venv/bin/python" ]] && echo "$REPO/.venv/bin/python" || echo python3)}"
usage() { echo "usage: $0 DATA_DIR [--dataset mnist|fashion_mnist] [--smoke] [-- train.py flags]" >&2; exit 2; }

[[ $# -ge 1 && "$1" != -* ]] || usage
DATA="$1"; shift
DATASET=mnist; SMOKE=0; EXTRA=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke) SMOKE=1 ;;
        --dataset) DATASET="${2:?--dataset needs a value}"; shift ;;
        --) shift; EXTRA=("$@"); break ;;
        *) usage ;;
    esac
    shift
done
[[ -d "$DATA" ]] || { echo "$0: data folder $DATA not found (run scripts/get_vision_data.sh)" >&2; exit 1; }

if [[ $SMOKE == 1 ]]; then
    RUN=(--max-steps 20 --batch-size 100 --test-size 1000 --eval-interval 10 --lr-schedule 1000:0.005)
    SUFFIX=_smoke
else
    RUN=(--eval-interval 55)  # 55 steps = one epoch of 55k images at batch 1000
    SUFFIX=""
fi
for ARCH in convnet hyper_convnet; do
    "$PY" "$REPO/examples/hyper_resnet/train.py" --dataset "$DATASET" --data "$DATA" --arch "$ARCH" \
        --save-dir "runs/table7_${DATASET}_${ARCH}${SUFFIX}" --save-interval 500 --no-progress \
        --results-json "$REPO/docs/runs/table7_${DATASET}_${ARCH}${SUFFIX}.json" "${RUN[@]}" "${EXTRA[@]}"
done
