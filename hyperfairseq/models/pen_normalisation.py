"""The data's normalisation of (Δx, Δy) (H1) as buffers of a pen model's decoder, and a warning when a
checkpoint's constants differ from those of the data it is evaluated or trained on.

`prepare` writes every split normalised with the training split's mean and std (meta.json). The model keeps
them as buffers `norm_mean`, `norm_std` so that a checkpoint alone maps samples back to pen units; fairseq's
load then replaces the data's constants with the checkpoint's. If they differ, the rows the model reads are in
other units than those it learned: `fairseq-validate` of another data-bin, or `--finetune-from-model` onto one,
gives numbers that are not comparable, silently. Loading says so.
"""

import logging
from typing import List, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

#: float32 buffers of the same meta.json values are equal; a different data set moves them far more than this
RELATIVE_TOLERANCE = 1e-5


def register_normalisation(decoder: nn.Module) -> None:
    """Identity constants (mean 0, std 1) until `take_data_normalisation` or a checkpoint sets them."""
    decoder.register_buffer("norm_mean", torch.zeros(2))
    decoder.register_buffer("norm_std", torch.ones(2))


def take_data_normalisation(decoder: nn.Module, task) -> Optional[Tuple[List[float], List[float]]]:
    """Copy the task's constants (from its meta.json) into the buffers; returns them, or None where the task
    has no data (a checkpoint loaded alone: its own buffers then hold the constants)."""
    mean, std = getattr(task, "norm_mean", None), getattr(task, "norm_std", None)
    if mean is None or std is None:
        return None
    decoder.norm_mean.copy_(torch.tensor(mean, dtype=torch.float32))
    decoder.norm_std.copy_(torch.tensor(std, dtype=torch.float32))
    return list(mean), list(std)


def _differs(theirs: Tensor, ours: Tensor) -> bool:
    """Compared at the checkpoint's precision: a model trained with --bf16 saves bf16 buffers."""
    if theirs.shape != ours.shape:
        return True
    return not torch.allclose(theirs.float(), ours.to(theirs.dtype).float(), rtol=RELATIVE_TOLERANCE, atol=0.0)


def warn_if_checkpoint_differs(decoder: nn.Module, state_dict: Mapping[str, Tensor], prefix: str = "decoder.") -> bool:
    """Warn (and return True) when the checkpoint's `norm_mean`/`norm_std` differ from the decoder's current
    buffers, which hold the data's constants after `take_data_normalisation`."""
    theirs = [state_dict.get(prefix + name) for name in ("norm_mean", "norm_std")]
    if any(t is None for t in theirs):
        return False  # a missing buffer is the strict load's error to report
    ours = [decoder.norm_mean, decoder.norm_std]
    if not any(_differs(t, o) for t, o in zip(theirs, ours)):
        return False
    logger.warning(
        "the data's normalisation of (dx, dy) (mean %s, std %s) differs from the checkpoint's (mean %s, std %s): "
        "the model reads rows in other units than those it was trained on, so losses on this data are not "
        "comparable with its training; the checkpoint's constants are kept for de-normalising samples (H1)",
        *(_fmt(t) for t in ours + theirs),
    )
    return True


def _fmt(t: Tensor) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in t.tolist()) + "]"


class ComparesPenNormalisation:
    """Mixin ahead of a pen model class whose `decoder` holds the buffers: a load warns when the
    checkpoint's constants differ from the data's (only where the model was built with data)."""

    data_normalisation: Optional[Tuple[List[float], List[float]]] = None

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        if self.data_normalisation is not None:
            warn_if_checkpoint_differs(self.decoder, state_dict)
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)
