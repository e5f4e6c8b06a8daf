"""Task `char_lm`: the paper's character-level LM protocol, B contiguous streams with carried state.

HyperNetworks (arXiv 1609.09106v4) §4.3–4.4; paper-spec §3.3–3.4 and R11, R14::

    fairseq-train data-bin/ptb_char --user-dir hyperfairseq --task char_lm --arch ln_hyperlstm_lm_ptb \
        --batch-size 128 --tokens-per-sample 100 ...     # 128 streams, segments of 100 symbols
    fairseq-eval-lm data-bin/ptb_char --user-dir hyperfairseq --task char_lm \
        --path checkpoints/checkpoint_best.pt --batch-size 128 --tokens-per-sample 100

Each split is one stream of symbols (every line of the binarised data followed by its end-of-line
symbol; byte corpora have no line symbols), laid out by `StreamDataset` as `--batch-size` parallel
contiguous rows per rank and cut into consecutive segments of `--tokens-per-sample`, never shuffled.
Every batch carries `net_input["carry"] = {"stream": split, "reset": first segment?}`: the model keeps
one carried state per stream, resets it at the first segment of a split (the start of every epoch and
every validation pass) and otherwise continues from where the previous segment stopped, detached.
fairseq's "Loss (base 2)" is then bits per character (bits per byte for byte corpora). What is
scored is documented in `hyperfairseq/data/stream_dataset.py`.

fairseq's inference API works as with its own language_modeling task, on plain text (the `--bpe` that
fits the dictionary, `hyperfairseq.data.text_symbols`, unless another is given)::

    lm = HyperLSTMLanguageModel.from_pretrained("checkpoints", "checkpoint_best.pt", "data-bin/ptb_char")
    lm.score("the company said")["positional_scores"]      # log-probabilities (nats) of each symbol
    lm.sample("the company", sampling=True, sampling_topk=10, max_len_b=200)
    echo "the company" | fairseq-interactive data-bin/ptb_char --user-dir hyperfairseq --task char_lm \
        --path checkpoints/checkpoint_best.pt --sampling --beam 1 --max-len-b 200

Each line is read from a zero state after an end-of-line symbol, as `hyperfairseq.sample` reads it.
"""

import argparse
import os
from dataclasses import dataclass, field
from typing import Dict, Optional

import torch
from fairseq import utils
from fairseq.data import Dictionary, FairseqDataset, data_utils, iterators
from fairseq.dataclass import FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from fairseq.tasks.language_modeling import LanguageModelingTask
from omegaconf import II

from hyperfairseq.data import binarised, text_symbols
from hyperfairseq.data.stream_dataset import StreamDataset
from hyperfairseq.errors import InputError

LAYOUT_FLAGS = {"batch_size": "--batch-size", "tokens_per_sample": "--tokens-per-sample",
                "world_size": "--distributed-world-size", "reset_every_segment": "--reset-every-segment"}


@dataclass
class CharLMConfig(FairseqDataclass):
    data: Optional[str] = field(default=None, metadata={"help": "folder with dict.txt and the binarised splits"})
    tokens_per_sample: int = field(
        default=100, metadata={"help": "segment length T (truncated-BPTT window): PTB 100, enwik8 250 / 300"}
    )
    reset_every_segment: bool = field(
        default=False,
        metadata={"help": "start every segment from a zero state (fairseq's stock behaviour), to measure "
                  "what carrying the state is worth"},
    )
    double: bool = field(
        default=False,
        metadata={"help": "float64 weights and arithmetic (slow; runs then agree across CPUs, summation "
                  "orders and data-parallel layouts to ~1e-14 instead of float32's ~1e-6)"},
    )
    batch_size: Optional[int] = II("dataset.batch_size")
    max_tokens: Optional[int] = II("dataset.max_tokens")
    dataset_impl: Optional[str] = II("dataset.dataset_impl")
    seed: int = II("common.seed")


