#!/usr/bin/env bash
# Parallel plain text -> joint sentencepiece model -> fairseq-preprocess (binarised, joined dictionary).
#
# Usage: bash scripts/prepare_parallel.sh --src en --tgt fr --train DIR/train --valid DIR/valid --test DIR/test \
#            --vocab-size 32000 DEST
# Inputs are plain text, one sentence per line, PREFIX.SRC and PREFIX.TGT with equal line counts.
# DEST gets spm.model / spm.vocab (trained on train.SRC + train.TGT), the binarised splits and dict.*.txt.
# Use with fairseq-generate ... --remove-bpe sentencepiece (detokenised output for sacrebleu).
# Options: --spm-sample N (sentences used to train sentencepiece, default 2000000), --workers N (default 1),
# --replace (rebuild a DEST that holds files; without it such a DEST is refused before anything is written).
# Everything is built in a folder beside DEST and moved into place whole when done: a failed or killed run
# leaves DEST as it was.
set -euo pipefail
# the README's virtualenv (.venv), unless one is active: `python` and `fairseq-*` below are its
venv="$(dirname "$0")/../.venv"; [ -z "${VIRTUAL_ENV:-}" ] && [ -f "$venv/bin/activate" ] && source "$venv/bin/activate"
die() { echo "prepare_parallel.sh: error: $*" >&2; exit 1; }
SRC= TGT= TRAIN= VALID= TEST= VOCAB=32000 SAMPLE=2000000 WORKERS=1 DEST= REPLACE=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --src) SRC=$2; shift 2 ;; --tgt) TGT=$2; shift 2 ;;
        --train) TRAIN=$2; shift 2 ;; --valid) VALID=$2; shift 2 ;; --test) TEST=$2; shift 2 ;;
        --vocab-size) VOCAB=$2; shift 2 ;; --spm-sample) SAMPLE=$2; shift 2 ;; --workers) WORKERS=$2; shift 2 ;;
        --replace) REPLACE=1; shift ;;
        -h|--help) sed -n 2,13p "$0"; exit 0 ;;
        -*) die "unknown option $1" ;;
        *) [[ -z "$DEST" ]] || die "one destination expected, got '$DEST' and '$1'"; DEST=$1; shift ;;
    esac
done
[[ -n "$SRC" && -n "$TGT" && -n "$TRAIN" && -n "$VALID" && -n "$DEST" ]] || \
    die "need --src, --tgt, --train, --valid and a destination folder (see --help)"
[[ "$VOCAB" =~ ^[0-9]+$ && "$VOCAB" -ge 16 ]] || die "--vocab-size must be an integer >= 16; got '$VOCAB'"
SPLITS=(train valid); PREFIXES=("$TRAIN" "$VALID")
[[ -n "$TEST" ]] && { SPLITS+=(test); PREFIXES+=("$TEST"); }
for p in "${PREFIXES[@]}"; do
    for l in "$SRC" "$TGT"; do [[ -s "$p.$l" ]] || die "$p.$l is missing or empty"; done
    a=$(wc -l < "$p.$SRC"); b=$(wc -l < "$p.$TGT")
    [[ "$a" == "$b" ]] || die "$p.$SRC has $a lines but $p.$TGT has $b: the sides must align line by line"
done

if [[ -d "$DEST" && -n "$(ls -A "$DEST")" && "$REPLACE" != 1 ]]; then
    die "$DEST already holds files (a prepared data set?): choose another folder, or add --replace to rebuild it"
fi
[[ -e "$DEST" && ! -d "$DEST" ]] && die "$DEST exists and is not a folder"

PY=${PYTHON:-python}
FINAL=$DEST
mkdir -p "$(dirname "$FINAL")"
DEST=$(mktemp -d "$(dirname "$FINAL")/.$(basename "$FINAL").partial.XXXXXX")  # moved to $FINAL when complete
trap 'rm -rf "$DEST"' EXIT
mkdir -p "$DEST/spm"
TMP="$DEST/spm"
cat "$TRAIN.$SRC" "$TRAIN.$TGT" > "$TMP/spm_input.txt"
# Joint sentencepiece (unigram) model. spm_train / spm_encode when installed, else the same calls in the library.
if command -v spm_train >/dev/null && command -v spm_encode >/dev/null; then
    spm_train --input="$TMP/spm_input.txt" --model_prefix="$DEST/spm" --vocab_size="$VOCAB" \
        --character_coverage=1.0 --input_sentence_size="$SAMPLE" --shuffle_input_sentence=true \
        --hard_vocab_limit=false --num_threads="$WORKERS"
    for i in "${!SPLITS[@]}"; do for l in "$SRC" "$TGT"; do
        spm_encode --model="$DEST/spm.model" --output_format=piece < "${PREFIXES[$i]}.$l" > "$TMP/${SPLITS[$i]}.$l"
    done; done
else
    args=()
    for i in "${!SPLITS[@]}"; do for l in "$SRC" "$TGT"; do
        args+=("${PREFIXES[$i]}.$l" "$TMP/${SPLITS[$i]}.$l")
    done; done
    "$PY" - "$TMP/spm_input.txt" "$DEST/spm" "$VOCAB" "$SAMPLE" "$WORKERS" "${args[@]}" <<'PYEOF'
import sys
import sentencepiece as spm
inp, prefix, vocab, sample, workers, *pairs = sys.argv[1:]
spm.SentencePieceTrainer.train(
    input=inp, model_prefix=prefix, vocab_size=int(vocab), character_coverage=1.0,
    input_sentence_size=int(sample), shuffle_input_sentence=True, hard_vocab_limit=False,
    num_threads=int(workers), minloglevel=1)
sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
for src, dst in zip(pairs[::2], pairs[1::2]):
    with open(src, encoding="utf-8") as f, open(dst, "w", encoding="utf-8") as g:
        for line in f:
            g.write(" ".join(sp.encode(line.rstrip("\n"), out_type=str)) + "\n")
PYEOF
fi
rm -f "$TMP/spm_input.txt"

pref=(--trainpref "$TMP/train" --validpref "$TMP/valid")
[[ -n "$TEST" ]] && pref+=(--testpref "$TMP/test")
fairseq-preprocess --source-lang "$SRC" --target-lang "$TGT" "${pref[@]}" --destdir "$DEST" \
    --joined-dictionary --workers "$WORKERS"
entries=$(wc -l < "$DEST/dict.$SRC.txt")
if [[ -d "$FINAL" ]]; then  # --replace, or an empty folder: the old one goes only now that the new one is whole
    old=$(mktemp -d "$(dirname "$FINAL")/.$(basename "$FINAL").old.XXXXXX")
    mv "$FINAL" "$old/data" && mv "$DEST" "$FINAL" && rm -rf "$old"
else
    mv "$DEST" "$FINAL"
fi
echo "prepared $FINAL: $entries dictionary entries (+4 specials), splits ${SPLITS[*]}"
