"""The fairseq-hydra-train configs spell out exactly what each architecture function sets."""

import argparse
from pathlib import Path

import pytest
import yaml
from fairseq.models import ARCH_CONFIG_REGISTRY

from hyperfairseq.models.hyperlstm_lm import PAPER_PARAMS

CONFIGS = Path(__file__).resolve().parents[2] / "examples/hydra/char_lm"


@pytest.mark.parametrize("arch", sorted(PAPER_PARAMS))
def test_hydra_config_model_fields_equal_the_architecture(arch):
    config = yaml.safe_load((CONFIGS / f"{arch}.yaml").read_text())
    ns = argparse.Namespace()
    ARCH_CONFIG_REGISTRY[arch](ns)
    model = dict(config["model"])
    assert model.pop("_name") == "hyperlstm_lm"
    assert model == vars(ns)
    assert config["task"]["_name"] == "char_lm"
    assert config["task"]["tokens_per_sample"] == (300 if arch.endswith("2048") else 250 if "enwik8" in arch else 100)
    assert config["optimization"]["lr"] == [0.001] and config["optimization"]["clip_norm"] == 1.0
    assert config["dataset"]["batch_size"] == 128
