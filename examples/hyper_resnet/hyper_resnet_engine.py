"""Training machinery for examples/hyper_resnet/train.py (paper §4.1, §4.2, A.3.1, A.3.2).

Exact resume and world-size independence come from one rule: nothing random is drawn from a
global generator during training.  The order of epoch ``e`` is ``randperm`` seeded by
``(seed, e)`` and the augmentation of step ``s`` is drawn for the *whole global batch* from a
generator seeded by ``(seed, s)``; each rank then takes its contiguous shard.  A run resumed at step
``s`` therefore sees exactly the batches an uninterrupted run sees, and two processes with batch
B/2 each see the same images and crops as one process with batch B.
"""
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hyperfairseq.run_record import cpu_model, within_checkout
from hyperfairseq.vision.datasets import ImageSet

# Table 8 (normal WRN, Nesterov SGD) and Table 9 (hyper WRN, Adam): lr while step < threshold (C5)
TABLE8 = ((28_000, 0.1), (56_000, 0.02), (84_000, 0.004), (112_000, 0.0008), (140_000, 0.00016))
TABLE9 = ((168_000, 0.002), (336_000, 0.001), (504_000, 0.0002), (672_000, 0.00005))


class Schedule(NamedTuple):
    """Piecewise-constant learning rate: ``lr`` of the first ``(threshold, lr)`` with step < threshold."""

    points: Tuple[Tuple[int, float], ...]

    @classmethod
    def parse(cls, text: str) -> "Schedule":
        """``"28000:0.1,56000:0.02"`` -> Schedule; raises ValueError naming --lr-schedule."""
        try:
            points = tuple((int(a), float(b)) for a, b in (item.split(":") for item in text.split(",")))
        except ValueError:
            raise ValueError(
                f"--lr-schedule {text!r}; expected STEP:LR[,STEP:LR...], e.g. 28000:0.1,56000:0.02"
            ) from None
        if not points or any(b[0] <= a[0] for a, b in zip(points, points[1:])):
            raise ValueError(f"--lr-schedule {text!r}; expected increasing step thresholds")
        return cls(points)

    def lr(self, step: int) -> float:
        for threshold, lr in self.points:
            if step < threshold:
                return lr
        return self.points[-1][1]

    @property
    def last_step(self) -> int:
        return self.points[-1][0]

    def format(self) -> str:
        return ",".join(f"{s}:{lr:g}" for s, lr in self.points)


class Augment(NamedTuple):
    pad: int  # zero padding before the random crop (4 for CIFAR 36x36, 1 for MNIST 30x30)
    flip: bool  # random horizontal flip (CIFAR only)


def crop_and_flip(images: Tensor, augment: Augment, generator: torch.Generator) -> Tensor:
    """Pad-and-random-crop (+ flip) a uint8 batch ``(B, C, H, W)`` with draws from ``generator``."""
    b, c, h, w = images.shape
    offsets = torch.randint(0, 2 * augment.pad + 1, (2, b), generator=generator)
    flips = torch.rand(b, generator=generator) < 0.5
    if augment.pad == 0 and not augment.flip:
        return images
    padded = F.pad(images, (augment.pad,) * 4)
    rows = (offsets[0][:, None] + torch.arange(h))[:, None, :, None]  # (B, 1, H, 1)
    cols = (offsets[1][:, None] + torch.arange(w))[:, None, None, :]  # (B, 1, 1, W)
    out = padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    if augment.flip:
        out = torch.where(flips[:, None, None, None], out.flip(3), out)
    return out


