"""Task `handwriting`: unconditional pen-stroke generation on a prepared stroke dataset (Table 5).

HyperNetworks (arXiv 1609.09106v4) §4.5, A.3.5; paper-spec §3.5, H1–H4. Usage::

    python -m hyperfairseq.data.iam_ondb prepare --raw RAW --out data-bin/iam_ondb
    fairseq-train data-bin/iam_ondb --user-dir hyperfairseq --task handwriting \
        --arch hyperlstm_handwriting --criterion mdn --optimizer adam --lr 1e-4 --clip-norm 5.0 \
        --batch-size 32 --valid-subset valid

Splits are `train` and `valid` (Graves: valid = IAM-OnDB testset_v). Training lines are scaled by
±`--scale-augment` per axis (H3, paper 0.1; 0 for the "Graves setup" rows). The dataset's normalisation
constants (meta.json, H1) are exposed as `norm_mean` / `norm_std`; the model copies them into buffers so
that a checkpoint alone can de-normalise samples. A batch is described in data/stroke_dataset.py.
"""

import logging
import os
from dataclasses import dataclass, field
from typing import List, Optional

from fairseq.dataclass import FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II

from hyperfairseq.data.stroke_dataset import StrokeDataset
from hyperfairseq.data.strokes import TRAIN, read_meta
from hyperfairseq.errors import InputError

logger = logging.getLogger(__name__)


@dataclass
class HandwritingConfig(FairseqDataclass):
    data: str = field(default="", metadata={"help": "prepared stroke dataset (meta.json, <split>.strokes.npy)"})
    scale_augment: float = field(
        default=0.1,
        metadata={"help": "training scale augmentation: factor per axis uniform in [1-s, 1+s] (H3; paper 0.1)"},
    )
    seed: int = II("common.seed")


@register_task("handwriting", dataclass=HandwritingConfig)
class HandwritingTask(FairseqTask):
    """`--task handwriting`: lines of (Δx, Δy, end-of-stroke) rows; loss and metric from `--criterion mdn`."""

    def __init__(self, cfg: HandwritingConfig, meta: Optional[dict]):
        super().__init__(cfg)
        self.meta = meta
        self.norm_mean: Optional[List[float]] = meta["mean"] if meta else None
        self.norm_std: Optional[List[float]] = meta["std"] if meta else None

    @classmethod
    def setup_task(cls, cfg: HandwritingConfig, **kwargs):
        if not 0.0 <= cfg.scale_augment < 1.0:
            raise InputError(f"--scale-augment must lie in [0, 1) (paper: 0.1); got {cfg.scale_augment}")
        meta = None
        if cfg.data and os.path.exists(os.path.join(cfg.data, "meta.json")):
            meta = read_meta(cfg.data)
            logger.info("%s: %s, mean %s, std %s", cfg.data, meta.get("label"), meta["mean"], meta["std"])
        elif cfg.data:
            # loading a checkpoint without its data: the model's buffers carry the constants
            logger.info("%s/meta.json not found; normalisation constants come from the checkpoint", cfg.data)
        return cls(cfg, meta)

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, **kwargs):
        """A split's lines; scale-augmented (H3) only where fairseq's trainer loads the split it trains on
        (`combine=True`): fairseq-validate and validation during training load with combine=False, so that
        `--valid-subset train` scores the lines as they are, comparable with the validation split."""
        if self.meta is None:
            read_meta(self.cfg.data)  # raises, naming the missing file and the prepare commands
        augment = self.cfg.scale_augment if split == TRAIN and combine else 0.0  # see the docstring
        self.datasets[split] = StrokeDataset.load(self.cfg.data, split, scale_augment=augment, seed=self.cfg.seed)
        logger.info("%s %s: %d lines", self.cfg.data, split, len(self.datasets[split]))

    def get_batch_iterator(self, *args, **kwargs):
        # Every line counts in the per-line metric: fairseq's default required_batch_size_multiple (8)
        # silently drops a final partial batch (e.g. 6 of IAM's 1,438 validation lines), so use 1.
        kwargs["required_batch_size_multiple"] = 1
        return super().get_batch_iterator(*args, **kwargs)

    def max_positions(self):
        return None
