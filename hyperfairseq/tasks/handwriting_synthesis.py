"""Task `handwriting_synthesis`: write a given text (Graves 2013 §5; issue 15).

Usage::

    python -m hyperfairseq.data.hershey prepare --out data-bin/hershey
    fairseq-train data-bin/hershey --user-dir hyperfairseq --task handwriting_synthesis \
        --arch hyperlstm_synthesis --criterion mdn --optimizer adam --lr 1e-3 --clip-norm 5 --batch-size 32

The `handwriting` task with transcripts: the same stroke splits, normalisation and scale augmentation
(H1–H3), and every batch also holds the line's characters (data/text_stroke_dataset.py). The same
data-bin trains the unconditional model with `--task handwriting`, so the two compare on equal data.
The alphabet (meta.json) is written into the model config's `alphabet` field, saved with the checkpoint.
Characters of validation/test transcripts outside it become `<unk>`; their count is logged per split.
`--shuffle-transcripts` is a control: each line gets another line's transcript (a fixed permutation per
split), so the network is the same but the text tells it nothing: an unconditional model of equal size.
"""

import logging
from dataclasses import dataclass, field

import numpy as np
from fairseq.tasks import register_task
from omegaconf import open_dict

from hyperfairseq.data.strokes import TRAIN, read_meta
from hyperfairseq.data.synthesis_data import UNK
from hyperfairseq.data.text_stroke_dataset import TextStrokeDataset

from .handwriting import HandwritingConfig, HandwritingTask

logger = logging.getLogger(__name__)


@dataclass
class HandwritingSynthesisConfig(HandwritingConfig):
    shuffle_transcripts: bool = field(default=False, metadata={
        "help": "control experiment: pair every line with another line's transcript (a fixed permutation "
                "per split), so the text carries no information: an unconditional model of identical size"})


@register_task("handwriting_synthesis", dataclass=HandwritingSynthesisConfig)
class HandwritingSynthesisTask(HandwritingTask):
    """`--task handwriting_synthesis`: `--task handwriting` plus the transcripts; model: hyperlstm_synthesis."""

    @property
    def alphabet(self):
        return self.meta.get("alphabet") if self.meta else None

    def build_model(self, cfg, from_checkpoint=False):
        # The data's alphabet fixes the one-hot input size; writing it into the model config (the node that
        # fairseq saves in the checkpoint) lets a checkpoint alone rebuild the model and encode new text.
        if self.alphabet and "alphabet" in cfg and not cfg.alphabet:
            with open_dict(cfg):
                cfg.alphabet = self.alphabet
        return super().build_model(cfg, from_checkpoint)

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, **kwargs):
        meta = self.meta if self.meta is not None else read_meta(self.cfg.data)
        if not meta.get("alphabet"):
            raise ValueError(f"{self.cfg.data}/meta.json has no 'alphabet': not a synthesis dataset "
                             "(prepare one with python -m hyperfairseq.data.hershey prepare)")
        augment = self.cfg.scale_augment if split == TRAIN and combine else 0.0  # as HandwritingTask's
        dataset = TextStrokeDataset.load(self.cfg.data, split, alphabet=meta["alphabet"], scale_augment=augment,
                                         seed=self.cfg.seed)
        if self.cfg.shuffle_transcripts:
            dataset.chars = [dataset.chars[i] for i in np.random.default_rng(self.cfg.seed).permutation(len(dataset))]
        unknown = sum(int((c == UNK).sum()) for c in dataset.chars)
        logger.info("%s %s: %d lines, %d characters outside the alphabet (-> <unk>)",
                    self.cfg.data, split, len(dataset), unknown)
        self.datasets[split] = dataset
