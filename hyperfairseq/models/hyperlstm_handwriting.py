"""Handwriting model `hyperlstm_handwriting`: a HyperLSTM over pen offsets with a mixture-density head.

HyperNetworks (arXiv 1609.09106v4) §4.5, A.3.5, Table 5; paper-spec §3.5, §2.6, H4–H5. Use it as::

    fairseq-train data-bin/iam_ondb --user-dir hyperfairseq --task handwriting \
        --arch hyperlstm_handwriting --criterion mdn --batch-size 32 --optimizer adam --lr 1e-4 --clip-norm 5

Inputs are the 3 raw values (Δx, Δy, end-of-stroke) per step (N_x = 3, no embedding); the top layer's
h_t, after output dropout (H5), feeds one linear layer of 1 + 6·M outputs (M = 20: 121), activated by
`hyperfairseq.modules.mdn.split_outputs`. The model returns a `StrokeModelOutput` (modules/mdn.py).
The dataclass defaults are Table 5's HyperLSTM (900 units, N_ĥ 128, N_z 4); every other row is a line of
`architectures.TABLES` that changes some of them, beside the paper's row and the exact parameter count
asserted by tests through `python -m hyperfairseq.params --arch ARCH --vocab 3`.
Dropout fields are *drop* probabilities: the paper's keep 0.95 is 0.05.
"""

from dataclasses import dataclass, field
from typing import Optional

from fairseq.models import BaseFairseqModel, register_model
from fairseq.modules import FairseqDropout
from torch import Tensor, nn

from hyperfairseq.errors import InputError
from hyperfairseq.modules import HyperLSTM, HyperLSTMState
from hyperfairseq.modules.mdn import PEN_ROW_SIZE, StrokeModelOutput, output_size, split_outputs

from . import architectures
from .config import PEN_RULES, PenModelConfig, build_hyperlstm, check_config, drop_probability, positive
from .pen_normalisation import ComparesPenNormalisation, register_normalisation, take_data_normalisation
from .state_dict_check import ChecksCheckpointFit

MODEL_NAME = "hyperlstm_handwriting"


@dataclass
class HyperLSTMHandwritingConfig(PenModelConfig):
    """The unconditional pen model (§4.5). Its defaults are Table 5's HyperLSTM row (1 × 900, N_z 4, keep
    0.95); the other Table 5 rows are diffs of it (architectures.py)."""

    decoder_hidden_size: int = field(default=900, metadata={"help": "N_h, main LSTM units; Table 5 uses 900"})
    decoder_layers: int = field(default=1, metadata={"help": "stacked layers (Table 5: 1, 2 or 3)"})
    layer_dropout: float = field(default=0.0, metadata={"help": "dropout between stacked layers"})


class HandwritingDecoder(nn.Module):
    """(B, T, 3) pen rows -> `StrokeModelOutput` through a HyperLSTM and the MDN output layer.

    Buffers `norm_mean`, `norm_std` (2,) hold the dataset's normalisation of (Δx, Δy) (H1), so that a
    checkpoint alone can map samples back to pen units.
    """

    def __init__(self, rnn: HyperLSTM, num_mixtures: int, dropout_out: float):
        super().__init__()
        self.rnn = rnn
        self.num_mixtures = num_mixtures
        self.dropout_out = FairseqDropout(dropout_out, module_name=type(self).__name__)  # --retain-dropout too
        self.output_projection = nn.Linear(rnn.hidden_size, output_size(num_mixtures))
        register_normalisation(self)

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
        h = self.dropout_out(h)  # H5: output dropout before the MDN layer
        mixture = split_outputs(self.output_projection(h.transpose(0, 1)), self.num_mixtures, bias)
        return StrokeModelOutput(mixture, new_state, out[2] if return_internals else None)


RULES = PEN_RULES + (positive("decoder_hidden_size", "decoder_layers"), drop_probability("layer_dropout"))


@register_model(MODEL_NAME, dataclass=HyperLSTMHandwritingConfig)
class HyperLSTMHandwritingModel(ComparesPenNormalisation, ChecksCheckpointFit, BaseFairseqModel):
    """`--arch hyperlstm_handwriting` and its Table 5 rows; forward(strokes, lengths) -> `StrokeModelOutput`."""

    def __init__(self, decoder: HandwritingDecoder):
        super().__init__()
        self.decoder = decoder

    @classmethod
    def build_model(cls, cfg: HyperLSTMHandwritingConfig, task):
        decoder = cls.build_decoder(cfg, None, PEN_ROW_SIZE)
        model = cls(decoder)
        model.data_normalisation = take_data_normalisation(decoder, task)
        return model

    @classmethod
    def build_decoder(cls, cfg: HyperLSTMHandwritingConfig, dictionary, num_symbols: int) -> HandwritingDecoder:
        """The network to count in `python -m hyperfairseq.params` (num_symbols = N_x = 3 for pen rows)."""
        if num_symbols != PEN_ROW_SIZE:
            raise InputError(
                f"handwriting rows have {PEN_ROW_SIZE} inputs (Δx, Δy, end-of-stroke); got --vocab {num_symbols}"
            )
        check_config(cfg, RULES)
        rnn = build_hyperlstm(cfg, num_symbols, cfg.decoder_hidden_size, cfg.decoder_layers, cfg.layer_dropout)
        return HandwritingDecoder(rnn, cfg.num_mixtures, cfg.dropout_out)

    def forward(self, strokes, lengths=None, state=None, return_internals=False, bias=0.0) -> StrokeModelOutput:
        return self.decoder(strokes, lengths, state, return_internals, bias)

    def max_positions(self):
        return None


architectures.register(MODEL_NAME, HyperLSTMHandwritingConfig)
