"""Handwriting model `hyperlstm_handwriting`: a HyperLSTM over pen offsets with a mixture-density head.

HyperNetworks (arXiv 1609.09106v4) §4.5, A.3.5, Table 5; paper-spec §3.5, §2.6, H4–H5. Use it as::

    fairseq-train data-bin/iam_ondb --user-dir hyperfairseq --task handwriting \
        --arch hyperlstm_handwriting --criterion mdn --batch-size 32 --optimizer adam --lr 1e-4 --clip-norm 5

Inputs are the 3 raw values (Δx, Δy, end-of-stroke) per step (N_x = 3, no embedding); the top layer's
h_t, after output dropout (H5), feeds one linear layer of 1 + 6·M outputs (M = 20: 121), activated by
`hyperfairseq.modules.mdn.split_outputs`. The model returns a `StrokeModelOutput` (modules/mdn.py).
Every architecture sets only what its Table 5 row changes; its docstring gives the row and the exact
parameter count asserted by tests through `python -m hyperfairseq.params --arch ARCH --vocab 3`.
Dropout fields are *drop* probabilities: the paper's keep 0.95 is 0.05.
"""

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from fairseq.dataclass import FairseqDataclass
from fairseq.models import BaseFairseqModel, register_model, register_model_architecture
from torch import Tensor, nn

from hyperfairseq.errors import InputError
from hyperfairseq.modules import HyperLSTM, HyperLSTMState
from hyperfairseq.modules.mdn import StrokeModelOutput, output_size, split_outputs

from .arch_utils import set_defaults as _set
from .state_dict_check import check_state_dict_fits

INPUT_SIZE = 3  # (Δx, Δy, end-of-stroke)
MODEL_NAME = "hyperlstm_handwriting"


@dataclass
class HyperLSTMHandwritingConfig(FairseqDataclass):
    decoder_hidden_size: int = field(default=900, metadata={"help": "N_h, main LSTM units; Table 5 uses 900"})
    decoder_layers: int = field(default=1, metadata={"help": "stacked layers (Table 5: 1, 2 or 3)"})
    hyper_hidden_size: int = field(default=128, metadata={"help": "N_ĥ, hyper-LSTM units; Table 5 uses 128"})
    n_z: int = field(default=4, metadata={"help": "N_z, embedding size per gate; Table 5 uses 4"})
    no_hyper: bool = field(default=False, metadata={"help": "switch the hypernetwork off: LSTM / LN-LSTM baselines"})
    layer_norm: bool = field(default=False, metadata={"help": "layer norm per gate and on c (R8)"})
    num_mixtures: int = field(default=20, metadata={"help": "M, bivariate Gaussian components (paper: 20)"})
    dropout_out: float = field(
        default=0.05, metadata={"help": "dropout on the top h before the MDN layer (H5; drop prob., keep 0.95 -> 0.05)"}
    )
    recurrent_dropout: float = field(
        default=0.05, metadata={"help": "recurrent dropout on tanh(g_t), Eq. 13 (drop prob.; keep 0.95 -> 0.05)"}
    )
    layer_dropout: float = field(default=0.0, metadata={"help": "dropout between stacked layers"})
    forget_bias: float = field(default=1.0, metadata={"help": "added to the forget gate inside sigma (R2)"})
    ln_eps: float = field(default=1e-3, metadata={"help": "layer-norm epsilon (R8)"})


