#!/usr/bin/env bash
# Handwriting synthesis on Hershey-rendered KJV lines (issue 15): the data, three runs at equal updates
# (synthesis HyperLSTM, synthesis LSTM, unconditional HyperLSTM of about the same size), fairseq-validate,
# alignment and legibility, the README figure.
#   scripts/synthesis_hershey.sh [--smoke] [--reuse] [--updates U1,U2,...] [--runs-dir DIR]
# Needs scripts/get_data.sh's Hershey wheel and KJV module. The three runs train in parallel, one thread each
# (sized for 2 shared CPU cores: 2 layers of ~100 units, lines of <= 14 characters, batches of 32 lines).
# --updates: the stages, ascending (default 500,1000,1500: every synthesis record of the README; about 25 min on
#   2 shared Intel Xeon cores, about 90 on AMD EPYC ones). The first trains from scratch into checkpoints/synthesis/ROW; each later stage U copies the
#   stage before into checkpoints/synthesis_U/ROW and resumes it to U updates (fairseq's resume is exact). Each
#   stage is evaluated and recorded; the figure comes from the last.
# --reuse: keep a stage's checkpoint_last.pt when it exists (evaluate only). --smoke: tiny models, stages 4,8,
#   everything (data, checkpoints, logs) under $SMOKE_DIR (default runs/synthesis_smoke).
# Writes RUNS_DIR/synthesis_{hershey,alignment,legibility}_<row>[_U][_smoke].json (RUNS_DIR default docs/runs;
# _U for every stage but the first) and, without --smoke, docs/figures/synthesis_sample.png and
# synthesis_alignment.png.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$([[ -x "$REPO/.venv/bin/python" ]] && echo "$REPO/.venv/bin/python" || echo python3)}"
die() { echo "$0: error: $*" >&2; exit 1; }
SMOKE=0; REUSE=0; RUNS_DIR="$REPO/docs/runs"; STAGES=""
USAGE="usage: $0 [--smoke] [--reuse] [--updates U1,U2,...] [--runs-dir DIR]"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke) SMOKE=1 ;;
        --reuse) REUSE=1 ;;
        --updates) STAGES="${2:?--updates needs a value}"; shift ;;
        --runs-dir) RUNS_DIR="${2:?--runs-dir needs a value}"; shift ;;
        *) die "unknown argument $1 ($USAGE)" ;;
    esac
    shift
done
cd "$REPO"
export OMP_NUM_THREADS=1 PYTHONWARNINGS=ignore
if [[ $SMOKE == 1 ]]; then
    WORK=${SMOKE_DIR:-runs/synthesis_smoke}; SMOKE_SUFFIX=_smoke; DATA=$WORK/hershey; CKPTS=$WORK/checkpoints
    STAGES=${STAGES:-4,8}; TEXTS=10
    PREP=(--train-lines 200 --valid-lines 40 --test-lines 400)
    SIZES=(hyper "--decoder-layers 2 --decoder-hidden-size 16 --hyper-hidden-size 8"
           lstm "--decoder-layers 2 --decoder-hidden-size 20"
           uncond "--decoder-layers 2 --decoder-hidden-size 20 --hyper-hidden-size 8")
else
    WORK=runs/synthesis; SMOKE_SUFFIX=""; DATA=data-bin/hershey; CKPTS=checkpoints
    STAGES=${STAGES:-500,1000,1500}; TEXTS=100
    PREP=(--train-lines 20000 --valid-lines 400 --test-lines 400)
    SIZES=(hyper "--decoder-layers 2 --decoder-hidden-size 96 --hyper-hidden-size 32"
           lstm "--decoder-layers 2 --decoder-hidden-size 118"
           uncond "--decoder-layers 2 --decoder-hidden-size 121 --hyper-hidden-size 32")
fi
declare -A TASK=([hyper]=handwriting_synthesis [lstm]=handwriting_synthesis [uncond]=handwriting)
declare -A ARCH=([hyper]=hyperlstm_synthesis [lstm]=lstm_synthesis [uncond]=hyperlstm_handwriting)
declare -A FLAGS=([${SIZES[0]}]="${SIZES[1]}" [${SIZES[2]}]="${SIZES[3]}" [${SIZES[4]}]="${SIZES[5]}")
IFS=, read -r -a UPDATES_LIST <<< "$STAGES"
previous=0
for updates in "${UPDATES_LIST[@]}"; do
    [[ $updates =~ ^[1-9][0-9]*$ && $updates -gt $previous ]] \
        || die "--updates $STAGES: expected ascending positive numbers of updates, e.g. 500,1000,1500"
    previous=$updates
done

mkdir -p "$RUNS_DIR"

[[ -f "$DATA/meta.json" ]] || "$PY" -m hyperfairseq.data.hershey prepare --out "$DATA" --max-chars 14 "${PREP[@]}" \
    || die "preparing $DATA failed"

train_cmd() {  # the fairseq-train command of a row at a stage, one word per line
    local row=$1 updates=$2 suffix=$3 work=$4
    printf '%s\n' fairseq-train "$DATA" --user-dir hyperfairseq --task "${TASK[$row]}" --arch "${ARCH[$row]}" \
        ${FLAGS[$row]} --criterion mdn --optimizer adam --lr 2e-3 --clip-norm 5 --batch-size 32 \
        --max-update "$updates" --cpu --num-workers 0 --seed 1 --save-dir "$CKPTS/synthesis$suffix/$row" \
        --no-epoch-checkpoints --log-format json --log-interval 25 --log-file "$work/$row.log" \
        --validate-interval-updates 250 --save-interval-updates 250 --keep-interval-updates 1 --no-progress-bar
}

