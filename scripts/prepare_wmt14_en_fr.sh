#!/usr/bin/env bash
# WMT'14 English-French (the GNMT / Table 6 setup) -> data-bin via prepare_parallel.sh (WPM-32K-like vocabulary).
#
# Usage: bash scripts/prepare_wmt14_en_fr.sh [--raw DIR] [--vocab-size 32000] [--replace] [DEST]
#        (DEST default data-bin/wmt14_en_fr; a DEST that holds files is refused before any download unless --replace)
# Needs network access. Training corpora (europarl-v7, commoncrawl, un, news-commentary-v9, giga-fren) come
# from statmt.org and are checked against DIR/SHA256SUMS: lines already there are verified, and a file with no
# line gets one recorded on first download (trust on first use; pin the file to make later runs strict).
# Dev = newstest2012 + newstest2013, test = newstest2014 (full), fetched with sacrebleu, which verifies
# its own md5 checksums. Nothing is run when offline: a clear error and exit code 1.
set -euo pipefail
die() { echo "prepare_wmt14_en_fr.sh: error: $*" >&2; exit 1; }
RAW=data/wmt14_en_fr_raw VOCAB=32000 DEST=data-bin/wmt14_en_fr REPLACE=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --raw) RAW=$2; shift 2 ;; --vocab-size) VOCAB=$2; shift 2 ;; --replace) REPLACE=(--replace); shift ;;
        -h|--help) sed -n 2,11p "$0"; exit 0 ;; -*) die "unknown option $1" ;; *) DEST=$1; shift ;;
    esac
done
if [[ -d "$DEST" && -n "$(ls -A "$DEST")" && ${#REPLACE[@]} == 0 ]]; then
    die "$DEST already holds files (a prepared data set?): choose another folder, or add --replace to rebuild it"
fi
command -v curl >/dev/null || die "curl is required"
command -v sacrebleu >/dev/null || die "sacrebleu is required (pip install sacrebleu)"
curl -sfI --max-time 20 https://www.statmt.org/ >/dev/null || die "www.statmt.org is unreachable (offline?); WMT'14 cannot be downloaded here"
mkdir -p "$RAW"; touch "$RAW/SHA256SUMS"
URLS=(
    https://www.statmt.org/europarl/v7/fr-en.tgz
    https://www.statmt.org/wmt13/training-parallel-commoncrawl.tgz
    https://www.statmt.org/wmt13/training-parallel-un.tgz
    https://www.statmt.org/wmt14/training-parallel-nc-v9.tgz
    https://www.statmt.org/wmt10/training-giga-fren.tar
)
for url in "${URLS[@]}"; do
    f="$RAW/$(basename "$url")"
    if [[ ! -s "$f" ]]; then
        curl -fL --retry 3 -o "$f.part" "$url" || die "download failed: $url"
        mv -f "$f.part" "$f"
    fi
    sum=$(sha256sum "$f" | cut -d' ' -f1); name=$(basename "$f")
    if grep -q " $name\$" "$RAW/SHA256SUMS"; then
        grep " $name\$" "$RAW/SHA256SUMS" | grep -q "^$sum " || die "checksum mismatch for $f (see $RAW/SHA256SUMS)"
    else
        echo "$sum $name" >> "$RAW/SHA256SUMS"; echo "recorded sha256 of $name (first download)"
    fi
    case "$f" in *.tgz) tar -xzf "$f" -C "$RAW" ;; *.tar) tar -xf "$f" -C "$RAW" ;; esac
done
[[ -f "$RAW/giga-fren.release2.fixed.en" ]] || gunzip -kf "$RAW"/giga-fren.release2.fixed.{en,fr}.gz
for l in en fr; do
    cat "$RAW/europarl-v7.fr-en.$l" "$RAW/commoncrawl.fr-en.$l" "$RAW/undoc.2000.fr-en.$l" \
        "$RAW/training/news-commentary-v9.fr-en.$l" "$RAW/giga-fren.release2.fixed.$l" > "$RAW/train.$l"
done
for side in src ref; do
    l=$([[ $side == src ]] && echo en || echo fr)
    { sacrebleu -t wmt12 -l en-fr --echo $side; sacrebleu -t wmt13 -l en-fr --echo $side; } > "$RAW/valid.$l"
    sacrebleu -t wmt14/full -l en-fr --echo $side > "$RAW/test.$l"
done
bash "$(dirname "$0")/prepare_parallel.sh" --src en --tgt fr --train "$RAW/train" --valid "$RAW/valid" \
    --test "$RAW/test" --vocab-size "$VOCAB" --spm-sample 10000000 --workers "$(nproc)" "${REPLACE[@]}" "$DEST"
