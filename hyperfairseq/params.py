"""`python -m hyperfairseq.params --arch ARCH [--vocab N] [--set KEY=VALUE ...]`: the parameter breakdown of an
architecture, optionally with some of its config fields changed (`--set decoder_hidden_size=256`, as the
command-line option `--decoder-hidden-size 256` would).

Counts as the paper does (paper-spec §2.6): `--vocab` is the number of symbols the paper counts (50 for
PTB, 205 for enwik8, 3 pen inputs), one-hot inputs over them and a softmax over them, independent of
fairseq's special symbols; for the translation model it is the joined dictionary's size, specials included
(32,004 for WPM-32K). Without `--vocab`, the architecture's row in `models/architectures.py` says. Prints
main / hyper / input / output (and attention), the paper's row and count, and a line `total: <exact integer>`.
The model is built on PyTorch's meta device: shapes only, no memory and no initialisation.
"""

import argparse
import sys
from typing import Dict, List

import torch
from fairseq.data import Dictionary
from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_NAME_REGISTRY, MODEL_REGISTRY, FairseqEncoderDecoderModel
from torch import nn

import hyperfairseq  # noqa: F401  (registers the architectures)
from hyperfairseq import cli
from hyperfairseq.models.architectures import ARCHITECTURES, plain

GROUPS = ("main", "hyper", "input", "output", "attention")


class _Dictionaries:
    """What an encoder-decoder model's `build_model` reads of a task: one joined dictionary of `size` entries."""

    def __init__(self, size: int):
        self.source_dictionary = self.target_dictionary = Dictionary()
        for i in range(size - len(self.source_dictionary)):
            self.source_dictionary.add_symbol(f"piece{i}")


def build_config(arch: str):
    """The model config an architecture produces, without fairseq's command line."""
    if arch not in ARCH_MODEL_NAME_REGISTRY:
        known = ", ".join(sorted(ARCHITECTURES))
        raise SystemExit(f"error: unknown --arch {arch!r}; hyperfairseq architectures: {known}")
    model_name = ARCH_MODEL_NAME_REGISTRY[arch]
    model_cls = MODEL_REGISTRY[model_name]
    if not model_cls.__module__.startswith("hyperfairseq."):
        raise SystemExit(f"error: --arch {arch!r} ({model_name}) is not a hyperfairseq model")
    ns = argparse.Namespace()
    ARCH_CONFIG_REGISTRY[arch](ns)
    cfg = model_cls.__dataclass()
    for key, value in vars(ns).items():
        setattr(cfg, key, value)
    return model_cls, cfg


def apply_settings(cfg, settings: List[str]) -> None:
    """Set `KEY=VALUE` fields of an architecture's config, each converted to the type of the field's value."""
    for setting in settings:
        key, sep, text = setting.partition("=")
        if not sep or not hasattr(cfg, key):
            raise SystemExit(f"error: --set {setting!r}: expected KEY=VALUE with KEY a field of the model's config")
        setattr(cfg, key, _converted(setting, text, getattr(cfg, key)))


def _converted(setting: str, text: str, current):
    """`text` as the type of the field's `current` value (a field that is None takes an int, a float or text)."""
    if isinstance(current, bool):
        return text.lower() in ("1", "true", "yes")
    for kind in ((type(current),) if current is not None else (int, float, str)):
        try:
            return kind(text)
        except (TypeError, ValueError):
            continue
    raise SystemExit(f"error: --set {setting!r}: {text!r} is not a {type(current).__name__}")


def build_counted(model_cls, cfg, vocab: int) -> nn.Module:
    """The network the paper counts: a language / handwriting model's decoder over `vocab` symbols, or the
    whole translation model over a joined dictionary of `vocab` entries."""
    with torch.device("meta"):
        if issubclass(model_cls, FairseqEncoderDecoderModel):
            return model_cls.build_model(cfg, _Dictionaries(vocab))
        return model_cls.build_decoder(cfg, None, vocab)


def group_of(name: str) -> str:
    leaf = name.split(".", 1)[1] if name.startswith(("encoder.", "decoder.")) else name
    if leaf.startswith("output_projection"):
        return "output"
    if leaf.startswith("embed_tokens"):
        return "input"
    if leaf.startswith("attention."):
        return "attention"
    return "hyper" if ".hyper." in name else "main"


def breakdown(model: nn.Module) -> Dict[str, int]:
    counts = dict.fromkeys(GROUPS, 0)
    for name, p in model.named_parameters():
        counts[group_of(name)] += p.numel()
    return counts


def print_paper_row(arch_name: str) -> None:
    arch = ARCHITECTURES.get(arch_name)
    if arch is None:
        return
    count = f"{arch.paper_millions:.2f} M" if arch.paper_millions is not None else "no count printed"
    print(f"paper: {count} (vocab {arch.vocab}), Table {arch.table.number}: {plain(arch.paper_cells[0])}")
    if arch.row.note:
        print(f"note: {arch.row.note}")


def main(argv=None) -> int:
    parser = cli.parser("params", __doc__)
    parser.add_argument("--arch", required=True, help="architecture name, e.g. ln_hyperlstm_lm_ptb")
    parser.add_argument("--vocab", type=int, help="symbols as the paper counts them (PTB 50, enwik8 205, pen rows 3; "
                        "translation: dictionary entries, 32004); default: the architecture's row")
    parser.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                        help="change config fields of the architecture, e.g. decoder_hidden_size=256 (repeatable)")
    args = parser.parse_args(argv)
    model_cls, cfg = build_config(args.arch)
    apply_settings(cfg, args.set)
    vocab = args.vocab if args.vocab is not None else getattr(ARCHITECTURES.get(args.arch), "vocab", None)
    if vocab is None:
        parser.error(f"--arch {args.arch} has no row in models/architectures.py: give --vocab")
    if vocab < 1:
        parser.error(f"--vocab must be a positive integer; got {vocab}")
    counts = breakdown(build_counted(model_cls, cfg, vocab))
    for group in GROUPS:
        if counts[group] or group != "attention":
            print(f"{group}: {counts[group]}")
    print_paper_row(args.arch)
    print(f"total: {sum(counts.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
