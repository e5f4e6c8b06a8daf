"""Write the 20 real CIFAR-10 test images shipped in the foolbox wheel as CIFAR-10 python batches.

    python examples/hyper_resnet/make_cifar_fixture.py --wheel foolbox-3.3.4-py3-none-any.whl --out DIR

Reads ``foolbox/data/cifar10_<ii>_<label>.png`` (the first 20 images of the official test set,
data.md §4.3) with zipfile + Pillow and writes ``DIR/cifar-10-batches-py/``: ``test_batch`` holds all
20; ``data_batch_1`` .. ``data_batch_5`` hold 4 each (so the training-side loader has real pixels
too); ``batches.meta`` the class names.  A loader fixture and a 32x32 forward check, not a
training set.  Written to a temporary folder and renamed at the end.
"""
import argparse
import io
import os
import pickle
import re
import shutil
import sys
import tempfile
import zipfile

import numpy as np

# data.md §4.3: the first 20 labels of the official CIFAR-10 test set
EXPECTED_LABELS = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MEMBER = re.compile(r"^foolbox/data/cifar10_(\d+)_(\d)\.png$")


def read_wheel(wheel: str):
    from PIL import Image

    found = []
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            m = MEMBER.match(name)
            if m:
                img = Image.open(io.BytesIO(zf.read(name))).convert("RGB")
                if img.size != (32, 32):
                    raise SystemExit(f"{wheel}:{name}: image is {img.size}; expected 32x32")
                found.append((int(m.group(1)), int(m.group(2)), np.asarray(img, dtype=np.uint8)))
    found.sort()
    if [i for i, _, _ in found] != list(range(20)):
        raise SystemExit(f"{wheel}: expected foolbox/data/cifar10_00..19_<label>.png, found {len(found)}")
    labels = [lab for _, lab, _ in found]
    if labels != EXPECTED_LABELS:
        raise SystemExit(f"{wheel}: labels {labels}; expected {EXPECTED_LABELS} (data.md 4.3)")
    # CIFAR row layout: 1024 red, 1024 green, 1024 blue values, each plane row-major
    data = np.stack([arr.transpose(2, 0, 1).reshape(-1) for _, _, arr in found])
    return data, labels


def write_batches(data: np.ndarray, labels, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=out)
    folder = os.path.join(tmp, "cifar-10-batches-py")
    os.makedirs(folder)

    def dump(name, rows):
        batch = {b"batch_label": name.encode(), b"data": data[rows].copy(),
                 b"labels": [labels[r] for r in rows], b"filenames": [f"foolbox_{r:02d}.png".encode() for r in rows]}
        with open(os.path.join(folder, name), "wb") as fh:
            pickle.dump(batch, fh, protocol=2)

    dump("test_batch", list(range(20)))
    for i in range(5):
        dump(f"data_batch_{i + 1}", list(range(4 * i, 4 * i + 4)))
    with open(os.path.join(folder, "batches.meta"), "wb") as fh:
        pickle.dump({b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072}, fh, protocol=2)
    target = os.path.join(out, "cifar-10-batches-py")
    if os.path.exists(target):
        shutil.rmtree(target)
    os.rename(folder, target)
    shutil.rmtree(tmp)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", required=True, help="path to foolbox-3.3.4-py3-none-any.whl")
    parser.add_argument("--out", required=True, help="folder that receives cifar-10-batches-py/")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.wheel):
        print(f"make_cifar_fixture: --wheel {args.wheel} not found", file=sys.stderr)
        return 2
    data, labels = read_wheel(args.wheel)
    write_batches(data, labels, args.out)
    print(f"wrote 20 CIFAR-10 test images to {os.path.join(args.out, 'cifar-10-batches-py')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
