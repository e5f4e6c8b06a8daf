#!/usr/bin/env bash
# Table 5 (paper §4.5, A.3.5): train and evaluate every handwriting row on a prepared stroke dataset.
#   scripts/table5_iam_ondb.sh DIR [--smoke] [--rows "ARCH ..."] [--runs-dir DIR] [-- extra fairseq-train flags]
# DIR is a prepared dataset: python -m hyperfairseq.data.iam_ondb prepare --raw RAW --out DIR (IAM-OnDB,
# comparable with Table 5), or hyperfairseq.data.kanjivg / .lasa (real strokes, NOT comparable; every JSON
# carries the dataset's label). Paper settings: Adam lr 1e-4, gradient clipping 5.0, batch 32 lines,
# dropout keep 0.95 (the architectures' defaults), ±10% scale augmentation (task default). The paper does
# not state the training length: MAX_EPOCH (default 100) with early stopping PATIENCE (default 10).
# Evaluation: fairseq-validate on the valid split with checkpoint_best.pt; log_loss = nats per line.
# Writes RUNS_DIR/table5_<dataset>_<arch>[_smoke].json (RUNS_DIR default docs/runs) and checkpoints under runs/.
# --smoke: a tiny model (16 units), 3 updates, to check the path end to end.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$([[ -x "$REPO/.venv/bin/python" ]] && echo "$REPO/.venv/bin/python" || echo python3)}"
usage() { echo "usage: $0 DIR [--smoke] [--rows \"ARCH ...\"] [--runs-dir DIR] [-- fairseq-train flags]" >&2; exit 2; }
die() { echo "$0: error: $*" >&2; exit 1; }

ALL_ROWS="hyperlstm_handwriting ln_hyperlstm_handwriting lstm_handwriting_900 lstm_handwriting_1000 \
ln_lstm_handwriting_900 ln_lstm_handwriting_1000 lstm_handwriting_3layer_400 lstm_handwriting_2layer_650"
declare -A PAPER=([hyperlstm_handwriting]=-1162 [ln_hyperlstm_handwriting]=-1067 [lstm_handwriting_900]=-1055
    [lstm_handwriting_1000]=-1048 [ln_lstm_handwriting_900]=-1096 [ln_lstm_handwriting_1000]=-1106
    [lstm_handwriting_3layer_400]=-1068 [lstm_handwriting_2layer_650]=-1135)

[[ $# -ge 1 && "$1" != -* ]] || usage
DATA="$1"; shift
SMOKE=0; ROWS="$ALL_ROWS"; RUNS_DIR="$REPO/docs/runs"; EXTRA=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke) SMOKE=1 ;;
        --rows) ROWS="${2:?--rows needs a value}"; shift ;;
        --runs-dir) RUNS_DIR="${2:?--runs-dir needs a value}"; shift ;;
        --) shift; EXTRA=("$@"); break ;;
        *) usage ;;
    esac
    shift
done
[[ -f "$DATA/meta.json" ]] || die "$DATA/meta.json not found: prepare the data first (python -m hyperfairseq.data.iam_ondb prepare --raw RAW --out $DATA)"
for ROW in $ROWS; do [[ -n "${PAPER[$ROW]:-}" ]] || die "unknown Table 5 row $ROW (rows: $ALL_ROWS)"; done
LABEL="$(grep -o '"label": "[^"]*"' "$DATA/meta.json" | sed 's/"label": "\(.*\)"/\1/')"
SOURCE="$(grep -o '"source": "[^"]*"' "$DATA/meta.json" | sed 's/"source": "\(.*\)"/\1/')"
COMPARABLE="$(grep -o '"comparable_with_table5": [a-z]*' "$DATA/meta.json" | sed 's/.*: //')"
mkdir -p "$RUNS_DIR"

if [[ $SMOKE == 1 ]]; then
    RUN=(--decoder-hidden-size 16 --hyper-hidden-size 8 --num-mixtures 3 --max-update 3 --batch-size 8)
    SUFFIX=_smoke
else
    RUN=(--batch-size 32 --max-epoch "${MAX_EPOCH:-100}" --patience "${PATIENCE:-10}")
    SUFFIX=""
fi
for ROW in $ROWS; do
    SAVE="runs/table5_${SOURCE}_${ROW}${SUFFIX}"
    LOG="$SAVE/train.log"
    mkdir -p "$SAVE"
    "$PY" -m fairseq_cli.train "$DATA" --user-dir "$REPO/hyperfairseq" --task handwriting --arch "$ROW" \
        --criterion mdn --optimizer adam --lr 1e-4 --clip-norm 5.0 --save-dir "$SAVE" --no-epoch-checkpoints \
        --num-workers 0 --no-progress-bar --log-format simple "${RUN[@]}" "${EXTRA[@]}" > "$LOG" 2>&1 \
        || { tail -n 20 "$LOG" >&2; die "training $ROW failed; log: $LOG"; }
    VLOG="$SAVE/validate.log"
    "$PY" -m fairseq_cli.validate "$DATA" --user-dir "$REPO/hyperfairseq" --task handwriting \
        --path "$SAVE/checkpoint_best.pt" --valid-subset valid --batch-size 32 --num-workers 0 > "$VLOG" 2>&1 \
        || { tail -n 20 "$VLOG" >&2; die "validation of $ROW failed; log: $VLOG"; }
    RESULT="$(grep "valid on 'valid' subset" "$VLOG" | tail -n 1 || true)"
    LOG_LOSS="$(echo "$RESULT" | sed -n 's/.*| log_loss \([-0-9.e+]*\).*/\1/p')"
    LOSS="$(echo "$RESULT" | sed -n 's/.*| loss \([-0-9.e+]*\).*/\1/p')"
    UPDATES="$(grep -o 'num_updates [0-9]*' "$LOG" | tail -n 1 | sed 's/num_updates //' || true)"
    PARAMS="$(grep -o 'num. shared model params: [0-9,]*' "$LOG" | head -n 1 | sed 's/.*: //; s/,//g' || true)"
    [[ -n "$LOG_LOSS" && -n "$LOSS" ]] || die "no log_loss in $VLOG"
    OUT="$RUNS_DIR/table5_${SOURCE}_${ROW}${SUFFIX}.json"
    cat > "$OUT" <<JSON
{
  "table": "Table 5",
  "arch": "$ROW",
  "dataset": "$SOURCE",
  "dataset_label": "$LABEL",
  "comparable_with_table5": $COMPARABLE,
  "smoke": $([[ $SMOKE == 1 ]] && echo true || echo false),
  "valid_log_loss_nats_per_line": $LOG_LOSS,
  "valid_loss_nats_per_point": $LOSS,
  "paper_log_loss": ${PAPER[$ROW]},
  "num_updates": ${UPDATES:-0},
  "num_params": ${PARAMS:-0},
  "train_flags": "$(echo "${RUN[@]} ${EXTRA[@]}" | sed 's/"/\\"/g')",
  "checkpoint": "$SAVE/checkpoint_best.pt"
}
JSON
    echo "$ROW: valid log-loss $LOG_LOSS nats/line on $LABEL (paper, IAM-OnDB: ${PAPER[$ROW]}) -> $OUT"
done
