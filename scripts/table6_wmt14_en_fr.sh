#!/usr/bin/env bash
# Table 6: GNMT-shaped LSTM vs LN-HyperLSTM on WMT'14 En->Fr, test BLEU (detokenised sacrebleu) and log perplexity.
#
# Usage: bash scripts/table6_wmt14_en_fr.sh [--data data-bin/wmt14_en_fr] [--out docs/runs] [--max-update N] [--cpu]
#        bash scripts/table6_wmt14_en_fr.sh --smoke     # here: tiny Bible En->Es slice, shrunk cells, a few updates
# Full mode needs scripts/prepare_wmt14_en_fr.sh first, and GPUs. Rows: hyperlstm_wmt, lstm_wmt.
# Optimiser: Adam lr 2e-4, gradient-norm clip 5, dropout 0.2 (GNMT's En->Fr values, paper-spec §3.6); beam 4.
# Writes OUT/table6_<row>[_smoke].json with BLEU, test loss (bits and nats per token) and the commands run.
set -euo pipefail
# the README's virtualenv (.venv), unless one is active: `python` and `fairseq-*` below are its
venv="$(dirname "$0")/../.venv"; [ -z "${VIRTUAL_ENV:-}" ] && [ -f "$venv/bin/activate" ] && source "$venv/bin/activate"
die() { echo "table6_wmt14_en_fr.sh: error: $*" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(dirname "$HERE")
DATA=data-bin/wmt14_en_fr OUT=docs/runs SMOKE=0 MAX_UPDATE=1000000 CPU=() SRC=en TGT=fr
while [[ $# -gt 0 ]]; do
    case "$1" in
        --data) DATA=$2; shift 2 ;; --out) OUT=$2; shift 2 ;; --max-update) MAX_UPDATE=$2; shift 2 ;;
        --smoke) SMOKE=1; shift ;; --cpu) CPU=(--cpu); shift ;;
        -h|--help) sed -n 2,9p "$0"; exit 0 ;; *) die "unknown argument $1" ;;
    esac
done
TRAIN_FLAGS=(--optimizer adam --lr 2e-4 --clip-norm 5 --dropout 0.2 --max-tokens 4096 --criterion cross_entropy)
SHRINK=() SUFFIX=
if [[ $SMOKE == 1 ]]; then
    SRC=en TGT=es SUFFIX=_smoke CPU=(--cpu) MAX_UPDATE=3
    WORK=${SMOKE_DIR:-$(mktemp -d)}
    DATA_ROOT=${HYPERFAIRSEQ_DATA:-$REPO/data}
    bash "$HERE/get_bible_data.sh" "$DATA_ROOT/_pkgs"
    python -m hyperfairseq.data.sword --out "$WORK/text" --max-train 300 --replace
    for s in valid test; do for l in en es; do head -n 20 "$WORK/text/$s.$l" > "$WORK/text/$s.slice.$l"; done; done
    bash "$HERE/prepare_parallel.sh" --src en --tgt es --train "$WORK/text/train" --valid "$WORK/text/valid.slice" \
        --test "$WORK/text/test.slice" --vocab-size 300 --replace "$WORK/bin"
    DATA=$WORK/bin
    # the Table 6 architectures (8 + 8 layers, residuals, attention) with 32-unit cells so that CPU steps are quick
    SHRINK=(--encoder-embed-dim 32 --encoder-hidden-size 32 --decoder-embed-dim 32 --decoder-hidden-size 32
            --attention-dim 32 --hyper-hidden-size 16 --n-z 8)
    TRAIN_FLAGS=(--optimizer adam --lr 3e-3 --clip-norm 5 --dropout 0.2 --max-tokens 2000 --criterion cross_entropy)
fi
[[ -f "$DATA/dict.$SRC.txt" ]] || die "$DATA/dict.$SRC.txt not found: run scripts/prepare_wmt14_en_fr.sh first"
mkdir -p "$OUT"
for ROW in hyperlstm_wmt lstm_wmt; do
    SAVE=${SAVE_ROOT:-checkpoints}/table6_$ROW$SUFFIX
    TRAIN=(fairseq-train "$DATA" --user-dir "$REPO/hyperfairseq" --task translation --source-lang $SRC --target-lang $TGT
           --arch $ROW "${SHRINK[@]}" "${TRAIN_FLAGS[@]}" --max-update "$MAX_UPDATE" --seed 1 "${CPU[@]}"
           --save-dir "$SAVE" --no-epoch-checkpoints --log-format simple --num-workers 0)
    VALID=(fairseq-validate "$DATA" --user-dir "$REPO/hyperfairseq" --task translation --source-lang $SRC --target-lang $TGT
           --path "$SAVE/checkpoint_last.pt" --valid-subset test --max-tokens 4096 --required-batch-size-multiple 1 "${CPU[@]}" --num-workers 0)
    GEN=(fairseq-generate "$DATA" --user-dir "$REPO/hyperfairseq" --source-lang $SRC --target-lang $TGT
         --path "$SAVE/checkpoint_last.pt" --gen-subset test --beam 4 --remove-bpe sentencepiece --scoring sacrebleu
         --max-tokens 8000 --required-batch-size-multiple 1 "${CPU[@]}" --num-workers 0)
    mkdir -p "$SAVE"
    echo "== $ROW: ${TRAIN[*]}"
    "${TRAIN[@]}" 2>&1 | tee "$SAVE/train.log" | grep -E "\| (train|valid) \|" || true
    [[ -f "$SAVE/checkpoint_last.pt" ]] || die "training $ROW produced no checkpoint (see $SAVE/train.log)"
    LOSS=$("${VALID[@]}" 2>&1 | tee "$SAVE/validate.log" | sed -n 's/.*| test .*| loss \([0-9.]*\) .*/\1/p' | tail -n 1)
    BLEU=$("${GEN[@]}" 2>&1 | tee "$SAVE/generate.log" | sed -n 's/.*BLEU = \([0-9.]*\) .*/\1/p' | tail -n 1)
    [[ -n "$LOSS" && -n "$BLEU" ]] || die "could not read loss/BLEU for $ROW (see $SAVE/validate.log, $SAVE/generate.log)"
    NATS=$(awk -v b="$LOSS" 'BEGIN { printf "%.4f", b * log(2) }')
    PARAMS=$(sed -n 's/.*num. shared model params: \([0-9,]*\).*/\1/p' "$SAVE/train.log" | head -n 1 | tr -d ,)
    cat > "$OUT/table6_$ROW$SUFFIX.json" <<JSON
{
  "row": "$ROW", "smoke": $([[ $SMOKE == 1 ]] && echo true || echo false), "data": "$DATA", "max_update": $MAX_UPDATE,
  "parameters": ${PARAMS:-null}, "test_bleu_sacrebleu_detok": $BLEU, "test_loss_bits_per_token": $LOSS,
  "test_log_perplexity_nats": $NATS, "commit": "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)",
  "commands": ["${TRAIN[*]}", "${VALID[*]}", "${GEN[*]}"]
}
JSON
    echo "$ROW: BLEU $BLEU, test loss $LOSS bits/token ($NATS nats) -> $OUT/table6_$ROW$SUFFIX.json"
done
