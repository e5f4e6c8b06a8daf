"""Dataset readers and batch pipeline: real Fashion-MNIST and the foolbox CIFAR-10 fixture."""
import gzip
import pickle
import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vision_fixtures as vf  # noqa: E402

from hyperfairseq.vision.datasets import (  # noqa: E402
    CorruptDatasetError,
    ImageSet,
    MissingDatasetError,
    load_cifar10,
    load_mnist_format,
    split_train_val,
)

sys.path.insert(0, str(vf.EXAMPLE))
import hyper_resnet_engine as E  # noqa: E402


def test_fashion_mnist_real_files_load_balanced():
    root = str(vf.fashion_mnist_dir())
    test = load_mnist_format(root, "test")
    assert test.images.shape == (10_000, 1, 28, 28) and test.images.dtype == torch.uint8
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    train = load_mnist_format(root, "train")
    assert train.images.shape[0] == 60_000
    tr, val = split_train_val(train, 5000 / 60000, seed=0)
    assert (len(tr.labels), len(val.labels)) == (55_000, 5_000)  # paper §4.1 split


def test_missing_idx_file_names_file_and_fetch_script(tmp_path):
    with pytest.raises(MissingDatasetError, match="train-images-idx3-ubyte.*get_vision_data.sh"):
        load_mnist_format(str(tmp_path), "train")


def test_truncated_and_foreign_idx_files_are_reported(tmp_path):
    src = vf.fashion_mnist_dir()
    shutil.copy(src / "t10k-labels-idx1-ubyte.gz", tmp_path)
    with gzip.open(src / "t10k-images-idx3-ubyte.gz") as fh:
        head = fh.read(5000)
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(head)  # cut short
    with pytest.raises(CorruptDatasetError, match=r"t10k-images-idx3-ubyte.gz: .*truncated"):
        load_mnist_format(str(tmp_path), "test")
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(CorruptDatasetError, match="cannot be read"):
        load_mnist_format(str(tmp_path), "test")
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + bytes(12))
    with pytest.raises(CorruptDatasetError, match="IDX magic"):
        load_mnist_format(str(tmp_path), "test")


def test_cifar_batches_from_foolbox_images():
    root = str(vf.cifar_fixture_dir())
    test = load_cifar10(root, "test")
    assert test.labels.tolist() == vf.FOOLBOX_LABELS
    train = load_cifar10(root, "train")  # data_batch_1..5 hold the same 20 images, 4 each
    assert torch.equal(train.images, test.images)
    assert 80 < test.images.float().mean() < 160  # real pixels, not zeros


def test_cifar_batch_problems_are_reported_without_running_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with pytest.raises(MissingDatasetError, match="test_batch not found.*cifar-10-batches-py"):
        load_cifar10(str(tmp_path), "test")

    class Evil:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path),))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}, protocol=2))
    with pytest.raises(CorruptDatasetError, match="not a CIFAR-10 python batch"):
        load_cifar10(str(tmp_path), "test")
    assert folder.exists()
    (folder / "test_batch").write_bytes(pickle.dumps({b"labels": [0]}, protocol=2))
    with pytest.raises(CorruptDatasetError, match="expected 'data' and 'labels'"):
        load_cifar10(str(tmp_path), "test")


def test_crop_is_a_window_of_the_padded_image_and_reproducible():
    images = torch.randint(0, 255, (6, 3, 8, 8), dtype=torch.uint8)
    aug = E.Augment(pad=2, flip=False)
    out1 = E.crop_and_flip(images, aug, torch.Generator().manual_seed(5))
    out2 = E.crop_and_flip(images, aug, torch.Generator().manual_seed(5))
    assert torch.equal(out1, out2)
    padded = torch.nn.functional.pad(images, (2,) * 4)
    for b in range(6):
        windows = [padded[b, :, r:r + 8, c:c + 8] for r in range(5) for c in range(5)]
        assert any(torch.equal(out1[b], w) for w in windows)


def test_batch_shards_of_two_ranks_concatenate_to_the_single_process_batch():
    data = ImageSet(torch.randint(0, 255, (40, 1, 6, 6), dtype=torch.uint8), torch.arange(40) % 10)
    args = dict(batch_size=8, seed=3, augment=E.Augment(1, True), mean=[0.5], std=[0.25])
    whole = E.BatchStream(data, **args)
    ranks = [E.BatchStream(data, rank=r, world_size=2, **args) for r in range(2)]
    for step in (0, 4, 5, 11):  # 5 steps per epoch: crosses epoch boundaries
        x, y = whole.batch(step)
        parts = [s.batch(step) for s in ranks]
        assert torch.equal(torch.cat([p[0] for p in parts]), x)
        assert torch.equal(torch.cat([p[1] for p in parts]), y)
    epoch0 = torch.cat([whole.batch(s)[1] for s in range(5)])
    epoch1 = torch.cat([whole.batch(s)[1] for s in range(5, 10)])
    assert not torch.equal(epoch0, epoch1)  # reshuffled each epoch


def test_lr_schedule_tables_8_and_9():
    t8, t9 = E.Schedule(E.TABLE8), E.Schedule(E.TABLE9)
    assert [t8.lr(s) for s in (0, 27_999, 28_000, 139_999)] == [0.1, 0.1, 0.02, 0.00016]
    assert [t9.lr(s) for s in (0, 168_000, 504_000)] == [0.002, 0.001, 0.00005]
    assert (t8.last_step, t9.last_step) == (140_000, 672_000)
    assert E.Schedule.parse(t8.format()) == t8
    with pytest.raises(ValueError, match="--lr-schedule"):
        E.Schedule.parse("0.1@100")
