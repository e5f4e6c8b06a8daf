#!/usr/bin/env bash
# Why layer-normed cells are trained with --clip-norm (the paper clips at 1.0, R12): at initialisation their
# gradient through time grows with the segment length. For each one-layer Table 3 cell at the demo's size
# (256 units, N_ĥ 64), the gradient norm fairseq-train logs for its first update (16 streams of char-PTB,
# state reset) at segment lengths 25 to 400; then 150 updates of the LN-HyperLSTM on segments of 400, with
# and without clipping. One record: docs/runs/NAME.json.
#   bash scripts/gradient_growth.sh [DATA=data-bin/ptb_char] [NAME=gradient_growth_ptb]
set -euo pipefail
# the README's virtualenv (.venv), unless one is active: `python` and `fairseq-*` below are its
venv="$(dirname "$0")/../.venv"; [ -z "${VIRTUAL_ENV:-}" ] && [ -f "$venv/bin/activate" ] && source "$venv/bin/activate"
cd "$(dirname "$0")/.."
export PYTHONWARNINGS=ignore
data=${1:-data-bin/ptb_char}; name=${2:-gradient_growth_ptb}
[ -f "$data/dict.txt" ] || { echo "$0: no binarised char-PTB in $data (bash scripts/prepare_ptb_char.sh $data)" >&2; exit 2; }
archs="lstm_lm_ptb_1000 ln_lstm_lm_ptb hyperlstm_lm_ptb ln_hyperlstm_lm_ptb"; lengths="25 50 100 200 400"
logs=$(mktemp -d); trap 'rm -rf "$logs"' EXIT
train() {  # train LOG ARCH LENGTH UPDATES [more fairseq-train options]
  local log=$1 arch=$2 length=$3 updates=$4; shift 4
  fairseq-train "$data" --user-dir hyperfairseq --task char_lm --arch "$arch" --cpu --seed 1 \
    --decoder-hidden-size 256 --hyper-hidden-size 64 --batch-size 16 --tokens-per-sample "$length" \
    --optimizer adam --lr 1e-3 --max-update "$updates" --no-save --disable-validation \
    --log-format json --log-interval 1 --log-file "$log" "$@" >/dev/null
}
start=$(date +%s)
for arch in $archs; do
  for length in $lengths; do
    train "$logs/first_${arch}_$length.log" "$arch" "$length" 1
    echo "$arch T $length: gnorm $(grep -o '"gnorm": "[0-9.e+]*"' "$logs/first_${arch}_$length.log" | head -1)"
  done
done
for clip in 1.0 0; do
  train "$logs/clip_$clip.log" ln_hyperlstm_lm_ptb 400 150 --clip-norm "$clip"
done
python - "$logs" "$name" "$archs" "$lengths" "$(($(date +%s) - start))" "bash scripts/gradient_growth.sh $*" <<'EOF'
import json, re, sys
from hyperfairseq import run_record
logs, name, archs, lengths, wall, command = sys.argv[1:]
def lines(path):  # fairseq's json stats lines with a gradient norm, in order (train_inner, then the epoch's)
    def parsed(text):
        try:
            return json.loads(text)
        except ValueError:  # the config fairseq logs as a Python dict
            return {}
    return [d for d in map(parsed, re.findall(r"\{.*\}", open(path).read())) if "gnorm" in d]
first = {a: {f"T{t}": float(lines(f"{logs}/first_{a}_{t}.log")[0]["gnorm"]) for t in lengths.split()}
         for a in archs.split()}
def run(clip):
    inner = [line for line in lines(f"{logs}/clip_{clip}.log") if "num_updates" in line][:150]
    return {"loss_bits_updates_101_150": round(sum(float(x["loss"]) for x in inner[100:]) / len(inner[100:]), 4),
            "gnorm_first_5": [float(x["gnorm"]) for x in inner[:5]],
            "updates_clipped": sum(float(x.get("clip", 0)) > 0 for x in inner)}
record = {"name": name, **run_record.stamp(
    command, data="char-PTB train, its first segments (16 streams)", wall_seconds=float(wall),
    result={"gnorm_first_update": first, "size": "256 units, N_ĥ 64, 16 streams, seed 1",
            "ln_hyperlstm_T400_150_updates": {"clip_norm_1.0": run("1.0"), "no_clipping": run("0")}})}
print(f"wrote {run_record.write(f'docs/runs/{name}.json', record)}")
EOF
