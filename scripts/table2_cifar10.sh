#!/usr/bin/env bash
# Table 2 (paper §4.2): WRN 40-1 / 40-2, normal vs hyper, on CIFAR-10.
#   scripts/table2_cifar10.sh DATA_DIR [--smoke] [-- extra train.py flags]
# DATA_DIR holds cifar-10-batches-py/ (add "-- --download" to fetch it when online). Full runs use the
# paper's protocol: 45k/5k/10k split, pad-4 crop + flip, batch 128, Nesterov SGD with Table 8 (140k
# steps) for wrn_*, Adam with Table 9 (672k steps) for hyper_wrn_*, L2 5e-4 on (generated) kernels.
# --smoke: 2 steps of batch 8 per model, e.g. on the 20 real CIFAR-10 images of the foolbox fixture
# (data/cifar10-foolbox from scripts/get_vision_data.sh); checks the pipeline, not accuracy.
# Writes docs/runs/table2_<arch>[_smoke].json and checkpoints under runs/.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$([[ -x "$REPO/.venv/bin/python" ]] && echo "$REPO/.venv/bin/python" || echo python3)}"
usage() { echo "usage: $0 DATA_DIR [--smoke] [-- train.py flags]" >&2; exit 2; }

[[ $# -ge 1 && "$1" != -* ]] || usage
DATA="$1"; shift
SMOKE=0; EXTRA=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke) SMOKE=1 ;;
        --) shift; EXTRA=("$@"); break ;;
        *) usage ;;
    esac
    shift
done
mkdir -p "$DATA"

if [[ $SMOKE == 1 ]]; then
    RUN=(--max-steps 2 --batch-size 8 --eval-batch-size 20)
    SUFFIX=_smoke
else
    RUN=(--eval-interval 1000)
    SUFFIX=""
fi
for ARCH in wrn_40_1 hyper_wrn_40_1 wrn_40_2 hyper_wrn_40_2; do
    "$PY" "$REPO/examples/hyper_resnet/train.py" --dataset cifar10 --data "$DATA" --arch "$ARCH" \
        --save-dir "runs/table2_${ARCH}${SUFFIX}" --save-interval 1000 \
        --results-json "$REPO/docs/runs/table2_${ARCH}${SUFFIX}.json" "${RUN[@]}" "${EXTRA[@]}"
done