train_stage() {  # the three rows to `updates`, in parallel: from scratch, or resuming the stage `from`
    local updates=$1 suffix=$2 work=$3 from=$4 from_work=$5 row
    for row in hyper lstm uncond; do
        if [[ $REUSE == 1 && -f "$CKPTS/synthesis$suffix/$row/checkpoint_last.pt" ]]; then continue; fi
        rm -rf "$CKPTS/synthesis$suffix/$row" "$work/$row.log" "$work/$row.wall"
        if [[ -n $from ]]; then
            mkdir -p "$CKPTS/synthesis$suffix" && cp -r "$CKPTS/synthesis$from/$row" "$CKPTS/synthesis$suffix/$row"
            cp "$from_work/$row.log" "$work/$row.log"
        fi
        mapfile -t cmd < <(train_cmd "$row" "$updates" "$suffix" "$work")
        ( start=$(date +%s); "$PY" -m fairseq_cli.train "${cmd[@]:1}" > "$work/$row.out" 2>&1 \
            && echo $(( $(date +%s) - start + $(cat "$from_work/$row.wall" 2>/dev/null || echo 0) )) \
                > "$work/$row.wall" ) &
    done
    wait
}

record_stage() {  # fairseq-validate, the NLL record of each row, alignment and legibility of the two synthesis rows
    local updates=$1 suffix=$2 work=$3 from=$4 from_updates=$5 row
    for row in hyper lstm uncond; do
        local ckpt="$CKPTS/synthesis$suffix/$row/checkpoint_last.pt" command=""
        [[ -f "$ckpt" ]] || { tail -n 20 "$work/$row.out" >&2; die "training $row failed; log: $work/$row.out"; }
        "$PY" -m fairseq_cli.validate "$DATA" --user-dir hyperfairseq --task "${TASK[$row]}" --path "$ckpt" \
            --valid-subset valid --batch-size 32 --num-workers 0 --cpu > "$work/$row.validate" 2>&1 \
            || { tail -n 20 "$work/$row.validate" >&2; die "validating $row failed"; }
        local result params
        result="$(grep "valid on 'valid' subset" "$work/$row.validate" | tail -n 1)"
        params="$(grep -o 'num. shared model params: [0-9,]*' "$work/$row.out" | head -n 1 | sed 's/.*: //; s/,//g')"
        mapfile -t cmd < <(train_cmd "$row" "$updates" "$suffix" "$work")
        [[ -z $from ]] || command="cp -r $CKPTS/synthesis$from/$row $CKPTS/synthesis$suffix/$row; "
        command+="${cmd[*]}; fairseq-validate $DATA --task ${TASK[$row]} --path $ckpt --valid-subset valid"
        [[ -z $from ]] || command+=" (resumes the $from_updates-update run of synthesis_hershey_$row$from.json; wall: all parts)"
        "$PY" -m hyperfairseq.run_record --out "$RUNS_DIR/synthesis_hershey_$row$suffix.json" \
            --name "synthesis_hershey_$row$suffix" --command "$command" \
            --data "Hershey-rendered KJV lines, valid split (held-out books; not IAM-OnDB)" \
            --wall-seconds "$(cat "$work/$row.wall" 2>/dev/null || echo 0)" --train-log "$work/$row.log" \
            --result "arch=${ARCH[$row]}" "task=${TASK[$row]}" "params=$params" "updates=$updates" \
                "valid_log_loss=$(echo "$result" | sed -n 's/.*| log_loss \([-0-9.e+]*\).*/\1/p')" \
                "valid_loss_per_point=$(echo "$result" | sed -n 's/.*| loss \([-0-9.e+]*\).*/\1/p')"
    done
    for row in hyper lstm; do
        local ckpt="$CKPTS/synthesis$suffix/$row/checkpoint_last.pt"
        "$PY" -m hyperfairseq.synthesis_eval alignment --path "$ckpt" --data "$DATA" \
            --json "$RUNS_DIR/synthesis_alignment_$row$suffix.json"
        "$PY" -m hyperfairseq.synthesis_eval legibility --path "$ckpt" --data "$DATA" --texts "$TEXTS" \
            --json "$RUNS_DIR/synthesis_legibility_$row$suffix.json"
    done
}

from="" from_work="" from_updates=""
for updates in "${UPDATES_LIST[@]}"; do
    stage_suffix="" work=$WORK
    if [[ -n $from_updates ]]; then  # a later stage: runs/synthesis_U (smoke: $SMOKE_DIR/_U)
        stage_suffix=_$updates work=$WORK$([[ $SMOKE == 0 ]] || echo /)_$updates
    fi
    suffix=$stage_suffix$SMOKE_SUFFIX
    mkdir -p "$work"
    train_stage "$updates" "$suffix" "$work" "$from" "$from_work"
    record_stage "$updates" "$suffix" "$work" "$from" "$from_updates"
    from=$suffix from_work=$work from_updates=$updates
done
if [[ $SMOKE == 0 ]]; then
    TEXT="$(awk 'length($0) >= 13' "$DATA/test.text" | head -n 1)"
    "$PY" -m hyperfairseq.sample_handwriting --path "$CKPTS/synthesis$from/hyper/checkpoint_last.pt" \
        --text "$TEXT" -n 1 --seed 1 --bias 1.0 --out "$from_work/figure" > "$from_work/figure.out"
    cp "$from_work/figure/sample_00.png" docs/figures/synthesis_sample.png
    cp "$from_work/figure/alignment_00.png" docs/figures/synthesis_alignment.png
    cat "$from_work/figure.out"
fi
echo "records in $RUNS_DIR: synthesis_{hershey,alignment,legibility}_*$SMOKE_SUFFIX.json (stages: $STAGES updates)"
