"""The fairseq-hydra-train configs spell out exactly what each architecture row of the language model sets."""

import argparse
from pathlib import Path

import pytest
import yaml
from fairseq.models import ARCH_CONFIG_REGISTRY

from hyperfairseq.models.architectures import ARCHITECTURES, of_model

CONFIGS = Path(__file__).resolve().parents[2] / "examples/hydra/char_lm"
LM_ROWS = sorted(arch.row.name for arch in of_model("hyperlstm_lm"))


@pytest.mark.parametrize("arch", LM_ROWS)
def test_hydra_config_model_fields_equal_the_architecture(arch):
    text = (CONFIGS / f"{arch}.yaml").read_text()
    config = yaml.safe_load(text)
    ns = argparse.Namespace()
    ARCH_CONFIG_REGISTRY[arch](ns)
    model = dict(config["model"])
    assert model.pop("_name") == "hyperlstm_lm"
    assert model == vars(ns)
    assert config["task"]["_name"] == "char_lm"
    assert config["task"]["tokens_per_sample"] == (300 if arch.endswith("2048") else 250 if "enwik8" in arch else 100)
    assert config["optimization"]["lr"] == [0.001] and config["optimization"]["clip_norm"] == 1.0
    assert config["dataset"]["batch_size"] == 128
    assert text.splitlines()[1] == "# " + ARCHITECTURES[arch].describe(), "the header names the table's row"


def test_every_hydra_config_is_a_row_of_the_table():
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == LM_ROWS
