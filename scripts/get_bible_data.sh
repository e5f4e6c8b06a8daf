#!/usr/bin/env bash
# Fetch the English-Spanish Bible pairs (Debian sword-text-kjv + sword-text-sparv; public domain).
# Usage: bash scripts/get_bible_data.sh [DIR]   (default data/_pkgs)
# Leaves the two .debs in DIR and their contents under DIR/sword/usr/share/sword/modules/texts/ztext/.
# Idempotent: does nothing when both modules are already extracted. Needs apt-get (root for `update`).
set -euo pipefail
DIR=${1:-data/_pkgs}
ZT="$DIR/sword/usr/share/sword/modules/texts/ztext"
if [[ -f "$ZT/engKJV2006eb/nt.bzz" && -f "$ZT/spaRV1909eb/nt.bzz" ]]; then
    echo "Bible modules already present under $ZT"; exit 0
fi
command -v apt-get >/dev/null || { echo "error: apt-get not found; install sword-text-kjv and sword-text-sparv (Debian bookworm) and extract them under $DIR/sword" >&2; exit 1; }
mkdir -p "$DIR"
cd "$DIR"
if ! ls sword-text-kjv_*.deb sword-text-sparv_*.deb >/dev/null 2>&1; then
    if ! apt-get download sword-text-kjv sword-text-sparv; then
        echo "retrying after apt-get update" >&2
        { apt-get update -qq && apt-get download sword-text-kjv sword-text-sparv; } || {
            echo "error: could not download sword-text-kjv / sword-text-sparv with apt-get (offline? no Debian bookworm sources?)" >&2; exit 1; }
    fi
fi
for f in sword-text-kjv_*.deb sword-text-sparv_*.deb; do dpkg-deb -x "$f" sword; done
cd - >/dev/null
[[ -f "$ZT/engKJV2006eb/nt.bzz" && -f "$ZT/spaRV1909eb/nt.bzz" ]] || { echo "error: modules missing after extraction in $ZT" >&2; exit 1; }
echo "Bible modules ready under $ZT"
