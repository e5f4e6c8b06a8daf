#!/usr/bin/env bash
# enwik8 (or any byte file) for the byte-level LM of Table 4: one symbol per byte, 90/5/5 split.
#   bash scripts/prepare_enwik8.sh SRC OUT        SRC: enwik8.zip, the raw enwik8, or any byte file
# Reports the split sizes; training/evaluating with --task char_lm then reports bits per byte.
set -euo pipefail
# the README's virtualenv (.venv), unless one is active: `python` and `fairseq-*` below are its
venv="$(dirname "$0")/../.venv"; [ -z "${VIRTUAL_ENV:-}" ] && [ -f "$venv/bin/activate" ] && source "$venv/bin/activate"
[ $# -eq 2 ] || { echo "usage: $0 SRC OUT" >&2; exit 2; }
${PYTHON:-python} -m hyperfairseq.data.byte_corpus prepare --src "$1" --out "$2"