class HandwritingDecoder(nn.Module):
    """(B, T, 3) pen rows -> `StrokeModelOutput` through a HyperLSTM and the MDN output layer.

    Buffers `norm_mean`, `norm_std` (2,) hold the dataset's normalisation of (Δx, Δy) (H1), so that a
    checkpoint alone can map samples back to pen units.
    """

    def __init__(self, rnn: HyperLSTM, num_mixtures: int, dropout_out: float):
        super().__init__()
        self.rnn = rnn
        self.num_mixtures = num_mixtures
        self.dropout_out = dropout_out
        self.output_projection = nn.Linear(rnn.hidden_size, output_size(num_mixtures))
        self.register_buffer("norm_mean", torch.zeros(2))
        self.register_buffer("norm_std", torch.ones(2))

    def forward(
        self,
        strokes: Tensor,
        lengths: Optional[Tensor] = None,
        state: Optional[HyperLSTMState] = None,
        return_internals: bool = False,
        bias: float = 0.0,
    ) -> StrokeModelOutput:
        x = strokes.transpose(0, 1).to(self.output_projection.weight.dtype)  # (T, B, 3), time-major
        out = self.rnn(x, state, lengths=lengths, return_internals=return_internals)
        h, new_state = out[0], out[1]
        h = F.dropout(h, self.dropout_out, self.training)  # H5: output dropout before the MDN layer
        mixture = split_outputs(self.output_projection(h.transpose(0, 1)), self.num_mixtures, bias)
        return StrokeModelOutput(mixture, new_state, out[2] if return_internals else None)


@register_model(MODEL_NAME, dataclass=HyperLSTMHandwritingConfig)
class HyperLSTMHandwritingModel(BaseFairseqModel):
    """`--arch hyperlstm_handwriting` and its Table 5 rows; forward(strokes, lengths) -> `StrokeModelOutput`."""

    def __init__(self, decoder: HandwritingDecoder):
        super().__init__()
        self.decoder = decoder

    @classmethod
    def build_model(cls, cfg: HyperLSTMHandwritingConfig, task):
        decoder = cls.build_decoder(cfg, None, INPUT_SIZE)
        mean, std = getattr(task, "norm_mean", None), getattr(task, "norm_std", None)
        if mean is not None and std is not None:
            decoder.norm_mean.copy_(torch.tensor(mean, dtype=torch.float32))
            decoder.norm_std.copy_(torch.tensor(std, dtype=torch.float32))
        return cls(decoder)

    @classmethod
    def build_decoder(cls, cfg: HyperLSTMHandwritingConfig, dictionary, num_symbols: int) -> HandwritingDecoder:
        """The network to count in `python -m hyperfairseq.params` (num_symbols = N_x = 3 for pen rows)."""
        _check_config(cfg, num_symbols)
        rnn = HyperLSTM(
            input_size=num_symbols,
            hidden_size=cfg.decoder_hidden_size,
            num_layers=cfg.decoder_layers,
            hyper_hidden_size=cfg.hyper_hidden_size,
            n_z=cfg.n_z,
            use_hyper=not cfg.no_hyper,
            layer_norm=cfg.layer_norm,
            recurrent_dropout=cfg.recurrent_dropout,
            forget_bias=cfg.forget_bias,
            ln_eps=cfg.ln_eps,
            dropout=cfg.layer_dropout,
        )
        return HandwritingDecoder(rnn, cfg.num_mixtures, cfg.dropout_out)

    def forward(self, strokes, lengths=None, state=None, return_internals=False, bias=0.0) -> StrokeModelOutput:
        return self.decoder(strokes, lengths, state, return_internals, bias)

    def max_positions(self):
        return None

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        if strict:
            check_state_dict_fits(self, state_dict)
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)