class BatchStream:
    """The global batch of any step, as this rank's shard, normalised to float.

    Args:
        data: training images (uint8) and labels.
        batch_size: the *global* batch size; must be divisible by ``world_size``.
        mean, std: per-channel statistics used to normalise (computed on the training split).
    """

    def __init__(self, data: ImageSet, batch_size: int, seed: int, augment: Augment,
                 mean: Sequence[float], std: Sequence[float], rank: int = 0, world_size: int = 1,
                 dtype: torch.dtype = torch.float32):
        n = data.labels.shape[0]
        if batch_size > n:
            raise ValueError(f"--batch-size {batch_size} is larger than the training split ({n} images)")
        if batch_size % world_size:
            raise ValueError(f"--batch-size {batch_size} is not divisible by the world size {world_size}")
        self.data, self.batch_size, self.seed, self.augment = data, batch_size, seed, augment
        self.mean = torch.tensor(mean, dtype=dtype).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=dtype).view(1, -1, 1, 1)
        self.rank, self.world_size = rank, world_size
        self.steps_per_epoch = n // batch_size  # the last partial batch of an epoch is dropped
        self._perm_epoch, self._perm = -1, None

    def _order(self, epoch: int) -> Tensor:
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.data.labels.shape[0], generator=g), epoch
        return self._perm

    def batch(self, step: int) -> Tuple[Tensor, Tensor]:
        epoch, position = divmod(step, self.steps_per_epoch)
        index = self._order(epoch)[position * self.batch_size:(position + 1) * self.batch_size]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + 7_919 * step + 1)
        images = crop_and_flip(self.data.images[index], self.augment, g)
        shard = slice(self.rank * self.batch_size // self.world_size,
                      (self.rank + 1) * self.batch_size // self.world_size)
        return normalise(images[shard], self.mean, self.std), self.data.labels[index][shard]


def normalise(images: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """uint8 images -> ``(x / 255 - mean) / std`` in the dtype of ``mean`` (float32, or float64 with --double)."""
    return (images.to(mean.dtype) / 255.0 - mean) / std


def at_least_float32(x: Tensor) -> Tensor:
    """bf16 autocast outputs are promoted to float32 for the loss; float32 / float64 stay as they are."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def channel_stats(images: Tensor) -> Tuple[List[float], List[float]]:
    x = images.float() / 255.0
    return x.mean((0, 2, 3)).tolist(), x.std((0, 2, 3)).tolist()


class LossOutput(NamedTuple):
    loss: Tensor  # cross-entropy + L2 penalty
    cross_entropy: Tensor
    logits: Tensor


class TrainingLoss(nn.Module):
    """Cross-entropy plus ``weight_decay / 2 * sum ||K||^2`` over the main network's kernels (C3).

    For hyper models K are the *generated* kernels, so the penalty reaches the embeddings and
    generator only through them.  Wrapping this (not the bare model) in DDP keeps kernel generation
    inside the DDP forward.
    """

    def __init__(self, model: nn.Module, weight_decay: float):
        super().__init__()
        self.model, self.weight_decay = model, weight_decay

    def forward(self, images: Tensor, labels: Tensor) -> LossOutput:
        kernels = self.model.main_kernels()
        logits = self.model(images, kernels)
        ce = F.cross_entropy(at_least_float32(logits), labels)
        penalty = sum(at_least_float32(w).pow(2).sum() for w in self.model.decayed_weights(kernels))
        return LossOutput(ce + 0.5 * self.weight_decay * penalty, ce, logits)


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageSet, mean, std, batch_size: int, device: torch.device,
             bf16: bool = False) -> Dict[str, float]:
    """Accuracy and mean cross-entropy; eval mode, so a hyper model generates its kernels once."""
    was_training = model.training
    model.eval()
    dtype = next(model.parameters()).dtype
    mean_t = torch.tensor(mean, dtype=dtype).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=dtype).view(1, -1, 1, 1)
    correct, loss_sum, n = 0, 0.0, data.labels.shape[0]
    for start in range(0, n, batch_size):
        x = normalise(data.images[start:start + batch_size], mean_t, std_t).to(device)
        y = data.labels[start:start + batch_size].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = at_least_float32(model(x))
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    model.train(was_training)
    return {"accuracy": correct / max(n, 1), "error": 1 - correct / max(n, 1),
            "loss": loss_sum / max(n, 1), "images": n}


def run_record(results: Dict, wall_time_s: float) -> Dict:
    """Command, git commit, hardware, versions and wall time around ``results`` (docs/runs/*.json)."""
    import torchvision

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def git(*args: str):
        try:
            proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "--verify", "HEAD^{commit}")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    argv = [os.path.relpath(sys.argv[0], repo)] + sys.argv[1:]
    return {
        "command": within_checkout(" ".join(shlex.quote(a) for a in argv)),
        "git_commit": commit or "unknown (no git repository here)",
        "git_dirty": None if status is None else bool(status),
        "hardware": {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                     "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                     "platform": platform.platform()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "torchvision": torchvision.__version__},
        "wall_time_s": round(wall_time_s, 1),
        "results": results,
    }


class Progress:
    """tqdm bar on rank 0 when available and wanted, otherwise a log line every ``interval`` steps."""

    def __init__(self, total: int, initial: int, enabled: bool, interval: int):
        self.bar, self.interval, self.enabled = None, max(interval, 1), enabled
        self.t0, self.step0 = time.time(), initial
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                                disable=not sys.stderr.isatty())
            except ImportError:
                self.bar = None

    def update(self, step: int, loss: float, lr: float) -> None:
        if not self.enabled:
            return
        if self.bar is not None and not self.bar.disable:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:g}", refresh=False)
        elif step % self.interval == 0:
            rate = (step - self.step0) / max(time.time() - self.t0, 1e-9)
            print(f"step {step} | loss {loss:.4f} | lr {lr:g} | {rate:.2f} steps/s", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def finite_or_raise(value: float, step: int) -> float:
    if not math.isfinite(value):
        raise FloatingPointError(f"loss is {value} at step {step}; lower the learning rate (--lr-schedule)")
    return value


def optional_device(name: Optional[str]) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
