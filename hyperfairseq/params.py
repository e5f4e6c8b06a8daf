"""`python -m hyperfairseq.params --arch ARCH --vocab N`: the parameter breakdown of an architecture.

Counts as the paper does (paper-spec §2.6): `--vocab` is the number of symbols the paper counts (50 for
PTB, 205 for enwik8), one-hot inputs over them and a softmax over them, independent of fairseq's
special symbols. Prints main / hyper / input / output and a line `total: <exact integer>`.
"""

import argparse
import sys
from typing import Dict

from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_NAME_REGISTRY, MODEL_REGISTRY
from torch import nn

import hyperfairseq  # noqa: F401  (registers the architectures)
from hyperfairseq.models.hyperlstm_lm import PAPER_PARAMS as LM_PAPER_PARAMS

GROUPS = ("main", "hyper", "input", "output")


def build_config(arch: str):
    """The model config an architecture produces, without fairseq's command line."""
    if arch not in ARCH_MODEL_NAME_REGISTRY:
        known = ", ".join(sorted(LM_PAPER_PARAMS))
        raise SystemExit(f"error: unknown --arch {arch!r}; hyperfairseq architectures: {known}")
    model_name = ARCH_MODEL_NAME_REGISTRY[arch]
    model_cls = MODEL_REGISTRY[model_name]
    if not hasattr(model_cls, "build_decoder"):
        raise SystemExit(f"error: --arch {arch!r} ({model_name}) is not a hyperfairseq language model")
    ns = argparse.Namespace()
    ARCH_CONFIG_REGISTRY[arch](ns)
    cfg = model_cls.__dataclass()
    for key, value in vars(ns).items():
        setattr(cfg, key, value)
    return model_cls, cfg


def group_of(name: str) -> str:
    if name.startswith("output_projection"):
        return "output"
    if name.startswith("embed_tokens"):
        return "input"
    return "hyper" if ".hyper." in name else "main"


def breakdown(model: nn.Module) -> Dict[str, int]:
    counts = dict.fromkeys(GROUPS, 0)
    for name, p in model.named_parameters():
        counts[group_of(name)] += p.numel()
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hyperfairseq.params", description=__doc__.splitlines()[0])
    parser.add_argument("--arch", required=True, help="architecture name, e.g. ln_hyperlstm_lm_ptb")
    parser.add_argument("--vocab", type=int, required=True, help="symbols as the paper counts them (PTB 50, enwik8 205)")
    args = parser.parse_args(argv)
    if args.vocab < 1:
        parser.error(f"--vocab must be a positive integer; got {args.vocab}")
    model_cls, cfg = build_config(args.arch)
    decoder = model_cls.build_decoder(cfg, None, args.vocab)
    counts = breakdown(decoder)
    for group in GROUPS:
        print(f"{group}: {counts[group]}")
    paper = getattr(sys.modules[model_cls.__module__], "PAPER_PARAMS", {}).get(args.arch)
    if paper is not None:
        print(f"paper: {paper['paper_millions']:.2f} M (vocab {paper['vocab']})")
    print(f"total: {sum(counts.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