def _check_config(cfg, num_symbols: int) -> None:
    if num_symbols != INPUT_SIZE:
        raise InputError(f"handwriting rows have {INPUT_SIZE} inputs (Δx, Δy, end-of-stroke); got --vocab {num_symbols}")
    positive = ["decoder_hidden_size", "decoder_layers", "num_mixtures"] + ([] if cfg.no_hyper else ["hyper_hidden_size", "n_z"])
    for name in positive:
        if getattr(cfg, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be a positive integer; got {getattr(cfg, name)}")
    for name in ("dropout_out", "recurrent_dropout", "layer_dropout"):
        value = getattr(cfg, name)
        if not 0.0 <= value < 1.0:
            raise InputError(f"--{name.replace('_', '-')} is a drop probability in [0, 1) (keep 0.95 is 0.05); got {value}")


# -- architectures: one per row of Table 5 (the "their impl." rows with augmentation and dropout) ------
# PAPER_PARAMS: the paper's printed count (millions) and the exact count of our model (N_x = 3, M = 20).
PAPER_PARAMS = {}


def _arch(name, paper_m, exact):
    def register(fn):
        PAPER_PARAMS[name] = {"paper_millions": paper_m, "exact": exact, "vocab": INPUT_SIZE}
        if name == MODEL_NAME:  # register_model already made the model name an arch: the dataclass defaults
            return fn
        return register_model_architecture(MODEL_NAME, name)(fn)

    return register


def base_architecture(cfg):
    _set(
        cfg, decoder_hidden_size=900, decoder_layers=1, hyper_hidden_size=128, n_z=4, no_hyper=False,
        layer_norm=False, num_mixtures=20, dropout_out=0.05, recurrent_dropout=0.05, layer_dropout=0.0,
        forget_bias=1.0, ln_eps=1e-3,
    )


@_arch("hyperlstm_handwriting", 3.94, 3_941_181)
def hyperlstm_handwriting(cfg):
    """Table 5, HyperLSTM 900 units (N_ĥ 128, N_z 4), log-loss −1,162: 3.94 M (exact 3,941,181).

    Equal to the dataclass defaults, which is what `--arch hyperlstm_handwriting` gets.
    """
    base_architecture(cfg)


@_arch("ln_hyperlstm_handwriting", 3.95, 3_950_949)
def ln_hyperlstm_handwriting(cfg):
    """Table 5, Layer Norm HyperLSTM 900 units, −1,067: 3.95 M (exact 3,950,949)."""
    _set(cfg, layer_norm=True)
    base_architecture(cfg)


@_arch("lstm_handwriting_900", 3.36, 3_363_421)
def lstm_handwriting_900(cfg):
    """Table 5, LSTM 900 units (+ augmentation, dropout, rec. dropout), −1,055: 3.36 M (exact 3,363,421)."""
    _set(cfg, no_hyper=True)
    base_architecture(cfg)


@_arch("lstm_handwriting_1000", 4.14, 4_137_121)
def lstm_handwriting_1000(cfg):
    """Table 5, LSTM 1000 units, −1,048: 4.14 M (exact 4,137,121)."""
    _set(cfg, no_hyper=True, decoder_hidden_size=1000)
    base_architecture(cfg)


@_arch("ln_lstm_handwriting_900", 3.37, 3_368_821)
def ln_lstm_handwriting_900(cfg):
    """Table 5, Layer Norm LSTM 900 units (no b_0, R3), −1,096: 3.37 M (exact 3,368,821)."""
    _set(cfg, no_hyper=True, layer_norm=True)
    base_architecture(cfg)


@_arch("ln_lstm_handwriting_1000", 4.14, 4_143_121)
def ln_lstm_handwriting_1000(cfg):
    """Table 5, Layer Norm LSTM 1000 units, −1,106: 4.14 M (exact 4,143,121)."""
    _set(cfg, no_hyper=True, layer_norm=True, decoder_hidden_size=1000)
    base_architecture(cfg)


@_arch("lstm_handwriting_3layer_400", 3.26, 3_258_121)
def lstm_handwriting_3layer_400(cfg):
    """Table 5, 3-Layer LSTM 400 units (plain stack, no skip connections), −1,068: 3.26 M (exact 3,258,121)."""
    _set(cfg, no_hyper=True, decoder_layers=3, decoder_hidden_size=400)
    base_architecture(cfg)


@_arch("lstm_handwriting_2layer_650", 5.16, 5_161_771)
def lstm_handwriting_2layer_650(cfg):
    """Table 5, 2-Layer LSTM 650 units, −1,135: 5.16 M (exact 5,161,771)."""
    _set(cfg, no_hyper=True, decoder_layers=2, decoder_hidden_size=650)
    base_architecture(cfg)