@register_task("char_lm", dataclass=CharLMConfig)
class CharLMTask(FairseqTask):
    """`--task char_lm`: contiguous streams, state carried across segments, bits per character."""

    def __init__(self, cfg: CharLMConfig, dictionary: Dictionary):
        super().__init__(cfg)
        self.dictionary = dictionary
        self.num_shards = 1  # data-parallel ranks, as seen by the last batch iterator

    @classmethod
    def setup_task(cls, cfg: CharLMConfig, **kwargs):
        if cfg.batch_size is not None and cfg.batch_size < 1:  # None: checked where streams are laid out
            raise _no_batch_size(cfg.batch_size)
        if cfg.tokens_per_sample < 1:
            raise InputError(f"--tokens-per-sample must be positive; got {cfg.tokens_per_sample} (fairseq-eval-lm "
                             "subtracts --context-window from it, which --task char_lm does not take: it carries "
                             "the state from segment to segment instead)")
        if not cfg.data:
            raise InputError("--task char_lm needs the data folder as its first argument")
        path = os.path.join(utils.split_paths(cfg.data)[0], "dict.txt")
        binarised.check_dictionary(path)
        return cls(cfg, Dictionary.load(path))

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, **kwargs):
        """The split as one 1-D stream of symbols (the `StreamDataset` is laid out per iterator)."""
        split_path = os.path.join(utils.split_paths(self.cfg.data)[0], split)
        if binarised.check_split(split_path) == 0:
            raise InputError(f"{split_path}.idx: the split '{split}' is empty (no lines were binarised)")
        lines = data_utils.load_indexed_dataset(split_path, self.dictionary, self.cfg.dataset_impl, combine=combine)
        if lines is None:
            raise InputError(f"Dataset not found: {split} ({split_path}.bin / .idx)")
        tokens = torch.cat([lines[i] for i in range(len(lines))]).long()
        binarised.check_ids(tokens, len(self.dictionary), f"{split_path}.bin")
        self.datasets[split] = _Stream(tokens, split)

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        if not getattr(model.decoder, "supports_carry", False):
            raise InputError(f"--task char_lm needs a model that carries state (hyperlstm_lm); got {cfg._name}")
        return model.double() if self.cfg.double else model

    # -- the stream layout travels with the checkpoint: a resumed run must continue the same streams

    def stream_layout(self) -> Dict[str, object]:
        return {"batch_size": self.cfg.batch_size, "tokens_per_sample": self.cfg.tokens_per_sample,
                "world_size": self.num_shards, "reset_every_segment": self.cfg.reset_every_segment}

    def get_checkpoint_dict(self):
        """Saved by fairseq-train in the checkpoint's extra state (restored by `set_checkpoint_dict`)."""
        return {type(self).__name__: {"stream_layout": self.stream_layout()}}

    def set_checkpoint_dict(self, state) -> None:
        """On resume: the carried states belong to the stored layout; refuse another one, naming the flag."""
        stored = (state or {}).get("stream_layout", {})
        for key, now in self.stream_layout().items():
            if key in stored and stored[key] != now:
                flag = LAYOUT_FLAGS[key]
                raise InputError(
                    f"{flag} {now} differs from the checkpoint's {stored[key]}: the carried state continues the "
                    f"streams laid out with {flag} {stored[key]}; resume with {flag} {stored[key]}, or add "
                    "--reset-dataloader to start the streams again from the beginning of the split"
                )

    def get_batch_iterator(self, dataset, max_tokens=None, max_sentences=None, max_positions=None,
                           ignore_invalid_inputs=False, required_batch_size_multiple=1, seed=1, num_shards=1,
                           shard_id=0, num_workers=0, epoch=1, data_buffer_size=0, disable_iterator_cache=False,
                           skip_remainder_batch=False, grouped_shuffling=False, update_epoch_batch_itr=False):
        """One segment of every row per batch, in order; rows of rank `shard_id` only. Lines to score or
        continue (`build_dataset_for_inference`) are batched as fairseq batches them."""
        if not isinstance(dataset, _Stream):
            return super().get_batch_iterator(
                dataset, max_tokens=max_tokens, max_sentences=max_sentences, max_positions=max_positions,
                ignore_invalid_inputs=ignore_invalid_inputs, required_batch_size_multiple=required_batch_size_multiple,
                seed=seed, num_shards=num_shards, shard_id=shard_id, num_workers=num_workers, epoch=epoch,
                data_buffer_size=data_buffer_size, disable_iterator_cache=disable_iterator_cache,
                skip_remainder_batch=skip_remainder_batch, grouped_shuffling=grouped_shuffling,
                update_epoch_batch_itr=update_epoch_batch_itr)
        if self.cfg.max_tokens is not None:  # lines to continue (fairseq-interactive) may be batched by tokens
            raise InputError(
                f"--task char_lm does not take --max-tokens (got {self.cfg.max_tokens}) to train or evaluate: "
                "--batch-size sets the number of parallel streams and --tokens-per-sample the segment length"
            )
        rows = max_sentences or self.cfg.batch_size
        if not rows:
            raise _no_batch_size(rows)
        self.num_shards = num_shards
        # the model carries one state per stream name: validation (fairseq_patches §14) gets its own, so that
        # `--valid-subset train` neither overwrites nor reads the carried state of the split being trained on
        evaluated = getattr(self, "building_valid_iterator", False)
        streams = StreamDataset(
            dataset.tokens, self.dictionary.eos(), rows, self.cfg.tokens_per_sample,
            num_shards=num_shards, shard_id=shard_id, stream=dataset.name + (" (validation)" if evaluated else ""),
            reset_every_segment=self.cfg.reset_every_segment,
        )
        return _InOrderBatchIterator(
            dataset=streams,
            collate_fn=streams.collater,
            batch_sampler=[[i] for i in range(len(streams))],
            seed=seed,
            num_shards=1,  # StreamDataset already holds only this rank's rows
            shard_id=0,
            num_workers=num_workers,
            epoch=epoch,
            buffer_size=data_buffer_size,
        )

    def eval_lm_dataloader(self, dataset, max_tokens=None, batch_size=None, max_positions=None, num_shards=1,
                           shard_id=0, num_workers=1, data_buffer_size=10, context_window=0):
        if context_window > 0:
            raise InputError("--context-window does not apply to --task char_lm: the state is carried instead")
        return self.get_batch_iterator(
            dataset, max_sentences=batch_size, num_shards=num_shards, shard_id=shard_id,
            num_workers=num_workers, data_buffer_size=data_buffer_size,
        ).next_epoch_itr(shuffle=False)

    def max_positions(self):
        return None

    # -- fairseq's inference API (`from_pretrained(...)`, fairseq-interactive): language_modeling's own

    def build_dataset_for_inference(self, src_tokens, src_lengths, **kwargs):
        """Each line after an end-of-line symbol as input, the line as target (fairseq's language_modeling)."""
        return LanguageModelingTask.build_dataset_for_inference(_AsLanguageModeling(self), src_tokens, src_lengths)

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        """Continue each line: it is the prefix of what is generated (fairseq's language_modeling)."""
        return LanguageModelingTask.inference_step(_AsLanguageModeling(self), generator, models, sample,
                                                   prefix_tokens, constraints)

    def build_bpe(self, args):
        """`--bpe` as given; without one, text maps to this dictionary's symbols as the data was prepared."""
        return text_symbols.for_dictionary(self.dictionary) if args is None else super().build_bpe(args)

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary


def _no_batch_size(value) -> InputError:
    return InputError(f"--task char_lm needs --batch-size (the number of parallel streams); got {value}")


class _AsLanguageModeling:
    """What fairseq's language_modeling inference reads of its task: the dictionary, no --add-bos-token."""

    def __init__(self, task: CharLMTask):
        self.source_dictionary = task.dictionary
        self.args = argparse.Namespace(add_bos_token=False)


class _InOrderBatchIterator(iterators.EpochBatchIterator):
    """fairseq shuffles training batches; segments of a stream must come in order, also on resume."""

    def _get_iterator_for_epoch(self, epoch, shuffle, fix_batches_to_gpus=False, offset=0):
        return super()._get_iterator_for_epoch(epoch, False, fix_batches_to_gpus=fix_batches_to_gpus, offset=offset)


class _Stream(FairseqDataset):
    """A split as one stream; fairseq only asks it for its length before batching."""

    def __init__(self, tokens: torch.Tensor, name: str):
        super().__init__()
        self.tokens = tokens
        self.name = name

    def __len__(self) -> int:
        return self.tokens.numel()
