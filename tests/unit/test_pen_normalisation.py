"""The warning when a checkpoint's normalisation constants (H1) differ from the data's: compared at the
checkpoint's precision, so a model trained with --bf16 (bf16 buffers) loads onto its own data silently."""

import logging

import torch
from torch import nn

from hyperfairseq.models.pen_normalisation import register_normalisation, warn_if_checkpoint_differs

MEAN, STD = [2.310978260869563, -0.8277536231884057], [15.775135366167321, 13.12259895861989]


def decoder_with_data_constants() -> nn.Module:
    decoder = nn.Module()
    register_normalisation(decoder)
    decoder.norm_mean.copy_(torch.tensor(MEAN))
    decoder.norm_std.copy_(torch.tensor(STD))
    return decoder


def checkpoint(mean, std, dtype=torch.float32):
    return {"decoder.norm_mean": torch.tensor(mean).to(dtype), "decoder.norm_std": torch.tensor(std).to(dtype)}


def test_equal_constants_in_float32_and_bf16_do_not_warn(caplog):
    decoder = decoder_with_data_constants()
    with caplog.at_level(logging.WARNING):
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            assert not warn_if_checkpoint_differs(decoder, checkpoint(MEAN, STD, dtype)), dtype
    assert not caplog.records


def test_other_constants_warn_naming_both(caplog):
    decoder = decoder_with_data_constants()
    other_std = [STD[0], STD[1] * 1.01]  # 1% on one axis: far beyond float32 rounding (6e-8 relative)
    with caplog.at_level(logging.WARNING):
        assert warn_if_checkpoint_differs(decoder, checkpoint(MEAN, other_std))
    message = caplog.records[-1].getMessage()
    assert f"{STD[1]:.6g}" in message and f"{torch.tensor(STD[1] * 1.01).item():.6g}" in message


def test_a_checkpoint_without_the_buffers_is_left_to_the_strict_load():
    assert not warn_if_checkpoint_differs(decoder_with_data_constants(), {"decoder.norm_mean": torch.zeros(2)})
